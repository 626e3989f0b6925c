"""Parcels as of D: one row per tracking_no from the shipment events known by D.

Events of a parcel arrive on different days and out of order, so a parcel's accepted and
delivered facts are its earliest such events known by D; everything the accepting counter records
(direction, sender, weight, cold chain, promised hours) comes from that earliest accepted event.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from agrilake.core.contracts import Contracts
from agrilake.stages.gold.asof import event_date, events_known

ACCEPTED_FIELDS = ("direction", "sender_coop_id", "weight_kg", "cold_chain", "temp_min_c", "temp_max_c",
                   "promised_hours")


def _earliest(event_type: str, *fields: str) -> Column:
    # min over a struct led by (event_time, event_id): the earliest event, equal instants ordered by
    # event_id so the choice never depends on delivery order
    of_type = F.col("event_type") == event_type
    return F.min(F.when(of_type, F.struct("event_time", "event_id", "outlet_id", *fields)))


def parcels(events: DataFrame, as_of: date) -> DataFrame:
    """From the shipment events known by D (`asof.events_known`): tracking_no, accepted_time,
    accepted_outlet_id, <ACCEPTED_FIELDS>, delivered_time, delivered_outlet_id, rural_outlet_id,
    returned_on_d. Accepted or delivered columns are null when no such event is known by D; the
    rural outlet (accepting outlet upstream, delivering outlet downstream) is null when the
    direction is unknown."""
    returned_today = (F.col("event_type") == "returned") & (event_date("event_time") == F.lit(as_of))
    p = events.groupBy("tracking_no").agg(
        _earliest("accepted", *ACCEPTED_FIELDS).alias("a"),
        _earliest("delivered").alias("d"),
        F.max(returned_today).alias("returned_on_d"),
    )
    return p.select(
        "tracking_no",
        F.col("a.event_time").alias("accepted_time"),
        F.col("a.outlet_id").alias("accepted_outlet_id"),
        *[F.col(f"a.{f}").alias(f) for f in ACCEPTED_FIELDS],
        F.col("d.event_time").alias("delivered_time"),
        F.col("d.outlet_id").alias("delivered_outlet_id"),
        F.when(F.col("a.direction") == "upstream", F.col("a.outlet_id"))
        .when(F.col("a.direction") == "downstream", F.col("d.outlet_id")).alias("rural_outlet_id"),
        F.coalesce(F.col("returned_on_d"), F.lit(False)).alias("returned_on_d"),
    )


def parcels_known(silver: dict[str, DataFrame], as_of: date, contracts: Contracts | None = None) -> DataFrame:
    """The parcels of the shipment events known by D: what the cooperative profile (upstream
    parcels) and the logistics table (roles per division) both count, built once by gold.transform."""
    return parcels(events_known(silver["shipment_events"], "shipment_events", as_of, contracts), as_of)
