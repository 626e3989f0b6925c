"""Maintenance: OPTIMIZE compacts small files, VACUUM deletes the replaced ones, the report is logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from agrilake.core import tables
from agrilake.stages import maintenance


def data_files(table_dir: Path) -> list[Path]:
    return [p for p in table_dir.rglob("*.parquet") if "_delta_log" not in p.parts]


def test_optimize_and_vacuum_compact_and_delete_old_files(ctx, lakehouse):
    spark = ctx.spark
    for i in range(4):  # one small file per append: the shape a day of MERGEs and appends leaves
        tables.append(ctx, spark.createDataFrame([(i, f"row{i}"), (i + 100, f"row{i + 100}")], "id int, v string"),
                      "bronze", "events")
    tables.append(ctx, spark.createDataFrame([(1, "x")], "id int, v string"), "gold", "untouched")
    table_dir = lakehouse / "bronze" / "events"
    expected = sorted(tables.read(ctx, "bronze", "events").collect())
    assert len(data_files(table_dir)) == 4

    rows = maintenance.run(ctx, retention_hours=0, patterns=["bronze.*"])

    assert len(data_files(table_dir)) == 1, "OPTIMIZE wrote one file and VACUUM deleted the four it replaced"
    assert sorted(tables.read(ctx, "bronze", "events").collect()) == expected
    assert len(data_files(lakehouse / "gold" / "untouched")) == 1
    # the relaxed retention check lived in a child session only
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"

    [row] = [r.asDict() for r in tables.read(ctx, "ops", "maintenance_log").collect()]
    assert row["table_name"] == "bronze.events" and row["status"] == "ok" and row["retention_hours"] == 0
    assert (row["files_before"], row["files_after"]) == (4, 1)
    assert (row["storage_files_before"], row["storage_files_after"]) == (4, 1)
    assert (row["optimize_files_removed"], row["optimize_files_added"]) == (4, 1)
    assert row["bytes_after"] == row["storage_bytes_after"] > 0
    assert [r["table_name"] for r in rows] == ["bronze.events"] and rows[0]["run_id"] == row["run_id"]

    out = maintenance.format_report(rows)
    assert "bronze.events" in out and "4 -> 1" in out and "gold.untouched" not in out


def test_table_selection_and_report_format():
    found = [("bronze", "coop_sales"), ("gold", "coop_credit_profile"), ("ops", "ingest_log")]
    assert maintenance.select(found, None) == found
    assert maintenance.select(found, ["gold.*", "ops.ingest_log"]) == found[1:]
    assert maintenance.select(found, ["silver.*"]) == []
    report = maintenance.format_report([
        {"table_name": "gold.x", "status": "ok", "files_before": 40, "files_after": 2, "bytes_before": 3 * 1024 ** 2,
         "bytes_after": 2 * 1024 ** 2, "storage_files_before": 90, "storage_files_after": 2,
         "storage_bytes_before": 9 * 1024 ** 2, "storage_bytes_after": 2 * 1024 ** 2},
        {"table_name": "ops.y", "status": "failed", "message": "AnalysisException: boom"},
    ])
    lines = report.splitlines()
    assert lines[0].split()[0] == "table" and "40 -> 2" in lines[2] and "3.0 MiB -> 2.0 MiB" in lines[2]
    assert "failed: AnalysisException: boom" in lines[3]


def test_negative_retention_is_refused(ctx):
    with pytest.raises(SystemExit):
        maintenance.main(["--retention-hours", "-1"])
    with pytest.raises(ValueError, match="retention-hours must be >= 0"):
        maintenance.run(ctx, retention_hours=-1)


def test_the_command_maintains_tables_and_prunes_old_lineage_events(ctx, lakehouse, monkeypatch, capsys):
    import os
    import time

    import agrilake.core.spark

    tables.append(ctx, ctx.spark.createDataFrame([(1, "x")], "id int, v string"), "gold", "t")
    old = lakehouse / "_lineage" / "events-20200101-000000.000000.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    os.utime(old, (time.time() - 200 * 86_400,) * 2)
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", str(lakehouse))
    monkeypatch.setattr(agrilake.core.spark, "get_spark", lambda *a, **k: ctx.spark)  # the test run's session
    assert maintenance.main(["--retention-hours", "0"]) == 0
    out = capsys.readouterr().out
    assert "gold.t" in out and "lineage events older than 90 days deleted: 1" in out
    assert not old.exists() and list((lakehouse / "_lineage").glob("events-*.json"))  # the maintenance run's kept
