"""The four gold tables of docs/metrics.md in DuckDB SQL: a second, independent implementation.

Written from docs/metrics.md, not from the Spark code, so the two can check each other: the benchmark
(jobs/agrilake/devdata/bench/gold.py) and a unit test compare them row by row. It deliberately takes other routes
where it can: subtrees by `starts_with` joins instead of exploded prefixes, first events by
QUALIFY instead of struct minimums, ages by month-day strings, on-time points by float rounding.

Input: the silver tables (every version, with lineage), each a pyarrow Table or a parquet glob.
Instants may come as TIMESTAMPTZ or as naive UTC; dates in UTC+08:00 are taken with a fixed +8 h.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb

SILVER = ("cooperatives", "members", "sales", "outlets", "shipment_events", "cold_chain_readings", "loans",
          "installments", "subsidies", "divisions")

# key columns and version column of each silver table (docs/sources.md / schemas/silver)
UPSERT = {
    "cooperatives": (["coop_id"], "updated_at"),
    "members": (["coop_id", "person_key"], "updated_at"),
    "outlets": (["outlet_id"], "updated_at"),
    "loans": (["loan_id"], "updated_at"),
    "installments": (["loan_id", "installment_no"], "recorded_at"),
}
EVENTS = {
    "sales": ["sale_id"],
    "shipment_events": ["event_id"],
    "cold_chain_readings": ["tracking_no", "sensor_id", "reading_time"],
    "subsidies": ["subsidy_id"],
}

KEYS = {
    "coop_credit_profile": "coop_id",
    "household_credit_profile": "person_key",
    "logistics_division_daily": "division_code",
    "credit_county_summary": "county_code",
}


def connect(silver: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view `s_<table>` per silver table, instants as naive UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in SILVER:
        source = silver[name]
        if isinstance(source, str):
            con.execute(f"CREATE VIEW raw_{name} AS SELECT * FROM read_parquet('{source}')")
        else:
            con.register(f"raw_{name}", source)
        cols = con.execute(f"DESCRIBE raw_{name}").fetchall()
        exprs = [f"timezone('UTC', \"{c}\") AS \"{c}\"" if t == "TIMESTAMP WITH TIME ZONE" else f'"{c}"'
                 for c, t, *_ in cols]
        con.execute(f"CREATE VIEW s_{name} AS SELECT {', '.join(exprs)} FROM raw_{name}")
    return con


def _states(d: date) -> str:
    """CTEs: what is known by the end of D."""
    ctes = []
    for name, (key, version) in UPSERT.items():
        ctes.append(f"""{name} AS (
            SELECT * FROM s_{name} WHERE _available_date <= DATE '{d}'
            QUALIFY row_number() OVER (PARTITION BY {', '.join(key)}
                ORDER BY {version} DESC, _delivery_date DESC, _file_sha256 DESC, _line DESC) = 1)""")
    for name, key in EVENTS.items():
        ctes.append(f"""{name} AS (
            SELECT * FROM s_{name} WHERE _available_date <= DATE '{d}'
            QUALIFY row_number() OVER (PARTITION BY {', '.join(key)}
                ORDER BY _delivery_date, _file_sha256, _line) = 1)""")
    ctes.append(f"""divisions AS (
            SELECT * FROM (
                SELECT * FROM s_divisions WHERE _available_date <= DATE '{d}'
                QUALIFY row_number() OVER (PARTITION BY division_code
                    ORDER BY _delivery_date DESC, _file_sha256 DESC, _line DESC) = 1)
            WHERE valid_from <= DATE '{d}' AND (valid_to IS NULL OR valid_to > DATE '{d}'))""")
    # the earliest accepted and delivered event of each parcel (UTC+08:00 dates precomputed)
    ctes.append("""accepted AS (
            SELECT *, CAST(event_time + INTERVAL 8 HOUR AS DATE) AS day FROM shipment_events
            WHERE event_type = 'accepted'
            QUALIFY row_number() OVER (PARTITION BY tracking_no ORDER BY event_time, event_id) = 1)""")
    ctes.append("""delivered AS (
            SELECT *, CAST(event_time + INTERVAL 8 HOUR AS DATE) AS day FROM shipment_events
            WHERE event_type = 'delivered'
            QUALIFY row_number() OVER (PARTITION BY tracking_no ORDER BY event_time, event_id) = 1)""")
    ctes.append(f"""active_members AS (
            SELECT * FROM members WHERE joined_date <= DATE '{d}' AND (left_date IS NULL OR left_date > DATE '{d}'))""")
    return "WITH " + ",\n".join(ctes)


def _whole_years(start: str, d: date) -> str:
    return (f"(year(DATE '{d}') - year({start}) - CASE WHEN strftime(DATE '{d}', '%m-%d') < strftime({start}, '%m-%d')"
            " THEN 1 ELSE 0 END)")


def _obligations(d: date, w0: date, loan_party: str, subsidy_party: str) -> str:
    """party, loans_active, principal_active_cny, arrears_cny, max_dpd_12m, due_12m, on_time_12m, subsidies."""
    return f"""
        party_loans AS (
            SELECT {loan_party} AS party,
                   count(*) FILTER (WHERE status = 'active' AND disbursed_date <= DATE '{d}') AS loans_active,
                   sum(principal_cny) FILTER (WHERE status = 'active' AND disbursed_date <= DATE '{d}') AS principal
            FROM loans WHERE {loan_party} IS NOT NULL GROUP BY 1),
        party_inst AS (
            SELECT l.{loan_party} AS party,
                   sum(greatest(i.amount_due_cny - CASE WHEN i.paid_date <= DATE '{d}'
                                THEN coalesce(i.amount_paid_cny, 0) ELSE 0 END, 0))
                       FILTER (WHERE i.due_date <= DATE '{d}') AS arrears,
                   max(greatest(CASE WHEN i.paid_date <= DATE '{d}' AND i.amount_paid_cny >= i.amount_due_cny
                                     THEN i.paid_date - i.due_date ELSE DATE '{d}' - i.due_date END, 0))
                       FILTER (WHERE i.due_date BETWEEN DATE '{w0}' AND DATE '{d}') AS max_dpd,
                   count(*) FILTER (WHERE i.due_date BETWEEN DATE '{w0}' AND DATE '{d}') AS due_12m,
                   count(*) FILTER (WHERE i.due_date BETWEEN DATE '{w0}' AND DATE '{d}'
                                    AND i.paid_date <= i.due_date AND i.amount_paid_cny >= i.amount_due_cny)
                       AS on_time_12m
            FROM installments i JOIN loans l ON l.loan_id = i.loan_id
            WHERE l.{loan_party} IS NOT NULL GROUP BY 1),
        party_subsidies AS (
            SELECT {subsidy_party} AS party, sum(amount_cny) AS subsidies FROM subsidies
            WHERE {subsidy_party} IS NOT NULL AND granted_date BETWEEN DATE '{w0}' AND DATE '{d}' GROUP BY 1)"""


def coop_sql(d: date) -> str:
    w0 = d - timedelta(days=364)
    return f"""{_states(d)},
        {_obligations(d, w0, "borrower_uscc", "beneficiary_uscc")},
        m AS (SELECT coop_id, count(*) AS n, round(sum(CAST(land_area_mu AS DECIMAL(38, 10))), 2) AS land
              FROM active_members GROUP BY 1),
        s AS (SELECT coop_id, sum(amount_cny) AS total,
                     coalesce(sum(amount_cny) FILTER (WHERE channel = 'postal_ecommerce'), 0) AS postal
              FROM sales WHERE sale_date BETWEEN DATE '{w0}' AND DATE '{d}' GROUP BY 1),
        u AS (SELECT sender_coop_id AS coop_id, count(*) AS parcels,
                     round(sum(CAST(weight_kg AS DECIMAL(38, 10))), 2) AS weight
              FROM accepted WHERE direction = 'upstream' AND sender_coop_id IS NOT NULL
                AND day BETWEEN DATE '{w0}' AND DATE '{d}' GROUP BY 1),
        base AS (
            SELECT c.coop_id, c.uscc, c.coop_name, c.status, c.village_code,
                   {_whole_years("c.established_date", d)} AS years_established,
                   coalesce(m.n, 0) AS active_members,
                   CAST(coalesce(m.land, 0) AS DOUBLE) AS member_land_mu,
                   CAST(coalesce(s.total, 0) AS DECIMAL(18, 2)) AS sales_12m_cny,
                   coalesce(s.postal, 0) AS postal,
                   coalesce(u.parcels, 0) AS upstream_parcels_12m,
                   CAST(coalesce(u.weight, 0) AS DOUBLE) AS upstream_weight_kg_12m,
                   coalesce(pl.loans_active, 0) AS loans_active,
                   CAST(coalesce(pl.principal, 0) AS DECIMAL(18, 2)) AS principal_active_cny,
                   CAST(coalesce(pi.arrears, 0) AS DECIMAL(18, 2)) AS arrears_cny,
                   coalesce(pi.max_dpd, 0) AS max_dpd_12m,
                   coalesce(pi.due_12m, 0) AS due_12m,
                   coalesce(pi.on_time_12m, 0) AS on_time_12m,
                   CAST(coalesce(ps.subsidies, 0) AS DECIMAL(18, 2)) AS subsidies_12m_cny
            FROM cooperatives c
            LEFT JOIN m ON m.coop_id = c.coop_id
            LEFT JOIN s ON s.coop_id = c.coop_id
            LEFT JOIN u ON u.coop_id = c.coop_id
            LEFT JOIN party_loans pl ON pl.party = c.uscc
            LEFT JOIN party_inst pi ON pi.party = c.uscc
            LEFT JOIN party_subsidies ps ON ps.party = c.uscc),
        scored AS (
            SELECT *,
                   600
                   + least(years_established, 10) * 5
                   + floor(least(active_members, 200) / 4)
                   + CASE WHEN sales_12m_cny >= 1000000 THEN 40 WHEN sales_12m_cny >= 200000 THEN 25
                          WHEN sales_12m_cny > 0 THEN 10 ELSE 0 END
                   + CASE WHEN sales_12m_cny > 0 AND postal * 10 >= sales_12m_cny * 3 THEN 20 ELSE 0 END
                   + CASE WHEN upstream_parcels_12m >= 100 THEN 15 ELSE 0 END
                   + CASE WHEN due_12m = 0 THEN 0 ELSE floor(CAST(100 * on_time_12m AS DOUBLE) / due_12m + 0.5) - 80 END
                   + CASE WHEN max_dpd_12m > 90 THEN -150 WHEN max_dpd_12m >= 31 THEN -60
                          WHEN max_dpd_12m >= 1 THEN -20 ELSE 0 END
                   + CASE WHEN arrears_cny > 0 AND (principal_active_cny = 0 OR arrears_cny > principal_active_cny * 0.1)
                          THEN -100 ELSE 0 END
                   + CASE WHEN status IS DISTINCT FROM 'active' THEN -200 ELSE 0 END AS score,
                   list_sort(list_filter([
                       CASE WHEN sales_12m_cny = 0 THEN 'SALES_NONE' END,
                       CASE WHEN due_12m = 0 THEN 'NO_REPAYMENT_HISTORY' END,
                       CASE WHEN max_dpd_12m > 90 THEN 'DPD_90' END,
                       CASE WHEN max_dpd_12m BETWEEN 31 AND 90 THEN 'DPD_30' END,
                       CASE WHEN max_dpd_12m BETWEEN 1 AND 30 THEN 'DPD_1' END,
                       CASE WHEN arrears_cny > 0 AND (principal_active_cny = 0
                                 OR arrears_cny > principal_active_cny * 0.1) THEN 'ARREARS_HIGH' END,
                       CASE WHEN status IS DISTINCT FROM 'active' THEN 'STATUS_INACTIVE' END
                   ], lambda x: x IS NOT NULL)) AS reason_codes
            FROM base)
        SELECT DATE '{d}' AS as_of_date, coop_id, uscc, coop_name, status,
               left(village_code, 2) AS province_code, left(village_code, 4) AS prefecture_code,
               left(village_code, 6) AS county_code, left(village_code, 9) AS township_code, village_code,
               (SELECT v.name FROM divisions v WHERE v.division_code = left(village_code, 6) || '000000') AS county_name,
               years_established, active_members, member_land_mu, sales_12m_cny,
               CASE WHEN sales_12m_cny = 0 THEN NULL ELSE CAST(postal AS DOUBLE) / CAST(sales_12m_cny AS DOUBLE) END
                   AS postal_sales_share_12m,
               upstream_parcels_12m, upstream_weight_kg_12m, loans_active, principal_active_cny, arrears_cny,
               max_dpd_12m,
               CASE WHEN due_12m = 0 THEN NULL ELSE on_time_12m / due_12m END AS on_time_rate_12m,
               subsidies_12m_cny, CAST(score AS INTEGER) AS score,
               CASE WHEN score >= 700 THEN 'A' WHEN score >= 640 THEN 'B' WHEN score >= 580 THEN 'C' ELSE 'D' END
                   AS credit_tier,
               reason_codes
        FROM scored"""


def household_sql(d: date) -> str:
    w0 = d - timedelta(days=364)
    return f"""{_states(d)},
        {_obligations(d, w0, "borrower_person_key", "beneficiary_person_key")},
        people AS (
            SELECT person_key, max(birth_date) AS birth_date FROM (
                SELECT person_key, birth_date FROM active_members
                UNION ALL
                SELECT borrower_person_key, borrower_birth_date FROM loans WHERE borrower_person_key IS NOT NULL
                UNION ALL
                SELECT beneficiary_person_key, beneficiary_birth_date FROM subsidies
                WHERE beneficiary_person_key IS NOT NULL AND granted_date BETWEEN DATE '{w0}' AND DATE '{d}')
            GROUP BY 1),
        mem AS (SELECT person_key, list_sort(list(DISTINCT coop_id)) AS coop_ids, max(household_size) AS hh,
                       round(sum(CAST(land_area_mu AS DECIMAL(38, 10))), 2) AS land
                FROM active_members GROUP BY 1)
        SELECT DATE '{d}' AS as_of_date, p.person_key,
               CASE WHEN {_whole_years("p.birth_date", d)} < 30 THEN '<30'
                    WHEN {_whole_years("p.birth_date", d)} < 45 THEN '30-44'
                    WHEN {_whole_years("p.birth_date", d)} < 60 THEN '45-59'
                    WHEN p.birth_date IS NOT NULL THEN '60+' END AS age_band,
               coalesce(mem.coop_ids, CAST([] AS VARCHAR[])) AS coop_ids,
               mem.hh AS household_size,
               CAST(coalesce(mem.land, 0) AS DOUBLE) AS land_area_mu,
               coalesce(pl.loans_active, 0) AS loans_active,
               CAST(coalesce(pl.principal, 0) AS DECIMAL(18, 2)) AS principal_active_cny,
               CAST(coalesce(pi.arrears, 0) AS DECIMAL(18, 2)) AS arrears_cny,
               coalesce(pi.max_dpd, 0) AS max_dpd_12m,
               CASE WHEN coalesce(pi.due_12m, 0) = 0 THEN NULL ELSE pi.on_time_12m / pi.due_12m END
                   AS on_time_rate_12m,
               CAST(coalesce(ps.subsidies, 0) AS DECIMAL(18, 2)) AS subsidies_12m_cny
        FROM people p
        LEFT JOIN mem ON mem.person_key = p.person_key
        LEFT JOIN party_loans pl ON pl.party = p.person_key
        LEFT JOIN party_inst pi ON pi.party = p.person_key
        LEFT JOIN party_subsidies ps ON ps.party = p.person_key"""


def logistics_sql(d: date) -> str:
    return f"""{_states(d)},
        divs AS (
            SELECT division_code, level, name, parent_code,
                   CASE level WHEN 'county' THEN left(division_code, 6) WHEN 'township' THEN left(division_code, 9)
                        ELSE division_code END AS prefix
            FROM divisions WHERE level IN ('county', 'township', 'village')),
        open_outlets AS (
            SELECT division_code, list_contains(services, 'parcel') AS parcel FROM outlets
            WHERE opened_date <= DATE '{d}' AND (closed_date IS NULL OR closed_date > DATE '{d}')),
        villages AS (
            SELECT v.division_code,
                   EXISTS (SELECT 1 FROM open_outlets o WHERE o.parcel AND o.division_code = v.division_code)
                       AS covered
            FROM divisions v WHERE v.level = 'village'),
        up AS (
            SELECT o.division_code FROM accepted a JOIN outlets o ON o.outlet_id = a.outlet_id
            WHERE a.direction = 'upstream' AND a.day = DATE '{d}'),
        down AS (
            SELECT o.division_code FROM delivered x JOIN accepted a USING (tracking_no)
            JOIN outlets o ON o.outlet_id = x.outlet_id
            WHERE a.direction = 'downstream' AND x.day = DATE '{d}'),
        dlv AS (
            SELECT o.division_code,
                   (epoch_us(x.event_time) - epoch_us(a.event_time)) / 3600000000.0 AS lead_h,
                   a.promised_hours,
                   coalesce(a.cold_chain, false) AS cold,
                   NOT EXISTS (SELECT 1 FROM cold_chain_readings r WHERE r.tracking_no = x.tracking_no)
                   OR EXISTS (SELECT 1 FROM cold_chain_readings r WHERE r.tracking_no = x.tracking_no
                              AND (r.temperature_c < a.temp_min_c OR r.temperature_c > a.temp_max_c)) AS excursion
            FROM delivered x JOIN accepted a USING (tracking_no)
            JOIN outlets o ON o.outlet_id = CASE a.direction WHEN 'upstream' THEN a.outlet_id
                                                             WHEN 'downstream' THEN x.outlet_id END
            WHERE x.day = DATE '{d}'),
        ret AS (
            SELECT o.division_code
            FROM (SELECT DISTINCT tracking_no FROM shipment_events
                  WHERE event_type = 'returned' AND CAST(event_time + INTERVAL 8 HOUR AS DATE) = DATE '{d}') r
            JOIN accepted a USING (tracking_no) JOIN outlets o ON o.outlet_id = a.outlet_id),
        o_agg AS (SELECT r.prefix, count(o.division_code) AS outlets_open, count(*) FILTER (WHERE o.parcel) AS parcel
                  FROM divs r JOIN open_outlets o ON starts_with(o.division_code, r.prefix) GROUP BY 1),
        v_agg AS (SELECT r.prefix, count(*) AS total, count(*) FILTER (WHERE v.covered) AS covered
                  FROM divs r JOIN villages v ON starts_with(v.division_code, r.prefix) GROUP BY 1),
        up_agg AS (SELECT r.prefix, count(*) AS n FROM divs r JOIN up ON starts_with(up.division_code, r.prefix)
                   GROUP BY 1),
        down_agg AS (SELECT r.prefix, count(*) AS n FROM divs r JOIN down ON starts_with(down.division_code, r.prefix)
                     GROUP BY 1),
        dlv_agg AS (SELECT r.prefix, count(*) AS n,
                           quantile_cont(x.lead_h, 0.5) AS p50, quantile_cont(x.lead_h, 0.95) AS p95,
                           count(*) FILTER (WHERE x.lead_h <= x.promised_hours) AS on_time,
                           count(*) FILTER (WHERE x.cold) AS cold,
                           count(*) FILTER (WHERE x.cold AND x.excursion) AS excursions
                    FROM divs r JOIN dlv x ON starts_with(x.division_code, r.prefix) GROUP BY 1),
        ret_agg AS (SELECT r.prefix, count(*) AS n FROM divs r JOIN ret ON starts_with(ret.division_code, r.prefix)
                    GROUP BY 1)
        SELECT DATE '{d}' AS as_of_date, r.division_code, r.level, r.name, r.parent_code,
               coalesce(o.outlets_open, 0) AS outlets_open, coalesce(o.parcel, 0) AS parcel_outlets_open,
               coalesce(v.total, 0) AS villages_total, coalesce(v.covered, 0) AS villages_covered,
               CASE WHEN coalesce(v.total, 0) = 0 THEN NULL ELSE v.covered / v.total END AS coverage_rate,
               coalesce(up_agg.n, 0) AS upstream_accepted, coalesce(down_agg.n, 0) AS downstream_delivered,
               coalesce(x.n, 0) AS delivered,
               -- half-up on the decimal the double stands for (52.025 -> 52.03, not 52.02)
               CAST(round(CAST(x.p50 AS DECIMAL(38, 9)), 2) AS DOUBLE) AS lead_time_p50_h,
               CAST(round(CAST(x.p95 AS DECIMAL(38, 9)), 2) AS DOUBLE) AS lead_time_p95_h,
               CASE WHEN coalesce(x.n, 0) = 0 THEN NULL ELSE x.on_time / x.n END AS on_time_rate,
               coalesce(x.cold, 0) AS cold_chain_delivered,
               CASE WHEN coalesce(x.cold, 0) = 0 THEN NULL ELSE x.excursions / x.cold END AS cold_chain_excursion_rate,
               coalesce(ret_agg.n, 0) AS returned
        FROM divs r
        LEFT JOIN o_agg o ON o.prefix = r.prefix
        LEFT JOIN v_agg v ON v.prefix = r.prefix
        LEFT JOIN up_agg ON up_agg.prefix = r.prefix
        LEFT JOIN down_agg ON down_agg.prefix = r.prefix
        LEFT JOIN dlv_agg x ON x.prefix = r.prefix
        LEFT JOIN ret_agg ON ret_agg.prefix = r.prefix"""


COUNTY_SQL = """
    SELECT as_of_date, county_code, max(county_name) AS county_name, count(*) AS coops,
           count(*) FILTER (WHERE credit_tier = 'A') AS coops_tier_a,
           count(*) FILTER (WHERE credit_tier = 'B') AS coops_tier_b,
           count(*) FILTER (WHERE credit_tier = 'C') AS coops_tier_c,
           count(*) FILTER (WHERE credit_tier = 'D') AS coops_tier_d,
           CAST(sum(principal_active_cny) AS DECIMAL(18, 2)) AS principal_active_cny,
           CAST(sum(arrears_cny) AS DECIMAL(18, 2)) AS arrears_cny,
           avg(on_time_rate_12m) AS mean_on_time_rate_12m
    FROM coop_profile GROUP BY as_of_date, county_code"""


def _rows(rel: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    cols = rel.columns
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def gold(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, list[dict[str, Any]]]:
    """The four gold tables for D as lists of dicts (column order as docs/metrics.md lists them)."""
    coop = con.sql(coop_sql(as_of))
    con.execute("DROP TABLE IF EXISTS coop_profile")
    coop.create("coop_profile")
    return {
        "coop_credit_profile": _rows(con.sql("SELECT * FROM coop_profile")),
        "household_credit_profile": _rows(con.sql(household_sql(as_of))),
        "logistics_division_daily": _rows(con.sql(logistics_sql(as_of))),
        "credit_county_summary": _rows(con.sql(COUNTY_SQL)),
    }


# --- row-by-row comparison --------------------------------------------------------------------------

def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(a) == Decimal(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def compare(table: str, left: list[dict[str, Any]], right: list[dict[str, Any]],
            names: tuple[str, str] = ("spark", "duckdb")) -> list[str]:
    """Differences between two versions of one gold table, matched on its key; [] when identical."""
    key = KEYS[table]
    lk, rk = {r[key]: r for r in left}, {r[key]: r for r in right}
    problems = []
    if len(lk) != len(left) or len(rk) != len(right):
        problems.append(f"{table}: duplicate {key} ({len(left)}/{len(lk)} vs {len(right)}/{len(rk)})")
    for k in sorted(set(lk) - set(rk), key=str):
        problems.append(f"{table}[{k}]: only in {names[0]}")
    for k in sorted(set(rk) - set(lk), key=str):
        problems.append(f"{table}[{k}]: only in {names[1]}")
    for k in sorted(set(lk) & set(rk), key=str):
        a, b = lk[k], rk[k]
        if list(a) != list(b):
            problems.append(f"{table}: columns differ: {list(a)} vs {list(b)}")
            break
        for col in a:
            if not _same(a[col], b[col]):
                problems.append(f"{table}[{k}].{col}: {names[0]}={a[col]!r} {names[1]}={b[col]!r}")
    return problems
