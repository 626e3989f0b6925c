"""Point-in-time reads: version tie-breaks, divisions validity, events known by D, whole years."""

from __future__ import annotations

from datetime import date

from pyspark.sql import functions as F

from agrilake.stages.gold.asof import divisions_state, events_known, in_window, upsert_state, whole_years
from tests.gold_fixtures import coop, division, event, silver_frame

D = date(2026, 6, 30)
T0 = "2026-01-01T00:00:00+08:00"
T1 = "2026-02-01T00:00:00+08:00"


def _names(df, key="coop_id", value="coop_name"):
    return {r[key]: r[value] for r in df.collect()}


def test_upsert_state_version_and_tie_breaks(spark):
    rows = [
        # greatest updated_at wins, even when delivered earlier
        coop("K1", "u", "130123001001", "2020-01-01", coop_name="newest", updated_at=T1, _delivery_date="2026-02-01"),
        coop("K1", "u", "130123001001", "2020-01-01", coop_name="older", updated_at=T0, _delivery_date="2026-03-01"),
        # same updated_at: the later delivery wins
        coop("K2", "u", "130123001001", "2020-01-01", coop_name="first", updated_at=T0, _delivery_date="2026-02-01"),
        coop("K2", "u", "130123001001", "2020-01-01", coop_name="later", updated_at=T0, _delivery_date="2026-02-02"),
        # same updated_at and delivery: the greater file SHA-256 wins
        coop("K3", "u", "130123001001", "2020-01-01", coop_name="sha-b", updated_at=T0, _delivery_date="2026-02-01",
             _file_sha256="b" * 64, _line=1),
        coop("K3", "u", "130123001001", "2020-01-01", coop_name="sha-a", updated_at=T0, _delivery_date="2026-02-01",
             _file_sha256="a" * 64, _line=9),
        # same file: the later line wins
        coop("K4", "u", "130123001001", "2020-01-01", coop_name="line-9", updated_at=T0, _delivery_date="2026-02-01",
             _line=9),
        coop("K4", "u", "130123001001", "2020-01-01", coop_name="line-5", updated_at=T0, _delivery_date="2026-02-01",
             _line=5),
        # a greater version delivered after D is not known yet
        coop("K5", "u", "130123001001", "2020-01-01", coop_name="known", updated_at=T0, _delivery_date="2026-06-30"),
        coop("K5", "u", "130123001001", "2020-01-01", coop_name="future", updated_at=T1, _delivery_date="2026-07-01"),
        # only delivered after D: not known at all
        coop("K6", "u", "130123001001", "2020-01-01", coop_name="future", _delivery_date="2026-07-01"),
    ]
    state = upsert_state(silver_frame(spark, "cooperatives", rows), "cooperatives", D)
    assert _names(state) == {"K1": "newest", "K2": "later", "K3": "sha-b", "K4": "line-9", "K5": "known"}
    assert state.columns == silver_frame(spark, "cooperatives", []).columns


def test_installments_are_versioned_by_recorded_at(spark):
    from tests.gold_fixtures import installment

    rows = [
        installment("L1", 1, "2026-01-01", "100", recorded_at="2026-01-02T00:00:00+08:00", _delivery_date="2026-01-05"),
        installment("L1", 1, "2026-01-01", "100", paid="2026-01-01", amount_paid="100",
                    recorded_at="2026-01-03T00:00:00+08:00", _delivery_date="2026-01-04"),
        installment("L1", 2, "2026-02-01", "100", recorded_at="2026-02-02T00:00:00+08:00"),
    ]
    state = upsert_state(silver_frame(spark, "installments", rows), "installments", D)
    got = {(r["loan_id"], r["installment_no"]): r["paid_date"] for r in state.collect()}
    assert got == {("L1", 1): date(2026, 1, 1), ("L1", 2): None}


def test_divisions_latest_delivery_then_valid_on_d(spark):
    rows = [
        division("100000000001", "renamed-old", "village", None),
        division("100000000001", "renamed-new", "village", None, _delivery_date="2026-03-01"),
        # the later delivery ends it before D
        division("100000000002", "ended", "village", None),
        division("100000000002", "ended", "village", None, valid_to="2026-05-01", _delivery_date="2026-05-01"),
        division("100000000003", "ends on D", "village", None, valid_to="2026-06-30"),
        division("100000000004", "ends after D", "village", None, valid_to="2026-07-01"),
        division("100000000005", "starts on D", "village", None, valid_from="2026-06-30"),
        division("100000000006", "starts after D", "village", None, valid_from="2026-07-01"),
        division("100000000007", "delivered after D", "village", None, _delivery_date="2026-07-01"),
        # same delivery: the greater file SHA-256, then the later line wins
        division("100000000008", "sha-a", "village", None, _file_sha256="a" * 64, _line=5),
        division("100000000008", "sha-b", "village", None, _file_sha256="b" * 64, _line=1),
        division("100000000009", "line-2", "village", None, _line=2),
        division("100000000009", "line-1", "village", None, _line=1),
    ]
    state = divisions_state(silver_frame(spark, "divisions", rows), D)
    assert _names(state, "division_code", "name") == {
        "100000000001": "renamed-new",
        "100000000004": "ends after D",
        "100000000005": "starts on D",
        "100000000008": "sha-b",
        "100000000009": "line-2",
    }


def test_events_known_by_d_keep_the_earliest_delivery(spark):
    rows = [
        event("E1", "P1", "accepted", "2026-06-01T10:00:00+08:00", "O1", _delivery_date="2026-06-02"),
        event("E1", "P1", "accepted", "2026-06-01T10:00:00+08:00", "O9", _delivery_date="2026-06-01"),
        event("E2", "P1", "delivered", "2026-06-02T10:00:00+08:00", "O1", _delivery_date="2026-07-01"),
    ]
    known = events_known(silver_frame(spark, "shipment_events", rows), "shipment_events", D)
    assert {r["event_id"]: r["outlet_id"] for r in known.collect()} == {"E1": "O9"}


def test_whole_years_and_window(spark):
    cases = [
        ("2015-07-01", "2026-06-30", 10),  # the day before the anniversary
        ("2015-06-30", "2026-06-30", 11),  # on the anniversary
        ("2024-02-29", "2025-02-28", 0),  # a Feb 29 start has its anniversary on Mar 1 in common years
        ("2024-02-29", "2025-03-01", 1),
        ("2024-02-29", "2028-02-29", 4),
        ("2026-06-30", "2026-06-30", 0),
    ]
    df = spark.createDataFrame([(date.fromisoformat(a), date.fromisoformat(b)) for a, b, _ in cases], "a date, b date")
    got = [r[0] for r in df.select(whole_years("a", "b")).collect()]
    assert got == [n for *_, n in cases]

    days = spark.createDataFrame([(date(2025, 6, 30),), (date(2025, 7, 1),), (D,), (date(2026, 7, 1),)], "d date")
    assert [r[0] for r in days.select(in_window(F.col("d"), D)).collect()] == [False, True, True, False]
