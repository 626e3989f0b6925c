"""OpenLineage run events of the stages: the one place that knows the OpenLineage client and its facets.

Every stage run (an ingest, a silver or gold run, an export, a maintenance run) is one OpenLineage
run: START when it begins, COMPLETE with what it read and wrote, FAIL with the error. The datasets
are named by the OpenLineage naming spec (`file` + path, `s3://bucket` + key), as the Spark
listener names them, so the two kinds of events meet on the same datasets:

- landing files, versioned by their SHA-256;
- Delta tables, versioned by the table version read (as of the first read) or written (the
  version the run left), with a `symlinks` facet naming the table as analysts do (`silver.loans`);
- exported objects, versioned by their SHA-256, with their row counts and sizes.

A run inside an Airflow task names the task's run as its parent (OPENLINEAGE_PARENT_ID, set by
agrilake.orchestration.tasks from the openlineage provider's macros), so the DAG run, the task
and the stage run form one tree in Marquez or DataHub.

Where the events go is a setting (AGRILAKE_LINEAGE): files under the lakehouse by default, an HTTP
endpoint in production. A transport that fails logs a warning and never fails the stage: lineage
describes the pipeline, it does not gate it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agrilake.core.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/agrilake/agrilake"
JOB_TYPE = "STAGE"
INTEGRATION = "AGRILAKE"


def dataset_id(location: str) -> tuple[str, str]:
    """(namespace, name) of a file, folder or table location by the OpenLineage naming spec."""
    parsed = urlparse(location)
    if parsed.scheme in ("s3", "s3a", "s3n"):
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme in ("", "file"):
        return "file", str(Path(parsed.path if parsed.scheme else location).resolve())
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")


@dataclass
class _Dataset:
    location: str
    version: str | None = None
    table: str | None = None  # layer.name of a Delta table
    rows: int | None = None
    size: int | None = None


@dataclass
class Recorder:
    """What one stage run read and wrote, noted by agrilake.core.tables and the stages as they go.

    Thread-safe: bronze and gold work on several feeds or tables at once."""
    job: str
    run_id: str
    inputs: dict[str, _Dataset] = field(default_factory=dict)
    outputs: dict[str, _Dataset] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def table_read(self, table: str, location: str, version: int | None) -> None:
        with self._lock:  # the first read's version: what the run's plans were built on
            self.inputs.setdefault(location, _Dataset(location, None if version is None else str(version), table))

    def table_written(self, table: str, location: str) -> None:
        with self._lock:
            self.outputs.setdefault(location, _Dataset(location, table=table))

    def file_read(self, location: str, sha256: str, size: int | None = None) -> None:
        with self._lock:
            self.inputs[location] = _Dataset(location, sha256, size=size)

    def object_written(self, location: str, sha256: str, size: int, rows: int | None = None) -> None:
        with self._lock:
            self.outputs[location] = _Dataset(location, sha256, size=size, rows=rows)

    def rows_written(self, location: str, rows: int) -> None:
        with self._lock:
            if location in self.outputs:
                self.outputs[location].rows = rows


def recorder(ctx) -> Recorder | None:
    """The OpenLineage run the stage is in, if any (for noting landing files and exported objects)."""
    return getattr(ctx, "lineage", None)


def events_dir(settings: Settings) -> str:
    """Where the file transport writes: AGRILAKE_LINEAGE_DIR, else `_lineage` under a local lakehouse,
    else data/lineage under the project home (the file transport writes local files only)."""
    if settings.lineage_dir:
        return settings.lineage_dir
    if not settings.lakehouse_on_object_store:
        return str(Path(settings.lakehouse.removeprefix("file:")) / "_lineage")
    return str(settings.home / "data" / "lineage")


def transport_config(settings: Settings) -> dict[str, Any] | None:
    """The OpenLineage transport of the settings, as the client's (and Airflow's) config dict;
    None when lineage is off."""
    kind = (settings.lineage or "file").lower()
    if kind == "off":
        return None
    if kind == "file":
        return {"type": "file", "log_file_path": str(Path(events_dir(settings)) / "events"), "append": False}
    if kind == "console":
        return {"type": "console"}
    if kind == "http":
        if not settings.lineage_url:
            raise SystemExit("AGRILAKE_LINEAGE=http needs AGRILAKE_LINEAGE_URL (e.g. http://marquez:5000); "
                             "or set AGRILAKE_LINEAGE=file or off")
        config: dict[str, Any] = {"type": "http", "url": settings.lineage_url, "endpoint": settings.lineage_endpoint}
        if settings.lineage_api_key:
            config["auth"] = {"type": "api_key", "apiKey": settings.lineage_api_key}
        return config
    raise SystemExit(f"AGRILAKE_LINEAGE={settings.lineage!r}: choose file, http, console or off")


def airflow_env(settings: Settings) -> dict[str, str]:
    """The openlineage provider's configuration for the Airflow components: the stages' transport and
    namespace, so DAG-run, task and stage events land together."""
    import json

    config = transport_config(settings)
    if config is None:
        return {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}
    if config["type"] == "file":  # the provider's file transport does not create its folder
        Path(config["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(config),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": settings.lineage_namespace}


def spark_conf(settings: Settings) -> dict[str, str]:
    """The openlineage-spark listener's Spark configuration (AGRILAKE_LINEAGE_SPARK=1): an event per
    Spark query, with column lineage, to the stages' transport, under the run that starts the
    session (the Airflow task). Empty when lineage is off."""
    import os

    config = transport_config(settings)
    if config is None:
        return {}
    jar = settings.openlineage_spark_jar()
    if jar is None:
        raise SystemExit(f"AGRILAKE_LINEAGE_SPARK=1 needs the openlineage-spark jar in {settings.jars_dir}: "
                         "run `make setup` (it fetches it with Maven), or unset AGRILAKE_LINEAGE_SPARK")
    conf = {"spark.jars": str(jar), "spark.extraListeners": "io.openlineage.spark.agent.OpenLineageSparkListener",
            "spark.openlineage.namespace": settings.lineage_namespace,
            # the API key of an HTTP transport must not show in the UI's environment page or event logs
            "spark.redaction.regex": "(?i)secret|password|token|access[.]?key|api[_.]?key"}
    if config["type"] == "file":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        conf.update({"spark.openlineage.transport.type": "file", "spark.openlineage.transport.location":
                     str(Path(events_dir(settings)) / f"spark-{stamp}-{os.getpid()}.jsonl")})
    elif config["type"] == "http":
        conf.update({"spark.openlineage.transport.type": "http", "spark.openlineage.transport.url": config["url"],
                     "spark.openlineage.transport.endpoint": "/" + config["endpoint"].lstrip("/")})
        if "auth" in config:
            conf.update({"spark.openlineage.transport.auth.type": "api_key",
                         "spark.openlineage.transport.auth.apiKey": config["auth"]["apiKey"]})
    else:
        conf["spark.openlineage.transport.type"] = "console"
    parent, root = _parent(settings.lineage_parent), _parent(settings.lineage_root_parent)
    if parent:
        root = root or parent
        conf.update({"spark.openlineage.parentJobNamespace": parent[0], "spark.openlineage.parentJobName": parent[1],
                     "spark.openlineage.parentRunId": parent[2], "spark.openlineage.rootParentJobNamespace": root[0],
                     "spark.openlineage.rootParentJobName": root[1], "spark.openlineage.rootParentRunId": root[2]})
    return conf


def _client(settings: Settings):
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import get_default_factory

    config = transport_config(settings)
    if config is None:
        return None
    if config["type"] == "file":
        try:
            Path(config["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # lineage never fails a stage: say where the events could not go
            log.warning("OpenLineage events not written: cannot create %s (%s); set AGRILAKE_LINEAGE_DIR "
                        "to a writable folder", Path(config["log_file_path"]).parent, exc)
            return None
    return OpenLineageClient(transport=get_default_factory().create(config))


def _parent(value: str | None) -> tuple[str, str, str] | None:
    """`namespace/job/run_id` (OPENLINEAGE_PARENT_ID's form; the job name may hold dots, not slashes)."""
    if not value:
        return None
    namespace, _, rest = value.partition("/")
    job, _, run_id = rest.rpartition("/")
    return (namespace, job, run_id) if namespace and job and run_id else None


def _run_facets(settings: Settings, dates: list[date]) -> dict[str, Any]:
    from openlineage.client.facet_v2 import nominal_time_run, parent_run, processing_engine_run

    facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=_spark_version(), name="spark", openlineageAdapterVersion=_client_version()),
    }
    if dates:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=_iso(datetime.combine(min(dates), time(), UTC)),
            nominalEndTime=_iso(datetime.combine(max(dates), time(23, 59, 59), UTC)))
    parent = _parent(settings.lineage_parent)
    if parent:
        root = _parent(settings.lineage_root_parent) or parent
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[2]), job=parent_run.Job(namespace=parent[0], name=parent[1]),
            root=parent_run.Root(run=parent_run.RootRun(runId=root[2]),
                                 job=parent_run.RootJob(namespace=root[0], name=root[1])))
    return facets


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _spark_version() -> str:
    import pyspark

    return pyspark.__version__


