"""What the DAG files share: default arguments, failure callbacks and the one way to run a stage.

DAG files stay wiring only; everything Airflow-specific that is more than wiring lives here. A DAG
file is an entry point: it reads the settings once (`Wiring.from_env()`) and hands them to the
helpers here, which never read the environment themselves.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from agrilake.core.contracts import GOLD_TABLES, SILVER_DOMAINS, Contracts
from agrilake.core.settings import Settings

log = logging.getLogger(__name__)

OWNER = "agrilake-data-eng"


class StageFailed(RuntimeError):
    """A pipeline stage returned a non-zero exit code: the task must fail, not succeed quietly."""


def run_stage(module: str, argv: list[str], dates_from: dict[str, str] | None = None, cumulative: bool = False,
              **context) -> int:
    """Run `module.main(argv)` in the task's process; a non-zero exit code fails the task.

    `dates_from`: Asset name -> upstream group; the run builds the dates its triggering Asset events
    carry (orchestration.rundates) instead of `--date` as given. The dates built go into the
    `extra` of the task's own Asset events."""
    argv, built = run_dates(module, list(argv), dates_from, cumulative, context)
    if built == []:
        nothing_to_build(module, "every date of its triggering Asset events waits for an upstream run (above)")
    lineage_parent(context)
    stage = importlib.import_module(module)
    if hasattr(stage, "task"):  # a stage that decides itself which dates it may build (gold: deliveries)
        outcome = stage.task(argv, built)
        if not outcome.built:
            nothing_to_build(module, "; ".join(f"{d} waits: {why}" for d, why in sorted(outcome.waiting.items())))
        record_dates(context, outcome.built)
        return 0
    rc = stage.main(argv)
    if rc:
        raise StageFailed(f"{module} {' '.join(argv)} exited with {rc}; see the log above for what failed")
    record_dates(context, built)
    return 0


def nothing_to_build(module: str, why: str):
    """End the task as skipped, saying why: a skipped task emits no Asset event, so nothing downstream
    runs on dates that were not built (a success would trigger the next DAG with nothing new)."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.warning("%s: nothing to build now: %s", module, why)
    raise AirflowSkipException(f"{module}: nothing to build now: {why}")


def lineage_parent(context: dict) -> None:
    """Name this task's OpenLineage run as the parent of the stage's run (agrilake.core.lineage), the
    way the openlineage provider's macros do for any job an operator starts: the stage reads
    OPENLINEAGE_PARENT_ID and OPENLINEAGE_ROOT_PARENT_ID from the task's environment."""
    import os

    ti = context.get("task_instance") or context.get("ti")
    if ti is None:
        return
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id, lineage_root_parent_id

        parent, root = lineage_parent_id(ti), lineage_root_parent_id(ti)
    except Exception as exc:  # noqa: BLE001 - lineage describes the run, it never fails it
        log.warning("no OpenLineage parent for this task (%s: %s): the stage's events stand alone",
                    type(exc).__name__, exc)
        return
    os.environ["OPENLINEAGE_PARENT_ID"], os.environ["OPENLINEAGE_ROOT_PARENT_ID"] = parent, root


def _date_args(argv: list[str]) -> list[date] | None:
    """The dates `--date D` or `--from D1 --to D2` name in `argv` (None for `latest` or none)."""
    from agrilake.core import dates

    named = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in ("--date", "--from", "--to")}
    try:
        if "--date" in named:
            return [date.fromisoformat(named["--date"])]
        if "--from" in named:
            start = date.fromisoformat(named["--from"])
            return dates.days(start, date.fromisoformat(named.get("--to", named["--from"])))
    except ValueError:
        return None
    return None


