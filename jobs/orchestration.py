"""What the DAG files share: default arguments, failure callbacks and the one way to run a stage.

DAG files stay wiring only; everything Airflow-specific that is more than wiring lives here.
"""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta

log = logging.getLogger(__name__)

OWNER = "agrilake-data-eng"


def start_date():
    """First logical date of the DAGs (AGRILAKE_DAG_START, default 2026-10-01, the first demo delivery).

    A run for a date before a DAG's start_date schedules no task and still ends 'success': every
    backfill must lie after this date.
    """
    import os
    from datetime import datetime

    return datetime.fromisoformat(os.environ.get("AGRILAKE_DAG_START", "2026-10-01"))


class StageFailed(RuntimeError):
    """A pipeline stage returned a non-zero exit code: the task must fail, not succeed quietly."""


def run_stage(module: str, argv: list[str]) -> int:
    """Run `module.main(argv)` in the task's process; a non-zero exit code fails the task."""
    rc = importlib.import_module(module).main(list(argv))
    if rc:
        raise StageFailed(f"{module} {' '.join(argv)} exited with {rc}; see the log above for what failed")
    return 0


def on_failure(context) -> None:
    """Say which task, date and arguments failed, in one line an on-call engineer can act on."""
    ti = context.get("task_instance")
    params = getattr(context.get("task"), "op_kwargs", {}) or {}
    log.error(
        "agrilake task failed: dag=%s task=%s logical_date=%s stage=%s args=%s error=%s",
        getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?"), context.get("ds"),
        params.get("module"), params.get("argv"), context.get("exception"),
    )


def default_args(**overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": on_failure,
    }
    args.update(overrides)
    return args


def asset(layer: str, table: str):
    """The Airflow Asset of one lakehouse table (the same name everywhere: DAGs schedule on it)."""
    from airflow.sdk import Asset

    return Asset(name=f"{layer}.{table}", uri=f"agrilake://{layer}/{table}", group="agrilake")


def all_of(assets: list):
    """An Asset condition that is met when every one of `assets` has been updated."""
    import functools
    import operator

    return functools.reduce(operator.and_, assets)


def bronze_assets(system: str) -> list:
    from jobs import contracts

    return [asset("bronze", f.name) for f in contracts.systems()[system]]


def silver_assets(domain: str) -> list:
    from jobs.contracts import SILVER_DOMAINS

    return [asset("silver", t) for t in SILVER_DOMAINS[domain]]


def stage_task(task_id: str, module: str, argv: list[str], **kwargs):
    """An Airflow task that runs one pipeline stage for the run's date (argv may use {{ ds }})."""
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(
        task_id=task_id,
        python_callable=run_stage,
        op_kwargs={"module": module, "argv": argv},
        **kwargs,
    )
