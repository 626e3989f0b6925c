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


def test_lineage_targets_are_gold_tables_or_their_columns():
    from agrilake.analyst.lineage import parse_target

    assert parse_target("gold.coop_credit_profile") == ("coop_credit_profile", None)
    assert parse_target("gold.coop_credit_profile.score") == ("coop_credit_profile", "score")
    for bad in ("silver.members", "gold.nope", "coop_credit_profile", "gold.a.b.c"):
        with pytest.raises(ValueError, match=r"gold\.<table>\[\.<column>\]"):
            parse_target(bad)