def _without_dates(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--date", "--from", "--to"):
            skip = True
        else:
            out.append(arg)
    return out


def run_dates(module: str, argv: list[str], dates_from: dict[str, str] | None, cumulative: bool,
              context: dict) -> tuple[list[str], list[date] | None]:
    """(argv to run, dates it builds; [] = nothing to build now, None = not known before it runs)."""
    from agrilake.orchestration import rundates

    events = context.get("triggering_asset_events") or {}
    if dates_from and events:
        extras = {getattr(a, "name", str(a)): [getattr(e, "extra", None) for e in evs] for a, evs in events.items()}
        covered, waiting = rundates.plan(extras, dates_from)
        for d, group in sorted(waiting.items()):
            log.warning("%s: %s waits for %s to deliver it; a later run builds it", module, d, group)
        if covered:
            rest = _without_dates(argv)
            picked = ["--date", covered[-1].isoformat()] if cumulative else [
                "--from", covered[0].isoformat(), "--to", covered[-1].isoformat()]
            log.info("%s builds %s (from the dates of its triggering Asset events)", module,
                     covered[-1] if cumulative else f"{covered[0]}..{covered[-1]}")
            return rest + picked, covered
        if waiting:
            return argv, []
        # events without dates (runs triggered by hand upstream): `--date` as given, `latest` included
    return argv, _date_args(argv)


def record_dates(context: dict, built: list[date] | None) -> None:
    """Put the dates this task built into the `extra` of each Asset event it emits."""
    events = context.get("outlet_events")
    task = context.get("task")
    if not built or events is None or task is None:
        return
    for outlet in getattr(task, "outlets", None) or []:
        events[outlet].extra = {"dates": [d.isoformat() for d in built]}


def on_failure(context) -> None:
    """Say which tables, date and stage failed, in one line an on-call engineer can act on."""
    ti = context.get("task_instance")
    task = context.get("task")
    stage = (getattr(task, "op_kwargs", None) or {}).get("module") or getattr(task, "name", None)
    args = (getattr(task, "op_kwargs", None) or {}).get("argv") or getattr(task, "application_args", None)
    tables = [getattr(o, "name", str(o)) for o in (getattr(task, "outlets", None) or [])]
    log.error(
        "agrilake task failed: dag=%s task=%s logical_date=%s tables=%s stage=%s args=%s error=%s; "
        "fix the cause, then clear the task (reruns are idempotent)",
        getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?"), context.get("ds"),
        ",".join(tables) or "-", stage, args, context.get("exception"),
    )


def default_args(settings, **overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": settings.task_retries,
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


@dataclass(frozen=True)
class Wiring:
    """Everything a DAG file needs, from one reading of the settings."""

    settings: Settings
    contracts: Contracts

    @classmethod
    def from_env(cls) -> Wiring:
        from agrilake.core.contracts import load
        from agrilake.core.settings import get_settings

        settings = get_settings()
        return cls(settings, load(settings.schemas_dir))

    def start_date(self) -> datetime:
        """First logical date of the DAGs (AGRILAKE_DAG_START). A run for a date before a DAG's start_date
        schedules no task and still ends 'success': every backfill must lie after this date."""
        return datetime.combine(self.settings.dag_start, datetime.min.time())

    def end_date(self) -> datetime | None:
        """Last logical date of the daily DAGs (AGRILAKE_DAG_END), or None: their catchup creates a run for
        every day up to today, which a backfill of a known range or a test must bound."""
        end = self.settings.dag_end
        return None if end is None else datetime.combine(end, datetime.min.time())

    def default_args(self, **overrides) -> dict:
        return default_args(self.settings, **overrides)

    def systems(self) -> list[str]:
        return sorted(self.contracts.systems())

    def domains(self) -> dict[str, list[str]]:
        """Silver domain -> the upstream systems its tables come from."""
        return self.contracts.domain_systems()

    def bronze_assets(self, system: str) -> list:
        return [asset("bronze", f.name) for f in self.contracts.systems()[system]]

    def silver_assets(self, domain: str) -> list:
        return [asset("silver", t) for t in SILVER_DOMAINS[domain]]

    def gold_assets(self) -> list:
        return [asset("gold", t) for t in GOLD_TABLES]

    # Asset name -> the upstream group whose deliveries it stands for (orchestration.rundates).
    def bronze_groups(self, systems: list[str]) -> dict[str, str]:
        return {a.name: s for s in systems for a in self.bronze_assets(s)}

    def silver_groups(self) -> dict[str, str]:
        return {a.name: d for d in SILVER_DOMAINS for a in self.silver_assets(d)}

    def gold_groups(self) -> dict[str, str]:
        return {a.name: "gold" for a in self.gold_assets()}

    def stage_task(self, task_id: str, module: str, argv: list[str], *, spark: bool = True, **kwargs):
        return stage_task(self.settings, task_id, module, argv, spark=spark, **kwargs)


def pipeline_dag_ids(contracts: Contracts) -> list[str]:
    """The DAGs of one delivery date in dependency order: doctor, ingest per system, silver per domain,
    gold, export (what `make run` and the chain test drive through Airflow)."""
    return (["agrilake_doctor"]
            + [f"agrilake_ingest_{s}" for s in ordered_systems(contracts)]
            + [f"agrilake_silver_{d}" for d in SILVER_DOMAINS]
            + ["agrilake_gold", "agrilake_export"])


def ordered_systems(contracts: Contracts) -> list[str]:
    """Upstream systems in the order their silver domains depend on each other (reference data first)."""
    out: list[str] = []
    for systems in contracts.domain_systems().values():
        out += [s for s in systems if s not in out]
    return out


# The `agrilake` sub-command of each stage module: spark-submit runs the CLI, not a module path.
STAGE_COMMANDS = {
    "agrilake.doctor": "doctor", "agrilake.stages.bronze": "ingest", "agrilake.stages.silver": "silver",
    "agrilake.stages.gold": "gold", "agrilake.stages.export": "export",
    "agrilake.stages.maintenance": "maintenance",
}
SPARK_CONN_ID = "agrilake_spark"
# The spark-submit application: a file outside the package, so the driver imports `agrilake` from the
# source root jobs/ of the project, and the executors from --py-files.
SUBMIT_ENTRY = Path(__file__).resolve().parents[3] / "infra" / "spark_submit_entry.py"


def stage_task(settings: Settings, task_id: str, module: str, argv: list[str], *, spark: bool = True,
               dates_from: dict[str, str] | None = None, cumulative: bool = False, **kwargs):
    """An Airflow task that runs one pipeline stage for the run's date (argv may use {{ ds }}).

    With a local master (the embedded default) the stage runs in the task's process. With
    AGRILAKE_SPARK_MASTER set to a cluster (spark://, yarn, k8s://) every Spark stage is submitted
    with spark-submit instead: the `agrilake` package shipped as --py-files, the Delta jars as --jars.
    `spark=False` marks a stage that needs no cluster (the export only reads Delta and talks S3).
    On an object-store lakehouse every stage task runs in the writers' pool (Settings.airflow_writer_pool).
    """
    pool = settings.airflow_writer_pool
    if pool:  # every stage writes the lakehouse (the export its ops record): on S3 one commits at a time
        kwargs.setdefault("pool", pool)
    if spark and not settings.is_local:
        return submit_task(task_id, module, argv, settings, dates_from=dates_from, cumulative=cumulative, **kwargs)
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(
        task_id=task_id,
        python_callable=run_stage,
        op_kwargs={"module": module, "argv": argv, "dates_from": dates_from, "cumulative": cumulative},
        **kwargs,
    )


def build_package_zip(dest: Path) -> Path:
    """The `agrilake` package as a zip for --py-files, rebuilt per submit so it is never stale."""
    import zipfile

    package = Path(__file__).resolve().parent.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*.py")):
            zf.write(path, path.relative_to(package.parent).as_posix())
    tmp.replace(dest)
    return dest


def ensure_spark_connection(master: str) -> None:
    """Use the `agrilake_spark` Airflow connection when one is defined, else AGRILAKE_SPARK_MASTER.

    One setting stays the source of truth for the demo and the tests, while a deployment can still
    point the DAGs elsewhere (deploy mode, queue, namespace) with a real connection.
    """
    import json
    import os

    from agrilake.core.credentials import has_airflow_connection

    if not has_airflow_connection(SPARK_CONN_ID):
        os.environ[f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}"] = json.dumps({"conn_type": "spark", "host": master})


def submit_task(task_id: str, module: str, argv: list[str], settings, *, dates_from: dict[str, str] | None = None,
                cumulative: bool = False, **kwargs):
    """A SparkSubmitOperator for one stage on the cluster master of the settings."""
    import sys

    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    class StageSubmit(SparkSubmitOperator):
        def execute(self, context):
            args, built = run_dates(module, list(self.application_args[1:]), dates_from, cumulative, context)
            if built == []:
                return None
            self.application_args = [self.application_args[0], *args]
            self._execute_stage(context)
            record_dates(context, built)
            return None

        def _execute_stage(self, context):
            ensure_spark_connection(settings.spark_master)
            zip_path = build_package_zip(settings.home / "data" / "dist" / f"agrilake-{self.task_id}.zip")
            self.py_files = str(zip_path)
            # The hook raises on a non-zero spark-submit exit code; this guards the provider's
            # history of reporting the wrong status, whatever path the hook took.
            super().execute(context)
            rc = getattr(getattr(self._hook, "_submit_sp", None), "returncode", 0)
            if rc:
                raise StageFailed(f"spark-submit of {module} {' '.join(self.application_args)} exited with {rc}")

    return StageSubmit(
        task_id=task_id,
        application=str(SUBMIT_ENTRY),
        application_args=[STAGE_COMMANDS[module], *argv],
        conn_id=SPARK_CONN_ID,
        jars=",".join(str(j) for j in settings.delta_jars()),
        name=f"agrilake-{STAGE_COMMANDS[module]}",
        conf={
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            "spark.driver.memory": settings.driver_memory,
            # the submitted driver's JVM starts before the stage reads its settings: pass them here
            **({"spark.driver.extraJavaOptions": settings.jvm_options,
                "spark.executor.extraJavaOptions": settings.jvm_options} if settings.jvm_options else {}),
        },
        verbose=False,
        **kwargs,
    )