def _client_version() -> str:
    from importlib.metadata import version

    return version("openlineage-python")


def _datasets(recorder: Recorder, kind: str) -> list:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        output_statistics_output_dataset,
        symlinks_dataset,
    )

    out = []
    for d in (recorder.inputs if kind == "input" else recorder.outputs).values():
        namespace, name = dataset_id(d.location)
        facets: dict[str, Any] = {}
        if d.version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=d.version)
        if d.table:
            facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(identifiers=[
                symlinks_dataset.Identifier(namespace="agrilake", name=d.table, type="TABLE")])
        if kind == "input":
            out.append(InputDataset(namespace=namespace, name=name, facets=facets))
            continue
        stats = {}
        if d.rows is not None:
            stats["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=d.rows, size=d.size)
        out.append(OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=stats))
    return out


def _emit(client, event) -> None:
    try:
        client.emit(event)
    except Exception as exc:  # noqa: BLE001 - lineage never fails a stage; say so, once per event
        log.warning("OpenLineage event %s of %s not delivered (%s: %s); the stage goes on",
                    event.eventType, event.job.name, type(exc).__name__, exc)


@contextmanager
def stage_run(ctx, job: str, *, dates: list[date] | None = None) -> Iterator[Recorder | None]:
    """One OpenLineage run around a stage: START now, COMPLETE (inputs, outputs) or FAIL at the end.

    While it runs, ctx.lineage is its Recorder, which agrilake.core.tables fills with every Delta
    table read or written; the stages add landing files and exported objects. Yields None, and
    records nothing, when AGRILAKE_LINEAGE=off."""
    if getattr(ctx, "lineage", None) is not None:  # inside a run already: one run
        yield ctx.lineage
        return
    client = _client(ctx.settings)
    if client is None:  # off
        yield None
        return
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job
    from openlineage.client.uuid import generate_new_uuid

    dates = sorted(set(dates or []))
    recorder = Recorder(job=job, run_id=str(generate_new_uuid()))
    ol_job = Job(namespace=ctx.settings.lineage_namespace, name=job, facets={
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration=INTEGRATION, jobType=JOB_TYPE)})
    facets = _run_facets(ctx.settings, dates)

    def event(state, run_facets, with_datasets: bool):
        return RunEvent(eventType=state, eventTime=_iso(datetime.now(UTC)), producer=PRODUCER, job=ol_job,
                        run=Run(runId=recorder.run_id, facets=run_facets),
                        inputs=_datasets(recorder, "input") if with_datasets else [],
                        outputs=_datasets(recorder, "output") if with_datasets else [])

    _emit(client, event(RunState.START, facets, False))
    ctx.lineage = recorder
    try:
        yield recorder
    except BaseException as exc:
        _resolve_versions(ctx, recorder)
        failed = {**facets, "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=f"{type(exc).__name__}: {exc}"[:2000], programmingLanguage="python")}
        _emit(client, event(RunState.FAIL, failed, True))
        raise
    else:
        _resolve_versions(ctx, recorder)
        _emit(client, event(RunState.COMPLETE, facets, True))
    finally:
        ctx.lineage = None


def _resolve_versions(ctx, recorder: Recorder) -> None:
    """The version each written table was left at (one cheap Delta log lookup per table)."""
    from agrilake.core import tables

    for d in list(recorder.outputs.values()):
        if d.table and d.version is None:
            try:
                d.version = str(tables.snapshot_version(ctx, d.location))
            except Exception as exc:  # noqa: BLE001 - a table a failed run never created has no version
                log.debug("no version of %s: %s", d.location, exc)


def prune_events(settings: Settings, *, now: float | None = None) -> int:
    """Delete the file transport's event files older than AGRILAKE_LINEAGE_RETENTION_DAYS (a server keeps
    its own history); returns how many were deleted."""
    import time as _time

    folder = Path(events_dir(settings))
    if not folder.is_dir():
        return 0
    cutoff = (now or _time.time()) - settings.lineage_retention_days * 86_400
    old = [p for pattern in ("events-*.json", "spark-*.jsonl") for p in folder.glob(pattern)
           if p.stat().st_mtime < cutoff]
    for p in old:
        p.unlink(missing_ok=True)
    return len(old)


def read_events(settings: Settings, *, spark: bool = False) -> list[dict]:
    """The file transport's events, oldest first: the stages' and Airflow's (one file each), and with
    `spark` the Spark listener's (a JSON line each, one file per Spark application)."""
    import json

    folder = Path(events_dir(settings))
    if not folder.is_dir():
        return []
    events = [json.loads(p.read_text()) for p in folder.glob("events-*.json")]
    if spark:
        events += [json.loads(line) for p in folder.glob("spark-*.jsonl")
                   for line in p.read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda e: e["eventTime"])
