"""The data contract of each exported dataset (Open Data Contract Standard v3): what a platform
receives, what it means, and the rules it can test a delivery against.

Generated, never written by hand, from what the pipeline itself runs on:
- schemas/gold/<dataset>.yaml: the columns in order, their types, the key, the partitioning, and
  each column's meaning (docs/metrics.md's definition); `contract_version` there is the contract's
  semantic version;
- expectations/gold_<dataset>.yaml: the quality rules the publish enforces, as ODCS rules a
  consumer's tool runs (`datacontract test`): not-null -> `required`, a value set -> `enum`, a
  range or a pattern -> `logicalTypeOptions`, a range under a condition -> a SQL rule. `critical`
  rules are errors, `warning` ones warnings; the key is the primary key (unique, not null).

Published beside every manifest as `<prefix>_contract-<digest>.yaml`, its `servers` entry pointing
at exactly that delivery's Parquet parts; the manifest names its key, version and SHA-256. The
contracts as last released are kept in schemas/contracts/ (`agrilake contract --write
schemas/contracts`): a test fails when a column is removed, renamed or retyped without a major
version bump, or added without a minor one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from agrilake.delivery.policy import describe_small_cells

API_VERSION = "v3.1.0"
CONTRACT_FILE = "_contract.yaml"
OWNER = "agrilake-data-eng"
DOMAINS = {"coop_credit_profile": "rural-credit", "household_credit_profile": "rural-credit",
           "credit_county_summary": "rural-credit", "logistics_division_daily": "rural-logistics"}
# Spark type of the gold contract -> (ODCS logical type, Parquet column as DuckDB and most engines name it)
_SCALARS = {"string": ("string", "varchar"), "date": ("date", "date"), "int": ("integer", "integer"),
            "long": ("integer", "bigint"), "bigint": ("integer", "bigint"), "double": ("number", "double"),
            "boolean": ("boolean", "boolean"), "timestamp": ("timestamp", "timestamp")}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_ARRAY = re.compile(r"^array<(\w+)>$")


class ContractError(ValueError):
    """The contracts cannot be generated or a release would break consumers; the message says why."""


def types(spark_type: str) -> dict[str, Any]:
    """ODCS `logicalType` / `physicalType` (and `items` for arrays) of a gold column's Spark type."""
    t = spark_type.strip().lower()
    if t in _SCALARS:
        logical, physical = _SCALARS[t]
        return {"logicalType": logical, "physicalType": physical}
    if m := _DECIMAL.match(t):
        return {"logicalType": "number", "physicalType": f"decimal({m[1]},{m[2]})"}
    if (m := _ARRAY.match(t)) and m[1] in _SCALARS:
        logical, physical = _SCALARS[m[1]]
        return {"logicalType": "array", "physicalType": "array",
                "items": {"logicalType": logical, "physicalType": physical}}
    raise ContractError(f"no ODCS type for the gold type {spark_type!r}: extend agrilake.delivery.contract")


def _condition_sql(cond: dict[str, Any]) -> str:
    """A GX row_condition (comparison) as SQL."""
    ops = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
    if cond.get("type") != "comparison" or cond.get("operator") not in ops:
        raise ContractError(f"row_condition {cond!r} has no SQL form in the contract generator")
    value = cond["parameter"]
    literal = str(value) if isinstance(value, int | float) else "'" + str(value).replace("'", "''") + "'"
    return f"{cond['column']['name']} {ops[cond['operator']]} {literal}"


