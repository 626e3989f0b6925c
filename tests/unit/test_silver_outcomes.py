"""Silver's pure outcome logic (agrilake.stages.silver.outcomes) on tiny frames of real feeds.

Bronze-shaped rows go through the real conform(), then check_references -> shape -> rank, as
the silver shell chains them; references and existing silver rows are silver-shaped frames.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from stdnum.cn import ric

from agrilake.core import quarantine as q
from agrilake.core.contracts import packaged
from agrilake.core.pseudonymise import person_key
from agrilake.stages.silver import outcomes
from agrilake.stages.silver.conform import conform
from agrilake.stages.silver.entities import entity
from tests.gold_fixtures import coop, division, outlet, sale, silver_frame

CONTRACTS = packaged()
KEY = "unit-test-key"
RUN = "silver-2026-11-05-test"
AS_OF = date(2026, 11, 5)
NOW = datetime(2026, 11, 5, 8, 0, 0)
SHA_A, SHA_B = "a" * 64, "b" * 64
VILLAGE = "130123001001"


def valid_ric(seq: int) -> str:
    body = f"11010219800101{seq:03d}"
    return body + ric.calc_check_digit(body + "?")


def bronze(spark, feed_name: str, rows: list[dict[str, Any]]):
    """A bronze.<feed> frame: the contract's columns as text (absent ones null), then lineage.
    Lineage defaults: file A delivered 2026-11-03, `_line` numbered in the order given (from 2)."""
    feed = CONTRACTS.feed(feed_name)
    struct = spark.createDataFrame([], CONTRACTS.bronze_ddl(feed)).schema
    data = []
    for i, row in enumerate(rows, start=2):
        full = {"_file_sha256": SHA_A, "_line": i, "_delivery_date": "2026-11-03", "_batch_id": "bronze-test",
                "_ingested_at": NOW, **row}
        full["_file_name"] = f"{feed.system}/{feed.feed}/{full['_delivery_date']}/{full['_file_sha256'][:1]}.csv"
        full["_delivery_date"] = date.fromisoformat(full["_delivery_date"])
        data.append(tuple(full.get(f.name) for f in struct.fields))
    return spark.createDataFrame(data, struct)


def checked(spark, table: str, rows: list[dict[str, Any]], references: list):
    """conform() then check_references() of silver.<table>; `references[i]`: silver rows of refs[i]'s table."""
    e = entity(table)
    feed = CONTRACTS.feed(e.feed)
    known = [outcomes.known_values(ref_rows, ref.ref_column, i) for i, (ref, ref_rows) in
             enumerate(zip(e.refs, references, strict=True))]
    return outcomes.check_references(conform(bronze(spark, e.feed, rows), feed), e, known)


def ranked(spark, table: str, rows: list[dict[str, Any]], references: list, existing):
    e = entity(table)
    feed, contract = CONTRACTS.feed(e.feed), CONTRACTS.silver_tables()[table]
    shaped = outcomes.shape(checked(spark, table, rows, references), e, contract, feed, KEY, RUN)
    return outcomes.rank(shaped, contract, existing)


def by_line(df) -> dict[tuple[str, int], dict]:
    out = {(r["_file_sha256"], r["_line"]): r.asDict() for r in df.collect()}
    assert len(out) == df.count(), "a row was duplicated"
    return out


# --- reference checks --------------------------------------------------------------------------

def bronze_sale(sale_id: str, coop_id: str, **kw) -> dict[str, Any]:
    return {"sale_id": sale_id, "coop_id": coop_id, "product_code": "tea", "channel": "retail",
            "quantity_kg": "1.5", "amount_cny": "100.00", "sale_date": "2026-11-01", "buyer_county_code": "110101",
            **kw}


@pytest.fixture(scope="module")
def cooperatives(spark):
    """C1 first available on 11-01 (a later version on 11-04), C2 only from 11-10."""
    return silver_frame(spark, "cooperatives", [
        coop("C1", "93130123C1", VILLAGE, "2015-01-01", _delivery_date="2026-11-01"),
        coop("C1", "93130123C1", VILLAGE, "2015-01-01", status="suspended", _delivery_date="2026-11-04"),
        coop("C2", "93130123C2", VILLAGE, "2015-01-01", _delivery_date="2026-11-03", _available_date="2026-11-10"),
    ])


