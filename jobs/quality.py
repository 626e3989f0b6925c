"""The one Great Expectations wrapper: a suite from expectations/*.yaml, validated on a Spark DataFrame.

GX 1.x changed its API often; nothing else in the project imports great_expectations.
Each expectation carries a severity: a failed `critical` one raises QualityGateFailed (the
write-audit-publish gate), a failed `warning` one is only recorded.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("TQDM_DISABLE", "1")  # GX draws a progress bar per validation otherwise

log = logging.getLogger(__name__)
EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"

for _name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
    logging.getLogger(_name).setLevel(logging.WARNING)


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


def load_suite(name: str, directory: Path | None = None, context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Expectations of `expectations/<name>.yaml` as [{expectation, kwargs, severity}].

    A suite shared by many tables names its columns through placeholders filled from `context`
    (e.g. `column_set: "{columns}"`), and `for_each: <context list>` repeats an expectation once
    per column of that list (its kwargs get `column`).
    """
    path = (directory or EXPECTATIONS_DIR) / f"{name}.yaml"
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


def _summarise(result: dict[str, Any]) -> str:
    keys = ("unexpected_count", "unexpected_percent", "observed_value", "partial_unexpected_list")
    parts = [f"{k}={result[k]!r}" for k in keys if k in result and result[k] not in (None, [])]
    text = ", ".join(parts)
    return text[:500]


def validate(df, suite_name: str, expectations: list[dict[str, Any]] | None = None) -> SuiteResult:
    """Validate `df` once against the suite and return one outcome per expectation."""
    import great_expectations as gx

    specs = expectations if expectations is not None else load_suite(suite_name)
    context = _gx_context()
    safe = re.sub(r"[^A-Za-z0-9_]", "_", suite_name)
    try:
        source = context.data_sources.get("agrilake_spark")
    except Exception:  # noqa: BLE001 - GX raises different errors for "not found" across versions
        source = context.data_sources.add_spark(name="agrilake_spark")
    try:
        asset = source.get_asset(safe)
    except Exception:  # noqa: BLE001
        asset = source.add_dataframe_asset(name=safe)
    try:
        batch_def = asset.get_batch_definition("whole")
    except Exception:  # noqa: BLE001
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=safe)
    for spec in specs:
        cls = getattr(gx.expectations, _class_name(spec["expectation"]))
        suite.add_expectation(cls(**spec.get("kwargs", {}), meta={"severity": spec.get("severity", "critical")}))
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite)
    outcomes = []
    for r in result.results:
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


def gate(result: SuiteResult) -> SuiteResult:
    """Raise QualityGateFailed when a critical expectation failed (write-audit-publish)."""
    if result.critical_failures:
        raise QualityGateFailed(result.suite, result.critical_failures)
    return result
