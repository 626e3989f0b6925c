"""Bronze's pure part (agrilake.stages.bronze.transform) on a tiny parsed frame of a real feed.

The parsed frame is what the executors hand over (transform.parsed_ddl): a parsed record, or a
quarantine entry with its reason and raw text, per physical record of each landed file.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from agrilake.core import quarantine as q
from agrilake.core.contracts import packaged
from agrilake.stages.bronze import reader, transform
from agrilake.stages.bronze.landing import LandedFile

FEED = packaged().feed("coop_members")
DAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 9, 30, 15)
BATCH = "bronze-2026-11-02-test"
SHA_A, SHA_B, SHA_C, SHA_E = "a" * 64, "b" * 64, "c" * 64, "e" * 64
NAME = {SHA_A: "coop/members/2026-11-02/a.csv", SHA_B: "coop/members/2026-11-02/b.csv",
        SHA_C: "coop/members/2026-11-01/c.csv", SHA_E: "coop/members/2026-11-02/e.csv"}
DELIVERED = {SHA_A: DAY, SHA_B: DAY, SHA_C: date(2026, 11, 1), SHA_E: DAY}
MISSING = "file lacks column(s): member_ric"


def member(coop_id: str, name: str, **kw) -> dict:
    return {"coop_id": coop_id, "member_ric": "11010219800101001X", "member_name": name, "household_size": "3",
            "land_area_mu": "2.5", "joined_date": "2020-01-01", "left_date": None,
            "updated_at": "2026-11-01T09:00:00+08:00", **kw}


def parsed_row(sha: str, line: int, values: dict | None = None, *, extra: dict | None = None,
               reason: str | None = None, detail: str | None = None, raw: str | None = None) -> tuple:
    """One row of transform.parsed_ddl(FEED), as bronze's parse step yields it."""
    values = values or {}
    return (reason, detail, raw, *(values.get(c) for c in FEED.column_names), extra, line, sha, NAME[sha],
            DELIVERED[sha])


@pytest.fixture(scope="module")
def parsed(spark):
    rows = [
        # file A: two records (one with a column the contract does not know), one short row
        parsed_row(SHA_A, 2, member("C1", "张三"), extra={"wechat_id": "wx1"}),
        parsed_row(SHA_A, 3, member("C1", "李四", household_size=None)),
        parsed_row(SHA_A, 4, reason=q.WRONG_FIELD_COUNT, detail="7 fields, header has 8", raw="C1,x,y,3,2.5,a,b"),
        # file B lacks a contract column: every record is quarantined, naming it
        parsed_row(SHA_B, 2, reason=q.MISSING_COLUMN, detail=MISSING, raw="C2,王五,3"),
        parsed_row(SHA_B, 3, reason=q.MISSING_COLUMN, detail=MISSING, raw="C2,赵六,4"),
        # file C: one record with two unknown columns
        parsed_row(SHA_C, 2, member("C3", "钱七"), extra={"wechat_id": None, "fax": "010-1"}),
    ]
    return spark.createDataFrame(rows, transform.parsed_ddl(FEED))


def test_parsed_ddl_is_what_the_read_yields(spark, tmp_path):
    """The reader's rows fit the DDL the transform reads (order and types), with the file's lineage."""
    header = ",".join(FEED.column_names) + ",wechat_id"
    good = "C1,11010219800101001X,张三,3,2.5,2020-01-01,,2026-11-01T09:00:00+08:00,wx1"
    path = tmp_path / "a.csv"
    path.write_text(f"{header}\n{good}\nC1,short\n", encoding="utf-8")
    landed = LandedFile(FEED.name, str(path), NAME[SHA_A], DAY, path.stat().st_size)
    df = reader.read(spark, [(landed, SHA_A)], FEED)
    assert df.schema.simpleString() == spark.createDataFrame([], transform.parsed_ddl(FEED)).schema.simpleString()
    got = {r["_line"]: r.asDict() for r in df.collect()}
    assert sorted(got) == [2, 3]
    assert got[2]["_reason"] is None and got[2]["member_name"] == "张三" and got[2]["left_date"] is None
    assert got[2]["_extra"] == {"wechat_id": "wx1"} and got[2]["_raw"] is None
    assert (got[2]["_file_sha256"], got[2]["_file_name"], got[2]["_delivery_date"]) == (SHA_A, NAME[SHA_A], DAY)
    assert got[3]["_reason"] == q.WRONG_FIELD_COUNT and got[3]["_raw"] == "C1,short"
    assert got[3]["coop_id"] is None