def test_unknown_reference_is_held_and_availability_is_the_later_date(spark, cooperatives):
    rows = [
        bronze_sale("S1", "C1"),  # delivered after C1 was known
        bronze_sale("S2", "C1", _delivery_date="2026-10-30"),  # delivered before C1: available with it
        bronze_sale("S3", "C2"),  # C2 only became available later
        bronze_sale("S4", "C9"),  # unknown: held
        bronze_sale("S5", "C9", amount_cny="-5"),  # unknown, but already invalid: quarantined, not held
    ]
    got = {r["sale_id"]: r for r in by_line(checked(spark, "sales", rows, [cooperatives])).values()}
    assert sorted(got) == ["S1", "S2", "S3", "S4", "S5"]
    assert {k: r["_held"] for k, r in got.items()} == {
        "S1": None, "S2": None, "S3": None, "S4": "UNKNOWN_REF(coop_id)", "S5": None}
    assert got["S5"]["_reason"] == q.OUT_OF_RANGE
    assert {k: got[k]["_available_date"] for k in ("S1", "S2", "S3")} == {
        "S1": date(2026, 11, 3), "S2": date(2026, 11, 1), "S3": date(2026, 11, 10)}


def test_unknown_division_is_held_with_its_own_reason(spark):
    divisions = silver_frame(spark, "divisions", [division(VILLAGE, "一村", "village", "130123001000")])
    rows = [bronze_outlet("O1"), bronze_outlet("O2", division_code="130123001999")]
    got = {r["outlet_id"]: r for r in by_line(checked(spark, "outlets", rows, [divisions])).values()}
    assert got["O1"]["_held"] is None and got["O1"]["_reason"] is None
    assert got["O2"]["_held"] == "UNKNOWN_DIVISION(division_code)"


# --- ranking: events ---------------------------------------------------------------------------

def test_event_feed_first_delivered_copy_wins(spark, cooperatives):
    existing = silver_frame(spark, "sales", [sale("S3", "C1", "100", "2026-10-01"),
                                             sale("S7", "C1", "100", "2026-10-01")])
    rows = [
        bronze_sale("S1", "C1"),                                      # A:2 later copy of S1 -> duplicate
        bronze_sale("S1", "C1", _file_sha256=SHA_B, _line=9, _delivery_date="2026-11-02"),  # first delivered
        bronze_sale("S2", "C1"),                                      # A:4 first in its file
        bronze_sale("S2", "C1", amount_cny="200.00"),                 # A:5 same key later in the file
        bronze_sale("S3", "C1"),                                      # A:6 already in silver
        bronze_sale("S3", "C1", channel="barter"),                    # A:7 invalid copy of a known key
        bronze_sale("S6", "C1", amount_cny="-1", _delivery_date="2026-11-01"),  # A:8 invalid first copy
        bronze_sale("S6", "C1"),                                      # A:9 the first valid copy of S6
        bronze_sale("S7", "C9"),                                      # A:10 held, though S7 is in silver
    ]
    got = by_line(ranked(spark, "sales", rows, [cooperatives], existing))
    assert {k: r["_outcome"] for k, r in got.items()} == {
        (SHA_A, 2): "duplicate", (SHA_B, 9): "accepted",
        (SHA_A, 4): "accepted", (SHA_A, 5): "duplicate",
        (SHA_A, 6): "duplicate", (SHA_A, 7): "quarantined",
        (SHA_A, 8): "quarantined", (SHA_A, 9): "accepted",
        (SHA_A, 10): "held",
    }
    assert got[(SHA_A, 7)]["_reason"] == q.NOT_ALLOWED and got[(SHA_A, 10)]["_held"] == "UNKNOWN_REF(coop_id)"

    accepted = outcomes.accepted_rows(ranked(spark, "sales", rows, [cooperatives], existing),
                                      CONTRACTS.silver_tables()["sales"])
    assert accepted.columns == [c.name for c in CONTRACTS.silver_tables()["sales"].columns]
    assert sorted((r.sale_id, r._line, r._batch_id) for r in accepted.collect()) == [
        ("S1", 9, RUN), ("S2", 4, RUN), ("S6", 9, RUN)]


