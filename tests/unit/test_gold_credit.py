"""gold credit tables on the hand-computed world of tests/gold_fixtures.py (as of D = 2026-06-30)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from agrilake.core.contracts import GOLD_TABLES, packaged
from agrilake.stages.gold import transform
from tests.gold_fixtures import U1, U2, U3, U5, D, filtered, person, world, world_gold


class _Gold(dict):
    """The world's gold tables, each computed on first use."""

    def __init__(self, spark):
        super().__init__()
        self.spark = spark

    def __missing__(self, name):
        self[name] = world_gold(self.spark, name)
        return self[name]


@pytest.fixture(scope="module")
def gold(spark):
    return _Gold(spark)


def by(rows, key):
    out = {r[key]: r for r in rows}
    assert len(out) == len(rows), f"duplicate {key}"
    return out


def money(x: str) -> Decimal:
    return Decimal(x).quantize(Decimal("0.01"))


COOPS = {
    # C1: 10 full years (anniversary tomorrow); A, B (rejoined), E (leaves after D) active; C left on D
    # and Dp joins after D. Sales 150k postal on D + 100k on the first day of W(D); the sale the day
    # before W(D) and the one delivered after D do not count. L1 active, L2 settled, L3 disbursed after D.
    # Installments due in W(D): L1#2 (paid per its later version), L1#3 (paid on D; the correction
    # delivered after D is ignored), L2#1 -> 3/3 on time. Score 600+50+0+25+20+0+20 = 715.
    "C1": dict(uscc=U1, coop_name="C1 cooperative", status="active", province_code="13", prefecture_code="1301",
               county_code="130123", township_code="130123001", village_code="130123001001", county_name="正定县",
               years_established=10, active_members=3, member_land_mu=15.76, sales_12m_cny=money("250000"),
               postal_sales_share_12m=0.6, upstream_parcels_12m=6, upstream_weight_kg_12m=18.1, loans_active=1,
               principal_active_cny=money("100000"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=1.0,
               subsidies_12m_cny=money("2000"), score=715, credit_tier="A", reason_codes=[]),
    # C2: suspended, no sales in W(D), no loans: 600+30+0 -200 = 430
    "C2": dict(uscc=U2, coop_name="C2 cooperative", status="suspended", province_code="13", prefecture_code="1301",
               county_code="130123", township_code="130123001", village_code="130123001002", county_name="正定县",
               years_established=6, active_members=1, member_land_mu=2.0, sales_12m_cny=money("0"),
               postal_sales_share_12m=None, upstream_parcels_12m=1, upstream_weight_kg_12m=4.0, loans_active=0,
               principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
               subsidies_12m_cny=money("0"), score=430, credit_tier="D",
               reason_codes=["NO_REPAYMENT_HISTORY", "SALES_NONE", "STATUS_INACTIVE"]),
    # C3: L4 #1 paid 105 days late, #2 partial (400 owed, 121 dpd), #3 unpaid at D (1000 owed, 29 dpd),
    # #4 on time; #5 and L9 are only known after D. on time 1/4 -> 25-80 = -55; dpd 121 -> -150;
    # arrears 1400 > 10% of 10000 -> -100. 600+15+1+10-55-150-100 = 321
    "C3": dict(uscc=U3, coop_name="C3 cooperative", status="active", province_code="13", prefecture_code="1301",
               county_code="130123", township_code="130123002", village_code="130123002001", county_name="正定县",
               years_established=3, active_members=4, member_land_mu=4.0, sales_12m_cny=money("500"),
               postal_sales_share_12m=0.0, upstream_parcels_12m=0, upstream_weight_kg_12m=0.0, loans_active=1,
               principal_active_cny=money("10000"), arrears_cny=money("1400"), max_dpd_12m=121,
               on_time_rate_12m=0.25, subsidies_12m_cny=money("5000"), score=321, credit_tier="D",
               reason_codes=["ARREARS_HIGH", "DPD_90"]),
    # C5: established on a Feb 29; sales exactly 1M with a postal share of exactly 0.3: 600+10+40+20 = 670
    "C5": dict(uscc=U5, coop_name="C5 cooperative", status="active", province_code="13", prefecture_code="1301",
               county_code="130124", township_code="130124001", village_code="130124001001", county_name="新名县",
               years_established=2, active_members=0, member_land_mu=0.0, sales_12m_cny=money("1000000"),
               postal_sales_share_12m=0.3, upstream_parcels_12m=0, upstream_weight_kg_12m=0.0, loans_active=0,
               principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
               subsidies_12m_cny=money("0"), score=670, credit_tier="B", reason_codes=["NO_REPAYMENT_HISTORY"]),
}


@pytest.mark.parametrize("coop_id", sorted(COOPS))
def test_coop_credit_profile(gold, coop_id):
    rows = by(gold["coop_credit_profile"], "coop_id")
    assert set(rows) == set(COOPS), "C6 is only delivered after D"
    row = rows[coop_id]
    expected = {"as_of_date": D, "coop_id": coop_id, **COOPS[coop_id]}
    assert row == expected


HOUSEHOLDS = {
    # A: member of C1 and C2, 29 (30 tomorrow); L5 installment paid 2 days late
    "A": dict(age_band="<30", coop_ids=["C1", "C2"], household_size=6, land_area_mu=12.25, loans_active=1,
              principal_active_cny=money("30000"), arrears_cny=money("0"), max_dpd_12m=2, on_time_rate_12m=0.0,
              subsidies_12m_cny=money("0")),
    # B: 45 on D; rejoined C1 (the later version wins)
    "B": dict(age_band="45-59", coop_ids=["C1"], household_size=3, land_area_mu=5.5, loans_active=0,
              principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
              subsidies_12m_cny=money("0")),
    # E: 60 on D, leaves C1 after D
    "E": dict(age_band="60+", coop_ids=["C1"], household_size=2, land_area_mu=0.01, loans_active=0,
              principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
              subsidies_12m_cny=money("0")),
    # F: only a settled loan; one installment paid 100 days late
    "F": dict(age_band="30-44", coop_ids=[], household_size=None, land_area_mu=0.0, loans_active=0,
              principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=100, on_time_rate_12m=0.5,
              subsidies_12m_cny=money("0")),
    # G: only a subsidy granted on the first day of W(D)
    "G": dict(age_band="60+", coop_ids=[], household_size=None, land_area_mu=0.0, loans_active=0,
              principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
              subsidies_12m_cny=money("1234.56")),
    # J: 30 on D, subsidy granted on D
    "J": dict(age_band="30-44", coop_ids=[], household_size=None, land_area_mu=0.0, loans_active=0,
              principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0, on_time_rate_12m=None,
              subsidies_12m_cny=money("100")),
    **{f"Q{i}": dict(age_band="45-59", coop_ids=["C3"], household_size=5, land_area_mu=1.0, loans_active=0,
                     principal_active_cny=money("0"), arrears_cny=money("0"), max_dpd_12m=0,
                     on_time_rate_12m=None, subsidies_12m_cny=money("0")) for i in range(1, 5)},
}


def test_household_population(gold):
    # not C (left on D), Dp (joins after D), H (subsidy before W(D)), I and K (delivered after D)
    got = set(by(gold["household_credit_profile"], "person_key"))
    assert got == {person(p) for p in HOUSEHOLDS}


@pytest.mark.parametrize("who", sorted(HOUSEHOLDS))
def test_household_credit_profile(gold, who):
    row = by(gold["household_credit_profile"], "person_key")[person(who)]
    assert row == {"as_of_date": D, "person_key": person(who), **HOUSEHOLDS[who]}


def test_credit_county_summary(gold):
    rows = by(gold["credit_county_summary"], "county_code")
    assert rows == {
        "130123": dict(as_of_date=D, county_code="130123", county_name="正定县", coops=3, coops_tier_a=1,
                       coops_tier_b=0, coops_tier_c=0, coops_tier_d=2, principal_active_cny=money("110000"),
                       arrears_cny=money("1400"), mean_on_time_rate_12m=0.625),
        "130124": dict(as_of_date=D, county_code="130124", county_name="新名县", coops=1, coops_tier_a=0,
                       coops_tier_b=1, coops_tier_c=0, coops_tier_d=0, principal_active_cny=money("0"),
                       arrears_cny=money("0"), mean_on_time_rate_12m=None),
    }


def test_later_deliveries_do_not_change_d(spark, gold):
    """The world holds deliveries dated after D; without them, every gold table is identical."""
    before = {name: [r.asDict() for r in df.collect()] for name, df in transform(filtered(world(spark), D), D).items()}
    for name in GOLD_TABLES:
        key = packaged().gold_table(name).key[-1]
        assert by(before[name], key) == by(gold[name], key), name


def test_a_later_date_sees_the_later_deliveries(spark):
    later = transform(world(spark), date(2026, 7, 1))["coop_credit_profile"]
    rows = {r["coop_id"]: r for r in later.collect()}
    assert rows["C1"]["status"] == "dissolved" and "STATUS_INACTIVE" in rows["C1"]["reason_codes"]
    assert "C6" in rows


def test_schemas_follow_the_gold_contracts(spark):
    frames = transform(world(spark), D)
    for name in GOLD_TABLES:
        expected = [(c.name, c.spark_type) for c in packaged().gold_table(name).columns]
        got = [(f.name, f.dataType.simpleString()) for f in frames[name].schema.fields]
        assert got == expected, name


def test_transform_keeps_the_parcels_once_and_each_table_is_its_builders(spark):
    """publish keeps each table and what two of them share (the parcels known by D) once: transform
    hands `keep` five frames, and each table equals what its builder gives on its own."""
    from agrilake.stages.gold import FROM_SILVER

    silver = world(spark)
    kept = []
    frames = transform(silver, D, keep=lambda df: kept.append(df) or df)
    assert len(kept) == len(GOLD_TABLES) + 1
    for name, build in FROM_SILVER.items():
        assert sorted(map(repr, frames[name].collect())) == sorted(map(repr, build(silver, D).collect())), name