def test_accepted_rows_are_bronze_rows_with_lineage(spark, parsed):
    # file C is late: it landed after its date was published, its rows count from the 5th
    accepted = transform.accepted(parsed, FEED, batch_id=BATCH, now=NOW, late={SHA_C: date(2026, 11, 5)})
    bronze = spark.createDataFrame([], packaged().bronze_ddl(FEED)).schema
    assert [(f.name, f.dataType) for f in accepted.schema.fields] == [(f.name, f.dataType) for f in bronze.fields]

    got = sorted((r.asDict() for r in accepted.collect()), key=lambda r: (r["_file_sha256"], r["_line"]))
    assert got == [
        {**member("C1", "张三"), "_extra": {"wechat_id": "wx1"}, "_file_sha256": SHA_A, "_file_name": NAME[SHA_A],
         "_line": 2, "_delivery_date": DAY, "_ingested_at": NOW, "_batch_id": BATCH, "_available_date": DAY},
        {**member("C1", "李四", household_size=None), "_extra": None, "_file_sha256": SHA_A,
         "_file_name": NAME[SHA_A], "_line": 3, "_delivery_date": DAY, "_ingested_at": NOW, "_batch_id": BATCH,
         "_available_date": DAY},
        {**member("C3", "钱七"), "_extra": {"wechat_id": None, "fax": "010-1"}, "_file_sha256": SHA_C,
         "_file_name": NAME[SHA_C], "_line": 2, "_delivery_date": date(2026, 11, 1), "_ingested_at": NOW,
         "_batch_id": BATCH, "_available_date": date(2026, 11, 5)},
    ]


def test_rejected_rows_are_quarantine_rows_with_the_lines_shape_and_clear_lines_apart(session_ctx, parsed):
    rejected = transform.rejected(parsed, FEED, batch_id=BATCH, now=NOW)
    for rows, name in ((transform.quarantine_rows(rejected), "quarantine"), (transform.clear_lines(rejected),
                                                                             "quarantine_raw")):
        contract = session_ctx.spark.createDataFrame([], session_ctx.contracts.ops_table(name).ddl).schema
        assert [(f.name, f.dataType) for f in rows.schema.fields] == [(f.name, f.dataType) for f in contract.fields]

    def row(sha, line, reason, detail, raw):
        return {"stage": "bronze", "feed": "coop_members", "reason": reason, "detail": detail, "raw": raw,
                "record": None, "_file_sha256": sha, "_file_name": NAME[sha], "_line": line,
                "_delivery_date": DAY, "_batch_id": BATCH, "quarantined_at": NOW}

    def ordered(df):
        return sorted((r.asDict() for r in df.collect()), key=lambda r: (r["_file_sha256"], r["_line"]))

    # everyone reads the shape: why the line failed (field count, quotes, bad bytes), not who it is about
    assert ordered(transform.quarantine_rows(rejected)) == [
        row(SHA_A, 4, q.WRONG_FIELD_COUNT, "7 fields, header has 8", "x9,x,x,9,9.9,x,x"),
        row(SHA_B, 2, q.MISSING_COLUMN, MISSING, "x9,某某,9"),
        row(SHA_B, 3, q.MISSING_COLUMN, MISSING, "x9,某某,9"),
    ]
    # operators read the clear line (ops.quarantine_raw, restricted)
    assert [(r["_line"], r["reason"], r["raw"]) for r in ordered(transform.clear_lines(rejected))] == [
        (4, q.WRONG_FIELD_COUNT, "C1,x,y,3,2.5,a,b"), (2, q.MISSING_COLUMN, "C2,王五,3"),
        (3, q.MISSING_COLUMN, "C2,赵六,4")]


def test_a_lines_shape_keeps_quotes_delimiters_and_bad_bytes_only(spark):
    got = spark.createDataFrame([('"张三",110105194912310021,+86 138-1234-5678,Zhang\ufffd;é',)], "t string").select(
        transform.shape(F.col("t"))).first()[0]
    assert got == '"某某",999999999999999999,+99 999-9999-9999,xxxxx\ufffd;某'


