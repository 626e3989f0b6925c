"""Bronze on real Spark and Delta: lineage, quarantine, duplicates, reruns, and a real SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from agrilake.core import tables
from agrilake.stages import bronze
from tests.unit.test_landing import COOPS, _csv, _row

pytestmark = pytest.mark.integration

D1, D2 = date(2026, 11, 1), date(2026, 11, 2)


def _drop(landing: Path, feed: str, day: date, name: str, content: bytes) -> Path:
    system, _, rest = feed.partition("_")
    folder = landing / system / rest / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


def _sales_jsonl(ids: list[str], bad_line: bool = False) -> bytes:
    lines = [json.dumps({"sale_id": i, "coop_id": "C1", "product_code": "tea", "channel": "retail",
                         "amount_cny": 10.5, "sale_date": "2026-10-30"}) for i in ids]
    if bad_line:
        lines.insert(1, '{"sale_id": "broken"')
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def landing_root(tmp_path):
    root = tmp_path / "landing"
    header = list(reversed(COOPS.column_names)) + ["wechat_id"]
    _drop(root, "coop_cooperatives", D1, "coops.csv",
          _csv(header, [_row(coop_id="C1", name="甲,乙\n合作社"), _row(coop_id="C2")], bom=True))
    _drop(root, "coop_sales", D1, "sales-1.jsonl", _sales_jsonl(["S1", "S2", "S3"], bad_line=True))
    # the same file again, renamed, in a later delivery: a duplicate, not new rows
    _drop(root, "coop_sales", D2, "sales-1-resent.jsonl", _sales_jsonl(["S1", "S2", "S3"], bad_line=True))
    no_uscc = [c for c in COOPS.column_names if c != "uscc"]
    _drop(root, "coop_cooperatives", D2, "coops-broken.csv", _csv(no_uscc, [_row(coop_id="C9")]))
    return root


def _counts(ctx):
    out = {}
    for name in ("coop_cooperatives", "coop_sales"):
        out[name] = tables.read(ctx, "bronze", name).count() if tables.exists(ctx, "bronze", name) else 0
    out["quarantine"] = tables.read(ctx, "ops", "quarantine").count()
    out["log"] = tables.read(ctx, "ops", "ingest_log").count()
    return out


def test_ingest_lineage_quarantine_and_log(ctx, landing_root):
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    coops = tables.read(ctx, "bronze", "coop_cooperatives")
    row = coops.where("coop_id = 'C1'").first()
    assert row.name == "甲,乙\n合作社" and row._line == 2 and row._delivery_date == D1
    assert row._extra == {"wechat_id": ""} or row._extra == {"wechat_id": None}
    assert len(row._file_sha256) == 64 and row._file_name == "coop/cooperatives/2026-11-01/coops.csv"
    sales_q = tables.read(ctx, "ops", "quarantine").where("feed = 'coop_sales'").collect()
    assert [(r.reason, r._line) for r in sales_q] == [("MALFORMED_JSON", 2)]
    log = {r.file_name: r for r in tables.read(ctx, "ops", "ingest_log").collect()}
    sales_log = log["coop/sales/2026-11-01/sales-1.jsonl"]
    assert (sales_log.read, sales_log.accepted, sales_log.quarantined) == (4, 3, 1)
    assert log["coop/cooperatives/2026-11-01/coops.csv"].schema_drift == ["wechat_id"]
    for r in log.values():
        assert r.read == r.accepted + r.quarantined


def test_duplicate_file_missing_column_and_rerun(ctx, landing_root):
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    bronze.ingest(ctx, "coop", D2, str(landing_root))
    first = _counts(ctx)
    assert first["coop_sales"] == 3 and first["coop_cooperatives"] == 2
    log = {r.file_name: r for r in tables.read(ctx, "ops", "ingest_log").collect()}
    dup = log["coop/sales/2026-11-02/sales-1-resent.jsonl"]
    assert dup.status == "duplicate" and dup.read == 0 and "sales-1.jsonl" in dup.message
    broken = log["coop/cooperatives/2026-11-02/coops-broken.csv"]
    assert broken.status == "quarantined" and broken.quarantined == 1 and "uscc" in broken.message
    q = tables.read(ctx, "ops", "quarantine").where("reason = 'MISSING_COLUMN'").first()
    assert "uscc" in q.detail
    # the same dates again, and again: nothing changes
    bronze.ingest(ctx, "coop", D2, str(landing_root))
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    assert _counts(ctx) == first


def test_killed_runs_then_rerun_give_exact_counts(ctx, landing_root, lakehouse):
    """SIGKILL at each commit boundary of an ingest, one run after the other on the same lakehouse: after
    the bronze append, after the clear quarantine lines, after the quarantine (the log never written).
    The rerun leaves every row, quarantine row and log row exactly once."""
    # the child process is an entry point: the environment is its input (the same lakehouse as ctx's)
    assert ctx.settings.lakehouse == str(lakehouse)
    cmd = [sys.executable, "-m", "agrilake.cli", "ingest", "--date", D1.isoformat(), "--system", "coop",
           "--landing", str(landing_root)]
    for point in ("after_bronze_merge", "after_quarantine_raw_merge", "after_quarantine_merge"):
        env = dict(os.environ, AGRILAKE_LAKEHOUSE=str(lakehouse), AGRILAKE_CRASH_AT=point,
                   AGRILAKE_SHUFFLE_PARTITIONS="1")
        killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        # bronze got rows, the log did not: no rerun may add them twice
        assert tables.read(ctx, "bronze", "coop_cooperatives").count() == 2, point
        assert not tables.exists(ctx, "ops", "ingest_log") or tables.read(ctx, "ops", "ingest_log").count() == 0
    assert tables.read(ctx, "ops", "quarantine_raw").count() == tables.read(ctx, "ops", "quarantine").count() == 1
    # the rerun in this process: the kill is what needs a process of its own
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    counts = _counts(ctx)
    assert counts["coop_cooperatives"] == 2 and counts["coop_sales"] == 3 and counts["quarantine"] == 1
    assert tables.read(ctx, "bronze", "coop_sales").select("_file_sha256", "_line").distinct().count() == 3
    assert tables.read(ctx, "ops", "quarantine_raw").count() == 1
    log = tables.read(ctx, "ops", "ingest_log").collect()
    assert len(log) == len({r.file_name for r in log}) and all(r.read == r.accepted + r.quarantined for r in log)


def test_late_file_in_an_old_delivery_folder_is_picked_up(ctx, landing_root):
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    src = landing_root / "coop" / "sales" / D1.isoformat() / "sales-1.jsonl"
    shutil.copy(src, src.with_name("sales-extra.jsonl"))
    _drop(landing_root, "coop_sales", D1, "sales-2.jsonl", _sales_jsonl(["S4"]))
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    assert tables.read(ctx, "bronze", "coop_sales").count() == 4


def test_hostile_landing_entries_are_recorded_and_every_good_file_ingested(ctx, landing_root, tmp_path):
    """A delivery with hostile entries beside good files: each good file is ingested, each hostile
    entry is rejected or quarantined with a reason, nothing outside the landing zone is read, and a
    rerun changes nothing. A logged file rewritten later is read again as a new version."""
    secret = tmp_path / "elsewhere" / "credentials.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"sale_id": "sentinel-secret-4b1f"}\n')
    sales = landing_root / "coop" / "sales"
    os.symlink(secret, sales / "2026-11-01" / "creds.jsonl")
    os.symlink(tmp_path / "gone.jsonl", sales / "2026-11-01" / "broken.jsonl")
    _drop(landing_root, "coop_sales", D1, "sales[2]*?.jsonl", _sales_jsonl(["G1", "G2"]))
    _drop(landing_root, "coop_sales", D1, "upper.JSONL", _sales_jsonl(["U1"]))
    for folder in ("2026-13-45", "2026-02-30"):
        (sales / folder).mkdir()
        (sales / folder / "s.jsonl").write_bytes(_sales_jsonl(["X1"]))
    deep = '{"sale_id": "N1", "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    huge = '{"sale_id": "N2", "amount_cny": ' + "9" * 5000 + "}"
    _drop(landing_root, "coop_sales", D1, "hostile-values.jsonl", (deep + "\n" + huge + "\n").encode())
    _drop(landing_root, "coop_cooperatives", D1, "nul-header.csv", b"coop_id\x00,uscc\nC7,93\n")

    bronze.ingest(ctx, "coop", D1, str(landing_root))

    log = {r.file_name.removeprefix("coop/"): r for r in tables.read(ctx, "ops", "ingest_log").collect()}
    rejected = {n: r.message.split(":")[0] for n, r in log.items() if r.status == "rejected"}
    assert rejected == {"sales/2026-11-01/creds.jsonl": "LINK_OUT_OF_LANDING",
                        "sales/2026-11-01/broken.jsonl": "LINK_OUT_OF_LANDING",
                        "sales/2026-11-01/upper.JSONL": "WRONG_EXTENSION",
                        "sales/2026-13-45/s.jsonl": "NOT_A_DATE_FOLDER", "sales/2026-02-30/s.jsonl": "NOT_A_DATE_FOLDER"}
    for r in log.values():
        assert r.read == r.accepted + r.quarantined
    assert (log["sales/2026-11-01/sales[2]*?.jsonl"].accepted, log["sales/2026-11-01/sales[2]*?.jsonl"].status) == (2, "ingested")
    assert log["sales/2026-11-01/hostile-values.jsonl"].read == 2
    nul = log["cooperatives/2026-11-01/nul-header.csv"]  # its header binds no contract column
    assert (nul.status, nul.read, nul.quarantined) == ("quarantined", 1, 1)
    sale_ids = {r.sale_id for r in tables.read(ctx, "bronze", "coop_sales").collect()}
    assert {"S1", "S2", "S3", "G1", "G2"} <= sale_ids and not {"U1", "X1"} & sale_ids
    quarantine = tables.read(ctx, "ops", "quarantine").collect()
    assert all(r.reason for r in quarantine)
    everything = [str(r) for layer, name in (("bronze", "coop_sales"), ("bronze", "coop_cooperatives"),
                                             ("ops", "quarantine"), ("ops", "ingest_log"))
                  for r in tables.read(ctx, layer, name).collect()]
    assert not [row for row in everything if "sentinel-secret" in row]

    before = _counts(ctx)
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    assert _counts(ctx) == before

    grown = _drop(landing_root, "coop_sales", D1, "sales-1.jsonl", _sales_jsonl(["S1", "S2", "S3", "S4"]))
    os.utime(grown, None)
    bronze.ingest(ctx, "coop", D1, str(landing_root))
    versions = [r for r in tables.read(ctx, "ops", "ingest_log").where("file_name = 'coop/sales/2026-11-01/sales-1.jsonl'")
                .collect()]
    assert len(versions) == 2 and len({r.file_sha256 for r in versions}) == 2
    assert [r.message for r in versions if r.message and "new version" in r.message]
    assert "S4" in {r.sale_id for r in tables.read(ctx, "bronze", "coop_sales").collect()}


def test_a_failing_feed_does_not_stop_the_others(ctx, landing_root, monkeypatch):
    """One feed raising (here: injected into its ingest) fails the run only after every other feed was
    ingested and recorded; the rerun takes the failed feed alone."""
    real = bronze.ingest_feed

    def coops_fail(ctx_, feed, *args, **kwargs):
        if feed.name == "coop_cooperatives":
            raise RuntimeError("injected failure of coop_cooperatives")
        return real(ctx_, feed, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(bronze, "ingest_feed", coops_fail)
        with pytest.raises(RuntimeError, match="injected failure"):
            bronze.ingest(ctx, "coop", D1, str(landing_root))
    logged = {r.file_name for r in tables.read(ctx, "ops", "ingest_log").collect()}
    assert "coop/sales/2026-11-01/sales-1.jsonl" in logged and not tables.exists(ctx, "bronze", "coop_cooperatives")
    rows = bronze.ingest(ctx, "coop", D1, str(landing_root))
    assert {r["feed"] for r in rows} == {"cooperatives"}
    assert tables.read(ctx, "bronze", "coop_cooperatives").count() == 2 and tables.read(ctx, "bronze", "coop_sales").count() == 3
