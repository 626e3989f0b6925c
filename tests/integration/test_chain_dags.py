"""The whole chain through Airflow on a small landing: the real doctor, ingest, silver, gold and export
DAG files, in the order their Assets schedule them, run by `agrilake dags-test`.
The doctor's Delta table takes a MERGE and time travel, bronze and silver rows appear, gold publishes D1, the export lands manifest-complete datasets in the
platforms' buckets with credentials from an Airflow connection; then the data docs and the report are
built from what the run left, and everything the run left behind (every Delta table and Parquet file,
task logs, GX results, data docs, the report, both buckets) is scanned for the clear RIC, name and phone
of the landing (allowed in bronze and ops.quarantine_raw only) and for secrets planted in the DAGs'
environment (allowed nowhere)."""

from __future__ import annotations

import base64
import json
import secrets
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from agrilake import cli
from agrilake.core import deliveries
from agrilake.core.contracts import packaged
from agrilake.core.pseudonymise import key_pads, person_key
from agrilake.orchestration.tasks import pipeline_dag_ids
from tests import pii_scan
from tests.integration.conftest import dag_run_states, run_dags
from tests.integration.test_bronze import _drop
from tests.integration.test_silver import D1, coop_row, divisions_csv, member_row, sales_jsonl, valid_ric
from tests.unit.test_landing import _csv

pytestmark = pytest.mark.integration

# A members line with one field too many (a phone typed into a trailing column): quarantined while
# parsing (WRONG_FIELD_COUNT), so only ops.quarantine_raw may keep it in clear.
BAD_RIC, BAD_NAME, BAD_PHONE = valid_ric("11010119850505002"), "孙七", "13800001111"
# Where clear personal data may be: the landing (the input), bronze and the clear parse-stage lines.
PERSONAL_ALLOWED = ("landing/*", "lake/bronze/*", "lake/ops/quarantine_raw/*")


