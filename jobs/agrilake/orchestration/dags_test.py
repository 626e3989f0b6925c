"""`agrilake dags-test`: run DAGs for one logical date, in order, through `airflow dags test`'s code path.

    agrilake dags-test --date 2026-10-30 agrilake_ingest_coop agrilake_silver_coop agrilake_gold
    agrilake dags-test --date 2026-10-30 --conf '{"date": "2026-10-30"}' agrilake_export

Each DAG is loaded from the DAG folder and run with `DAG.test()` (what `airflow dags test` calls:
the scheduler's own code path, every task of the run, in this process, against the metadata DB
of AIRFLOW_HOME). One process for the whole sequence means one Airflow import, one DAG parse and
one Spark JVM instead of one of each per DAG: the stages' SparkSession is created by the first
task and reused (warm) by every later one. A run counts as a success only when it finished in
state success and at least one task ran (a date before the DAG's start_date schedules nothing and
Airflow still says success). Stops at the first DAG that fails; exit status 1 then.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    logical_date: str
    state: str  # success | failed | no task ran
    task_states: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state == "success"


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    return {task_id: str(state.value if hasattr(state, "value") else state) for task_id, state in rows}


def _test_dag(dag_id: str, logical_date: str, conf: dict | None):
    """What `airflow dags test` does for one DAG: load it from the DAG folder, `DAG.test()` it."""
    from airflow.utils import timezone
    from airflow.utils.cli import get_bagged_dag
    from airflow.utils.providers_configuration_loader import providers_configuration_loaded

    @providers_configuration_loaded  # as the CLI command is: provider connection types (aws, spark) known
    def test():
        dag = get_bagged_dag(bundle_names=None, dag_id=dag_id)
        if dag is None:
            raise SystemExit(f"DAG {dag_id!r} is not in the DAG folder, or it failed to parse: "
                             "`airflow dags list-import-errors` says why")
        return dag.test(logical_date=timezone.parse(logical_date), run_conf=conf)

    return test()


def run_dag(dag_id: str, logical_date: str, conf: dict | None = None) -> DagRunResult:
    """One DAG run for `logical_date` (YYYY-MM-DD), as `airflow dags test dag_id logical_date -c conf`."""
    started = time.monotonic()
    dr = _test_dag(dag_id, logical_date, conf)
    tasks = _task_states(dag_id, dr.run_id)
    ran = [s for s in tasks.values() if s not in ("None", "scheduled", "removed")]
    state = str(dr.state.value if hasattr(dr.state, "value") else dr.state)
    if not ran:
        state = "no task ran"
    return DagRunResult(dag_id, logical_date, state, tasks, time.monotonic() - started)


def run_dags(dag_ids: list[str], logical_date: str, conf: dict | None = None, *,
             echo=print) -> list[DagRunResult]:
    """Run the DAGs in order for one date; stop after the first that does not succeed."""
    results = []
    for dag_id in dag_ids:
        echo(f">> airflow dags test {dag_id} {logical_date}" + (f" -c '{json.dumps(conf)}'" if conf else ""))
        result = run_dag(dag_id, logical_date, conf)
        results.append(result)
        tasks = ", ".join(f"{t}={s}" for t, s in sorted(result.task_states.items()))
        echo(f"   {dag_id} {logical_date}: {result.state} in {result.seconds:.0f}s ({tasks})")
        if not result.ok:
            break
    return results


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import dates

    parser = argparse.ArgumentParser(prog="agrilake dags-test", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_ids", nargs="+", metavar="DAG_ID", help="DAGs to run, in this order")
    parser.add_argument("--date", required=True, type=dates.parse, help="logical date YYYY-MM-DD of every run")
    parser.add_argument("--conf", type=json.loads, help="run configuration (JSON), as `airflow dags test -c`")
    args = parser.parse_args(argv)
    import os

    from agrilake.core import lineage
    from agrilake.core.settings import get_settings

    # before Airflow reads its configuration: the openlineage provider emits the DAG-run and task
    # events to the stages' transport (what the Airflow server's components get, services/airflow_server)
    for name, value in lineage.airflow_env(get_settings()).items():
        os.environ.setdefault(name, value)
    results = run_dags(args.dag_ids, args.date.isoformat(), args.conf, echo=lambda s: print(s, flush=True))
    failed = [r for r in results if not r.ok]
    if failed:
        r = failed[0]
        print(f"DAG {r.dag_id} {r.state} for {r.logical_date}; tasks: {r.task_states}. The task logs are "
              "above and under $AIRFLOW_HOME/logs.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
