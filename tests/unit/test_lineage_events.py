"""OpenLineage run events of a stage (agrilake.core.lineage): what a lineage server receives.

The events go through the real openlineage-python client and its file transport; the tables are
real Delta tables on a fresh lakehouse."""

from __future__ import annotations

import json
from datetime import date

import pytest

from agrilake.core import lineage, tables

PARENT = "airflow-ns/agrilake_gold.publish/01890f5e-0d7c-7a3e-8000-000000000001"
ROOT = "airflow-ns/agrilake_gold/01890f5e-0d7c-7a3e-8000-000000000002"


def _events(ctx) -> list[dict]:
    return lineage.read_events(ctx.settings)


def test_a_stage_run_emits_start_and_complete_with_what_it_read_and_wrote(ctx):
    spark = ctx.spark
    ctx = ctx.with_settings(lineage_parent=PARENT, lineage_root_parent=ROOT)
    tables.append(ctx, spark.createDataFrame([(1, "a")], "id int, v string"), "silver", "src")
    tables.append(ctx, spark.createDataFrame([(2, "b")], "id int, v string"), "silver", "src")  # version 1

    with lineage.stage_run(ctx, "gold.publish", dates=[date(2026, 11, 2)]) as run:
        df = tables.read(ctx, "silver", "src")
        tables.append(ctx, df, "gold", "dst")
        tables.append(ctx, df, "gold", "dst")  # the version the run leaves: 1
        run.file_read("/landing/coop/sales/2026-11-02/sales.csv", "ab" * 32, 120)
        run.object_written("s3://bank/credit/as_of=2026-11-02/part-0.parquet", "cd" * 32, 900, rows=2)
    assert ctx.lineage is None  # the run is over: later reads note nothing

    start, complete = _events(ctx)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == run.run_id
    assert complete["job"] == {"namespace": "agrilake", "name": "gold.publish", "facets": complete["job"]["facets"]}
    assert complete["job"]["facets"]["jobType"]["jobType"] == "STAGE"

    facets = complete["run"]["facets"]
    assert facets["parent"]["run"]["runId"] == PARENT.rsplit("/", 1)[1]
    assert (facets["parent"]["job"]["namespace"], facets["parent"]["job"]["name"]) == ("airflow-ns", "agrilake_gold.publish")
    assert facets["parent"]["root"]["run"]["runId"] == ROOT.rsplit("/", 1)[1]
    assert facets["nominalTime"]["nominalStartTime"] == "2026-11-02T00:00:00Z"
    assert facets["processing_engine"]["name"] == "spark"

    inputs = {(d["namespace"], d["name"]): d["facets"] for d in complete["inputs"]}
    src = inputs[("file", tables.path(ctx, "silver", "src"))]
    assert src["version"]["datasetVersion"] == "1"
    assert src["symlinks"]["identifiers"] == [{"namespace": "agrilake", "name": "silver.src", "type": "TABLE"}]
    assert inputs[("file", "/landing/coop/sales/2026-11-02/sales.csv")]["version"]["datasetVersion"] == "ab" * 32

    outputs = {(d["namespace"], d["name"]): d for d in complete["outputs"]}
    assert outputs[("file", tables.path(ctx, "gold", "dst"))]["facets"]["version"]["datasetVersion"] == "1"
    exported = outputs[("s3://bank", "credit/as_of=2026-11-02/part-0.parquet")]
    assert exported["facets"]["version"]["datasetVersion"] == "cd" * 32
    assert exported["outputFacets"]["outputStatistics"] == {
        **exported["outputFacets"]["outputStatistics"], "rowCount": 2, "size": 900}


def test_a_failing_stage_emits_fail_with_the_error_and_raises_it(ctx):
    spark = ctx.spark
    with pytest.raises(RuntimeError, match="gate failed"), lineage.stage_run(ctx, "silver.conform.coop"):
        tables.append(ctx, spark.createDataFrame([(1,)], "id int"), "silver", "half")
        raise RuntimeError("gate failed")

    start, fail = _events(ctx)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: gate failed"
    assert [d["name"] for d in fail["outputs"]] == [tables.path(ctx, "silver", "half")]


def test_nested_runs_are_one_run_and_off_emits_nothing(ctx):
    with lineage.stage_run(ctx, "outer") as outer, lineage.stage_run(ctx, "inner") as inner:
        assert inner is outer
    assert [e["job"]["name"] for e in _events(ctx)] == ["outer", "outer"]

    quiet = ctx.with_settings(lineage="off", lineage_dir=str(ctx.settings.home / "nowhere"))
    with lineage.stage_run(quiet, "x") as run:
        assert run is None
    assert lineage.read_events(quiet.settings) == []