def test_the_chain_through_airflow(airflow_env, spark, store, tmp_path):
    contracts = packaged()
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    members = contracts.feed("coop_members").column_names
    bad_line = ",".join([member_row("C1", BAD_RIC, member_name=BAD_NAME).get(h, "") for h in members] + [BAD_PHONE])
    _drop(landing, "ref_divisions", D1, "divisions.csv", divisions_csv())
    _drop(landing, "coop_cooperatives", D1, "coops.csv",
          _csv(contracts.feed("coop_cooperatives").column_names, [coop_row("C1")]))
    _drop(landing, "coop_members", D1, "members.csv",
          _csv(members, [member_row("C1", valid_ric())]) + f"{bad_line}\n".encode())
    _drop(landing, "coop_sales", D1, "sales.jsonl", sales_jsonl([{"sale_id": "S1", "coop_id": "C1"}]))
    # the postal network and the bank have nothing to deliver on D1, and say so (else gold of D1 waits for them)
    for system in ("postal", "bank"):
        deliveries.write_marker(str(landing), system, D1, "nothing on the chain test's day")
    # the DAGs' tasks run in a process of their own: the environment is their input
    env = {"AGRILAKE_LANDING": str(landing), "AGRILAKE_LAKEHOUSE": str(lake)}
    # Every DAG of a delivery date (what `make run` drives), in the order their Assets schedule them,
    # in one `agrilake dags-test` process (one warm JVM for every task): systems without a delivery
    # ingest nothing; silver, gold and export for D1 by `params.date`, as a triggered run would pass
    # it; the export's keys (the pipeline identity's) from an Airflow connection, as in production.
    creds = store.credentials()["pipeline"]
    conn = {"conn_type": "aws", "login": creds["access_key"], "password": creds["secret_key"],
            "extra": {"endpoint_url": store.endpoint}}
    # Sentinel secrets the tasks carry: the pseudonymisation key (instead of the public demo key) and
    # a cloud secret nothing should use. (Not AGRILAKE_S3_*: those would win over the connection.)
    pseudo_key = "sentinel-hmac-key-" + secrets.token_hex(10)
    aws_secret = "sentinel-aws-secret-" + secrets.token_hex(10)
    chain_env = {**env, "AGRILAKE_S3_CONN_ID": "agrilake_s3", "AIRFLOW_CONN_AGRILAKE_S3": json.dumps(conn),
                 "AGRILAKE_PSEUDO_KEY": pseudo_key, "AWS_SECRET_ACCESS_KEY": aws_secret}
    dags = pipeline_dag_ids(contracts)
    assert {"agrilake_ingest_ref", "agrilake_silver_divisions", "agrilake_ingest_coop", "agrilake_silver_coop",
            "agrilake_gold", "agrilake_export"} <= set(dags)
    proc = run_dags(airflow_env, dags, D1.isoformat(), chain_env, conf={"date": D1.isoformat()})
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0 and dag_run_states(proc) == [(d, "success") for d in dags], logs[-6000:]

    def read(layer, name):
        return spark.read.format("delta").load(str(lake / layer / name))

    # the doctor DAG, which opens the chain, wrote a Delta table that MERGE and time travel work on
    doctor = lake / "ops" / "doctor_check"
    assert {r.id: r.product for r in read("ops", "doctor_check").collect()} == {1: "grain", 2: "fruit", 3: "herb"}
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(str(doctor)).collect()
    assert {r.id: r.product for r in v0} == {1: "grain", 2: "tea"}
    history = spark.sql(f"DESCRIBE HISTORY delta.`{doctor}`").select("operation").collect()
    assert {r.operation for r in history} >= {"WRITE", "MERGE"}

    assert read("bronze", "coop_sales").count() == 1
    assert [r.sale_id for r in read("silver", "sales").collect()] == ["S1"]
    # the member's key is made with the planted key, not the demo key
    assert [r.person_key for r in read("silver", "members").collect()] == [person_key(valid_ric(), pseudo_key)]
    assert [r.reason for r in read("ops", "quarantine").collect()] == ["WRONG_FIELD_COUNT"]
    assert read("gold", "coop_credit_profile").where(f"as_of_date = '{D1}'").count() == 1
    for platform, datasets in {"bank": ("coop_credit_profile", "household_credit_profile"),
                               "gov": ("logistics_division_daily", "credit_county_summary")}.items():
        client = store.client(platform)
        for dataset in datasets:
            manifest = json.loads(client.get_object(Bucket=platform, Key=f"{dataset}/as_of={D1}/_manifest.json")
                                  ["Body"].read())
            assert manifest["dataset"] == dataset and manifest["as_of"] == D1.isoformat(), manifest

    # the task logs: what `airflow dags test` printed, and every log file under the Airflow home
    files = [f for f in Path(airflow_env["AIRFLOW_HOME"]).rglob("*.log") if f.is_file()]
    task_logs = logs + "".join(f.read_text(errors="replace") for f in files)
    assert "export_bank" in task_logs and "export_gov" in task_logs, "the export tasks' logs were not captured"

    # what analysts get from the run: the data docs of its GX results and the report, both beside the
    # lake (quality.data_dir), built by the entry points in this process on the test run's Spark
    # and where the published partition came from and went (agrilake lineage)
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(StringIO()) as printed:
        import agrilake.core.spark

        mp.setenv("AGRILAKE_LAKEHOUSE", str(lake))
        mp.setattr(agrilake.core.spark, "get_spark", lambda *a, **k: spark)
        assert cli.main(["datadocs"]) == 0
        assert cli.main(["report", "--date", D1.isoformat()]) == 0
        printed.truncate(0)
        printed.seek(0)
        assert cli.main(["lineage", "gold.coop_credit_profile.score", "--date", D1.isoformat(), "--format", "json"]) == 0
        chain = json.loads(printed.getvalue())
        printed.truncate(0)
        printed.seek(0)
        # a silver table, at the newest published date (no --date)
        assert cli.main(["lineage", "silver.sales", "--format", "json"]) == 0
        sales = json.loads(printed.getvalue())
    assert sales["as_of_date"] == D1.isoformat() and "gold.coop_credit_profile" in sales["read_by"]
    assert sales["sources"]["sales"]["files"] == chain["sources"]["sales"]["files"]
    assert list((tmp_path / "gx" / "validations").glob("*.json")), "no GX result was kept"
    assert (tmp_path / "data_docs" / "index.html").is_file() and list((tmp_path / "reports").glob("*.html"))
    _check_lineage(chain, landing, store)
    # the report draws the same chain: the graph names the landed sales file by its SHA-256, and the export
    (report,) = (tmp_path / "reports").glob("*.html")
    page = report.read_text(encoding="utf-8")
    sales_sha = chain["sources"]["sales"]["files"][0]["sha256"]
    assert "Lineage of the date" in page and sales_sha in page and "bank/coop_credit_profile/as_of=" in page
    _check_openlineage(lake, landing, store, dags)

    # The scan. Personal: the clear values of the landing; secrets: the planted ones, the key's HMAC
    # pads (pseudonymise.with_key_pads joins them as data; either gives the key back) and the store's.
    personal = [valid_ric(), "赵六", "王五", "13912345678", BAD_RIC, BAD_NAME, BAD_PHONE]
    pads = [form(p) for p in key_pads(pseudo_key) for form in (bytes.hex, lambda b: base64.b64encode(b).decode())]
    secret = [pseudo_key, aws_secret, *pads, *(keys["secret_key"] for keys in store.credentials().values())]
    needles = personal + secret
    member_key = person_key(valid_ric(), pseudo_key)
    in_tables = pii_scan.scan_tables(spark, lake, needles)
    in_files = pii_scan.scan_files(tmp_path, needles)  # landing, lake, GX results, data docs, report
    in_airflow = pii_scan.scan_files(Path(airflow_env["AIRFLOW_HOME"]), needles)  # task logs, metadata DB
    in_output = pii_scan.scan_text(logs, needles, "dags-test output")  # the task logs (DAG.test() prints them)
    in_store = pii_scan.scan_files(store.root, needles, suffixes=(".log",))  # its credential files hold secrets
    in_buckets = [h for b in ("bank", "gov") for h in pii_scan.scan_bucket(store.client(b), b, needles + [member_key])]

    # the scan finds what is meant to be there, so its silence elsewhere means something
    assert {("bronze/coop_members", valid_ric()), ("bronze/coop_members", "赵六"),
            ("bronze/coop_cooperatives", "13912345678"), ("ops/quarantine_raw", BAD_RIC),
            ("ops/quarantine_raw", BAD_NAME), ("ops/quarantine_raw", BAD_PHONE)} <= set(in_tables), in_tables
    assert ("landing/coop/members/2026-11-01/members.csv", BAD_NAME) in in_files, in_files
    assert any(n == BAD_NAME and w.startswith("lake/ops/quarantine_raw/") and w.endswith(".parquet")
               for w, n in in_files), in_files
    assert any(w.startswith("bank/household_credit_profile/") and n == member_key for w, n in in_buckets), in_buckets
    found = {
        "Delta tables": pii_scan.leaks(in_tables, personal, ("bronze/*", "ops/quarantine_raw")),
        f"files under {tmp_path}": pii_scan.leaks(in_files, personal, PERSONAL_ALLOWED),
        f"files under {airflow_env['AIRFLOW_HOME']}": pii_scan.leaks(in_airflow, personal, ()),
        "the dags-test output": pii_scan.leaks(in_output, personal, ()),
        "the object store's logs": pii_scan.leaks(in_store, personal, ()),
        # the exports may hold person keys, and nothing else of the needles
        "the buckets": pii_scan.leaks(in_buckets, [member_key], ("*",)),
    }
    assert not any(found.values()), "clear personal data or a secret where it must not be: " + "; ".join(
        f"{where}: {hits}" for where, hits in found.items() if hits)


