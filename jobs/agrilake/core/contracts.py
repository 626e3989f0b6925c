"""Loads schemas/: the source-feed, silver, gold and ops table contracts, in one place.

The generator, bronze parsing, silver typing, the gold shape, the data dictionary and the privacy
guard all read these objects; nobody else opens the YAML files. Which folder is read comes from the
settings (`RunContext.contracts`); `packaged()` is the copy shipped with the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

# Silver entities per domain, in dependency order (a table's references come before it).
SILVER_DOMAINS = {
    "divisions": ["divisions"],
    "coop": ["cooperatives", "members", "sales"],
    "postal": ["outlets", "shipment_events", "cold_chain_readings"],
    "bank": ["loans", "installments", "subsidies"],
}

# A system that owes a delivery every day, and one that delivers only when its data changes.
CALENDARS = ("daily", "on_change")

# The gold datasets, in build order (the county summary is derived from the cooperative profile).
GOLD_TABLES = ("coop_credit_profile", "household_credit_profile", "logistics_division_daily",
               "credit_county_summary")

SPARK_TYPES = {
    "string": "string",
    "date": "date",
    "timestamp": "timestamp",
    "int": "int",
    "long": "bigint",
    "double": "double",
    "money": "decimal(18,2)",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array<string>",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""
    required: bool = False
    pii: str | None = None  # ric | name | phone
    check: str | None = None  # uscc | ric | division_code | county_code
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    references: str | None = None
    required_when: dict[str, Any] | None = None

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES.get(self.type, self.type)


@dataclass(frozen=True)
class Feed:
    system: str
    feed: str
    format: str  # csv | jsonl
    kind: str  # reference | upsert | event
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    grain: str = ""
    version_by: str | None = None

    @property
    def name(self) -> str:
        return f"{self.system}_{self.feed}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]


@dataclass(frozen=True)
class Table:
    name: str  # layer.table
    source: str
    kind: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    version_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ddl(self) -> str:
        return ", ".join(f"{c.name} {c.spark_type}" for c in self.columns)


def _column(raw: dict[str, Any]) -> Column:
    raw = dict(raw)
    if raw.get("allowed") is not None:
        raw["allowed"] = tuple(raw["allowed"])
    return Column(**raw)


class Contracts:
    """The contracts of one schemas/ folder: source feeds, silver tables, gold tables."""

    def __init__(self, schemas_dir: Path):
        self.dir = Path(schemas_dir)
        if not (self.dir / "source").is_dir():
            raise FileNotFoundError(
                f"no table contracts at {self.dir} (expected source/, silver/, gold/ of *.yaml): "
                "reinstall agrilake, or point AGRILAKE_SCHEMAS at the project's schemas/ folder")

    def _yaml(self, *parts: str) -> dict[str, Any]:
        return yaml.safe_load(self.dir.joinpath(*parts).read_text(encoding="utf-8"))

    @cached_property
    def _feeds(self) -> dict[str, Feed]:
        out = {}
        for path in sorted((self.dir / "source").glob("[!_]*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            feed = Feed(
                system=raw["system"],
                feed=raw["feed"],
                format=raw["format"],
                kind=raw["kind"],
                key=tuple(raw["key"]),
                columns=tuple(_column(c) for c in raw["columns"]),
                grain=raw.get("grain", ""),
                version_by=raw.get("version_by"),
            )
            out[feed.name] = feed
        return out

    def feeds(self) -> dict[str, Feed]:
        """Every source feed, keyed by `<system>_<feed>`."""
        return self._feeds

    def feed(self, name: str) -> Feed:
        try:
            return self._feeds[name]
        except KeyError:
            raise KeyError(f"no contract for feed {name!r}; known: {sorted(self._feeds)}") from None

    def systems(self) -> dict[str, list[Feed]]:
        out: dict[str, list[Feed]] = {}
        for f in self._feeds.values():
            out.setdefault(f.system, []).append(f)
        return out

    @cached_property
    def _calendars(self) -> dict[str, str]:
        raw = self._yaml("source", "_systems.yaml")["systems"]
        out = {name: spec["calendar"] for name, spec in raw.items()}
        bad = {n: c for n, c in out.items() if c not in CALENDARS}
        unknown = sorted(set(self.systems()) - set(out))
        if bad or unknown:
            raise ValueError(f"schemas/source/_systems.yaml: calendars must be one of {CALENDARS} ({bad or 'ok'}); "
                             f"systems without a calendar: {unknown or 'none'}")
        return out

    def delivery_calendars(self) -> dict[str, str]:
        """System -> its delivery calendar (`daily` or `on_change`), from schemas/source/_systems.yaml."""
        return self._calendars

    @cached_property
    def _lineage(self) -> tuple[Column, ...]:
        return tuple(_column(c) for c in self._yaml("silver", "_lineage.yaml")["columns"])

    def lineage_columns(self) -> tuple[Column, ...]:
        """The lineage columns every silver table carries after its own (schemas/silver/_lineage.yaml)."""
        return self._lineage

    @cached_property
    def _bronze_lineage(self) -> tuple[Column, ...]:
        return tuple(_column(c) for c in self._yaml("bronze", "_lineage.yaml")["columns"])

    def bronze_lineage(self) -> tuple[Column, ...]:
        """The columns every bronze table has after the feed's own (schemas/bronze/_lineage.yaml)."""
        return self._bronze_lineage

    def bronze_ddl(self, feed: Feed) -> str:
        """bronze.<system>_<feed>: every contract column as text, then the lineage columns (the
        required ones NOT NULL)."""
        return ", ".join([f"{c} string" for c in feed.column_names]
                         + [f"{c.name} {c.spark_type}{' NOT NULL' if c.required else ''}"
                            for c in self._bronze_lineage])

    @cached_property
    def _silver(self) -> dict[str, Table]:
        out = {}
        for path in sorted((self.dir / "silver").glob("[!_]*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            t = Table(
                name=raw["table"],
                source=raw["source"],
                kind=raw["kind"],
                key=tuple(raw["key"]),
                columns=tuple(_column(c) for c in raw["columns"]) + self._lineage,
                description=raw.get("description", ""),
                version_by=raw.get("version_by"),
            )
            out[t.name.split(".", 1)[1]] = t
        return out

    def silver_tables(self) -> dict[str, Table]:
        """Silver table contracts keyed by entity name (`cooperatives`, ...), lineage columns included."""
        return self._silver

    def domain_systems(self) -> dict[str, list[str]]:
        """Silver domain -> upstream systems its tables come from (each silver contract's `source`)."""
        return {domain: sorted({self._silver[t].source.split("/", 1)[0] for t in names})
                for domain, names in SILVER_DOMAINS.items()}

    @cache  # noqa: B019 - one Contracts per schemas folder, kept for the process's life
    def gold_table(self, name: str) -> Table:
        if name not in GOLD_TABLES:
            raise KeyError(f"no gold table {name!r}; known: {list(GOLD_TABLES)}")
        raw = self._yaml("gold", f"{name}.yaml")
        return Table(
            name=raw["table"],
            source="gold",
            kind="snapshot",
            key=tuple(raw["key"]),
            columns=tuple(_column(c) for c in raw["columns"]),
            description=raw.get("description", ""),
            extra={"partition_by": raw.get("partition_by", "as_of_date"), "sources": tuple(raw.get("sources", ())),
                   "contract_version": str(raw.get("contract_version", ""))},
        )

    def ops_table(self, name: str) -> Table:
        """An ops.* table (ingest log, quarantine, DQ results, ...): schemas/ops/<name>.yaml."""
        raw = self._yaml("ops", f"{name}.yaml")
        return Table(name=raw["table"], source="ops", kind=raw.get("kind", "log"), key=tuple(raw.get("key", ())),
                     columns=tuple(_column(c) for c in raw["columns"]), description=raw.get("description", ""),
                     extra={"partition_by": raw.get("partition_by")})


@cache
def load(schemas_dir: Path) -> Contracts:
    """The contracts under `schemas_dir` (settings.schemas_dir), read once per process."""
    return Contracts(Path(schemas_dir))


def packaged() -> Contracts:
    """The contracts shipped with this install: for pure transforms and tests that are given none."""
    from agrilake.core.settings import packaged_specs

    return load(packaged_specs("schemas"))