def test_accepted_and_rejected_split_every_record_once(parsed):
    accepted = transform.accepted(parsed, FEED, batch_id=BATCH, now=NOW)
    rejected = transform.rejected(parsed, FEED, batch_id=BATCH, now=NOW)
    lines = sorted((r._file_sha256, r._line) for df in (accepted, rejected) for r in df.collect())
    assert lines == sorted((r._file_sha256, r._line) for r in parsed.collect())


def _figures(parsed) -> dict[str, dict]:
    return {r["_file_sha256"]: r.asDict() for r in transform.file_figures(parsed).collect()}


def test_file_figures_per_file(parsed):
    figures = _figures(parsed)
    assert sorted(figures) == [SHA_A, SHA_B, SHA_C]
    assert {sha: (f["ok"], f["bad"], sorted(f["cols"]), f["missing"]) for sha, f in figures.items()} == {
        SHA_A: (2, 1, ["wechat_id"], None),
        SHA_B: (0, 2, [], MISSING),
        SHA_C: (1, 0, ["fax", "wechat_id"], None),
    }


def _landed(sha: str, size: int = 100) -> LandedFile:
    return LandedFile("coop_members", f"/landing/{NAME[sha]}", NAME[sha], DELIVERED[sha], size)


def test_log_rows_status_counts_and_drift(parsed, session_ctx):
    files = [(_landed(SHA_A, 300), SHA_A), (_landed(SHA_B, 40), SHA_B), (_landed(SHA_C, 120), SHA_C),
             # a file with no record at all has no figures
             (_landed(SHA_E, 0), SHA_E)]
    again = LandedFile("coop_members", "/landing/coop/members/2026-11-03/a-again.csv",
                       "coop/members/2026-11-03/a-again.csv", date(2026, 11, 3), 300)
    rows = transform.log_rows(FEED, files, _figures(parsed), [(again, SHA_A, NAME[SHA_A])],
                              late={SHA_B: date(2026, 11, 9)})

    by_name = {r["file_name"]: r for r in rows}
    assert len(by_name) == len(rows) == 5
    fixed = {"system": "coop", "feed": "members"}
    assert by_name[NAME[SHA_A]] == {
        **fixed, "delivery_date": DAY, "file_name": NAME[SHA_A], "file_sha256": SHA_A, "file_bytes": 300,
        "status": "ingested", "read": 3, "accepted": 2, "quarantined": 1, "schema_drift": ["wechat_id"],
        "message": "schema drift: wechat_id", "available_date": DAY}
    assert by_name[NAME[SHA_B]] == {
        **fixed, "delivery_date": DAY, "file_name": NAME[SHA_B], "file_sha256": SHA_B, "file_bytes": 40,
        "status": "quarantined", "read": 2, "accepted": 0, "quarantined": 2, "schema_drift": [],
        "message": f"{MISSING}; LATE: first seen after gold of {DAY} or a later date was published; its rows count "
                   "from 2026-11-09", "available_date": date(2026, 11, 9)}
    assert by_name[NAME[SHA_C]]["status"] == "ingested"
    assert by_name[NAME[SHA_C]]["schema_drift"] == ["fax", "wechat_id"]
    assert by_name[NAME[SHA_C]]["message"] == "schema drift: fax, wechat_id"
    assert (by_name[NAME[SHA_E]]["status"], by_name[NAME[SHA_E]]["read"], by_name[NAME[SHA_E]]["message"]) == (
        "empty", 0, None)
    assert by_name[again.name] == {
        **fixed, "delivery_date": date(2026, 11, 3), "file_name": again.name, "file_sha256": SHA_A,
        "file_bytes": 300, "status": "duplicate", "read": 0, "accepted": 0, "quarantined": 0, "schema_drift": [],
        "message": f"same SHA-256 as {NAME[SHA_A]}; not ingested again"}
    for r in rows:
        assert r["read"] == r["accepted"] + r["quarantined"], r["file_name"]

    # the rows plus the batch's own columns are exactly ops.ingest_log's
    log_columns = [c.name for c in session_ctx.contracts.ops_table("ingest_log").columns]
    assert sorted([*rows[0], "batch_id", "ingested_at"]) == sorted(log_columns)


def test_delivery_dates_of_a_batch():
    files = [(_landed(SHA_A), SHA_A), (_landed(SHA_C), SHA_C), (_landed(SHA_B), SHA_B)]
    assert transform.delivery_dates(files) == [date(2026, 11, 1), DAY]
