"""The audit step of write-audit-publish, the same for every stage: validate, record, gate.

A stage computes what it is about to write, hands each table's frame and expectations here, and
publishes only if this returns. Every outcome is recorded in ops.dq_results (in the stage's batch
when it has one, so a run costs one commit) before a failed critical expectation raises
QualityGateFailed naming it. The DQ partition is always the ISO date the run is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from agrilake.core import ops, quality


@dataclass(frozen=True)
class Check:
    """One table's frame and the expectations it must meet before it is published."""

    df: Any
    suite: str  # the suite's name in ops.dq_results and the data docs
    expectations: list[dict[str, Any]]


def suite(ctx, name: str, context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """expectations/<name>.yaml of the run's settings, placeholders filled from `context`."""
    return quality.load_suite(ctx.suites_dir, name, context)


def audit(ctx, checks: dict[str, Check], *, as_of: date, run_id: str,
          dq: ops.DQBatch | None = None) -> dict[str, quality.SuiteResult]:
    """Validate every table of `checks` ({"layer.table": Check}), record all outcomes, then gate.

    All tables are validated and recorded before any gate fails, so one run's record shows every
    failure at once; the exception names the suites that failed.
    """
    keep_in = quality.results_dir(ctx.settings)
    results = {table: quality.validate(c.df, c.suite, c.expectations, keep_in=keep_in) for table, c in checks.items()}
    if dq is not None:
        for table, result in results.items():
            dq.add(table, result)
    else:
        ops.record_dq_batch(ctx, results, partition=as_of.isoformat(), run_id=run_id)
    failed = {table: r for table, r in results.items() if r.critical_failures}
    if failed:
        raise quality.QualityGateFailed(", ".join(r.suite for r in failed.values()),
                                        [o for r in failed.values() for o in r.critical_failures])
    return results
