"""Benchmark and cross-check of the gold build: Spark (agrilake.stages.gold) against DuckDB SQL (gold_duckdb).

    python -m agrilake.devdata.bench.gold --lakehouse PATH --date D [--synthesize N]

Reads the silver Delta tables of PATH (with --synthesize, first writes a synthetic silver of about N
cooperatives there, with multiple versions, late and re-delivered rows, ties and cold chain), times the
Spark build of the four gold tables for D (build + collect), exports the same silver snapshot to
parquet, times the independent DuckDB implementation on it, prints both times and their ratio, and
compares the two results row by row. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from agrilake.core import dates

EPOCH = date(2025, 1, 1)
CST = timezone(timedelta(hours=8))


# --- synthetic silver -------------------------------------------------------------------------------

def _days(rng, lo: int, hi: int, n: int) -> np.ndarray:
    return rng.integers(lo, hi, n)


def _date(offsets) -> list[date]:
    return [EPOCH + timedelta(days=int(x)) for x in offsets]


def _lineage(rng, table: str, delivery_offsets) -> dict[str, list]:
    """Deliveries: one file per table and day (two on some days, for SHA-256 tie-breaks)."""
    deliveries = _date(delivery_offsets)
    files = rng.integers(0, 2, len(deliveries))
    sha = [hashlib.sha256(f"{table}/{d}/{f}".encode()).hexdigest() for d, f in zip(deliveries, files, strict=True)]
    return {"_delivery_date": deliveries, "_file_sha256": sha, "_line": list(range(1, len(deliveries) + 1)),
            "_batch_id": ["bench"] * len(deliveries)}


def _ts(day_offsets, minutes) -> list[datetime]:
    return [datetime.combine(EPOCH + timedelta(days=int(d)), datetime.min.time(), CST) + timedelta(minutes=int(m))
            for d, m in zip(day_offsets, minutes, strict=True)]


def _money(values) -> list:
    from decimal import Decimal

    return [None if v is None else Decimal(int(round(v * 100))).scaleb(-2) for v in values]


def synthesize(n_coops: int, seed: int = 7) -> dict[str, pa.Table]:
    """Silver-shaped arrow tables (every version, with lineage) for the gold benchmark."""
    rng = np.random.default_rng(seed)
    horizon = 600  # deliveries from 2025-01-01 to about 2026-08-23

    # divisions: one province/prefecture, counties x townships x villages
    n_counties = max(2, n_coops // 500)
    codes, names, levels, parents, vfrom, vto, dd = [], [], [], [], [], [], []

    def add(code, name, level, parent, start=-3000, end=None, delivered=0):
        codes.append(code), names.append(name), levels.append(level), parents.append(parent)
        vfrom.append(EPOCH + timedelta(days=start)), vto.append(None if end is None else EPOCH + timedelta(days=end))
        dd.append(delivered)

    add("130000000000", "省", "province", None)
    add("130100000000", "市", "prefecture", "130000000000")
    villages = []
    for c in range(n_counties):
        county = f"1301{c + 1:02d}"
        add(f"{county}000000", f"县{c}", "county", "130100000000")
        if rng.random() < 0.5:  # renamed by a later delivery
            add(f"{county}000000", f"新县{c}", "county", "130100000000", delivered=int(rng.integers(1, horizon)))
        for t in range(12):
            town = f"{county}{t + 1:03d}"
            add(f"{town}000", f"镇{c}-{t}", "township", f"{county}000000")
            for v in range(15):
                code = f"{town}{v + 1:03d}"
                roll = rng.random()
                end = int(rng.integers(300, horizon)) if roll < 0.03 else None
                start = int(rng.integers(300, horizon)) if 0.03 <= roll < 0.05 else -3000
                add(code, f"村{c}-{t}-{v}", "village", f"{town}000", start=start, end=end,
                    delivered=int(rng.integers(0, horizon)) if roll > 0.98 else 0)
                villages.append(code)
    villages = np.array(villages)
    divisions = {"division_code": codes, "name": names, "level": levels, "parent_code": parents,
                 "urban_rural_code": ["220" if lv == "village" else None for lv in levels],
                 "valid_from": vfrom, "valid_to": vto, **_lineage(rng, "divisions", dd)}

    # cooperatives: 1-3 versions each, some only delivered late
    coop_ids = np.array([f"C{i:06d}" for i in range(n_coops)])
    usccs = np.array([f"93{i:016d}" for i in range(n_coops)])
    coop_village = rng.choice(villages, n_coops)
    established = _days(rng, -6000, 560, n_coops)
    rows = {k: [] for k in ("coop_id", "uscc", "coop_name", "village_code", "legal_rep_key", "established_date",
                            "member_count", "land_area_mu", "main_products", "status", "updated_at")}
    deliveries = []
    for i in range(n_coops):
        first = int(rng.integers(0, horizon - 20)) if rng.random() < 0.2 else 0
        versions = int(rng.integers(1, 4))
        day = first
        minute = int(rng.integers(0, 1440))
        for v in range(versions):
            status = rng.choice(["active", "suspended", "dissolved"], p=[0.85, 0.1, 0.05]) if v else "active"
            rows["coop_id"].append(coop_ids[i]), rows["uscc"].append(usccs[i])
            rows["coop_name"].append(f"合作社{i}-{v}"), rows["village_code"].append(coop_village[i])
            rows["legal_rep_key"].append(hashlib.sha256(f"rep{i}".encode()).hexdigest())
            rows["established_date"].append(EPOCH + timedelta(days=int(established[i])))
            rows["member_count"].append(int(rng.integers(5, 300))), rows["land_area_mu"].append(float(rng.integers(10, 5000)))
            rows["main_products"].append(["grain"]), rows["status"].append(str(status))
            rows["updated_at"].append(_ts([day], [minute])[0])
            deliveries.append(day + int(rng.integers(0, 3)))
            if rng.random() < 0.15:  # the same version delivered again later (tie on updated_at)
                for k in rows:
                    rows[k].append(rows[k][-1])
                rows["coop_name"][-1] = f"合作社{i}-{v}-again"
                deliveries.append(deliveries[-1] + int(rng.integers(0, 3)))
            day += int(rng.integers(1, 200))
            minute = int(rng.integers(0, 1440))
    cooperatives = {**rows, **_lineage(rng, "cooperatives", deliveries)}

    # people: a pool shared by memberships, household loans and subsidies
    n_people = n_coops * 15
    people = np.array([hashlib.sha256(f"person{i}".encode()).hexdigest() for i in range(n_people)])
    births = _days(rng, -30000, -6600, n_people)

    rows = {k: [] for k in ("coop_id", "person_key", "birth_date", "household_size", "land_area_mu",
                            "joined_date", "left_date", "updated_at")}
    deliveries = []
    for i in range(n_coops):
        for p in rng.choice(n_people, int(rng.integers(0, 40)), replace=False):
            joined = int(rng.integers(-3000, 550))
            left = joined + int(rng.integers(10, 1500)) if rng.random() < 0.25 else None
            versions = [(None, joined)] + ([(left, max(joined, (left or joined) - 30))] if left is not None else [])
            for left_v, day in versions:
                rows["coop_id"].append(coop_ids[i]), rows["person_key"].append(people[p])
                rows["birth_date"].append(EPOCH + timedelta(days=int(births[p])))
                rows["household_size"].append(int(rng.integers(1, 9)))
                rows["land_area_mu"].append(round(float(rng.gamma(2, 6)), int(rng.integers(0, 4))))
                rows["joined_date"].append(EPOCH + timedelta(days=joined))
                rows["left_date"].append(None if left_v is None else EPOCH + timedelta(days=left_v))
                rows["updated_at"].append(_ts([max(day, -10)], [int(rng.integers(0, 1440))])[0])
                deliveries.append(max(day, 0) + int(rng.integers(0, 5)))
    members = {**rows, **_lineage(rng, "members", deliveries)}

    # sales
    n_sales = n_coops * 60
    sale_day = _days(rng, -30, 580, n_sales)
    sales = {"sale_id": [f"S{i:08d}" for i in range(n_sales)], "coop_id": list(rng.choice(coop_ids, n_sales)),
             "product_code": ["fruit"] * n_sales,
             "channel": list(rng.choice(["postal_ecommerce", "wholesale", "retail", "contract"], n_sales,
                                        p=[0.3, 0.3, 0.3, 0.1])),
             "quantity_kg": list(rng.gamma(2, 100, n_sales)),
             "amount_cny": _money(rng.choice([rng.gamma(2, 2000), 0.0], n_sales, p=[0.98, 0.02])
                                  * rng.gamma(2, 1, n_sales)),
             "sale_date": _date(sale_day), "buyer_county_code": ["110101"] * n_sales,
             **_lineage(rng, "sales", np.maximum(sale_day, 0) + rng.integers(0, 6, n_sales))}

    # outlets: village, township and county outlets; some closed, some opening later, versions
    rows = {k: [] for k in ("outlet_id", "outlet_name", "level", "division_code", "services", "opened_date",
                            "closed_date", "latitude", "longitude", "updated_at")}
    deliveries = []
    outlet_codes = list(rng.choice(villages, int(len(villages) * 1.5))) + \
        [c for c, lv in zip(codes, levels, strict=True) if lv in ("township", "county")]
    for k, code in enumerate(outlet_codes):
        level = "village" if not code.endswith("000") else ("county" if code.endswith("000000") else "township")
        services = [s for s, p in (("parcel", 0.8), ("cold_storage", 0.2), ("finance_agent", 0.4)) if rng.random() < p]
        opened = int(rng.integers(-3000, 560))
        closed = opened + int(rng.integers(30, 900)) if rng.random() < 0.12 else None
        for v, (closed_v, day) in enumerate([(None, max(opened - 5, 0))]
                                            + ([(closed, closed)] if closed is not None else [])):
            rows["outlet_id"].append(f"O{k:06d}"), rows["outlet_name"].append(f"网点{k}"), rows["level"].append(level)
            rows["division_code"].append(code), rows["services"].append(services)
            rows["opened_date"].append(EPOCH + timedelta(days=opened))
            rows["closed_date"].append(None if closed_v is None else EPOCH + timedelta(days=closed_v))
            rows["latitude"].append(38.0), rows["longitude"].append(114.5)
            rows["updated_at"].append(_ts([day], [v])[0])
            deliveries.append(day + int(rng.integers(0, 3)))
    outlets = {**rows, **_lineage(rng, "outlets", deliveries)}
    outlet_ids = np.array(sorted(set(rows["outlet_id"])))
    village_outlets = np.array([o for o, lv in zip(rows["outlet_id"], rows["level"], strict=True) if lv == "village"])
    county_outlets = np.array([o for o, lv in zip(rows["outlet_id"], rows["level"], strict=True) if lv == "county"])

    # parcels and their events
    n_parcels = n_coops * 50
    ev = {k: [] for k in ("event_id", "tracking_no", "event_type", "event_time", "outlet_id", "direction",
                          "sender_coop_id", "product_code", "weight_kg", "cold_chain", "temp_min_c", "temp_max_c",
                          "promised_hours")}
    deliveries = []
    rd = {k: [] for k in ("tracking_no", "sensor_id", "reading_time", "temperature_c")}
    rdeliveries = []
    eid = 0

    def event(tn, etype, t_day, t_min, outlet, acc=None):
        nonlocal eid
        eid += 1
        ev["event_id"].append(f"E{eid:09d}"), ev["tracking_no"].append(tn), ev["event_type"].append(etype)
        ev["event_time"].append(_ts([t_day], [t_min])[0]), ev["outlet_id"].append(outlet)
        for k in ("direction", "sender_coop_id", "product_code", "weight_kg", "cold_chain", "temp_min_c",
                  "temp_max_c", "promised_hours"):
            ev[k].append(None if acc is None else acc[k])
        deliveries.append(t_day + t_min // 1440 + int(rng.integers(0, 3)))

    for p in range(n_parcels):
        tn = f"T{p:09d}"
        upstream = rng.random() < 0.6
        day, minute = int(rng.integers(-20, 575)), int(rng.integers(0, 1440))
        cold = bool(rng.random() < 0.2)
        tmin = float(rng.choice([-18.0, 0.0, 2.0])) if cold else None
        acc = {"direction": "upstream" if upstream else "downstream",
               "sender_coop_id": (str(rng.choice(coop_ids)) if rng.random() < 0.9 else None) if upstream else None,
               "product_code": "fruit", "weight_kg": round(float(rng.gamma(2, 5)), int(rng.integers(0, 4))),
               "cold_chain": cold, "temp_min_c": tmin, "temp_max_c": None if tmin is None else tmin + 6.0,
               "promised_hours": float(rng.choice([24.0, 48.0, 72.0]))}
        accept_at = str(rng.choice(village_outlets if upstream else county_outlets))
        deliver_at = str(rng.choice(county_outlets if upstream else village_outlets))
        if rng.random() < 0.002:  # an outlet nobody knows
            accept_at = "O-unknown"
        event(tn, "accepted", day, minute, accept_at, acc)
        if rng.random() < 0.01:  # a second, later accepted event elsewhere (out of order)
            event(tn, "accepted", day, minute + int(rng.integers(1, 120)), str(rng.choice(outlet_ids)), acc)
        lead_min = int(rng.lognormal(np.log(36 * 60), 0.6))
        if rng.random() < 0.03:
            event(tn, "returned", day, minute + lead_min, deliver_at)
            continue
        event(tn, "dispatched", day, minute + 60, accept_at)
        if rng.random() < 0.95:
            event(tn, "delivered", day, minute + lead_min, deliver_at)
            if rng.random() < 0.01:  # delivered twice
                event(tn, "delivered", day, minute + lead_min + int(rng.integers(1, 600)), deliver_at)
        if cold and rng.random() < 0.9:
            for s in range(int(rng.integers(1, 6))):
                t = minute + int(rng.integers(0, lead_min + 1))
                rd["tracking_no"].append(tn), rd["sensor_id"].append(f"S{s}")
                rd["reading_time"].append(_ts([day], [t])[0])
                rd["temperature_c"].append(round(float(rng.normal(tmin + 3, 2.2)), 1))
                rdeliveries.append(day + t // 1440 + int(rng.integers(0, 3)))
    shipment_events = {**ev, **_lineage(rng, "shipment_events", deliveries)}
    readings = {**rd, **_lineage(rng, "cold_chain_readings", rdeliveries)}

    # loans and installments
    rows = {k: [] for k in ("loan_id", "borrower_type", "borrower_uscc", "borrower_person_key", "borrower_birth_date",
                            "product", "principal_cny", "annual_rate_pct", "term_months", "disbursed_date",
                            "maturity_date", "status", "updated_at")}
    deliveries = []
    inst = {k: [] for k in ("loan_id", "installment_no", "due_date", "amount_due_cny", "paid_date", "amount_paid_cny",
                            "recorded_at")}
    ideliveries = []
    n_loans = n_coops
    for k in range(n_loans):
        household = rng.random() < 0.5
        who = int(rng.integers(0, n_people)) if household else int(rng.integers(0, n_coops))
        disbursed = int(rng.integers(-700, 560))
        term = int(rng.choice([12, 24, 36]))
        principal = float(rng.choice([20000, 50000, 100000, 300000]))
        status_final = str(rng.choice(["active", "settled", "written_off"], p=[0.7, 0.25, 0.05]))
        versions = [("active", disbursed)] + ([(status_final, disbursed + int(rng.integers(30, 700)))]
                                              if status_final != "active" else [])
        for status, day in versions:
            rows["loan_id"].append(f"L{k:07d}"), rows["borrower_type"].append("household" if household else "cooperative")
            rows["borrower_uscc"].append(None if household else usccs[who])
            rows["borrower_person_key"].append(people[who] if household else None)
            rows["borrower_birth_date"].append(EPOCH + timedelta(days=int(births[who])) if household else None)
            rows["product"].append("working_capital"), rows["principal_cny"].append(_money([principal])[0])
            rows["annual_rate_pct"].append(4.35), rows["term_months"].append(term)
            rows["disbursed_date"].append(EPOCH + timedelta(days=disbursed))
            rows["maturity_date"].append(EPOCH + timedelta(days=disbursed + 30 * term))
            rows["status"].append(status), rows["updated_at"].append(_ts([max(day, -700)], [0])[0])
            deliveries.append(max(day, 0) + int(rng.integers(0, 3)))
        due_amount = round(principal / term, 2)
        for n in range(1, term + 1):
            due = disbursed + 30 * n
            if due > horizon:
                break
            roll = rng.random()
            paid, amount = None, None
            if roll < 0.78:
                paid, amount = due - int(rng.integers(0, 3)), due_amount
            elif roll < 0.9:
                paid, amount = due + int(rng.integers(1, 160)), due_amount
            elif roll < 0.95:
                paid, amount = due + int(rng.integers(0, 20)), round(due_amount * float(rng.uniform(0.1, 0.9)), 2)
            versions = [(None, None, due - 20)] + ([(paid, amount, paid)] if paid is not None else [])
            for paid_v, amount_v, day in versions:
                inst["loan_id"].append(f"L{k:07d}"), inst["installment_no"].append(n)
                inst["due_date"].append(EPOCH + timedelta(days=due)), inst["amount_due_cny"].append(_money([due_amount])[0])
                inst["paid_date"].append(None if paid_v is None else EPOCH + timedelta(days=paid_v))
                inst["amount_paid_cny"].append(None if amount_v is None else _money([amount_v])[0])
                inst["recorded_at"].append(_ts([max(day, -700)], [int(rng.integers(0, 1440))])[0])
                ideliveries.append(max(day, 0) + int(rng.integers(0, 4)))
    loans = {**rows, **_lineage(rng, "loans", deliveries)}
    installments = {**inst, **_lineage(rng, "installments", ideliveries)}

    n_subsidies = n_coops * 3
    household = rng.random(n_subsidies) < 0.6
    who_p = rng.integers(0, n_people, n_subsidies)
    who_c = rng.integers(0, n_coops, n_subsidies)
    granted = _days(rng, -100, 580, n_subsidies)
    subsidies = {"subsidy_id": [f"G{i:07d}" for i in range(n_subsidies)], "program": ["seed"] * n_subsidies,
                 "beneficiary_type": ["household" if h else "cooperative" for h in household],
                 "beneficiary_uscc": [None if h else usccs[c] for h, c in zip(household, who_c, strict=True)],
                 "beneficiary_person_key": [people[p] if h else None for h, p in zip(household, who_p, strict=True)],
                 "beneficiary_birth_date": [EPOCH + timedelta(days=int(births[p])) if h else None
                                            for h, p in zip(household, who_p, strict=True)],
                 "amount_cny": _money(rng.gamma(2, 3000, n_subsidies)), "machinery_type": [None] * n_subsidies,
                 "granted_date": _date(granted),
                 **_lineage(rng, "subsidies", np.maximum(granted, 0) + rng.integers(0, 10, n_subsidies))}

    data = {"divisions": divisions, "cooperatives": cooperatives, "members": members, "sales": sales,
            "outlets": outlets, "shipment_events": shipment_events, "cold_chain_readings": readings, "loans": loans,
            "installments": installments, "subsidies": subsidies}
    return {name: pa.Table.from_pydict(cols, schema=arrow_schema(name)) for name, cols in data.items()}


ARROW_TYPES = {"string": pa.string(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
               "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(),
               "decimal(18,2)": pa.decimal128(18, 2), "array<string>": pa.list_(pa.string())}


def arrow_schema(name: str) -> pa.Schema:
    from agrilake.core.contracts import packaged

    return pa.schema([(c.name, ARROW_TYPES[c.spark_type]) for c in packaged().silver_tables()[name].columns])


def write_silver(ctx, data: dict[str, pa.Table], workdir: str) -> dict[str, int]:
    """Write the synthetic tables as the silver Delta tables of the context's lakehouse."""
    from pyspark.sql import functions as F

    from agrilake.core import tables

    counts = {}
    for name, table in data.items():
        path = os.path.join(workdir, f"synth_{name}.parquet")
        pq.write_table(table, path)
        contract = ctx.contracts.silver_tables()[name]
        df = ctx.spark.read.parquet(path).select(*[F.col(c.name).cast(c.spark_type) for c in contract.columns])
        tables.overwrite(ctx, df, "silver", name)
        counts[name] = table.num_rows
    return counts


