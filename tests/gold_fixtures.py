"""Silver-shaped DataFrames for gold tests, built from the silver contracts (agrilake.core.contracts).

Rows are dicts of plain values: dates as 'YYYY-MM-DD', instants as ISO 8601 with offset (a naive
one is read as +08:00), money as str/int/Decimal. Missing columns are null; lineage defaults to a
delivery on `DELIVERED` from one file, with `_line` numbered in the order given.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, DateType, DecimalType, DoubleType, TimestampType

from agrilake.core.contracts import packaged

CST = timezone(timedelta(hours=8))
DELIVERED = "2020-01-01"
SHA = "0" * 64


def person(label: str) -> str:
    """A stand-in person_key: 64 lowercase hex characters, stable per label."""
    return hashlib.sha256(label.encode()).hexdigest()


def _value(dtype, v: Any) -> Any:
    if v is None:
        return None
    if isinstance(dtype, DateType) and isinstance(v, str):
        return date.fromisoformat(v)
    if isinstance(dtype, TimestampType) and isinstance(v, str):
        ts = datetime.fromisoformat(v)
        return ts if ts.tzinfo else ts.replace(tzinfo=CST)
    if isinstance(dtype, DecimalType):
        return Decimal(str(v)).quantize(Decimal(1).scaleb(-dtype.scale))
    if isinstance(dtype, DoubleType) and isinstance(v, int):
        return float(v)
    if isinstance(dtype, ArrayType) and isinstance(v, str):
        return v.split("|") if v else []
    return v


def silver_frame(spark, entity: str, rows: list[dict[str, Any]]) -> DataFrame:
    """A silver.<entity> DataFrame with exactly the contract's columns and types."""
    struct = spark.createDataFrame([], packaged().silver_tables()[entity].ddl).schema
    known = {f.name for f in struct.fields}
    data = []
    for i, row in enumerate(rows, start=1):
        unknown = set(row) - known
        if unknown:
            raise KeyError(f"silver.{entity} has no column(s) {sorted(unknown)}")
        full = {"_delivery_date": DELIVERED, "_file_sha256": SHA, "_line": i, "_batch_id": "fixture", **row}
        full.setdefault("_available_date", full["_delivery_date"])
        data.append(tuple(_value(f.dataType, full.get(f.name)) for f in struct.fields))
    return spark.createDataFrame(data, struct)


def silver_set(spark, **rows: list[dict[str, Any]]) -> dict[str, DataFrame]:
    """All ten silver tables; the ones not given are empty."""
    unknown = set(rows) - set(packaged().silver_tables())
    if unknown:
        raise KeyError(f"unknown silver table(s) {sorted(unknown)}")
    return {name: silver_frame(spark, name, rows.get(name, [])) for name in packaged().silver_tables()}


def filtered(silver: dict[str, DataFrame], as_of: date) -> dict[str, DataFrame]:
    """The same tables without anything delivered after `as_of`."""
    from pyspark.sql import functions as F

    return {name: df.where(F.col("_available_date") <= F.lit(as_of)) for name, df in silver.items()}


# --- row builders with the required columns filled -------------------------------------------

def division(code: str, name: str, level: str, parent: str | None, **kw) -> dict[str, Any]:
    return {"division_code": code, "name": name, "level": level, "parent_code": parent,
            "urban_rural_code": "220" if level == "village" else None, "valid_from": "2000-01-01", **kw}


def coop(coop_id: str, uscc: str, village: str, established: str, *, status: str = "active",
         updated_at: str = "2020-01-01T00:00:00+08:00", **kw) -> dict[str, Any]:
    return {"coop_id": coop_id, "uscc": uscc, "coop_name": f"{coop_id} cooperative", "village_code": village,
            "legal_rep_key": person(f"rep-{coop_id}"), "established_date": established, "member_count": 1,
            "land_area_mu": 1.0, "main_products": ["grain"], "status": status, "updated_at": updated_at, **kw}


