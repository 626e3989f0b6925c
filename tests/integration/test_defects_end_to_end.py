"""Every defect the generator injects is caught by bronze or silver with its expected reason, and
every landed row is accounted for: read = accepted + quarantined per file, and bronze = silver
outcomes per feed. Runs the real generator, bronze and silver on real Spark and Delta."""

from __future__ import annotations

import csv
from datetime import date, timedelta

import pytest

from jobs import bronze, generate, silver, tables
from jobs.quarantine import PARSE_REASONS

pytestmark = pytest.mark.integration

START, DAYS = date(2026, 11, 1), 3


@pytest.fixture(scope="module")
def pipeline_run(spark, tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("e2e")
    landing, lake = root / "landing", root / "lake"
    old = os.environ.get("AGRILAKE_LAKEHOUSE")
    os.environ["AGRILAKE_LAKEHOUSE"] = str(lake)
    assert generate.main(["--start", START.isoformat(), "--days", str(DAYS), "--scale", "0.2", "--seed", "3",
                          "--defect-rate", "0.03", "--landing", str(landing)]) == 0
    # One run at the last date takes every delivery folder <= it (the held-then-released path across
    # days is covered by test_silver); one run instead of three keeps this test affordable.
    last = START + timedelta(days=DAYS - 1)
    bronze.ingest(spark, None, last, str(landing))
    silver.run(spark, None, last)
    with open(landing / "_manifest" / "defects.csv", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    quarantine = {(r.feed, r._file_name or "", r._line): r.reason for r in
                  tables.read(spark, "ops", "quarantine").where("stage = 'bronze'").collect()}
    names = {r.file_sha256: r.file_name for r in tables.read(spark, "ops", "ingest_log").collect()
             if r.status != "duplicate"}
    ledger = {(r.feed, names.get(r._file_sha256), r._line): (r.outcome, r.reason) for r in
              tables.read(spark, "ops", "silver_ledger").collect()}
    yield {"manifest": manifest, "quarantine": quarantine, "ledger": ledger, "landing": landing}
    if old is None:
        os.environ.pop("AGRILAKE_LAKEHOUSE", None)
    else:
        os.environ["AGRILAKE_LAKEHOUSE"] = old


def test_every_injected_row_defect_gets_its_reason(pipeline_run):
    misses = []
    for d in pipeline_run["manifest"]:
        if not d["expected_reason"] or not d["line"]:
            continue
        key = (d["feed"], d["file"], int(d["line"]))
        if d["expected_reason"] in PARSE_REASONS:
            got = pipeline_run["quarantine"].get(key)
        else:
            got = pipeline_run["ledger"].get(key, (None, None))[1]
        if got != d["expected_reason"]:
            misses.append((d["defect"], *key, d["expected_reason"], got))
    classes = {d["defect"] for d in pipeline_run["manifest"] if d["expected_reason"]}
    assert len(classes) >= 15, classes
    assert misses == [], f"{len(misses)} defects not caught as expected, e.g. {misses[:10]}"


def test_duplicates_are_counted_not_quarantined(pipeline_run):
    dups = [d for d in pipeline_run["manifest"] if d["defect"] == "duplicate_row"]
    assert dups
    outcomes = [pipeline_run["ledger"].get((d["feed"], d["file"], int(d["line"])), (None,))[0] for d in dups]
    assert outcomes.count("duplicate") == len(dups), outcomes


def test_ingest_log_reconciles_and_duplicate_files_are_logged(spark, pipeline_run):
    log = tables.read(spark, "ops", "ingest_log").collect()
    assert all(r.read == r.accepted + r.quarantined for r in log)
    resent = [d for d in pipeline_run["manifest"] if d["defect"] == "duplicate_file"]
    statuses = {r.file_name: r.status for r in log}
    assert resent and all(statuses.get(d["file"]) == "duplicate" for d in resent)
    drift = [d for d in pipeline_run["manifest"] if d["defect"] == "extra_column"]
    drifted = {r.file_name: r.schema_drift for r in log}
    assert drift and all(drifted.get(d["file"]) for d in drift)


def test_bronze_equals_silver_outcomes(spark, pipeline_run):
    rows = silver.reconcile(spark, START + timedelta(days=DAYS - 1),
                            [e.feed for e in silver.ENTITIES], "test")
    assert rows and all(r["balanced"] for r in rows), [r for r in rows if not r["balanced"]]