def test_transports_come_from_the_settings(settings, tmp_path):
    file = lineage.transport_config(settings.replace(lakehouse=str(tmp_path / "lh"), lineage_dir=None))
    assert file == {"type": "file", "log_file_path": str(tmp_path / "lh" / "_lineage" / "events"), "append": False}
    on_s3 = settings.replace(lakehouse="s3a://lake/house", lineage_dir=None)
    assert lineage.events_dir(on_s3) == str(settings.home / "data" / "lineage")

    http = lineage.transport_config(settings.replace(lineage="http", lineage_url="http://marquez:5000",
                                                     lineage_api_key="k-123"))
    assert http == {"type": "http", "url": "http://marquez:5000", "endpoint": "api/v1/lineage",
                    "auth": {"type": "api_key", "apiKey": "k-123"}}
    with pytest.raises(SystemExit, match="AGRILAKE_LINEAGE_URL"):
        lineage.transport_config(settings.replace(lineage="http", lineage_url=None))
    with pytest.raises(SystemExit, match="choose file, http, console or off"):
        lineage.transport_config(settings.replace(lineage="kafka"))


class _Marquez:
    """A lineage server on 127.0.0.1 that keeps what it receives and answers with `status`."""

    def __init__(self, status: int):
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_the_http_transport_posts_each_event_with_the_api_key(ctx):
    marquez = _Marquez(201)
    try:
        with lineage.stage_run(ctx.with_settings(lineage="http", lineage_url=marquez.url, lineage_api_key="k-123"),
                               "export.bank"):
            pass
    finally:
        marquez.close()
    assert [(p, auth, e["eventType"]) for p, auth, e in marquez.received] == [
        ("/api/v1/lineage", "Bearer k-123", "START"), ("/api/v1/lineage", "Bearer k-123", "COMPLETE")]


def test_a_server_that_refuses_the_events_warns_and_the_stage_goes_on(ctx, caplog):
    marquez = _Marquez(400)
    try:
        with lineage.stage_run(ctx.with_settings(lineage="http", lineage_url=marquez.url), "export.bank"):
            pass
    finally:
        marquez.close()
    assert len(marquez.received) == 2
    assert "not delivered" in caplog.text and "the stage goes on" in caplog.text


def test_dataset_names_follow_the_openlineage_naming_spec(tmp_path):
    assert lineage.dataset_id("s3a://lake/silver/loans") == ("s3://lake", "silver/loans")
    assert lineage.dataset_id(f"file:{tmp_path}/t") == ("file", f"{tmp_path}/t")
    assert lineage.dataset_id(str(tmp_path / "t")) == ("file", str(tmp_path / "t"))
    assert json.dumps(lineage.dataset_id("s3://bank/a/b.parquet")) == '["s3://bank", "a/b.parquet"]'


def test_maintenance_prunes_event_files_past_their_retention(settings, tmp_path):
    import os
    import time

    s = settings.replace(lakehouse=str(tmp_path / "lh"), lineage_dir=None, lineage_retention_days=30)
    folder = tmp_path / "lh" / "_lineage"
    folder.mkdir(parents=True)
    now = time.time()
    ages = {"events-old.json": 31, "spark-old.jsonl": 40, "events-new.json": 29, "spark-new.jsonl": 1, "notes.txt": 99}
    for name, days in ages.items():
        (folder / name).write_text("{}")
        os.utime(folder / name, (now - days * 86_400, now - days * 86_400))
    assert lineage.prune_events(s, now=now) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["events-new.json", "notes.txt", "spark-new.jsonl"]
    assert lineage.prune_events(s.replace(lakehouse=str(tmp_path / "none")), now=now) == 0


def test_an_unwritable_events_folder_warns_and_the_stage_goes_on(ctx, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    blocked = ctx.with_settings(lineage_dir=str(blocker / "lineage"))
    with lineage.stage_run(blocked, "silver.conform.coop") as run:
        assert run is None
    assert "cannot create" in caplog.text and "AGRILAKE_LINEAGE_DIR" in caplog.text


def test_a_task_without_openlineage_ids_runs_its_stage_without_a_parent(monkeypatch):
    import os

    from agrilake.orchestration import tasks

    warned = []
    monkeypatch.setattr(tasks.log, "warning", lambda msg, *args: warned.append(msg % args))
    monkeypatch.delenv("OPENLINEAGE_PARENT_ID", raising=False)
    tasks.lineage_parent({"ti": object()})  # not a task instance: the provider's macros cannot name it
    assert "OPENLINEAGE_PARENT_ID" not in os.environ
    assert warned and "no OpenLineage parent for this task (AttributeError" in warned[0]