def member(coop_id: str, who: str, birth: str, joined: str, *, left: str | None = None, household_size: int = 3,
           land: float = 1.0, updated_at: str = "2020-01-01T00:00:00+08:00", **kw) -> dict[str, Any]:
    return {"coop_id": coop_id, "person_key": person(who), "birth_date": birth, "household_size": household_size,
            "land_area_mu": land, "joined_date": joined, "left_date": left, "updated_at": updated_at, **kw}


def sale(sale_id: str, coop_id: str, amount: str, day: str, channel: str = "wholesale", **kw) -> dict[str, Any]:
    return {"sale_id": sale_id, "coop_id": coop_id, "product_code": "grain", "channel": channel,
            "quantity_kg": 1.0, "amount_cny": amount, "sale_date": day, "buyer_county_code": "110101", **kw}


def outlet(outlet_id: str, code: str, services: str, opened: str = "2000-01-01", *, closed: str | None = None,
           level: str = "village", updated_at: str = "2020-01-01T00:00:00+08:00", **kw) -> dict[str, Any]:
    return {"outlet_id": outlet_id, "outlet_name": f"outlet {outlet_id}", "level": level, "division_code": code,
            "services": services, "opened_date": opened, "closed_date": closed, "latitude": 38.0,
            "longitude": 114.5, "updated_at": updated_at, **kw}


def accepted(event_id: str, tracking_no: str, when: str, outlet_id: str, direction: str, *,
             sender: str | None = None, weight: float = 1.0, promised: float = 48.0, cold: bool = False,
             tmin: float | None = None, tmax: float | None = None, **kw) -> dict[str, Any]:
    return {"event_id": event_id, "tracking_no": tracking_no, "event_type": "accepted", "event_time": when,
            "outlet_id": outlet_id, "direction": direction, "sender_coop_id": sender, "product_code": "fruit",
            "weight_kg": weight, "cold_chain": cold, "temp_min_c": tmin, "temp_max_c": tmax,
            "promised_hours": promised, **kw}


def event(event_id: str, tracking_no: str, event_type: str, when: str, outlet_id: str, **kw) -> dict[str, Any]:
    return {"event_id": event_id, "tracking_no": tracking_no, "event_type": event_type, "event_time": when,
            "outlet_id": outlet_id, **kw}


def reading(tracking_no: str, when: str, temperature: float, sensor: str = "S1", **kw) -> dict[str, Any]:
    return {"tracking_no": tracking_no, "sensor_id": sensor, "reading_time": when, "temperature_c": temperature,
            **kw}


def loan(loan_id: str, *, uscc: str | None = None, who: str | None = None, birth: str | None = None,
         principal: str = "10000", disbursed: str = "2025-01-01", status: str = "active",
         updated_at: str = "2020-01-01T00:00:00+08:00", **kw) -> dict[str, Any]:
    return {"loan_id": loan_id, "borrower_type": "cooperative" if uscc else "household", "borrower_uscc": uscc,
            "borrower_person_key": person(who) if who else None, "borrower_birth_date": birth,
            "product": "working_capital", "principal_cny": principal, "annual_rate_pct": 4.35, "term_months": 36,
            "disbursed_date": disbursed, "maturity_date": "2028-01-01", "status": status,
            "updated_at": updated_at, **kw}


def installment(loan_id: str, no: int, due: str, amount_due: str, *, paid: str | None = None,
                amount_paid: str | None = None, recorded_at: str = "2020-01-01T00:00:00+08:00",
                **kw) -> dict[str, Any]:
    return {"loan_id": loan_id, "installment_no": no, "due_date": due, "amount_due_cny": amount_due,
            "paid_date": paid, "amount_paid_cny": amount_paid, "recorded_at": recorded_at, **kw}


def subsidy(subsidy_id: str, amount: str, granted: str, *, uscc: str | None = None, who: str | None = None,
            birth: str | None = None, **kw) -> dict[str, Any]:
    return {"subsidy_id": subsidy_id, "program": "seed", "beneficiary_type": "cooperative" if uscc else "household",
            "beneficiary_uscc": uscc, "beneficiary_person_key": person(who) if who else None,
            "beneficiary_birth_date": birth, "amount_cny": amount, "machinery_type": None, "granted_date": granted,
            **kw}


