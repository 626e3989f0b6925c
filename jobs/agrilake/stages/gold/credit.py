"""gold.coop_credit_profile, gold.household_credit_profile and gold.credit_county_summary (docs/metrics.md).

Each transform takes the silver DataFrames (every version, with lineage) and an as-of date D and
reads only what was known by the end of D (agrilake.stages.gold.asof). Money is summed as decimal and
physical quantities are summed as decimal too, so "2 decimals" is exact and order-independent.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from agrilake.core.contracts import Contracts, packaged
from agrilake.stages.gold import scorecard
from agrilake.stages.gold.asof import (
    divisions_state,
    event_date,
    events_known,
    in_window,
    upsert_state,
    whole_years,
)
from agrilake.stages.gold.contract import conform
from agrilake.stages.gold.parcels import parcels_known

MONEY = "decimal(18,2)"
EXACT = "decimal(38,10)"  # a double's decimal digits survive the cast; sums stay exact

AGE_BANDS = ((30, "<30"), (45, "30-44"), (60, "45-59"))  # upper bound (exclusive) -> band
AGE_BAND_OLDEST = "60+"

PREFIXES = {"province_code": 2, "prefecture_code": 4, "county_code": 6, "township_code": 9, "village_code": 12}


def round2_double(total: Column) -> Column:
    return F.round(total, 2).cast("double")


def exact_sum(col: str) -> Column:
    return F.sum(F.col(col).cast(EXACT))


def active_memberships(members: DataFrame, as_of: date) -> DataFrame:
    """Memberships (state as of D) active on D: joined_date <= D and (left_date null or > D)."""
    d = F.lit(as_of)
    state = upsert_state(members, "members", as_of)
    return state.where((F.col("joined_date") <= d) & (F.col("left_date").isNull() | (F.col("left_date") > d)))


def obligations(silver: dict[str, DataFrame], as_of: date, *, borrower: str, beneficiary: str) -> DataFrame:
    """Loan, repayment and subsidy measures per party (`party` = the value of `borrower` on
    loans and of `beneficiary` on subsidies), shared by cooperatives (USCC) and households
    (person_key). Columns: party, loans_active, principal_active_cny, arrears_cny, max_dpd_12m,
    installments_due_12m, installments_on_time_12m, subsidies_12m_cny; a party with none of them
    has no row (callers fill zeros)."""
    d = F.lit(as_of)
    loans = (upsert_state(silver["loans"], "loans", as_of)
             .where(F.col(borrower).isNotNull())
             .select("loan_id", F.col(borrower).alias("party"), "status", "disbursed_date", "principal_cny"))
    active = F.col("status") == "active"
    loan_measures = loans.groupBy("party").agg(
        F.count(F.when(active & (F.col("disbursed_date") <= d), True)).alias("loans_active"),
        F.sum(F.when(active & (F.col("disbursed_date") <= d), F.col("principal_cny"))).alias("principal_active_cny"),
    )

    # an installment counts when its loan's state as of D belongs to the party (any loan status)
    inst = upsert_state(silver["installments"], "installments", as_of).join(
        loans.select("loan_id", "party"), "loan_id"
    )
    due, paid = F.col("amount_due_cny"), F.coalesce(F.col("amount_paid_cny"), F.lit(0))
    paid_date, due_date = F.col("paid_date"), F.col("due_date")
    paid_by_d = F.when(paid_date <= d, paid).otherwise(F.lit(0))
    in_full = paid >= due
    paid_in_full_by_d = F.coalesce((paid_date <= d) & in_full, F.lit(False))
    on_time = F.coalesce((paid_date <= due_date) & in_full, F.lit(False))
    days_past_due = F.greatest(
        F.when(paid_in_full_by_d, F.datediff(paid_date, due_date)).otherwise(F.datediff(d, due_date)),
        F.lit(0),
    )
    due_12m = in_window(due_date, as_of)
    inst_measures = inst.groupBy("party").agg(
        F.sum(F.when(due_date <= d, F.greatest(due - paid_by_d, F.lit(0)))).alias("arrears_cny"),
        F.max(F.when(due_12m, days_past_due)).alias("max_dpd_12m"),
        F.count(F.when(due_12m, True)).alias("installments_due_12m"),
        F.count(F.when(due_12m & on_time, True)).alias("installments_on_time_12m"),
    )

    subsidy_measures = (
        events_known(silver["subsidies"], "subsidies", as_of)
        .where(F.col(beneficiary).isNotNull() & in_window("granted_date", as_of))
        .groupBy(F.col(beneficiary).alias("party"))
        .agg(F.sum("amount_cny").alias("subsidies_12m_cny"))
    )
    return (loan_measures.join(inst_measures, "party", "full_outer")
            .join(subsidy_measures, "party", "full_outer"))


def _fill_obligations(df: DataFrame) -> DataFrame:
    """Sums and counts over nothing are 0; the on-time rate over no installment is null."""
    zero_money = F.lit(0).cast(MONEY)
    due = F.coalesce(F.col("installments_due_12m"), F.lit(0))
    on_time = F.coalesce(F.col("installments_on_time_12m"), F.lit(0))
    return df.withColumns({
        "loans_active": F.coalesce(F.col("loans_active"), F.lit(0)),
        "principal_active_cny": F.coalesce(F.col("principal_active_cny"), zero_money),
        "arrears_cny": F.coalesce(F.col("arrears_cny"), zero_money),
        "max_dpd_12m": F.coalesce(F.col("max_dpd_12m"), F.lit(0)),
        "installments_due_12m": due,
        "installments_on_time_12m": on_time,
        "on_time_rate_12m": F.when(due > 0, on_time.cast("double") / due.cast("double")),
        "subsidies_12m_cny": F.coalesce(F.col("subsidies_12m_cny"), zero_money),
    })


def coop_credit_profile(silver: dict[str, DataFrame], as_of: date, contracts: Contracts | None = None, *,
                        known_parcels: DataFrame | None = None) -> DataFrame:
    """One row per cooperative known as of D (any status), columns as docs/metrics.md lists them.
    `known_parcels`: `parcels_known(silver, D)` when the caller has it already (gold.transform)."""
    contracts = contracts or packaged()
    coops = upsert_state(silver["cooperatives"], "cooperatives", as_of).select(
        "coop_id", "uscc", "coop_name", "status", "village_code", "established_date")

    membership = active_memberships(silver["members"], as_of).groupBy("coop_id").agg(
        F.count(F.lit(1)).alias("active_members"),
        round2_double(exact_sum("land_area_mu")).alias("member_land_mu"),
    )

    sales = (events_known(silver["sales"], "sales", as_of)
             .where(in_window("sale_date", as_of))
             .groupBy("coop_id")
             .agg(F.sum("amount_cny").alias("sales_12m_cny"),
                  F.sum(F.when(F.col("channel") == "postal_ecommerce", F.col("amount_cny")))
                  .alias("postal_sales_12m_cny")))

    upstream = ((known_parcels if known_parcels is not None else parcels_known(silver, as_of, contracts))
                .where((F.col("direction") == "upstream") & F.col("sender_coop_id").isNotNull()
                       & in_window(event_date("accepted_time"), as_of))
                .groupBy(F.col("sender_coop_id").alias("coop_id"))
                .agg(F.count(F.lit(1)).alias("upstream_parcels_12m"),
                     round2_double(exact_sum("weight_kg")).alias("upstream_weight_kg_12m")))

    county_names = divisions_state(silver["divisions"], as_of).select(
        F.col("division_code").alias("_county_division"), F.col("name").alias("county_name"))

    owed = obligations(silver, as_of, borrower="borrower_uscc", beneficiary="beneficiary_uscc")

    zero_money = F.lit(0).cast(MONEY)
    df = (coops
          .join(membership, "coop_id", "left")
          .join(sales, "coop_id", "left")
          .join(upstream, "coop_id", "left")
          .join(owed, coops["uscc"] == owed["party"], "left")
          .transform(_fill_obligations)
          .select(
              F.lit(as_of).alias("as_of_date"),
              "coop_id", "uscc", "coop_name", "status",
              *[F.substring("village_code", 1, n).alias(name) for name, n in PREFIXES.items()],
              whole_years("established_date", F.lit(as_of)).alias("years_established"),
              F.coalesce("active_members", F.lit(0)).alias("active_members"),
              F.coalesce("member_land_mu", F.lit(0.0)).alias("member_land_mu"),
              F.coalesce("sales_12m_cny", zero_money).alias("sales_12m_cny"),
              F.coalesce("postal_sales_12m_cny", zero_money).alias("postal_sales_12m_cny"),
              F.coalesce("upstream_parcels_12m", F.lit(0)).alias("upstream_parcels_12m"),
              F.coalesce("upstream_weight_kg_12m", F.lit(0.0)).alias("upstream_weight_kg_12m"),
              "loans_active", "principal_active_cny", "arrears_cny", "max_dpd_12m",
              "installments_due_12m", "installments_on_time_12m", "on_time_rate_12m", "subsidies_12m_cny",
          )
          # the county's row in ref/divisions is its 6 digits followed by six zeros
          .join(county_names, F.concat(F.col("county_code"), F.lit("000000")) == F.col("_county_division"),
                "left")
          .withColumn("postal_sales_share_12m",
                      F.when(F.col("sales_12m_cny") != 0,
                             F.col("postal_sales_12m_cny").cast("double") / F.col("sales_12m_cny").cast("double"))))
    card = scorecard.scorecard(
        years_established="years_established",
        active_members="active_members",
        sales_12m_cny="sales_12m_cny",
        postal_sales_12m_cny="postal_sales_12m_cny",
        upstream_parcels_12m="upstream_parcels_12m",
        installments_due_12m="installments_due_12m",
        installments_on_time_12m="installments_on_time_12m",
        max_dpd_12m="max_dpd_12m",
        arrears_cny="arrears_cny",
        principal_active_cny="principal_active_cny",
        status="status",
    )
    return conform(df.withColumns(card), contracts.gold_table("coop_credit_profile"))


def age_band(birth_date: Column | str, as_of: date) -> Column:
    age = whole_years(birth_date, F.lit(as_of))
    band = F.when(age.isNull(), F.lit(None).cast("string"))
    for upper, label in AGE_BANDS:
        band = band.when(age < upper, label)
    return band.otherwise(AGE_BAND_OLDEST)


def household_population(silver: dict[str, DataFrame], as_of: date) -> DataFrame:
    """person_key, birth_date of everyone known as of D: active members, household borrowers on a
    loan (state as of D, any status) and household subsidy beneficiaries granted in W(D)."""
    members = active_memberships(silver["members"], as_of).select("person_key", "birth_date")
    borrowers = (upsert_state(silver["loans"], "loans", as_of)
                 .where(F.col("borrower_person_key").isNotNull())
                 .select(F.col("borrower_person_key").alias("person_key"),
                         F.col("borrower_birth_date").alias("birth_date")))
    beneficiaries = (events_known(silver["subsidies"], "subsidies", as_of)
                     .where(F.col("beneficiary_person_key").isNotNull() & in_window("granted_date", as_of))
                     .select(F.col("beneficiary_person_key").alias("person_key"),
                             F.col("beneficiary_birth_date").alias("birth_date")))
    # every source reads the birth date off the same RIC; max() only picks a non-null one
    return (members.unionByName(borrowers).unionByName(beneficiaries)
            .groupBy("person_key").agg(F.max("birth_date").alias("birth_date")))


def household_credit_profile(silver: dict[str, DataFrame], as_of: date, contracts: Contracts | None = None) -> DataFrame:
    """One row per person known as of D, columns as docs/metrics.md lists them."""
    contracts = contracts or packaged()
    people = household_population(silver, as_of)
    membership = active_memberships(silver["members"], as_of).groupBy("person_key").agg(
        F.array_sort(F.collect_set("coop_id")).alias("coop_ids"),
        F.max("household_size").alias("household_size"),
        round2_double(exact_sum("land_area_mu")).alias("land_area_mu"),
    )
    owed = obligations(silver, as_of, borrower="borrower_person_key", beneficiary="beneficiary_person_key")
    df = (people
          .join(membership, "person_key", "left")
          .join(owed, people["person_key"] == owed["party"], "left")
          .transform(_fill_obligations)
          .select(
              F.lit(as_of).alias("as_of_date"),
              "person_key",
              age_band("birth_date", as_of).alias("age_band"),
              F.coalesce("coop_ids", F.array().cast("array<string>")).alias("coop_ids"),
              "household_size",
              F.coalesce("land_area_mu", F.lit(0.0)).alias("land_area_mu"),
              "loans_active", "principal_active_cny", "arrears_cny", "max_dpd_12m", "on_time_rate_12m",
              "subsidies_12m_cny",
          ))
    return conform(df, contracts.gold_table("household_credit_profile"))


def credit_county_summary(coop_profile: DataFrame, contracts: Contracts | None = None) -> DataFrame:
    """One row per county with at least one cooperative, from gold.coop_credit_profile of one D."""
    contracts = contracts or packaged()
    tier = F.col("credit_tier")
    df = coop_profile.groupBy("as_of_date", "county_code").agg(
        F.max("county_name").alias("county_name"),
        F.count(F.lit(1)).alias("coops"),
        *[F.count(F.when(tier == t, True)).alias(f"coops_tier_{t.lower()}") for t in "ABCD"],
        F.sum("principal_active_cny").alias("principal_active_cny"),
        F.sum("arrears_cny").alias("arrears_cny"),
        F.avg("on_time_rate_12m").alias("mean_on_time_rate_12m"),
    )
    return conform(df, contracts.gold_table("credit_county_summary"))
