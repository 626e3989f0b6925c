"""gold.logistics_division_daily on the hand-computed world of tests/gold_fixtures.py (D = 2026-06-30)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gold_fixtures import D, world_gold

# Lead times in hours of the parcels delivered on D, by rural outlet:
#   O1 (village 130123001001): P1 24 (the day after acceptance), P2 12 (promised 10: late),
#      P4 24 (promised 24: on time, cold chain, no reading), P5 54h20m (cold chain, readings inside;
#      the reading outside arrives after D), P8 24 (earliest accepted/delivered events, out of order)
#   O3 (township 130123001000): P3 72 (promised 48: late, cold chain, a reading above its max)
# P9's delivery and P12's acceptance are only known after D, so neither is a delivered parcel.
VILLAGE_LEADS = [24.0, 12.0, 24.0, 54 + 20 / 60, 24.0]
TOWNSHIP_LEADS = [*VILLAGE_LEADS, 72.0]


def pct(values, q):
    return round(float(np.percentile(values, q)), 2)


ZERO = dict(outlets_open=0, parcel_outlets_open=0, villages_total=0, villages_covered=0, coverage_rate=None,
            upstream_accepted=0, downstream_delivered=0, delivered=0, lead_time_p50_h=None, lead_time_p95_h=None,
            on_time_rate=None, cold_chain_delivered=0, cold_chain_excursion_rate=None, returned=0)
BUSY = dict(upstream_accepted=3, downstream_delivered=3, delivered=6, lead_time_p50_h=24.0, lead_time_p95_h=67.58,
            on_time_rate=4 / 6, cold_chain_delivered=3, cold_chain_excursion_rate=2 / 3, returned=1)

EXPECTED = {
    # O1, O6 (its closing is delivered after D), O3, O4 (not parcel), O5 open; O2 closed; O7 opens after D.
    # Upstream accepted on D: P2 and P7 (07:30 +08:00, 23:30 UTC the day before) at O1, P6 (23:30 +08:00) at O3.
    # Returned on D: P10, accepted at O3.
    "130123000000": dict(level="county", name="正定县", parent_code="130100000000", **{
        **ZERO, "outlets_open": 5, "parcel_outlets_open": 4, "villages_total": 3, "villages_covered": 1,
        "coverage_rate": 1 / 3, **BUSY}),
    "130123001000": dict(level="township", name="正定镇", parent_code="130123000000", **{
        **ZERO, "outlets_open": 4, "parcel_outlets_open": 3, "villages_total": 2, "villages_covered": 1,
        "coverage_rate": 0.5, **BUSY}),
    "130123001001": dict(level="village", name="一村", parent_code="130123001000", **{
        **ZERO, "outlets_open": 2, "parcel_outlets_open": 2, "villages_total": 1, "villages_covered": 1,
        "coverage_rate": 1.0, "upstream_accepted": 2, "downstream_delivered": 2, "delivered": 5,
        "lead_time_p50_h": 24.0, "lead_time_p95_h": 48.27, "on_time_rate": 0.8, "cold_chain_delivered": 2,
        "cold_chain_excursion_rate": 0.5}),
    # a closed parcel outlet and an open one without the parcel service: not covered
    "130123001002": dict(level="village", name="二村", parent_code="130123001000", **{
        **ZERO, "outlets_open": 1, "villages_total": 1, "coverage_rate": 0.0}),
    "130123002000": dict(level="township", name="诸福屯镇", parent_code="130123000000", **{
        **ZERO, "villages_total": 1, "coverage_rate": 0.0}),
    # an empty village: its only outlet opens after D
    "130123002001": dict(level="village", name="三村", parent_code="130123002000", **{
        **ZERO, "villages_total": 1, "coverage_rate": 0.0}),
    # renamed by a later delivery; no village at all: coverage null
    "130124000000": dict(level="county", name="新名县", parent_code="130100000000", **ZERO),
    # valid from D
    "130124001000": dict(level="township", name="新镇", parent_code="130124000000", **ZERO),
}


@pytest.fixture(scope="module")
def rows(spark):
    return {r["division_code"]: r for r in world_gold(spark, "logistics_division_daily")}


def test_one_row_per_county_township_village_as_of_d(rows):
    # not the province/prefecture rows, not 130123002002 (ended before D), not 130123002003 (delivered after D)
    assert set(rows) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_division_row(rows, code):
    expected = {"as_of_date": D, "division_code": code, **EXPECTED[code]}
    got = rows[code]
    assert got.keys() == expected.keys()
    for column, value in expected.items():
        if isinstance(value, float):
            assert got[column] == pytest.approx(value, rel=1e-12), column
        else:
            assert got[column] == value, column


def test_percentiles_match_numpy_linear_interpolation(rows):
    assert rows["130123001001"]["lead_time_p50_h"] == pct(VILLAGE_LEADS, 50) == 24.0
    assert rows["130123001001"]["lead_time_p95_h"] == pct(VILLAGE_LEADS, 95) == 48.27
    assert rows["130123000000"]["lead_time_p50_h"] == pct(TOWNSHIP_LEADS, 50) == 24.0
    assert rows["130123000000"]["lead_time_p95_h"] == pct(TOWNSHIP_LEADS, 95) == 67.58


def test_percentile_interpolation_on_an_even_count(spark):
    """p50 of an even count is the mean of the middle two; p95 interpolates between the top two."""
    from pyspark.sql import functions as F

    from agrilake.stages.gold.logistics import PERCENTILES

    leads = [1.0, 2.5, 3.25, 10.0, 40.0, 41.5]
    df = spark.createDataFrame([(x,) for x in leads], "lead_h double")
    got = df.agg(F.percentile("lead_h", list(PERCENTILES))).first()[0]
    assert [round(x, 6) for x in got] == [round(float(np.percentile(leads, q * 100)), 6) for q in PERCENTILES]


def test_lead_times_round_half_up_on_their_decimal_value(spark):
    """52.025 h is the median of 52 h and 52 h 3 min; its nearest double is 52.02499..., still 52.03."""
    from pyspark.sql import functions as F

    from agrilake.stages.gold.logistics import _round2

    values = spark.createDataFrame([(52.025,), (1.005,), (67.58333333333333,), (-0.125,)], "h double")
    assert [r[0] for r in values.select(_round2(F.col("h"))).collect()] == [52.03, 1.01, 67.58, -0.13]
