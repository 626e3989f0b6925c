"""The one Great Expectations wrapper: a suite from expectations/*.yaml, validated on a Spark DataFrame.

GX 1.x changed its API often; nothing else in the project imports great_expectations.
Each expectation carries a severity: a failed `critical` one raises QualityGateFailed (the
write-audit-publish gate), a failed `warning` one is only recorded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agrilake.core.settings import Settings

os.environ.setdefault("TQDM_DISABLE", "1")  # GX draws a progress bar per validation otherwise

log = logging.getLogger(__name__)

for _name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class _Clock:
    """Seconds spent in validations by this process, for the benchmark's share of each stage in GX."""

    total = 0.0


VALIDATION_SECONDS = _Clock()


class QualityGateFailed(RuntimeError):
    """A critical expectation failed: the new data must not be published."""

    def __init__(self, suite: str, failed: list[ExpectationOutcome]):
        self.suite = suite
        self.failed = failed
        names = "; ".join(f"{f.expectation}({f.column or ''}) {f.observed}" for f in failed)
        super().__init__(f"quality gate '{suite}' failed on critical expectation(s): {names}")


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteResult:
    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _fill(value: Any, context: dict[str, Any]) -> Any:
    """Replace a whole-string placeholder like "{key_columns}" with the context's value (any type)."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in context:
        return context[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    return value


def load_suite(directory: Path, name: str, context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Expectations of `expectations/<name>.yaml` as [{expectation, kwargs, severity}].

    A suite shared by many tables names its columns through placeholders filled from `context`
    (e.g. `column_set: "{columns}"`), and `for_each: <context list>` repeats an expectation once
    per column of that list (its kwargs get `column`).
    """
    path = Path(directory) / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {path}: add it or fix the suite name")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    context = context or {}
    out = []
    for raw in spec.get("expectations", []):
        item = {k: v for k, v in raw.items() if k != "for_each"}
        if "for_each" in raw:
            for column in context.get(raw["for_each"], []):
                kwargs = dict(_fill(item.get("kwargs", {}), context), column=column)
                out.append({**item, "kwargs": kwargs})
        else:
            out.append({**item, "kwargs": _fill(item.get("kwargs", {}), context)})
    return out


_context = None


