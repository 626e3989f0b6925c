"""Which feed becomes which silver entity: renames, pseudonymised columns, references, dedup kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column as SparkColumn
from pyspark.sql import functions as F

from agrilake.core import quarantine as q
from agrilake.core.contracts import SILVER_DOMAINS
from agrilake.core.pseudonymise import person_key_column


@dataclass(frozen=True)
class Ref:
    """`column` must match `ref_column` of some row of silver.`ref_table` (any version, any delivery)."""

    column: str
    ref_table: str
    ref_column: str
    reason: str = q.UNKNOWN_REF


@dataclass(frozen=True)
class Entity:
    table: str  # silver table name
    feed: str  # <system>_<feed>
    renames: dict[str, str] = field(default_factory=dict)  # silver column -> feed column
    pseudonymised: dict[str, str] = field(default_factory=dict)  # silver person_key column -> RIC column
    birth_dates: dict[str, str] = field(default_factory=dict)  # silver birth-date column -> RIC column
    refs: tuple[Ref, ...] = ()
    constraints: dict[str, str] = field(default_factory=dict)


ENTITIES: list[Entity] = [
    Entity("divisions", "ref_divisions"),
    Entity("cooperatives", "coop_cooperatives", renames={"coop_name": "name"},
           pseudonymised={"legal_rep_key": "legal_rep_ric"},
           refs=(Ref("village_code", "divisions", "division_code", q.UNKNOWN_DIVISION),),
           constraints={"member_count_nonneg": "member_count IS NULL OR member_count >= 0"}),
    Entity("members", "coop_members", pseudonymised={"person_key": "member_ric"},
           birth_dates={"birth_date": "member_ric"}, refs=(Ref("coop_id", "cooperatives", "coop_id"),),
           constraints={"land_nonneg": "land_area_mu IS NULL OR land_area_mu >= 0"}),
    Entity("sales", "coop_sales", refs=(Ref("coop_id", "cooperatives", "coop_id"),),
           constraints={"amount_nonneg": "amount_cny >= 0"}),
    Entity("outlets", "postal_outlets", renames={"outlet_name": "name"},
           refs=(Ref("division_code", "divisions", "division_code", q.UNKNOWN_DIVISION),)),
    Entity("shipment_events", "postal_shipment_events", refs=(Ref("outlet_id", "outlets", "outlet_id"),),
           constraints={"weight_nonneg": "weight_kg IS NULL OR weight_kg >= 0"}),
    Entity("cold_chain_readings", "postal_cold_chain_readings",
           refs=(Ref("tracking_no", "shipment_events", "tracking_no"),),
           constraints={"temperature_range": "temperature_c BETWEEN -40 AND 60"}),
    Entity("loans", "bank_loans", pseudonymised={"borrower_person_key": "borrower_ric"},
           birth_dates={"borrower_birth_date": "borrower_ric"},
           constraints={"principal_nonneg": "principal_cny >= 0",
                        "rate_range": "annual_rate_pct IS NULL OR annual_rate_pct BETWEEN 0 AND 36"}),
    Entity("installments", "bank_repayments", refs=(Ref("loan_id", "loans", "loan_id"),),
           constraints={"due_nonneg": "amount_due_cny >= 0",
                        "paid_nonneg": "amount_paid_cny IS NULL OR amount_paid_cny >= 0"}),
    Entity("subsidies", "bank_subsidies", pseudonymised={"beneficiary_person_key": "beneficiary_ric"},
           birth_dates={"beneficiary_birth_date": "beneficiary_ric"},
           constraints={"amount_nonneg": "amount_cny >= 0"}),
]

DOMAINS = SILVER_DOMAINS


def entity(table: str) -> Entity:
    return next(e for e in ENTITIES if e.table == table)


def birth_date_from_ric(ric: SparkColumn) -> SparkColumn:
    return F.to_date(F.substring(ric, 7, 8), "yyyyMMdd")


def silver_columns(e: Entity, silver_names: list[str]) -> list[SparkColumn]:
    """Expressions, from conform()'s typed columns, for every business column of the silver table
    (person keys need the key pad columns of agrilake.core.pseudonymise.with_key_pads)."""
    out = []
    for name in silver_names:
        if name in e.pseudonymised:
            out.append(person_key_column(F.col(f"__typed_{e.pseudonymised[name]}")).alias(name))
        elif name in e.birth_dates:
            out.append(birth_date_from_ric(F.col(f"__typed_{e.birth_dates[name]}")).alias(name))
        else:
            out.append(F.col(f"__typed_{e.renames.get(name, name)}").alias(name))
    return out