# --- the hand-computed world of the gold tests (expected values in tests/unit/test_gold_*.py) ---

D = date(2026, 6, 30)  # W(D) = [2025-07-01, 2026-06-30]
LATE = "2026-07-01"  # a delivery after D: must never change gold for D
U1, U2, U3, U5 = "93130123C1", "93130123C2", "93130123C3", "93130124C5"


def world_rows() -> dict[str, list[dict[str, Any]]]:
    """One county with two townships and three villages, a second county with no village, five
    cooperatives, ten people, parcels and repayments covering each rule of METRICS.md."""
    divisions = [
        division("130000000000", "河北省", "province", None),
        division("130100000000", "石家庄市", "prefecture", "130000000000"),
        division("130123000000", "正定县", "county", "130100000000"),
        division("130123001000", "正定镇", "township", "130123000000"),
        division("130123001001", "一村", "village", "130123001000"),
        division("130123001002", "二村", "village", "130123001000"),
        division("130123002000", "诸福屯镇", "township", "130123000000"),
        division("130123002001", "三村", "village", "130123002000"),
        # merged away before D
        division("130123002002", "四村", "village", "130123002000", valid_to="2026-06-01"),
        # delivered after D
        division("130123002003", "五村", "village", "130123002000", _delivery_date=LATE),
        # renamed by a later delivery (no timestamp: the latest delivery wins)
        division("130124000000", "旧名县", "county", "130100000000"),
        division("130124000000", "新名县", "county", "130100000000", _delivery_date="2026-01-01"),
        # valid from D on: exists as of D
        division("130124001000", "新镇", "township", "130124000000", valid_from="2026-06-30"),
    ]
    outlets = [
        outlet("O1", "130123001001", "parcel"),
        outlet("O6", "130123001001", "parcel|ule_store", updated_at="2026-01-01T00:00:00+08:00"),
        outlet("O6", "130123001001", "parcel|ule_store", closed="2026-07-01",
               updated_at="2026-07-01T00:00:00+08:00", _delivery_date=LATE),
        outlet("O2", "130123001002", "parcel"),
        outlet("O2", "130123001002", "parcel", closed="2026-03-01", updated_at="2026-03-01T00:00:00+08:00",
               _delivery_date="2026-03-02"),
        outlet("O4", "130123001002", "finance_agent"),
        outlet("O3", "130123001000", "parcel|cold_storage", level="township"),
        outlet("O5", "130123000000", "parcel", level="county"),
        outlet("O7", "130123002001", "parcel", opened="2026-07-10"),
    ]
    t = "2026-06-{}T{}:00+08:00".format
    shipment_events = [
        # P1: upstream from C1, delivered the day after acceptance: 24 h
        accepted("E1", "P1", t(29, "10:00"), "O1", "upstream", sender="C1", weight=10.5, promised=48,
                 _delivery_date="2026-06-29"),
        event("E2", "P1", "delivered", t(30, "10:00"), "O5", _delivery_date="2026-06-30"),
        # P2: upstream accepted on D, 12 h against 10 promised: late
        accepted("E3", "P2", t(30, "08:00"), "O1", "upstream", sender="C1", weight=2.25, promised=10,
                 _delivery_date="2026-06-30"),
        event("E4", "P2", "delivered", t(30, "20:00"), "O5", _delivery_date="2026-06-30"),
        # P3: downstream cold chain [0, 4], 72 h against 48, one reading above 4
        accepted("E5", "P3", t(27, "09:00"), "O5", "downstream", promised=48, cold=True, tmin=0, tmax=4,
                 _delivery_date="2026-06-27"),
        event("E6", "P3", "delivered", t(30, "09:00"), "O3", _delivery_date="2026-06-30"),
        # P4: downstream cold chain without any reading, 24 h against 24: on time
        accepted("E7", "P4", t(29, "12:00"), "O5", "downstream", promised=24, cold=True, tmin=0, tmax=4,
                 _delivery_date="2026-06-29"),
        event("E8", "P4", "delivered", t(30, "12:00"), "O1", _delivery_date="2026-06-30"),
        # P5: downstream cold chain [2, 8], readings inside (the one outside arrives after D), 54h20m
        accepted("E9", "P5", t(28, "00:00"), "O5", "downstream", promised=72, cold=True, tmin=2, tmax=8,
                 _delivery_date="2026-06-28"),
        event("E10", "P5", "delivered", t(30, "06:20"), "O1", _delivery_date="2026-06-30"),
        # P6: upstream from C2 accepted at 23:30 +08:00 on D (15:30 UTC), not delivered
        accepted("E11", "P6", t(30, "23:30"), "O3", "upstream", sender="C2", weight=4.0,
                 _delivery_date="2026-06-30"),
        # P7: upstream, no sender, accepted 07:30 +08:00 on D = 23:30 UTC the day before
        accepted("E12", "P7", "2026-06-29T23:30:00+00:00", "O1", "upstream", _delivery_date="2026-06-30"),
        # P8: out of order: the earliest accepted event (O1, 09:00) arrives a day after a later one
        # (O3, 11:00), and the earliest delivered event (09:00) after a later one (15:00)
        accepted("E13", "P8", t(29, "11:00"), "O3", "upstream", sender="C2", weight=99.0,
                 _delivery_date="2026-06-29"),
        accepted("E14", "P8", t(29, "09:00"), "O1", "upstream", sender="C1", weight=3.333,
                 _delivery_date="2026-06-30"),
        event("E15", "P8", "delivered", t(30, "15:00"), "O5", _delivery_date="2026-06-30"),
        event("E16", "P8", "delivered", t(30, "09:00"), "O5", _delivery_date="2026-06-30",
              _file_sha256="f" * 64),
        # P9: its delivery is only known after D
        accepted("E17", "P9", t(29, "09:00"), "O1", "upstream", sender="C1", weight=1.0,
                 _delivery_date="2026-06-29"),
        event("E18", "P9", "delivered", t(30, "09:00"), "O5", _delivery_date=LATE),
        # P10: accepted at O3, returned on D
        accepted("E19", "P10", t(25, "09:00"), "O3", "upstream", sender="C1", weight=1.0,
                 _delivery_date="2026-06-25"),
        event("E20", "P10", "returned", t(30, "14:00"), "O5", _delivery_date="2026-06-30"),
        # P12: delivered on D but its accepted event only arrives after D: direction unknown
        event("E21", "P12", "delivered", t(30, "10:00"), "O1", _delivery_date="2026-06-30"),
        accepted("E22", "P12", t(29, "10:00"), "O1", "upstream", sender="C1", _delivery_date=LATE),
        # P13: accepted the day before W(D); P14: 00:10 +08:00 on the first day of W(D)
        accepted("E23", "P13", "2025-06-30T12:00:00+08:00", "O1", "upstream", sender="C1", weight=50.0,
                 _delivery_date="2025-06-30"),
        accepted("E24", "P14", "2025-06-30T16:10:00+00:00", "O1", "upstream", sender="C1", weight=0.017,
                 _delivery_date="2025-07-01"),
    ]
    cold_chain_readings = [
        reading("P3", t(28, "09:00"), 2.0, _delivery_date="2026-06-29"),
        reading("P3", t(29, "09:00"), 5.5, _delivery_date="2026-06-30"),
        reading("P5", t(28, "06:00"), 3.0, _delivery_date="2026-06-30"),
        reading("P5", t(29, "06:00"), 7.9, _delivery_date="2026-06-30"),
        reading("P5", t(30, "05:00"), 9.0, _delivery_date=LATE),
    ]
    cooperatives = [
        coop("C1", U1, "130123001001", "2015-07-01", coop_name="C1 old name",
             updated_at="2024-01-01T00:00:00+08:00", _delivery_date="2024-01-02"),
        coop("C1", U1, "130123001001", "2015-07-01", updated_at="2026-05-01T00:00:00+08:00",
             _delivery_date="2026-05-02"),
        coop("C1", U1, "130123001001", "2015-07-01", status="dissolved",
             updated_at="2026-07-01T00:00:00+08:00", _delivery_date=LATE),
        coop("C2", U2, "130123001002", "2020-06-30", status="suspended"),
        coop("C3", U3, "130123002001", "2023-01-10"),
        coop("C5", U5, "130124001001", "2024-02-29"),
        coop("C6", "93130123C6", "130123001001", "2010-01-01", _delivery_date=LATE),
    ]
    members = [
        member("C1", "A", "1996-07-01", "2020-01-01", household_size=4, land=10.25),
        member("C1", "B", "1981-06-30", "2019-01-01", left="2025-01-01", household_size=3, land=5.5,
               updated_at="2025-01-01T00:00:00+08:00", _delivery_date="2025-01-01"),
        member("C1", "B", "1981-06-30", "2019-01-01", household_size=3, land=5.5,
               updated_at="2025-02-01T00:00:00+08:00", _delivery_date="2025-02-01"),
        member("C1", "C", "1970-01-01", "2019-01-01", left="2026-06-30", land=7.0),
        member("C1", "Dp", "1990-01-01", "2026-07-01", land=8.0),
        member("C1", "E", "1966-06-30", "2019-01-01", left="2026-07-15", household_size=2, land=0.01),
        member("C2", "A", "1996-07-01", "2021-01-01", household_size=6, land=2.0),
        *[member("C3", f"Q{i}", "1980-01-01", "2024-01-01", household_size=5, land=1.0) for i in range(1, 5)],
    ]
    sales = [
        sale("S1", "C1", "150000", "2026-06-30", "postal_ecommerce", _delivery_date="2026-06-30"),
        sale("S2", "C1", "100000", "2025-07-01", "wholesale"),
        sale("S3", "C1", "50000", "2025-06-30", "retail"),
        sale("S4", "C1", "30000", "2026-06-29", "contract", _delivery_date=LATE),
        sale("S8", "C2", "999", "2025-06-01", "retail"),
        sale("S5", "C3", "500", "2026-01-15", "retail"),
        sale("S6", "C5", "300000", "2026-02-01", "postal_ecommerce"),
        sale("S7", "C5", "700000", "2026-03-01", "wholesale"),
    ]
    loans = [
        loan("L1", uscc=U1, principal="100000", disbursed="2025-01-01"),
        loan("L2", uscc=U1, principal="50000", disbursed="2024-01-01", status="settled"),
        loan("L3", uscc=U1, principal="70000", disbursed="2026-07-15"),
        loan("L4", uscc=U3, principal="10000", disbursed="2025-03-01"),
        loan("L9", uscc=U3, principal="5000", disbursed="2025-03-01", _delivery_date=LATE),
        loan("L5", who="A", birth="1996-07-01", principal="30000", disbursed="2026-01-01"),
        loan("L6", who="F", birth="1990-01-01", principal="2000", disbursed="2025-06-01", status="settled"),
        loan("L7", who="I", birth="1985-01-01", principal="2000", disbursed="2025-06-01", _delivery_date=LATE),
    ]
    r = "{}T18:00:00+08:00".format
    installments = [
        installment("L1", 1, "2025-06-15", "1000", paid="2025-06-15", amount_paid="1000", recorded_at=r("2025-06-15")),
        installment("L1", 2, "2025-08-01", "1000", recorded_at=r("2025-08-01")),
        installment("L1", 2, "2025-08-01", "1000", paid="2025-08-01", amount_paid="1000",
                    recorded_at=r("2025-08-02")),
        installment("L1", 3, "2026-06-30", "1000", paid="2026-06-30", amount_paid="1000",
                    recorded_at=r("2026-06-30"), _delivery_date="2026-06-30"),
        installment("L1", 3, "2026-06-30", "1000", paid="2026-06-30", amount_paid="900",
                    recorded_at=r("2026-07-01"), _delivery_date=LATE),
        installment("L1", 4, "2026-07-31", "1000", recorded_at=r("2026-06-01")),
        installment("L2", 1, "2025-10-01", "500", paid="2025-10-01", amount_paid="500", recorded_at=r("2025-10-01")),
        # C3: paid 105 days late, partial payment, unpaid at D, on time, one known only after D
        installment("L4", 1, "2025-09-01", "1000", paid="2025-12-15", amount_paid="1000",
                    recorded_at=r("2025-12-15")),
        installment("L4", 2, "2026-03-01", "1000", paid="2026-03-01", amount_paid="600",
                    recorded_at=r("2026-03-01")),
        installment("L4", 3, "2026-06-01", "1000", recorded_at=r("2026-05-01")),
        installment("L4", 3, "2026-06-01", "1000", paid="2026-07-05", amount_paid="1000",
                    recorded_at=r("2026-07-05"), _delivery_date="2026-07-05"),
        installment("L4", 4, "2025-10-01", "1000", paid="2025-10-01", amount_paid="1000",
                    recorded_at=r("2025-10-01")),
        installment("L4", 5, "2025-11-01", "1000", paid="2025-11-01", amount_paid="1000",
                    recorded_at=r("2025-11-01"), _delivery_date=LATE),
        # a loan whose state as of D is unknown: its installments are ignored
        installment("L9", 1, "2026-06-01", "1000", recorded_at=r("2026-05-01"), _delivery_date="2026-06-01"),
        # households
        installment("L5", 1, "2026-03-01", "1000", paid="2026-03-03", amount_paid="1000",
                    recorded_at=r("2026-03-03")),
        installment("L6", 1, "2025-12-01", "500", paid="2025-12-01", amount_paid="500", recorded_at=r("2025-12-01")),
        installment("L6", 2, "2026-01-10", "500", paid="2026-04-20", amount_paid="500", recorded_at=r("2026-04-20")),
    ]
    subsidies = [
        subsidy("SUB1", "2000", "2026-06-30", uscc=U1, _delivery_date="2026-06-30"),
        subsidy("SUB2", "5000", "2026-01-01", uscc=U3),
        subsidy("SUB3", "7000", "2025-06-30", uscc=U3),
        subsidy("SUB4", "1234.56", "2025-07-01", who="G", birth="1950-01-01"),
        subsidy("SUB5", "100", "2026-06-30", who="J", birth="1996-06-30", _delivery_date="2026-06-30"),
        subsidy("SUB6", "300", "2025-06-30", who="H", birth="1975-01-01"),
        subsidy("SUB7", "300", "2026-06-29", who="K", birth="1975-01-01", _delivery_date=LATE),
    ]
    return {
        "divisions": divisions, "outlets": outlets, "shipment_events": shipment_events,
        "cold_chain_readings": cold_chain_readings, "cooperatives": cooperatives, "members": members,
        "sales": sales, "loans": loans, "installments": installments, "subsidies": subsidies,
    }


def world(spark) -> dict[str, DataFrame]:
    return silver_set(spark, **world_rows())


_world_gold: dict[tuple[int, str], list[dict[str, Any]]] = {}


def world_gold(spark, name: str) -> list[dict[str, Any]]:
    """One gold table of the world as of D, as a list of dicts (computed once per session)."""
    from agrilake.stages.gold import transform

    key = (id(spark), name)
    if key not in _world_gold:
        _world_gold[key] = [r.asDict() for r in transform(world(spark), D)[name].collect()]
    return _world_gold[key]


def world_gold_frame(spark, name: str) -> DataFrame:
    """The world's gold table as a DataFrame rebuilt from its collected rows (no recomputation)."""
    ddl = packaged().gold_table(name).ddl
    struct = spark.createDataFrame([], ddl).schema
    return spark.createDataFrame([tuple(r[f.name] for f in struct.fields) for r in world_gold(spark, name)], struct)