def test_the_row_silver_already_holds_is_accepted_again_but_not_appended(spark, cooperatives):
    """A run that appended to silver and was killed before its ledger commit: the same bronze rows are
    candidates again. The very row silver holds (same file and line) stays accepted, not a duplicate of
    itself, and is not appended twice; another copy of its key is still a duplicate."""
    existing = silver_frame(spark, "sales", [sale("S1", "C1", "100", "2026-11-01", _file_sha256=SHA_A, _line=2,
                                                  _delivery_date="2026-11-03")])
    rows = [bronze_sale("S1", "C1"),  # A:2, the row silver holds
            bronze_sale("S1", "C1"),  # A:3, a later copy of the same key
            bronze_sale("S2", "C1")]  # A:4, new
    got = by_line(ranked(spark, "sales", rows, [cooperatives], existing))
    assert {k: (r["_outcome"], r["_in_silver"]) for k, r in got.items()} == {
        (SHA_A, 2): ("accepted", True), (SHA_A, 3): ("duplicate", False), (SHA_A, 4): ("accepted", False)}
    accepted = outcomes.accepted_rows(ranked(spark, "sales", rows, [cooperatives], existing),
                                      CONTRACTS.silver_tables()["sales"])
    assert [(r.sale_id, r._line) for r in accepted.collect()] == [("S2", 4)]


# --- ranking: versioned (upsert) feeds ---------------------------------------------------------

def bronze_outlet(outlet_id: str, **kw) -> dict[str, Any]:
    return {"outlet_id": outlet_id, "name": f"outlet {outlet_id}", "level": "village", "division_code": VILLAGE,
            "services": "parcel", "opened_date": "2000-01-01", "closed_date": None, "latitude": "38.0",
            "longitude": "114.5", "updated_at": "2020-01-01T00:00:00+08:00", **kw}


def test_upsert_feed_identical_content_is_a_duplicate_and_a_new_version_is_accepted(spark):
    divisions = silver_frame(spark, "divisions", [division(VILLAGE, "一村", "village", "130123001000")])
    existing = silver_frame(spark, "outlets", [outlet("O1", VILLAGE, "parcel")])
    closed = {"closed_date": "2026-11-01", "updated_at": "2026-11-01T00:00:00+08:00"}
    rows = [
        bronze_outlet("O1"),                   # A:2 the very version silver has -> duplicate
        bronze_outlet("O1", **closed),         # A:3 a new version of O1 -> accepted
        bronze_outlet("O2"),                   # A:4 new -> accepted
        bronze_outlet("O2", _line=40, _file_sha256=SHA_B),  # the same content again -> duplicate
        bronze_outlet("O3", level="hamlet"),   # A:6 invalid -> quarantined
        bronze_outlet("O4", division_code="130123001999"),  # A:7 unknown division -> held
    ]
    got = by_line(ranked(spark, "outlets", rows, [divisions], existing))
    assert {k: r["_outcome"] for k, r in got.items()} == {
        (SHA_A, 2): "duplicate", (SHA_A, 3): "accepted", (SHA_A, 4): "accepted", (SHA_B, 40): "duplicate",
        (SHA_A, 6): "quarantined", (SHA_A, 7): "held"}
    assert got[(SHA_A, 3)]["closed_date"] == date(2026, 11, 1)


# --- ranking: reference feeds (no timestamp: the latest delivery wins) ------------------------------

def bronze_division(code: str, **kw) -> dict[str, Any]:
    return {"division_code": code, "name": "一村", "level": "village", "parent_code": "130123001000",
            "urban_rural_code": "220", "valid_from": "2000-01-01", "valid_to": None, **kw}


def test_a_reference_value_that_changes_back_is_a_new_version(spark):
    """A division closes (B) and reopens (A again) in later deliveries: the reopening is a version of
    its own, so the latest delivery (A) wins, as docs/metrics.md defines. A copy within one file is a
    duplicate; the very row silver holds is accepted, not appended again."""
    silver_a = silver_frame(spark, "divisions", [division(VILLAGE, "一村", "village", "130123001000",
                                                          _file_sha256=SHA_A, _line=2, _delivery_date="2026-11-01")])
    closed = {"valid_to": "2026-11-02"}
    rows = [
        bronze_division(VILLAGE, _delivery_date="2026-11-01"),                              # A:2 silver holds it
        bronze_division(VILLAGE, _delivery_date="2026-11-02", _file_sha256="c" * 64, **closed),  # B, closed
        bronze_division(VILLAGE, _delivery_date="2026-11-03", _file_sha256="d" * 64),       # A again: reopened
        bronze_division(VILLAGE, _delivery_date="2026-11-03", _file_sha256="d" * 64),       # its copy in the file
    ]
    got = by_line(ranked(spark, "divisions", rows, [], silver_a))
    assert {(k[0][0], k[1]): (r["_outcome"], r["_in_silver"]) for k, r in got.items()} == {
        ("a", 2): ("accepted", True), ("c", 3): ("accepted", False), ("d", 4): ("accepted", False),
        ("d", 5): ("duplicate", False)}
    accepted = outcomes.accepted_rows(ranked(spark, "divisions", rows, [], silver_a),
                                      CONTRACTS.silver_tables()["divisions"])
    assert sorted((str(r._delivery_date), r.valid_to) for r in accepted.collect()) == [
        ("2026-11-02", date(2026, 11, 2)), ("2026-11-03", None)]