def _check_lineage(chain: dict, landing: Path, store) -> None:
    """The chain of gold.coop_credit_profile for D1, file by file: each silver table it reads names the
    landed files it holds rows of, with their SHA-256 (computed here from the landing), and the export
    names the manifest the bank received."""
    import hashlib

    def landed(rel: str) -> dict:
        return {"file": rel, "sha256": hashlib.sha256((landing / rel).read_bytes()).hexdigest()}

    files = {table: [{"file": f["file"], "sha256": f["sha256"]} for f in entry["files"]]
             for table, entry in chain["sources"].items()}
    day = D1.isoformat()
    assert files == {
        "cooperatives": [landed(f"coop/cooperatives/{day}/coops.csv")],
        "members": [landed(f"coop/members/{day}/members.csv")],
        "sales": [landed(f"coop/sales/{day}/sales.jsonl")],
        "divisions": [landed(f"ref/divisions/{day}/divisions.csv")],
        # delivered by no system on D1: read, and empty
        "loans": [], "installments": [], "subsidies": [], "shipment_events": [],
    }, files
    assert chain["sources"]["members"]["rows"] == 1  # the malformed line was quarantined, not in silver
    assert chain["column"]["name"] == "score" and chain["publication"]["rows"] == 1
    # the score's own inputs, from Spark's plan of the builder on the lake's silver tables
    assert {"table": "silver.sales", "column": "amount_cny"} in chain["column"]["computed_from"], chain["column"]
    assert {"table": "silver.loans", "column": "principal_cny"} in chain["column"]["computed_from"]
    (export,) = chain["exports"]
    manifest = store.client("bank").get_object(Bucket="bank", Key=f"coop_credit_profile/as_of={day}/_manifest.json")
    assert export["location"] == f"s3://bank/coop_credit_profile/as_of={day}/"
    assert export["manifest_sha256"] == hashlib.sha256(manifest["Body"].read()).hexdigest()


