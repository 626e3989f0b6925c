"""The silver tables each gold table is computed from, as schemas/gold declares them (`sources`, what
`agrilake lineage` follows), are exactly the ones the gold builders read."""

from __future__ import annotations

from datetime import date

import pytest

import agrilake.stages.gold as gold
from agrilake.core.contracts import GOLD_TABLES, packaged
from tests.gold_fixtures import world


class Recording(dict):
    """The silver mapping, noting every table a builder takes from it."""

    def __init__(self, frames):
        super().__init__(frames)
        self.used: set[str] = set()

    def __getitem__(self, key):
        self.used.add(key)
        return super().__getitem__(key)


def test_declared_sources_are_what_the_builders_read(spark):
    contracts, as_of, frames = packaged(), date(2026, 6, 30), world(spark)
    shared = Recording(frames)
    parcels = gold.parcels_known(shared, as_of, contracts)
    read = {}
    for name, build in gold.FROM_SILVER.items():
        silver = Recording(frames)
        build(silver, as_of, contracts, **({"known_parcels": parcels} if "known_parcels" in gold.USES.get(name, ()) else {}))
        read[name] = silver.used | (shared.used if "known_parcels" in gold.USES.get(name, ()) else set())
    read["credit_county_summary"] = read["coop_credit_profile"]  # derived from the cooperative profile
    assert set(read) == set(GOLD_TABLES)
    for name in GOLD_TABLES:
        assert set(contracts.gold_table(name).extra["sources"]) == read[name], name


def test_lineage_targets_are_gold_tables_their_columns_or_silver_tables():
    from agrilake.analyst.lineage import parse_target

    silver = list(packaged().silver_tables())
    assert parse_target("gold.coop_credit_profile", silver) == ("gold", "coop_credit_profile", None)
    assert parse_target("gold.coop_credit_profile.score", silver) == ("gold", "coop_credit_profile", "score")
    assert parse_target("silver.members", silver) == ("silver", "members", None)
    for bad in ("silver.nope", "silver.members.person_key", "gold.nope", "coop_credit_profile", "gold.a.b.c"):
        with pytest.raises(ValueError, match=r"gold\.<table>\[\.<column>\]"):
            parse_target(bad, silver)


def test_column_sources_come_from_the_gold_builders_plan(ctx):
    """`agrilake lineage gold.T.COL`: the silver columns a gold column is computed from, read from
    Spark's plan of the real builder on the lakehouse's tables (two created empty, the rest not built
    yet and stood in for)."""
    from agrilake.analyst.lineage import by_path, column_sources
    from agrilake.core import tables

    contracts = ctx.contracts
    for name in ("cooperatives", "sales"):
        tables.create_if_missing(ctx, "silver", name, contracts.silver_tables()[name].ddl)
    profile = column_sources(ctx, "coop_credit_profile", date(2026, 6, 30), read=by_path)
    assert list(profile) == [c.name for c in contracts.gold_table("coop_credit_profile").columns]
    assert profile["sales_12m_cny"] == [("silver.sales", "amount_cny")]
    assert profile["postal_sales_share_12m"] == [("silver.sales", "amount_cny"), ("silver.sales", "channel")]
    assert profile["county_code"] == [("silver.cooperatives", "village_code")]
    assert profile["county_name"] == [("silver.divisions", "name")]  # a stand-in: not built yet
    assert profile["member_land_mu"] == [("silver.members", "land_area_mu")]
    assert profile["as_of_date"] == []  # the date asked for: a constant
    # the score: from the cooperative, its sales, loans and instalments, as docs/metrics.md defines it
    assert {t for t, _ in profile["score"]} == {"silver.cooperatives", "silver.sales", "silver.loans",
                                               "silver.installments"}
    household = column_sources(ctx, "household_credit_profile", date(2026, 6, 30), read=by_path)
    assert household["person_key"] == [("silver.loans", "borrower_person_key"), ("silver.members", "person_key"),
                                       ("silver.subsidies", "beneficiary_person_key")]