def _rules(expectations: list[dict[str, Any]], columns: list[str]):
    """Per column: property fields and quality rules; plus the table's own quality rules."""
    fields: dict[str, dict[str, Any]] = {c: {} for c in columns}
    per_column: dict[str, list[dict]] = {c: [] for c in columns}
    table: list[dict] = []
    for e in expectations:
        kind, kwargs = e["expectation"], e.get("kwargs", {})
        severity = "error" if e.get("severity", "critical") == "critical" else "warning"
        column = kwargs.get("column")
        condition = kwargs.get("row_condition")
        if column is not None and column not in fields:
            raise ContractError(f"expectation {kind} names column {column!r}, which the gold contract lacks")
        if kind == "expect_compound_columns_to_be_unique":
            table.append({"name": "unique_" + "_".join(kwargs["column_list"]), "type": "library",
                          "metric": "duplicateValues", "arguments": {"properties": kwargs["column_list"]},
                          "mustBe": 0, "severity": severity,
                          "description": f"one row per {', '.join(kwargs['column_list'])}"})
        elif kind == "expect_column_values_to_not_be_null" and severity == "error" and not condition:
            fields[column]["required"] = True
        elif kind == "expect_column_values_to_not_be_null":
            per_column[column].append({"type": "library", "metric": "nullValues", "mustBe": 0, "severity": severity})
        elif kind == "expect_column_values_to_be_in_set" and not condition:
            per_column[column].append({"type": "library", "metric": "invalidValues", "mustBe": 0, "severity": severity,
                                       "arguments": {"validValues": list(kwargs["value_set"])}})
        elif kind == "expect_column_values_to_match_regex" and not condition and severity == "error":
            fields[column].setdefault("logicalTypeOptions", {})["pattern"] = kwargs["regex"]
        elif kind == "expect_column_values_to_be_between" and not condition and severity == "error":
            options = fields[column].setdefault("logicalTypeOptions", {})
            if kwargs.get("min_value") is not None:
                options["minimum"] = kwargs["min_value"]
            if kwargs.get("max_value") is not None:
                options["maximum"] = kwargs["max_value"]
        elif kind == "expect_column_values_to_be_between":
            bounds = [f"{column} >= {kwargs['min_value']}" if kwargs.get("min_value") is not None else None,
                      f"{column} <= {kwargs['max_value']}" if kwargs.get("max_value") is not None else None]
            where = " AND ".join(b for b in bounds if b)
            scope = f"{_condition_sql(condition)} AND " if condition else ""
            table.append({"name": f"{column}_range" + (f"_when_{_slug(_condition_sql(condition))}" if condition else ""),
                          "type": "sql", "severity": severity, "mustBe": 0,
                          "description": f"{where}" + (f" where {_condition_sql(condition)}" if condition else ""),
                          "query": f"SELECT COUNT(*) FROM {{object}} WHERE {scope}{column} IS NOT NULL AND NOT ({where})"})
        else:  # kept as what the pipeline runs, for a reader; a consumer's tool may not run it
            table.append({"type": "custom", "engine": "greatExpectations", "severity": severity,
                          "implementation": {"expectation_type": kind, "kwargs": kwargs}})
    return fields, per_column, table


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def version_of(contracts, dataset: str) -> str:
    version = contracts.gold_table(dataset).extra["contract_version"]
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ContractError(f"schemas/gold/{dataset}.yaml has no contract_version MAJOR.MINOR.PATCH")
    return version


def generate(contracts, suites_dir: Path, platform: str, dataset: str, *, server: dict[str, Any] | None = None,
             min_cell: int = 3) -> dict[str, Any]:
    """The ODCS v3 contract of `dataset` as delivered to `platform`; `server`: the delivery's location
    (`servers` entry), absent in the released copy; `min_cell`: the gov small-cell threshold K."""
    from agrilake.core.quality import load_suite

    table = contracts.gold_table(dataset)
    columns = [c.name for c in table.columns]
    fields, per_column, table_rules = _rules(load_suite(suites_dir, f"gold_{dataset}"), columns)
    partition_by = table.extra.get("partition_by")
    limitations = "Rows are the gold partition of D as published (a rerun of D replaces the delivery whole)."
    small_cells = describe_small_cells(dataset, min_cell) if platform == "gov" else None
    if small_cells:
        limitations += " " + small_cells
    properties = []
    for c in table.columns:
        prop: dict[str, Any] = {"name": c.name, **types(c.type), "description": c.description}
        if c.name in table.key:
            prop.update(primaryKey=True, primaryKeyPosition=table.key.index(c.name) + 1, required=True)
        prop.update(fields[c.name])
        if c.name == partition_by:
            prop.update(partitioned=True, partitionKeyPosition=1)
        if c.name == "person_key":
            prop["classification"] = "pseudonymous"
            prop["description"] += " (HMAC-SHA256 of the RIC under the pipeline's key: the manifest's " \
                                   "person_key_fingerprint names the key; a new fingerprint is a key rotation)"
        if per_column[c.name]:
            prop["quality"] = per_column[c.name]
        properties.append(prop)
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": f"urn:agrilake:{platform}:{dataset}",
        "name": dataset,
        "version": version_of(contracts, dataset),
        "status": "active",
        "domain": DOMAINS.get(dataset, "rural-services"),
        "dataProduct": f"agrilake exports for the {platform} platform",
        "tenant": "agrilake",
        "description": {
            "purpose": table.description,
            "usage": ("One delivery per as-of date D under <dataset>/as_of=D/: Parquet parts and _manifest.json, "
                      "written last, listing every part with its size and SHA-256. Trust a delivery only when the "
                      "manifest is there and every part matches it (`agrilake fetch` does this)."),
            "limitations": limitations,
        },
        "schema": [{
            "name": dataset,
            "physicalName": dataset,
            "logicalType": "object",
            "physicalType": "table",
            "description": table.description,
            "dataGranularityDescription": "one row per " + ", ".join(k for k in table.key if k != partition_by)
                                          + f" and {partition_by}",
            "properties": properties,
            "quality": table_rules,
        }],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "d", "element": f"{dataset}.{partition_by}",
             "description": "one delivery per as-of date"},
            {"property": "latency", "value": 1, "unit": "d", "element": f"{dataset}.{partition_by}",
             "description": "D is delivered once every upstream system has delivered D, normally the next day"},
        ],
        "team": {"name": OWNER, "members": [{"username": OWNER, "role": "owner"}]},
        "customProperties": [
            {"property": "partitioning", "value": f"{partition_by}: one prefix <dataset>/as_of=<D>/ per date"},
            {"property": "format", "value": "parquet"},
            {"property": "manifest", "value": "_manifest.json (sizes, SHA-256, row counts; written last)"},
        ],
    }
    if server:
        doc["servers"] = [server]
    return doc