# --- ledger and quarantine rows ----------------------------------------------------------------

def bronze_member(coop_id: str, ric_value: str, name: str, **kw) -> dict[str, Any]:
    return {"coop_id": coop_id, "member_ric": ric_value, "member_name": name, "household_size": "3",
            "land_area_mu": "2.5", "joined_date": "2020-01-01", "updated_at": "2026-11-01T09:00:00+08:00", **kw}


@pytest.fixture(scope="module")
def members(spark, cooperatives):
    bad_ric = valid_ric(3)[:-1] + ("0" if valid_ric(3)[-1] != "0" else "1")
    rows = [
        bronze_member("C1", valid_ric(1), "张三丰"),                  # A:2 accepted
        bronze_member("C9", valid_ric(2), "李四"),                    # A:3 held for its cooperative
        bronze_member("C1", bad_ric, "王秀英"),                       # A:4 quarantined: bad RIC
        bronze_member("C1", valid_ric(1), "张三丰"),                  # A:5 the same version again
    ]
    return ranked(spark, "members", rows, [cooperatives], silver_frame(spark, "members", [])), bad_ric


def test_ledger_rows_one_outcome_per_row(session_ctx, members):
    df, _ = members
    ledger = outcomes.ledger_rows(df, CONTRACTS.feed("coop_members"), AS_OF, RUN, NOW)
    assert ledger.columns == [c.name for c in session_ctx.contracts.ops_table("silver_ledger").columns]
    common = {"feed": "coop_members", "_file_sha256": SHA_A, "_delivery_date": date(2026, 11, 3), "updated_at": NOW,
              "run_id": RUN}
    got = sorted((r.asDict() for r in ledger.collect()), key=lambda r: r["_line"])
    assert got == [
        {**common, "_line": 2, "outcome": "accepted", "reason": None, "detail": None, "held_since": None},
        {**common, "_line": 3, "outcome": "held", "reason": q.UNKNOWN_REF, "detail": "UNKNOWN_REF(coop_id)",
         "held_since": AS_OF},
        {**common, "_line": 4, "outcome": "quarantined", "reason": q.BAD_RIC, "detail": "BAD_RIC(member_ric)",
         "held_since": None},
        {**common, "_line": 5, "outcome": "duplicate", "reason": None, "detail": None, "held_since": None},
    ]


def test_accepted_member_is_pseudonymised(members):
    df, _ = members
    [row] = outcomes.accepted_rows(df, CONTRACTS.silver_tables()["members"]).collect()
    assert row.person_key == person_key(valid_ric(1), KEY) and row.birth_date == date(1980, 1, 1)


def test_quarantine_rows_keep_a_masked_record(session_ctx, members):
    df, bad_ric = members
    rows = outcomes.quarantine_rows(df, CONTRACTS.feed("coop_members"), RUN, NOW)
    assert rows.columns == [c.name for c in session_ctx.contracts.ops_table("quarantine").columns]
    [row] = [r.asDict() for r in rows.collect()]
    record = row.pop("record")
    assert row == {"stage": "silver", "feed": "coop_members", "reason": q.BAD_RIC, "detail": "BAD_RIC(member_ric)",
                   "raw": None, "_file_sha256": SHA_A, "_file_name": None, "_line": 4,
                   "_delivery_date": date(2026, 11, 3), "_batch_id": RUN, "quarantined_at": NOW}
    # every contract column is there; the PII ones only as a stub that identifies no one
    assert set(record) == set(CONTRACTS.feed("coop_members").column_names)
    assert (record["coop_id"], record["household_size"], record["joined_date"]) == ("C1", "3", "2020-01-01")
    assert record["member_ric"] == bad_ric[:4] + "***"  # docs/sources.md: a quarter of each PII value
    assert record["member_name"] == "***"  # a 3-character name: nothing of it
    assert record["left_date"] is None
    for value in record.values():
        assert value is None or (bad_ric not in value and "王秀英" not in value), value
