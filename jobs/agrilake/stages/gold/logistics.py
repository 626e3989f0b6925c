"""gold.logistics_division_daily (docs/metrics.md): one row per county, township and village as of D.

A division's subtree is every code sharing its prefix (county 6 digits, township 9, village 12).
Every fact (an outlet, a village, a parcel's role at an outlet) is attached to a 12-digit code,
fanned out to that code's three prefixes and aggregated once per prefix; one equi-join on the
prefix then hands each county, township and village row the facts of its whole subtree.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from agrilake.core.contracts import Contracts, packaged
from agrilake.stages.gold.asof import divisions_state, event_date, events_known, upsert_state
from agrilake.stages.gold.contract import conform
from agrilake.stages.gold.parcels import parcels_known

PREFIX_LENGTH = {"county": 6, "township": 9, "village": 12}
PARCEL_SERVICE = "parcel"
PERCENTILES = (0.5, 0.95)
MICROS_PER_HOUR = 3_600_000_000
HOURS_DECIMAL = "decimal(38,9)"

UPSTREAM_ACCEPTED = "upstream_accepted"
DOWNSTREAM_DELIVERED = "downstream_delivered"
DELIVERED = "delivered"
RETURNED = "returned"


def _prefix_length(level: Column) -> Column:
    length = None
    for name, n in PREFIX_LENGTH.items():
        length = (F.when if length is None else length.when)(level == name, n)
    return length


def _prefixes(code: str) -> Column:
    # distinct: a code shorter than 12 characters must not count twice in one subtree
    return F.explode(F.array_distinct(F.array(*[F.substring(code, 1, n) for n in sorted(set(PREFIX_LENGTH.values()))])))


def _count_if(cond: Column) -> Column:
    return F.count(F.when(cond, True))


def _round2(hours: Column) -> Column:
    """Half-up to 2 decimals on the decimal value the double stands for: a median of 52.025 h (the
    mean of two lead times a minute apart) is 52.03, although its nearest double is 52.02499..."""
    return F.round(hours.cast(HOURS_DECIMAL), 2).cast("double")


def _share(numerator: str, denominator: str) -> Column:
    n, d = F.col(numerator), F.col(denominator)
    return F.when(d > 0, n.cast("double") / d.cast("double"))


def parcel_roles(parcel: DataFrame, readings: DataFrame, as_of: date) -> DataFrame:
    """role, outlet_id, lead_h, promised_hours, cold_chain, excursion: one row per parcel and role on D."""
    d = F.lit(as_of)
    delivered_today = event_date("delivered_time") == d
    roles = {
        UPSTREAM_ACCEPTED: ("accepted_outlet_id",
                            (F.col("direction") == "upstream") & (event_date("accepted_time") == d)),
        DOWNSTREAM_DELIVERED: ("delivered_outlet_id", (F.col("direction") == "downstream") & delivered_today),
        DELIVERED: ("rural_outlet_id", delivered_today & F.col("rural_outlet_id").isNotNull()),
        RETURNED: ("accepted_outlet_id", F.col("returned_on_d")),
    }
    role_array = F.array(*[F.when(F.coalesce(cond, F.lit(False)),
                                  F.struct(F.lit(role).alias("role"), F.col(col).alias("outlet_id")))
                           for role, (col, cond) in roles.items()])
    per_role = (parcel.select("*", F.explode(F.filter(role_array, lambda r: r.isNotNull())).alias("r"))
                .select("*", "r.role", "r.outlet_id").drop("r"))

    # GB 31605 requires monitoring: a cold-chain parcel without any reading known by D is an excursion
    cold_delivered = per_role.where((F.col("role") == DELIVERED) & F.coalesce(F.col("cold_chain"), F.lit(False)))
    excursions = (cold_delivered.select("tracking_no", "temp_min_c", "temp_max_c")
                  .join(readings.select("tracking_no", "temperature_c"), "tracking_no", "left")
                  .groupBy("tracking_no")
                  .agg(((F.count("temperature_c") == 0)
                        | (_count_if((F.col("temperature_c") < F.col("temp_min_c"))
                                     | (F.col("temperature_c") > F.col("temp_max_c"))) > 0)).alias("excursion")))

    lead_h = (F.unix_micros("delivered_time") - F.unix_micros("accepted_time")) / F.lit(MICROS_PER_HOUR)
    return (per_role.join(excursions, "tracking_no", "left")
            .select("role", "outlet_id",
                    F.when(F.col("role") == DELIVERED, lead_h).alias("lead_h"),
                    "promised_hours",
                    F.coalesce(F.col("cold_chain"), F.lit(False)).alias("cold_chain"),
                    F.coalesce(F.col("excursion"), F.lit(False)).alias("excursion")))


def logistics_division_daily(silver: dict[str, DataFrame], as_of: date, contracts: Contracts | None = None, *,
                             known_parcels: DataFrame | None = None) -> DataFrame:
    """One row per division of the four upper levels valid on D (docs/metrics.md). `known_parcels`:
    `parcels_known(silver, D)` when the caller has it already (gold.transform)."""
    contracts = contracts or packaged()
    d = F.lit(as_of)
    divisions = divisions_state(silver["divisions"], as_of)
    rows = (divisions.where(F.col("level").isin(*PREFIX_LENGTH))
            .withColumn("prefix", F.substr(F.col("division_code"), F.lit(1), _prefix_length(F.col("level")))))

    outlets = upsert_state(silver["outlets"], "outlets", as_of).select(
        "outlet_id", "division_code",
        ((F.col("opened_date") <= d) & (F.col("closed_date").isNull() | (F.col("closed_date") > d))).alias("open"),
        F.coalesce(F.array_contains("services", PARCEL_SERVICE), F.lit(False)).alias("parcel"),
    )
    covered_codes = (outlets.where(F.col("open") & F.col("parcel"))
                     .select(F.col("division_code").alias("_covered_code")).distinct())
    villages = (divisions.where(F.col("level") == "village")
                .join(covered_codes, F.col("division_code") == F.col("_covered_code"), "left")
                .select("division_code", F.lit("village").alias("role"),
                        F.col("_covered_code").isNotNull().alias("covered")))

    readings = events_known(silver["cold_chain_readings"], "cold_chain_readings", as_of, contracts)
    if known_parcels is None:
        known_parcels = parcels_known(silver, as_of, contracts)
    roles = (parcel_roles(known_parcels, readings, as_of)
             # a parcel at an outlet unknown as of D has no division: it belongs to no subtree
             .join(outlets.select("outlet_id", "division_code"), "outlet_id"))

    facts = (outlets.select("division_code", F.lit("outlet").alias("role"), "open", "parcel")
             .unionByName(villages, allowMissingColumns=True)
             .unionByName(roles.drop("outlet_id"), allowMissingColumns=True)
             .select("*", _prefixes("division_code").alias("prefix")))

    role = F.col("role")
    delivered = role == DELIVERED
    measures = facts.groupBy("prefix").agg(
        _count_if((role == "outlet") & F.col("open")).alias("outlets_open"),
        _count_if((role == "outlet") & F.col("open") & F.col("parcel")).alias("parcel_outlets_open"),
        _count_if(role == "village").alias("villages_total"),
        _count_if((role == "village") & F.col("covered")).alias("villages_covered"),
        _count_if(role == UPSTREAM_ACCEPTED).alias("upstream_accepted"),
        _count_if(role == DOWNSTREAM_DELIVERED).alias("downstream_delivered"),
        _count_if(delivered).alias("delivered"),
        F.percentile(F.col("lead_h"), list(PERCENTILES)).alias("_lead_pct"),
        _count_if(delivered & F.col("lead_h").isNotNull()).alias("_with_lead"),
        _count_if(delivered & (F.col("lead_h") <= F.col("promised_hours"))).alias("_on_time"),
        _count_if(delivered & F.col("cold_chain")).alias("cold_chain_delivered"),
        _count_if(delivered & F.col("cold_chain") & F.col("excursion")).alias("_excursions"),
        _count_if(role == RETURNED).alias("returned"),
    )
    counts = [c for c in measures.columns if c not in ("prefix", "_lead_pct")]
    df = (rows.join(measures, "prefix", "left")
          .withColumns({c: F.coalesce(F.col(c), F.lit(0)) for c in counts})
          .select(
              F.lit(as_of).alias("as_of_date"), "division_code", "level", "name", "parent_code",
              "outlets_open", "parcel_outlets_open", "villages_total", "villages_covered",
              _share("villages_covered", "villages_total").alias("coverage_rate"),
              "upstream_accepted", "downstream_delivered", "delivered",
              _round2(F.col("_lead_pct")[0]).alias("lead_time_p50_h"),
              _round2(F.col("_lead_pct")[1]).alias("lead_time_p95_h"),
              _share("_on_time", "_with_lead").alias("on_time_rate"),
              "cold_chain_delivered",
              _share("_excursions", "cold_chain_delivered").alias("cold_chain_excursion_rate"),
              "returned",
          ))
    return conform(df, contracts.gold_table("logistics_division_daily"))