# --- benchmark ------------------------------------------------------------------------------------

def export_parquet(spark, silver, workdir: str) -> dict[str, str]:
    """The silver snapshot the Spark build read, as parquet files DuckDB reads (instants as UTC micros)."""
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    out = {}
    for name, df in silver.items():
        path = os.path.join(workdir, "silver", name)
        df.write.mode("overwrite").parquet(path)
        out[name] = os.path.join(path, "*.parquet")
    return out


def build_and_compare(ctx, as_of: date, workdir: str, *, show: int = 20) -> tuple[float, float, int]:
    """Gold for `as_of` from the context's silver, by Spark and by DuckDB on the same snapshot;
    prints both times, their ratio and the row-by-row comparison. Returns (spark s, duckdb s, mismatches)."""
    from agrilake.devdata.bench import gold_duckdb
    from agrilake.stages.gold import read_silver, transform

    spark = ctx.spark
    silver = read_silver(ctx)
    print("silver rows:", {name: df.count() for name, df in silver.items()}, flush=True)

    # as agrilake.stages.gold.publish does: each table and what tables share kept once, so the county
    # summary reuses the profile and the parcels are built once
    t0 = time.perf_counter()
    kept = []
    frames = transform(silver, as_of, ctx.contracts, keep=lambda df: kept.append(df.persist()) or df)
    spark_out = {name: [r.asDict() for r in df.collect()] for name, df in frames.items()}
    spark_s = time.perf_counter() - t0
    for df in kept:
        df.unpersist()

    files = export_parquet(spark, silver, workdir)
    t0 = time.perf_counter()
    con = gold_duckdb.connect(files)
    duck_out = gold_duckdb.gold(con, as_of)
    duck_s = time.perf_counter() - t0

    print(f"\ngold for {as_of}: rows " + ", ".join(f"{k}={len(v)}" for k, v in spark_out.items()))
    print(f"spark  build+collect: {spark_s:8.2f} s  ({spark.sparkContext.master})")
    print(f"duckdb build+fetch:   {duck_s:8.2f} s")
    print(f"ratio spark/duckdb:   {spark_s / duck_s:8.1f}x")

    bad = 0
    for name in spark_out:
        problems = gold_duckdb.compare(name, spark_out[name], duck_out[name])
        bad += len(problems)
        status = "identical" if not problems else f"{len(problems)} mismatch(es)"
        print(f"  {name}: {len(spark_out[name])} rows, {status}")
        for p in problems[:show]:
            print(f"    {p}")
    return spark_s, duck_s, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agrilake.devdata.bench.gold", description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root holding silver/<table> Delta tables")
    parser.add_argument("--date", required=True, type=dates.parse, help="as-of date D")
    parser.add_argument("--synthesize", type=int, metavar="N",
                        help="first write a synthetic silver of about N cooperatives into the lakehouse")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=20, help="mismatches to print per table")
    args = parser.parse_args(argv)
    from agrilake.core.context import RunContext
    from agrilake.core.settings import get_settings

    ctx = RunContext(get_settings().replace(lakehouse=os.path.abspath(args.lakehouse)), app_name="agrilake-bench-gold")
    workdir = tempfile.mkdtemp(prefix="agrilake-bench-gold-")
    try:
        if args.synthesize:
            t0 = time.perf_counter()
            counts = write_silver(ctx, synthesize(args.synthesize, args.seed), workdir)
            print(f"synthetic silver written in {time.perf_counter() - t0:.1f} s: {counts}")

        _, _, bad = build_and_compare(ctx, args.date, workdir, show=args.show)
        return 1 if bad else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