def _check_openlineage(lake: Path, landing: Path, store, dags: list[str]) -> None:
    """The OpenLineage events the run left under the lake (the default file transport): the provider's
    DAG-run and task events, and each stage's own run under its Airflow task, with the landing files
    by SHA-256, the Delta tables by version and the exported objects."""
    import hashlib

    from agrilake.core.lineage import read_events
    from agrilake.core.settings import Settings

    events = read_events(Settings.from_env(lakehouse=str(lake)))
    by_job: dict[str, list[dict]] = {}
    for e in events:
        by_job.setdefault(e["job"]["name"], []).append(e)
    states = {job: [e["eventType"] for e in evs] for job, evs in by_job.items()}
    # every DAG run, from the first (before any stage made the folder), and its tasks (the openlineage
    # provider), and the stages (agrilake.core.lineage). DAG.test() creates its run already running, so
    # the provider sends the run's COMPLETE only; a scheduler's run also has its START.
    for dag in dags:
        assert states.get(dag) == ["COMPLETE"], (dag, states)
    assert states.get("agrilake_doctor.delta_check") == ["START", "COMPLETE"], states
    for stage in ("bronze.ingest.coop", "silver.conform.coop", "gold.publish", "export.bank", "export.gov"):
        assert states.get(stage) == ["START", "COMPLETE"], (stage, states)
    task_runs = {(e["job"]["namespace"], e["job"]["name"], e["run"]["runId"]) for e in events
                 if e["job"]["name"].startswith("agrilake_") and "." in e["job"]["name"]}

    def complete(job: str) -> dict:
        return by_job[job][-1]

    def table(d: dict) -> str:
        return d["facets"]["symlinks"]["identifiers"][0]["name"]

    for stage in ("bronze.ingest.coop", "gold.publish", "export.bank"):
        parent = complete(stage)["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"], parent["run"]["runId"]) in task_runs, (
            stage, parent, task_runs)
        assert parent["root"]["job"]["name"] == parent["job"]["name"].split(".")[0]  # the DAG run

    ingest = complete("bronze.ingest.coop")
    files = {d["name"]: d["facets"]["version"]["datasetVersion"] for d in ingest["inputs"] if d["namespace"] == "file"
             and d["name"].startswith(str(landing))}
    day = D1.isoformat()
    assert files == {str(landing / f"coop/{feed}/{day}/{name}"): hashlib.sha256(
        (landing / f"coop/{feed}/{day}/{name}").read_bytes()).hexdigest()
        for feed, name in (("cooperatives", "coops.csv"), ("members", "members.csv"), ("sales", "sales.jsonl"))}
    assert {table(d) for d in ingest["outputs"]} >= {"bronze.coop_sales", "bronze.coop_members", "ops.ingest_log"}

    gold = complete("gold.publish")
    assert {table(d) for d in gold["inputs"]} >= {"silver.cooperatives", "silver.members", "silver.sales"}
    written = {table(d): d for d in gold["outputs"]}
    profile = written["gold.coop_credit_profile"]
    assert profile["name"] == str(lake / "gold" / "coop_credit_profile")
    assert profile["outputFacets"]["outputStatistics"]["rowCount"] == 1
    assert profile["facets"]["version"]["datasetVersion"].isdigit()

    export = complete("export.bank")
    assert {table(d) for d in export["inputs"]} >= {"gold.coop_credit_profile", "gold.household_credit_profile"}
    objects = {(d["namespace"], d["name"]): d["facets"]["version"]["datasetVersion"] for d in export["outputs"]
               if d["namespace"] == "s3://bank"}
    key = f"coop_credit_profile/as_of={day}/_manifest.json"
    body = store.client("bank").get_object(Bucket="bank", Key=key)["Body"].read()
    assert objects[("s3://bank", key)] == hashlib.sha256(body).hexdigest()
    parts = json.loads(body)["files"]
    assert all(objects[("s3://bank", p["key"])] == p["sha256"] for p in parts), (objects, parts)