def _gx_context():
    global _context
    if _context is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _context = gx.get_context(mode="ephemeral")
        _context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        # GX configures its own loggers on import: quieten them after it has.
        for name in ("great_expectations", "great_expectations.data_context.types.base"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return _context


def _suite(name: str, specs: list[dict[str, Any]], only: list[int] | None = None):
    """The GX suite of `specs` (those at the indexes `only`, when given); `meta` holds severity and index."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for i, spec in enumerate(specs):
        if only is None or i in only:
            cls = getattr(gx.expectations, _class_name(spec["expectation"]))
            meta = {"severity": spec.get("severity", "critical"), "index": i}
            suite.add_expectation(cls(**spec.get("kwargs", {}), meta=meta))
    return suite


def _index(r) -> int:
    return int(r.expectation_config.meta["index"])


# A passed table-level expectation observed what it expects: the kwarg that holds it.
_OBSERVED_WHEN_PASSED = {"expect_table_columns_to_match_ordered_list": "column_list",
                         "expect_table_columns_to_match_set": "column_set",
                         "expect_table_row_count_to_equal": "value", "expect_table_column_count_to_equal": "value"}


def _passed_map_result(r) -> None:
    """Fill in the result a passed expectation skipped in the BOOLEAN_ONLY pass, as BASIC would have:
    a map expectation without `mostly` had no unexpected value (the data docs render "100% not null",
    not "unknown"); a table-level one gets its observed value (GX's renderer drops a page without it)."""
    import great_expectations as gx

    cfg = r.expectation_config
    if not r.success or r.result:
        return
    cls = getattr(gx.expectations, _class_name(cfg.type), None)
    if getattr(cls, "map_metric", None):
        if cfg.kwargs.get("mostly") in (None, 1):
            r.result = {"unexpected_count": 0, "unexpected_percent": 0.0, "partial_unexpected_list": []}
        return
    r.result = {"observed_value": cfg.kwargs.get(_OBSERVED_WHEN_PASSED.get(cfg.type, ""))}


def _summarise(result: dict[str, Any]) -> str:
    keys = ("unexpected_count", "unexpected_percent", "observed_value", "partial_unexpected_list")
    parts = [f"{k}={result[k]!r}" for k in keys if k in result and result[k] not in (None, [])]
    text = ", ".join(parts)
    return text[:500]


def validate(df, suite_name: str, expectations: list[dict[str, Any]], *, keep_in: Path | None = None) -> SuiteResult:
    """Validate `df` once against the expectations and return one outcome per expectation.

    `keep_in`: folder where the GX result is kept for the data docs (results_dir(settings)).
    """
    started = time.perf_counter()
    try:
        return _validate(df, suite_name, expectations, keep_in)
    finally:
        VALIDATION_SECONDS.total += time.perf_counter() - started


def _validate(df, suite_name: str, expectations: list[dict[str, Any]], keep_in: Path | None) -> SuiteResult:

    specs = expectations
    context = _gx_context()
    safe = re.sub(r"[^A-Za-z0-9_]", "_", suite_name)
    try:
        source = context.data_sources.get("agrilake_spark")
    except Exception:  # noqa: BLE001 - GX raises different errors for "not found" across versions
        # GX would persist() every batch and never unpersist it: a second copy of each validated
        # frame, built by the first metric query and held until the process ends. The stages
        # validate frames that are already cached or checkpointed; they decide what to keep.
        source = context.data_sources.add_spark(name="agrilake_spark", persist=False)
    try:
        asset = source.get_asset(safe)
    except Exception:  # noqa: BLE001
        asset = source.add_dataframe_asset(name=safe)
    try:
        batch_def = asset.get_batch_definition("whole")
    except Exception:  # noqa: BLE001
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    # Two passes. BOOLEAN_ONLY first: GX bundles the expectations' aggregates into a few Spark jobs
    # per table (gold's coop profile: 25 jobs, 1.9 s; BASIC: 73 jobs, 6.2 s, a sample query for every
    # column expectation). Only the expectations that failed run again with BASIC (counts, share and
    # a sample of unexpected values: what names a failure), and their results replace the first ones.
    # GX reorders results: each expectation carries its index in the suite in `meta`.
    result = batch.validate(_suite(safe, specs), result_format="BOOLEAN_ONLY")
    failed = {_index(r): pos for pos, r in enumerate(result.results) if not r.success}
    for r in result.results:
        _passed_map_result(r)
    if failed:
        named = batch.validate(_suite(f"{safe}_failed", specs, only=sorted(failed)), result_format="BASIC")
        for r in named.results:
            result.results[failed[_index(r)]] = r
    if keep_in is not None:
        _keep_for_data_docs(result, suite_name, keep_in)
    outcomes = []
    for r in sorted(result.results, key=_index):  # in the suite's order
        cfg = r.expectation_config
        kwargs = dict(cfg.kwargs)
        kwargs.pop("batch_id", None)
        outcomes.append(
            ExpectationOutcome(
                expectation=cfg.type,
                column=kwargs.get("column"),
                severity=(cfg.meta or {}).get("severity", "critical"),
                success=bool(r.success),
                observed=_summarise(r.result or {}),
                kwargs=kwargs,
            )
        )
    suite_result = SuiteResult(suite_name, all(o.success for o in outcomes if o.severity == "critical"), outcomes)
    for w in suite_result.warnings:
        log.warning("quality warning in %s: %s(%s) %s", suite_name, w.expectation, w.column or "", w.observed)
    return suite_result


# --- data docs: the latest validation result of each suite, rendered by GX's own site builder -------

# Suites of the lakehouse's tables; the doctor's scratch checks would only confuse the site's readers.
DATA_DOCS_SUITES = ("bronze", "silver", "gold")


def data_dir(s: Settings) -> Path:
    """The local folder beside the lakehouse (`./data` by default) where GX results and data docs live.
    GX's site builder writes to a local filesystem: with an `s3a://` lakehouse it is `<home>/data`."""
    lake = s.lakehouse.removeprefix("file://").removeprefix("file:")
    if "://" in lake:
        return s.home / "data"
    return Path(lake).resolve().parent


def results_dir(settings: Settings) -> Path:
    return data_dir(settings) / "gx" / "validations"


def data_docs_dir(settings: Settings) -> Path:
    return data_dir(settings) / "data_docs"


def _keep_for_data_docs(result, suite_name: str, folder: Path) -> None:
    """Persist the GX result just computed (one JSON per suite, the latest replaces the previous), so the
    data docs are rendered from it later instead of validating again. Never fails the validation."""
    if not suite_name.startswith(DATA_DOCS_SUITES):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"suite": suite_name, "validated_at": datetime.now(UTC).isoformat(), "result": result.to_json_dict()}
        target = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', suite_name)}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, default=str, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)  # concurrent tasks validating the same suite: the last one wins whole
    except Exception as exc:  # noqa: BLE001 - the docs are a by-product; the gate must not depend on them
        log.warning("could not keep the validation result of %s for the data docs: %s", suite_name, exc)


def build_data_docs(results: Path, out_dir: Path) -> Path:
    """Render the kept results (see `_keep_for_data_docs`) into a static GX data docs site, the latest
    validation of each suite with its expectation suite page; returns the site's index.html.

    Each expectation is described by its type, arguments and severity instead of GX's prose ("values
    must never be null"), which names neither the expectation that ops.dq_results records nor whether
    its failure blocked the publish."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "index.html").exists():
        raise FileExistsError(f"{out_dir} is not empty and holds no data docs site: choose another folder")
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)  # after GX's import has configured them
    # A context of its own: the validation context's in-memory stores must not grow with docs builds.
    context = gx.get_context(mode="ephemeral")
    default_site = context.variables.data_docs_sites["local_site"]["store_backend"].get("base_directory")
    if default_site and os.path.isdir(default_site) and not os.listdir(default_site):
        os.rmdir(default_site)  # the empty temporary folder GX makes for the default site we replace
    context.update_data_docs_site("local_site", {
        "class_name": "SiteBuilder", "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    schema = ExpectationSuiteValidationResultSchema()
    paths = sorted(results.glob("*.json")) if results.is_dir() else []
    for path in paths:
        doc = json.loads(path.read_text(encoding="utf-8"))
        result = schema.load(doc["result"])
        for r in result.results:
            cfg = r.expectation_config
            severity = (cfg.meta or {}).get("severity", "critical")
            blocks = not r.success and severity == "critical"
            args = ", ".join(f"{k}={v}" for k, v in sorted(cfg.kwargs.items()) if k not in ("column", "batch_id"))
            # GX renders the description as a template: a literal "$" (regexes) must be doubled
            cfg.description = (f"{cfg.type}({args}): {severity}"
                               f"{', blocks the publish' if blocks else ''}").replace("$", "$$")
        validated_at = datetime.fromisoformat(doc["validated_at"])
        run = RunIdentifier(run_name=doc["suite"], run_time=validated_at)
        result.meta["run_id"] = run.to_json_dict()
        result.meta["validation_time"] = validated_at.strftime("%Y%m%dT%H%M%S.%fZ")
        result.meta["batch_kwargs"] = {"data_asset_name": doc["suite"]}  # else GX shows "Data asset: None"
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(result.suite_name), run, doc["suite"])
        context.validation_results_store.set(key, result)
        try:
            context.suites.add_or_update(gx.ExpectationSuite(
                name=result.suite_name, expectations=[r.expectation_config.to_domain_obj() for r in result.results]))
        except Exception as exc:  # noqa: BLE001 - the validation page does not need the suite page
            log.warning("no expectation suite page for %s: %s", doc["suite"], exc)
    context.build_data_docs(site_names=["local_site"])
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    if not paths:
        log.warning("no validation results under %s yet: the data docs site is empty (run the pipeline first)",
                    results)
    return out_dir / "index.html"


def gate(result: SuiteResult) -> SuiteResult:
    """Raise QualityGateFailed when a critical expectation failed (write-audit-publish)."""
    if result.critical_failures:
        raise QualityGateFailed(result.suite, result.critical_failures)
    return result