def server_for(platform: str, bucket: str, parts: str, endpoint: str | None) -> dict[str, Any]:
    """The `servers` entry of one delivery: `parts`, the key glob of exactly its Parquet parts (the
    previous delivery's parts may still be under the same prefix for a moment), on the platform's bucket."""
    server = {"server": platform, "type": "s3", "format": "parquet", "location": f"s3://{bucket}/{parts}",
              "description": "this delivery's Parquet parts (trust them only as listed in _manifest.json)"}
    if endpoint:
        server["endpointUrl"] = endpoint
    return server


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)


def validate(doc: dict[str, Any]) -> None:
    """Refuse a document that is not valid ODCS (the standard's JSON schema, shipped with its model)."""
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("open_data_contract_standard").joinpath("schema.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        raise ContractError("not a valid ODCS contract: " + "; ".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]))


# -- releases --------------------------------------------------------------------------------
def _columns(doc: dict[str, Any]) -> dict[str, tuple]:
    return {p["name"]: (p["logicalType"], p.get("physicalType")) for p in doc["schema"][0]["properties"]}


def changes(released: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(breaking, additive) differences of the schemas: a column removed, renamed or retyped breaks
    consumers; a column added does not."""
    old, new = _columns(released), _columns(current)
    breaking = [f"column {c!r} removed or renamed" for c in old if c not in new]
    breaking += [f"column {c!r} retyped {old[c]} -> {new[c]}" for c in old if c in new and old[c] != new[c]]
    additive = [f"column {c!r} added" for c in new if c not in old]
    return breaking, additive


def release_problems(released: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Why `current` cannot follow `released` under semantic versioning (empty when it can)."""
    def semver(doc):
        return tuple(int(x) for x in doc["version"].split("."))

    breaking, additive = changes(released, current)
    old, new = semver(released), semver(current)
    name = current["name"]
    if breaking and new[0] <= old[0]:
        return [f"{name}: {'; '.join(breaking)}: a breaking change needs a major version after "
                f"{released['version']} (contract_version in schemas/gold/{name}.yaml)"]
    if additive and new[:2] <= old[:2]:
        return [f"{name}: {'; '.join(additive)}: needs at least a minor version after {released['version']}"]
    if new < old:
        return [f"{name}: version {current['version']} is older than the released {released['version']}"]
    return []


def released_dir(contracts) -> Path:
    return contracts.dir / "contracts"


def main(argv: list[str] | None = None) -> int:
    from agrilake.core.contracts import load
    from agrilake.core.settings import get_settings
    from agrilake.delivery.policy import PLATFORMS

    parser = argparse.ArgumentParser(prog="agrilake contract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="DIR", help="write <dataset>.odcs.yaml per exported dataset")
    parser.add_argument("--check", action="store_true",
                        help="compare with the released contracts (schemas/contracts/): exit 1 on an unversioned change")
    args = parser.parse_args(argv)
    s = get_settings()
    contracts = load(s.schemas_dir)
    problems = []
    for platform, datasets in PLATFORMS.items():
        for dataset in datasets:
            doc = generate(contracts, s.expectations_dir, platform, dataset, min_cell=s.gov_min_cell)
            validate(doc)
            if args.write:
                args.write.mkdir(parents=True, exist_ok=True)
                (args.write / f"{dataset}.odcs.yaml").write_text(dump(doc), encoding="utf-8")
                print(f"wrote {args.write / f'{dataset}.odcs.yaml'} (version {doc['version']})")
            if args.check:
                path = released_dir(contracts) / f"{dataset}.odcs.yaml"
                if not path.exists():
                    problems.append(f"{dataset}: no released contract {path}")
                    continue
                problems += release_problems(yaml.safe_load(path.read_text(encoding="utf-8")), doc)
            if not (args.write or args.check):
                print(dump(doc), end="---\n")
    for p in problems:
        print(f"agrilake contract: {p}", file=sys.stderr)
    return 1 if problems else 0

