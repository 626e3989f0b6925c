"""Export to a real SeaweedFS (`weed mini` started by the project) from gold-shaped Delta tables.

The consumer side is written here independently of agrilake.stages.export and agrilake.delivery: boto3
with the platform's own read-only identity, SHA-256 of every listed file, pyarrow row counts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from botocore.exceptions import ClientError
from pyspark.sql import functions as F
from stdnum.cn import uscc

import agrilake.stages.gold as gold
from agrilake import __version__
from agrilake.core import ops, tables
from agrilake.core.contracts import GOLD_TABLES
from agrilake.delivery import lock, protocol
from agrilake.services.objectstore import ObjectStore, port_is_free, s3_client
from agrilake.services.processes import descendants
from agrilake.stages import export
from agrilake.stages.gold.credit import credit_county_summary

pytestmark = pytest.mark.integration

D1, D2, D3, D4, D5 = (date(2024, 6, d) for d in (27, 28, 29, 30, 26))
DG, DK, DM, DQ = (date(2024, 6, d) for d in (21, 20, 19, 25))  # gov small cells, kill drills, mixing, gate
BUCKET_KEYS = re.compile(r"^([a-z_]+/as_of=\d{4}-\d{2}-\d{2}/(part-[0-9a-f]{16}-\d{5}\.parquet|_manifest\.json"
                         r"|_contract-[0-9a-f]{16}\.yaml)|_deliveries/as_of=\d{4}-\d{2}-\d{2}\.json)$")

COOP_DDL = (
    "as_of_date date, coop_id string, uscc string, coop_name string, status string, province_code string, "
    "prefecture_code string, county_code string, township_code string, village_code string, county_name string, "
    "years_established int, active_members bigint, member_land_mu decimal(18,2), sales_12m_cny decimal(18,2), "
    "postal_sales_share_12m double, upstream_parcels_12m bigint, upstream_weight_kg_12m decimal(18,2), "
    "loans_active bigint, principal_active_cny decimal(18,2), arrears_cny decimal(18,2), max_dpd_12m int, "
    "on_time_rate_12m double, subsidies_12m_cny decimal(18,2), score int, credit_tier string, reason_codes array<string>"
)
HOUSEHOLD_SQL = """
    SELECT DATE'{d}' AS as_of_date, sha2(concat('p', cast(id AS string)), 256) AS person_key,
           element_at(array('<30', '30-44', '45-59', '60+'), cast(id % 4 AS int) + 1) AS age_band,
           array(concat('C', lpad(cast(id % 97 AS string), 4, '0'))) AS coop_ids, cast(1 + id % 6 AS int) AS household_size,
           cast(id % 300 / 10 AS decimal(18,2)) AS land_area_mu, cast(id % 2 AS bigint) AS loans_active,
           cast(id % 7 * 10000 AS decimal(18,2)) AS principal_active_cny, cast(0 AS decimal(18,2)) AS arrears_cny,
           cast(id % 40 AS int) AS max_dpd_12m, CASE WHEN id % 3 = 0 THEN NULL ELSE 0.9 END AS on_time_rate_12m,
           cast(id % 5 * 100 AS decimal(18,2)) AS subsidies_12m_cny
    FROM range({n})
"""
LOGISTICS_DDL = (
    "as_of_date date, division_code string, level string, name string, parent_code string, outlets_open bigint, "
    "parcel_outlets_open bigint, villages_total bigint, villages_covered bigint, coverage_rate double, "
    "upstream_accepted bigint, downstream_delivered bigint, delivered bigint, lead_time_p50_h decimal(18,2), "
    "lead_time_p95_h decimal(18,2), on_time_rate double, cold_chain_delivered bigint, "
    "cold_chain_excursion_rate double, returned bigint"
)
COUNTY_DDL = (
    "as_of_date date, county_code string, county_name string, coops bigint, coops_tier_a bigint, coops_tier_b bigint, "
    "coops_tier_c bigint, coops_tier_d bigint, principal_active_cny decimal(18,2), arrears_cny decimal(18,2), "
    "mean_on_time_rate_12m double"
)
TOWNS = ["城关镇", "东王坪乡", "平山镇", "温塘镇", "南甸镇", "岗南镇", "古月镇", "下口镇"]


# -- gold-shaped tables ----------------------------------------------------------------------
def uscc_of(i: int) -> str:
    body = f"93130131MA{i:07d}"
    return body + uscc.calc_check_digit(body)


def tier(score: int) -> str:
    """docs/metrics.md: A >= 700, B 640..699, C 580..639, D < 580 (the published contract checks it)."""
    return "A" if score >= 700 else "B" if score >= 640 else "C" if score >= 580 else "D"


def coop_rows(d: date, n: int, *, status: str = "active"):
    rows = []
    for i in range(n):
        village = f"13013110{i % 8:01d}{i:03d}"
        rows.append((
            d, f"C{i:04d}", uscc_of(i), f"平山县{TOWNS[i % 8]}果蔬专业合作社", status,
            village[:2], village[:4], village[:6], village[:9], village, "平山县",
            i % 12, 10 + i, Decimal(f"{100 + i}.50"), Decimal(f"{i * 1000}.00"), 0.3 if i % 2 else None, i * 3,
            Decimal(f"{i * 12}.25"), i % 3, Decimal(f"{(i % 3) * 50000}.00"), Decimal("0.00"), i % 40,
            0.95 if i % 2 else None, Decimal("0.00"), 600 + i, tier(600 + i), ["SALES_NONE"] if i == 0 else [],
        ))
    return rows


def publish(ctx, d: date, frames: dict, *, run_id: str = "test-publish") -> None:
    """Write D's partition of each gold table of `frames`, then record D's publication as the gold stage
    does after its four commits (exports read the versions of D's latest complete publication)."""
    for name, df in frames.items():
        tables.replace_partition(ctx, df, "gold", name, "as_of_date", d.isoformat())
    gold.record_publication(ctx, d, run_id, {t: 0 for t in GOLD_TABLES if tables.exists(ctx, "gold", t)})


def write_partition(ctx, name: str, d: date, df, *, run_id: str = "test-publish") -> None:
    publish(ctx, d, {name: df}, run_id=run_id)


def coops_df(ctx, d: date, n: int, **kw):
    return ctx.spark.createDataFrame(coop_rows(d, n, **kw), COOP_DDL)


def households_df(ctx, d: date, n: int):
    return ctx.spark.sql(HOUSEHOLD_SQL.format(d=d, n=n))


def write_coops(ctx, d: date, n: int, *, run_id: str = "test-publish", **kw) -> None:
    write_partition(ctx, "coop_credit_profile", d, coops_df(ctx, d, n, **kw), run_id=run_id)


def write_households(ctx, d: date, n: int, *, run_id: str = "test-publish") -> None:
    write_partition(ctx, "household_credit_profile", d, households_df(ctx, d, n), run_id=run_id)


def write_bank(ctx, d: date, coops: int, households: int, *, run_id: str = "test-publish", **kw) -> None:
    """Both bank datasets of D in one publication."""
    publish(ctx, d, {"coop_credit_profile": coops_df(ctx, d, coops, **kw),
                     "household_credit_profile": households_df(ctx, d, households)}, run_id=run_id)


COUNTIES = {"130131": "平山县", "130123": "正定县", "130121": "井陉县"}


def gov_coops(d: date) -> list[tuple]:
    """Cooperatives of three counties: 平山县 12 (8 with principal, 6 with an on-time rate); 正定县 3, of
    which one borrows and is in arrears, each with a rate; 井陉县 2 without loans, one with a rate."""
    rows = [list(r) for r in coop_rows(d, 17)]
    for i, r in enumerate(rows):
        county, j = ("130131", i) if i < 12 else ("130123", i - 12) if i < 15 else ("130121", i - 15)
        village = f"{county}100{j:03d}"
        r[5:11] = [village[:2], village[:4], county, village[:9], village, COUNTIES[county]]
        if county == "130123":
            r[18:21] = [1, Decimal("80000.00"), Decimal("1200.00")] if j == 0 else [0, Decimal("0.00"), Decimal("0.00")]
            r[22] = 0.9
        elif county == "130121":
            r[18:21] = [0, Decimal("0.00"), Decimal("0.00")]
            r[22] = 0.8 if j == 0 else None
    return [tuple(r) for r in rows]


def write_gov(ctx, d: date, coops: list[tuple] | None = None) -> None:
    """D's logistics, and its county summary derived by gold's own code from D's cooperative profile
    (`coops`, published with them, or the one already there)."""
    spark = ctx.spark
    divisions = [(d, "130131", "county", "平山县", "1301")] + [
        (d, f"130131{100 + i}", "township", town, "130131") for i, town in enumerate(TOWNS)]
    rows = [(*div, 3, 2, 10, 7, 0.7, 12, 30, 41, Decimal("20.50"), Decimal("47.25"), 0.93, 5, 0.2, 1)
            for div in divisions]
    frames = {"logistics_division_daily": spark.createDataFrame(rows, LOGISTICS_DDL)}
    if coops is not None:
        frames["coop_credit_profile"] = spark.createDataFrame(coops, COOP_DDL)
        profile = frames["coop_credit_profile"]
    else:
        profile = tables.read(ctx, "gold", "coop_credit_profile").where(F.col("as_of_date") == F.lit(d))
    frames["credit_county_summary"] = credit_county_summary(profile, ctx.contracts)
    publish(ctx, d, frames)


# -- the consumer ----------------------------------------------------------------------------
class NotComplete(Exception):
    pass


def consume(client, bucket: str, dataset: str, d: date) -> tuple[pa.Table, dict]:
    """What a platform does: trust the prefix only when the manifest and every file it lists check out."""
    prefix = f"{dataset}/as_of={d.isoformat()}/"
    try:
        manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + "_manifest.json")["Body"].read())
    except ClientError as exc:
        raise NotComplete(exc.response["Error"]["Code"]) from None
    assert (manifest["dataset"], manifest["as_of"]) == (dataset, d.isoformat())
    pieces = []
    for f in manifest["files"]:
        body = client.get_object(Bucket=bucket, Key=f["key"])["Body"].read()
        if len(body) != f["size"] or hashlib.sha256(body).hexdigest() != f["sha256"]:
            raise NotComplete(f"{f['key']} does not match the manifest")
        pieces.append(pq.read_table(io.BytesIO(body)))
    table = pa.concat_tables(pieces)
    assert table.num_rows == manifest["row_count"] == sum(f["rows"] for f in manifest["files"])
    # the delivery's data contract: listed with its digest, describing exactly these columns and parts
    body = client.get_object(Bucket=bucket, Key=manifest["contract"]["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest["contract"]["sha256"] and len(body) == manifest["contract"]["size"]
    contract = yaml.safe_load(body)
    assert (contract["kind"], contract["name"], contract["version"]) == ("DataContract", dataset,
                                                                         manifest["contract"]["version"])
    assert [p["name"] for p in contract["schema"][0]["properties"]] == table.column_names
    # the contract's server is exactly this delivery's parts, whatever else the prefix holds
    location = contract["servers"][0]["location"].removeprefix(f"s3://{bucket}/")
    assert location.startswith(prefix)
    assert [k for k in keys_under(client, bucket, prefix) if fnmatch.fnmatch(k, location)] == \
        sorted(f["key"] for f in manifest["files"])
    assert table.column_names == [c["name"] for c in manifest["schema"]]
    return table, manifest


def record_of(client, bucket: str, d: date) -> dict:
    """The platform's delivery record of D: which gold publication every dataset came from."""
    return json.loads(client.get_object(Bucket=bucket, Key=f"_deliveries/as_of={d.isoformat()}.json")["Body"].read())


def delivered_keys(client, bucket: str, dataset: str, d: date) -> list[str]:
    """Every key a complete delivery of `dataset` for D is made of: its parts, contract and manifest."""
    _, manifest = consume(client, bucket, dataset, d)
    return sorted([f["key"] for f in manifest["files"]] + [manifest["contract"]["key"],
                                                            f"{dataset}/as_of={d.isoformat()}/_manifest.json"])


def keys_under(client, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def error_code(call) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"]


def fail_on(client, operation: str, nth: int, *, key_suffix: str = ""):
    """Make the `nth` matching call of `operation` raise, as a dropped connection would."""
    seen = []

    def hook(params, **_):
        if params.get("Key", "").endswith(key_suffix):
            seen.append(params["Key"])
            if len(seen) == nth:
                raise ConnectionError(f"injected failure on {operation} #{nth}")

    client.meta.events.register(f"before-parameter-build.s3.{operation}", hook)
    return seen


# -- fixtures --------------------------------------------------------------------------------
S3_VARIABLES = ("AGRILAKE_S3_ENDPOINT", "AGRILAKE_S3_ACCESS_KEY", "AGRILAKE_S3_SECRET_KEY", "AGRILAKE_S3_CONN_ID")


@pytest.fixture(scope="module")
def lake(session_ctx, tmp_path_factory):
    """The run context of a lakehouse of this module's own, with gold partitions for D1 (bank and gov);
    others per test. No S3 credentials in its settings: every export is given its target or client."""
    ctx = session_ctx.with_settings(lakehouse=str(tmp_path_factory.mktemp("export-lake")), s3_endpoint=None,
                                    s3_access_key=None, s3_secret_key=None, s3_conn_id=None)
    write_bank(ctx, D1, 25, 40)
    write_gov(ctx, D1)
    return ctx


@pytest.fixture
def cli_env(lake, monkeypatch):
    """`agrilake export` is an entry point: its settings come from the environment, pointed at the lake."""
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", lake.settings.lakehouse)
    for name in S3_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def bank(store):
    return store.client("bank")


# -- tests -----------------------------------------------------------------------------------
def test_bank_export_is_manifest_complete_for_the_bank(lake, store, bank):
    from agrilake.core.quality import ExpectationOutcome, SuiteResult

    outcome = ExpectationOutcome("expect_column_values_to_not_be_null", "coop_id", "critical", True, "0 null")
    ops.record_dq_results(lake, SuiteResult("gold_coop_credit_profile", True, [outcome]), run_id="test-publish",
                          table="gold.coop_credit_profile", partition=D1.isoformat())  # as agrilake.stages.gold does

    results = export.export_platform(lake, "bank", D1, target=store.target())

    assert [r.dataset for r in results] == ["coop_credit_profile", "household_credit_profile"]
    coops, manifest = consume(bank, "bank", "coop_credit_profile", D1)
    gold = tables.read(lake, "gold", "coop_credit_profile").where(f"as_of_date = '{D1}'")
    assert coops.num_rows == gold.count() == 25
    assert coops.column("coop_id").to_pylist() == sorted(r.coop_id for r in gold.collect())
    assert coops.column("coop_name").to_pylist()[0] == "平山县城关镇果蔬专业合作社"
    assert coops.schema.field("principal_active_cny").type == pa.decimal128(18, 2)
    assert {"name": "reason_codes", "type": "array<string>", "nullable": True} in manifest["schema"]
    assert manifest["quality"]["success"] is True and manifest["quality"]["expectations"] == 1
    assert manifest["quality"]["run_id"] == "test-publish" and manifest["manifest_version"] == 2
    assert manifest["pipeline_version"] == __version__
    assert manifest["produced_at"].endswith("Z") and manifest["source"]["table"] == "gold.coop_credit_profile"
    assert manifest["source"]["publication"]["run_id"] == "test-publish"

    households, manifest = consume(bank, "bank", "household_credit_profile", D1)
    assert households.num_rows == 40 and manifest["quality"] is None
    assert all(BUCKET_KEYS.match(k) for k in keys_under(bank, "bank", "")), keys_under(bank, "bank", "")
    record = record_of(bank, "bank", D1)
    assert record["publication"]["run_id"] == "test-publish" and set(record["datasets"]) == {
        "coop_credit_profile", "household_credit_profile"}
    body = bank.get_object(Bucket="bank", Key=manifest["prefix"] + "_manifest.json")["Body"].read()
    assert record["datasets"]["household_credit_profile"]["manifest"]["sha256"] == hashlib.sha256(body).hexdigest()

    recorded = tables.read(lake, "ops", "export_manifests").where(f"as_of_date = '{D1}' AND platform = 'bank'")
    assert {(r.dataset, r.status, r.row_count) for r in recorded.collect()} == {
        ("coop_credit_profile", "complete", 25), ("household_credit_profile", "complete", 40)}


def test_gov_small_cells_are_suppressed_by_the_parties_of_each_figure(lake, store):
    """Issue 26: credit_county_summary suppressed by cooperatives, so a county of three cooperatives with one
    borrower exported that borrower's principal and arrears. Each figure now goes by its own parties,
    counted in the cooperative profile of the same publication; the manifest and the platform's
    record count the suppressed cells per column."""
    write_gov(lake, DG, gov_coops(DG))
    # exporting through an internal address, the platforms told where to read (the contract's server)
    public = lake.with_settings(export_public_endpoint="https://objects.gov.example")
    export.export_platform(public, "gov", DG, target=store.target())

    gov = store.client("gov")
    logistics, _ = consume(gov, "gov", "logistics_division_daily", DG)
    assert logistics.num_rows == 9 and "person_key" not in logistics.column_names
    counties, manifest = consume(gov, "gov", "credit_county_summary", DG)
    rows = {r["county_code"]: r for r in counties.to_pylist()}
    gold = {r.county_code: r for r in tables.read(lake, "gold", "credit_county_summary")
            .where(F.col("as_of_date") == F.lit(DG)).collect()}
    assert gold["130123"].principal_active_cny == Decimal("80000.00")  # gold keeps every figure
    # 平山县: 12 cooperatives, 8 with principal, 6 with a rate: nothing suppressed
    assert rows["130131"] == gold["130131"].asDict()
    # 正定县: three cooperatives, one borrower: its principal and arrears go, tiers and the rate (3) stay
    assert rows["130123"]["principal_active_cny"] is None and rows["130123"]["arrears_cny"] is None
    assert rows["130123"]["coops_tier_b"] == gold["130123"].coops_tier_b
    assert rows["130123"]["mean_on_time_rate_12m"] == pytest.approx(0.9)
    # 井陉县: two cooperatives without loans, one rate: tiers and the rate go; no loans describe nobody
    assert [rows["130121"][f"coops_tier_{t}"] for t in "abcd"] == [None] * 4
    assert rows["130121"]["mean_on_time_rate_12m"] is None and rows["130121"]["principal_active_cny"] == 0
    assert set(counties.column_names) == set(gold["130131"].asDict())  # no party count is exported
    cells = {"coops_tier_a": 1, "coops_tier_b": 1, "coops_tier_c": 1, "coops_tier_d": 1,
             "principal_active_cny": 1, "arrears_cny": 1, "mean_on_time_rate_12m": 1}
    assert manifest["disclosure_control"]["cells_suppressed"] == cells
    assert manifest["disclosure_control"]["rows_suppressed"] == 2 and manifest["disclosure_control"]["min_cell"] == 3
    record = record_of(gov, "gov", DG)
    assert record["datasets"]["credit_county_summary"]["cells_suppressed"] == cells
    assert record["datasets"]["logistics_division_daily"]["cells_suppressed"] is None
    contract = yaml.safe_load(gov.get_object(Bucket="gov", Key=manifest["contract"]["key"])["Body"].read())
    assert contract["servers"][0]["endpointUrl"] == "https://objects.gov.example"
    assert "principal_active_cny, arrears_cny when the cooperatives with principal" in contract["description"]["limitations"]


def test_reexport_replaces_the_delivery_and_collects_the_old_objects(lake, store, bank):
    write_coops(lake, D2, 10)
    prefix = f"coop_credit_profile/as_of={D2}/"
    small_parts = lake.with_settings(export_part_rows=4)
    export.export_platform(small_parts, "bank", D2, target=store.target(), datasets=["coop_credit_profile"])
    _, first = consume(bank, "bank", "coop_credit_profile", D2)
    assert [f["rows"] for f in first["files"]] == [4, 4, 2]
    assert keys_under(bank, "bank", prefix) == delivered_keys(bank, "bank", "coop_credit_profile", D2)

    # Same data again: the same names and bytes, so consumers can compare digests across exports.
    export.export_platform(small_parts, "bank", D2, target=store.target(), datasets=["coop_credit_profile"])
    _, again = consume(bank, "bank", "coop_credit_profile", D2)
    assert again["files"] == first["files"] and again["contract"] == first["contract"]

    write_coops(lake, D2, 6, status="dissolved")  # gold rebuilt: fewer rows
    export.export_platform(lake, "bank", D2, target=store.target(), datasets=["coop_credit_profile"])
    table, manifest = consume(bank, "bank", "coop_credit_profile", D2)
    assert table.num_rows == 6 and set(table.column("status").to_pylist()) == {"dissolved"}
    assert keys_under(bank, "bank", prefix) == delivered_keys(bank, "bank", "coop_credit_profile", D2)
    assert not {f["key"] for f in first["files"]} & set(keys_under(bank, "bank", prefix))  # the old parts: gone
    assert manifest["source"]["delta_version"] > first["source"]["delta_version"]


def test_an_interrupted_export_leaves_the_previous_delivery_whole_and_a_rerun_completes_it(lake, store, bank):
    write_coops(lake, D3, 9)
    small_parts = lake.with_settings(export_part_rows=4)
    export.export_platform(small_parts, "bank", D3, target=store.target(), datasets=["coop_credit_profile"])
    _, previous = consume(bank, "bank", "coop_credit_profile", D3)  # a complete earlier export is being replaced

    write_coops(lake, D3, 9, status="suspended")
    client = store.client("pipeline")
    uploads = fail_on(client, "PutObject", 2, key_suffix=".parquet")
    with pytest.raises(ConnectionError, match="injected"):
        export.export_platform(small_parts, "bank", D3, client=client, datasets=["coop_credit_profile"])
    assert len(uploads) == 2  # the first new part was uploaded, the second failed
    table, manifest = consume(bank, "bank", "coop_credit_profile", D3)  # the platform still has D, whole
    assert manifest["files"] == previous["files"] and set(table.column("status").to_pylist()) == {"active"}
    failed = tables.read(lake, "ops", "export_manifests").where(f"as_of_date = '{D3}' AND status = 'failed'")
    assert "injected" in failed.first().message

    export.export_platform(small_parts, "bank", D3, target=store.target(), datasets=["coop_credit_profile"])
    table, _ = consume(bank, "bank", "coop_credit_profile", D3)
    assert table.num_rows == 9 and set(table.column("status").to_pylist()) == {"suspended"}
    prefix = f"coop_credit_profile/as_of={D3}/"
    assert keys_under(bank, "bank", prefix) == delivered_keys(bank, "bank", "coop_credit_profile", D3)


def test_an_export_reads_the_published_date_after_optimize_and_vacuum_removed_its_version(lake, store, bank,
                                                                                         tmp_path):
    """Exports read D as its latest complete publication left it. After OPTIMIZE has compacted D's files
    and VACUUM deleted the old ones, the published version itself is unreadable: the export reads the
    newest version whose D partition is unchanged, and when that is gone too it says what to do. Past the
    Delta log's retention it cannot tell whether D changed: it says so, not that a republish failed."""
    own = lake.with_settings(lakehouse=str(tmp_path / "lake"))
    table = "coop_credit_profile"
    write_partition(own, table, D1, own.spark.createDataFrame(coop_rows(D1, 12), COOP_DDL).repartition(3))
    published = ops.gold_publication(own, D1)["versions"][table]
    write_coops(own, D2, 5)  # another date's publish: D1's partition untouched
    assert tables.optimize(own, "gold", table)["files_removed"] >= 3
    tables.vacuum(own, "gold", table, 0)
    with pytest.raises(Exception, match="FILE_NOT_EXIST|FileNotFound"):
        tables.read(own, "gold", table, version=published).where(f"as_of_date = '{D1}'").collect()

    export.export_platform(own, "bank", D1, target=store.target(), datasets=[table])
    rows, manifest = consume(bank, "bank", table, D1)
    assert rows.num_rows == 12
    assert {k: v for k, v in manifest["source"].items() if k != "publication"} == {
        "table": f"gold.{table}", "published_version": published,
        "delta_version": tables.latest_version(own, "gold", table)}

    # A publish of D1 killed after this table's commit: the export must not see its rows...
    killed = own.spark.createDataFrame(coop_rows(D1, 3, status="dissolved"), COOP_DDL)
    tables.replace_partition(own, killed, "gold", table, "as_of_date", D1.isoformat())
    export.export_platform(own, "bank", D1, target=store.target(), datasets=[table])
    rows, manifest = consume(bank, "bank", table, D1)
    assert rows.num_rows == 12 and "dissolved" not in rows.column("status").to_pylist()
    assert manifest["source"]["delta_version"] == tables.latest_version(own, "gold", table) - 1
    # ...and once VACUUM has removed the published rows' files too, it refuses, saying what to do.
    tables.vacuum(own, "gold", table, 0)
    with pytest.raises(export.ExportError, match=rf"a republish that did not finish.*`agrilake gold --date {D1}`"):
        export.export_platform(own, "bank", D1, target=store.target(), datasets=[table])
    consume(bank, "bank", table, D1)  # the complete earlier delivery is untouched: refused before upload

    # D1 published whole again, then more commits, and the log ages past delta.logRetentionDuration (30
    # days: the files are backdated 40) until a checkpoint lets Delta's own cleanup delete those commits.
    write_partition(own, table, D1, coops_df(own, D1, 7))
    location = tables.path(own, "gold", table)
    tables.replace_partition(own, coops_df(own, D2, 4), "gold", table, "as_of_date", D2.isoformat())
    month_ago = time.time() - 40 * 86400
    for f in (tmp_path / "lake" / "gold" / table / "_delta_log").iterdir():
        os.utime(f, (month_ago, month_ago))
    own.spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('delta.checkpointInterval' = '1')")
    tables.replace_partition(own, coops_df(own, D3, 2), "gold", table, "as_of_date", D3.isoformat())
    assert tables.last_version_with_partition_of(own, "gold", table, ops.gold_publication(own, D1)["versions"][table],
                                                 "as_of_date", D1.isoformat()) is None
    with pytest.raises(export.ExportError, match=rf"older than the table's Delta log keeps.*Nothing is wrong with the "
                                                  rf"data; rebuild it: `agrilake gold --date {D1}`") as err:
        export.export_platform(own, "bank", D1, target=store.target(), datasets=[table])
    assert "did not finish" not in str(err.value)
    assert consume(bank, "bank", table, D1)[0].num_rows == 12  # still the earlier delivery
    write_partition(own, table, D1, coops_df(own, D1, 7))  # what it said to run
    export.export_platform(own, "bank", D1, target=store.target(), datasets=[table])
    assert consume(bank, "bank", table, D1)[0].num_rows == 7


# A delivery in a process of its own, with no Spark: the plan a test prepared, delivered under the lock as
# agrilake.stages.export does, and SIGKILLed where AGRILAKE_CRASH_AT says.
DELIVER = """
import pickle, sys
from agrilake.core.credentials import s3_target
from agrilake.core.s3 import s3_client
from agrilake.core.settings import Settings
from agrilake.delivery import lock, protocol
plan = pickle.loads(open(sys.argv[1], "rb").read())
client = s3_client(s3_target(Settings.from_env()))
with lock.hold(client, plan.bucket, protocol.lock_key(plan.as_of), ttl=60, wait=60, run_id="drill",
               what="the drill") as lease:
    protocol.deliver(client, plan, lease=lease, chunk_bytes=16 * protocol.MIB)
"""


def test_an_export_killed_at_every_step_leaves_the_platform_a_complete_date_and_a_rerun_completes_it(
        lake, store, bank, tmp_path, caplog):
    """SIGKILL at every step of the delivery protocol (a process of its own, no Spark), replacing a complete
    old D (both bank datasets) by a new publication: each dataset stays complete (the old or the new), the
    record names the publication it says, the dead export's lock is taken over at once, and a rerun
    completes D with the bytes of an uninterrupted run: the stage itself (`export_platform`, which reads
    and writes everything again) after the kill that leaves D mixed, the delivery of the same plan after
    the others (the stage's plan is byte for byte that plan: it reruns at the end too). Last, a real
    `agrilake export` killed after the delivery, before its ops record: the rerun leaves exactly one
    `complete` record per dataset."""
    datasets = ("coop_credit_profile", "household_credit_profile")
    pipeline, creds = store.client("pipeline"), store.credentials()["pipeline"]
    write_bank(lake, DK, 6, 5, run_id="drill-1")
    old = export.prepare(lake, pipeline, "bank", DK, tmp_path / "old")
    write_bank(lake, DK, 6, 7, status="suspended", run_id="drill-2")
    new = export.prepare(lake, pipeline, "bank", DK, tmp_path / "new")
    (tmp_path / "new.plan").write_bytes(pickle.dumps(new))
    files = {name: {x.dataset: x.manifest["files"] for x in plan.datasets} for name, plan in (("old", old), ("new", new))}
    assert all(files["old"][d] != files["new"][d] for d in datasets)
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": lake.settings.lakehouse, "AGRILAKE_S3_ENDPOINT": store.endpoint,
           "AGRILAKE_S3_ACCESS_KEY": creds["access_key"], "AGRILAKE_S3_SECRET_KEY": creds["secret_key"],
           "AGRILAKE_SPARK_MASTER": "local[1]", "AGRILAKE_SHUFFLE_PARTITIONS": "1"}
    env.pop("AGRILAKE_S3_CONN_ID", None)

    def deliver(plan) -> None:
        with lock.hold(pipeline, "bank", protocol.lock_key(DK), ttl=60, wait=60, run_id="test", what="test") as lease:
            protocol.deliver(pipeline, plan, lease=lease, chunk_bytes=16 * protocol.MIB)

    def seen() -> tuple[dict[str, str], str]:
        """Which delivery a consumer takes of each dataset (each must be complete), and the record's run."""
        which = {}
        for d in datasets:
            manifest = consume(bank, "bank", d, DK)[1]
            which[d] = next((name for name, by in files.items() if by[d] == manifest["files"]), "neither")
        return which, record_of(bank, "bank", DK)["publication"]["run_id"]

    def records() -> int:
        return tables.read(lake, "ops", "export_manifests").where(f"as_of_date = '{DK}'").count()

    coop, household = datasets
    expected = {  # point -> what the platform has of D after the kill
        "after_export_lock": ({coop: "old", household: "old"}, "drill-1"),
        "after_export_parts": ({coop: "old", household: "old"}, "drill-1"),
        "after_export_manifest": ({coop: "new", household: "old"}, "drill-1"),  # a record that disagrees
        "after_export_manifests": ({coop: "new", household: "new"}, "drill-1"),
        "after_export_delivery_record": ({coop: "new", household: "new"}, "drill-2"),
    }
    for point, after_kill in expected.items():
        deliver(old)
        assert seen() == ({coop: "old", household: "old"}, "drill-1")
        killed = subprocess.run([sys.executable, "-c", DELIVER, str(tmp_path / "new.plan")],
                                env={**env, "AGRILAKE_CRASH_AT": point}, capture_output=True, text=True, timeout=120)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        assert seen() == after_kill, point
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="agrilake.delivery.lock"):
            if point == "after_export_manifest":
                export.export_platform(lake, "bank", DK, client=pipeline)  # the rerun
            else:
                deliver(new)
        assert "is a process of this machine that no longer runs" in caplog.text, point
        assert seen() == ({coop: "new", household: "new"}, "drill-2"), point  # the same bytes as the plan
        for d in datasets:
            assert keys_under(bank, "bank", f"{d}/as_of={DK}/") == delivered_keys(bank, "bank", d, DK), point
        assert f"_deliveries/as_of={DK}.lock" not in keys_under(bank, "bank", "_deliveries/"), point  # released

    # A real `agrilake export` killed once D is delivered, before its ops record.
    deliver(old)
    before = records()
    killed = subprocess.run([sys.executable, "-m", "agrilake.cli", "export", "--platform", "bank", "--date",
                             DK.isoformat()], env={**env, "AGRILAKE_CRASH_AT": "before_export_record"},
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert seen() == ({coop: "new", household: "new"}, "drill-2") and records() == before
    export.export_platform(lake, "bank", DK, target=store.target())
    assert seen() == ({coop: "new", household: "new"}, "drill-2")
    assert records() == before + 2
    last = tables.read(lake, "ops", "export_manifests").where(f"as_of_date = '{DK}'").orderBy(
        F.col("exported_at").desc()).limit(2).collect()
    assert {r.status for r in last} == {"complete"}


def test_an_export_waits_for_another_of_the_same_platform_and_date_and_leaves_its_uploads_alone(
        lake, store, bank, caplog):
    """Issue 26: an export started beside another (the CLI beside the DAG's) aborted the other's multipart
    uploads. Now it waits for the other's lock, and goes on once the other is done."""
    write_coops(lake, D4, 3)
    pipeline = store.client("pipeline")
    key = f"coop_credit_profile/as_of={D4}/part-theirs.parquet"
    results, errors = [], []
    with lock.hold(pipeline, "bank", protocol.lock_key(D4), ttl=60, wait=0, run_id="the-dag", what="the DAG's export"):
        upload = pipeline.create_multipart_upload(Bucket="bank", Key=key)["UploadId"]  # the DAG's, in flight
        etag = pipeline.upload_part(Bucket="bank", Key=key, UploadId=upload, PartNumber=1, Body=b"x")["ETag"]

        def by_hand():
            try:
                results.extend(export.export_platform(lake, "bank", D4, target=store.target(),
                                                      datasets=["coop_credit_profile"]))
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        with caplog.at_level(logging.WARNING, logger="agrilake.delivery.lock"):
            other = threading.Thread(target=by_hand)
            other.start()
            deadline = time.monotonic() + 120
            while "another export holds" not in caplog.text and time.monotonic() < deadline and other.is_alive():
                time.sleep(0.2)
        assert "another export holds s3://bank/_deliveries/as_of=2024-06-30.lock (run the-dag" in caplog.text, errors
        assert keys_under(bank, "bank", f"coop_credit_profile/as_of={D4}/") == []  # nothing of its own yet
        pipeline.complete_multipart_upload(Bucket="bank", Key=key, UploadId=upload,  # not aborted under it
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    other.join(timeout=300)
    assert not errors and [r.dataset for r in results] == ["coop_credit_profile"]
    assert consume(bank, "bank", "coop_credit_profile", D4)[0].num_rows == 3


def test_the_export_lock_is_taken_over_only_from_a_dead_or_silent_holder(store):
    """The lease itself (no Spark): a second holder waits and gives up naming the first; a holder on
    another machine that stopped renewing is taken over after the TTL; one that was taken over cannot
    switch anything."""
    client, key = store.client("pipeline"), "_deliveries/as_of=2000-01-01.lock"
    with lock.hold(client, "bank", key, ttl=60, wait=0, run_id="first", what="first"):
        with pytest.raises(lock.ExportLocked, match=r"another export holds s3://bank/_deliveries/as_of=2000-01-01.lock "
                                                    r"\(run first \(first\), pid \d+ on "):
            lock.acquire(client, "bank", key, ttl=60, wait=0.5, run_id="second", what="second")
    assert keys_under(client, "bank", key) == []  # released

    elsewhere = {**lock.holder("gone", "elsewhere"), "host": "another-machine", "pid": 1}
    client.put_object(Bucket="bank", Key=key, Body=json.dumps(elsewhere).encode())
    with pytest.raises(lock.ExportLocked):
        lock.acquire(client, "bank", key, ttl=60, wait=0.5, run_id="third", what="third")  # alive as far as we know
    lease = lock.acquire(client, "bank", key, ttl=1, wait=10, run_id="third", what="third")  # silent past its TTL
    time.sleep(1.5)  # and now this one stops renewing (acquire alone has no heartbeat)
    stolen = lock.acquire(client, "bank", key, ttl=1, wait=10, run_id="fourth", what="fourth")
    with pytest.raises(lock.LockLost, match="now names another export"):
        lease.check()
    stolen.release()
    assert keys_under(client, "bank", key) == []


def test_a_dataset_asked_for_alone_brings_the_others_when_they_came_from_another_publication(lake, store, bank,
                                                                                          caplog):
    """The platform's D is one publication: exporting one dataset after a republish would have left the other
    from the previous one, with nothing saying so. It exports both (a WARNING says why); with the same
    publication it exports the one asked for, and the record keeps naming both."""
    write_bank(lake, DM, 3, 3, run_id="mix-1")
    export.export_platform(lake, "bank", DM, target=store.target())
    _, households = consume(bank, "bank", "household_credit_profile", DM)
    assert households["source"]["publication"]["run_id"] == "mix-1"

    write_coops(lake, DM, 3, status="suspended", run_id="mix-2")  # a republish of DM
    with caplog.at_level(logging.WARNING, logger="agrilake.stages.export"):
        results = export.export_platform(lake, "bank", DM, target=store.target(), datasets=["coop_credit_profile"])
    assert [r.dataset for r in results] == ["coop_credit_profile", "household_credit_profile"]
    assert "household_credit_profile (from gold run mix-1) came from another gold publication" in caplog.text
    record = record_of(bank, "bank", DM)
    assert record["publication"]["run_id"] == "mix-2"
    assert {d: e["source"]["publication"]["run_id"] for d, e in record["datasets"].items()} == {
        "coop_credit_profile": "mix-2", "household_credit_profile": "mix-2"}

    _, households = consume(bank, "bank", "household_credit_profile", DM)
    results = export.export_platform(lake, "bank", DM, target=store.target(), datasets=["coop_credit_profile"])
    assert [r.dataset for r in results] == ["coop_credit_profile"]
    assert consume(bank, "bank", "household_credit_profile", DM)[1] == households  # untouched
    body = bank.get_object(Bucket="bank", Key=f"household_credit_profile/as_of={DM}/_manifest.json")["Body"].read()
    assert record_of(bank, "bank", DM)["datasets"]["household_credit_profile"]["manifest"]["sha256"] == \
        hashlib.sha256(body).hexdigest()


def test_multipart_uploads_are_aborted_on_error_and_leftovers_swept(lake, store, bank):
    write_households(lake, D4, 120_000)
    prefix = f"household_credit_profile/as_of={D4}/"
    multipart = lake.with_settings(export_multipart_mb=5)
    client = store.client("pipeline")
    parts = fail_on(client, "UploadPart", 2)
    with pytest.raises(ConnectionError, match="injected"):
        export.export_platform(multipart, "bank", D4, client=client, datasets=["household_credit_profile"])
    assert len(parts) == 2
    assert client.list_multipart_uploads(Bucket="bank", Prefix=prefix).get("Uploads", []) == []

    # A killed exporter cannot abort: it leaves an upload with a part behind. The next export sweeps it.
    leftover = client.create_multipart_upload(Bucket="bank", Key=prefix + "part-00000.parquet")["UploadId"]
    client.upload_part(Bucket="bank", Key=prefix + "part-00000.parquet", UploadId=leftover, PartNumber=1,
                       Body=b"x" * (5 * 1024 * 1024))
    started = time.monotonic()
    [result] = export.export_platform(multipart, "bank", D4, target=store.target(),
                                      datasets=["household_credit_profile"])
    elapsed = time.monotonic() - started
    assert store.client("pipeline").list_multipart_uploads(Bucket="bank", Prefix=prefix).get("Uploads", []) == []
    table, manifest = consume(bank, "bank", "household_credit_profile", D4)
    assert table.num_rows == 120_000 and manifest["files"][0]["size"] > 5 * 1024 * 1024
    assert "-" in bank.head_object(Bucket="bank", Key=manifest["files"][0]["key"])["ETag"]  # multipart
    print(f"\nexport of {result.rows} household rows: {result.bytes:,} bytes in {elapsed:.2f} s "
          f"({result.seconds:.2f} s reading, checking, uploading and verifying; the rest is the ops record)")


def test_platform_keys_can_only_read_their_own_bucket(store, lake, bank):
    gov = store.client("gov")
    bank.list_objects_v2(Bucket="bank")
    assert error_code(lambda: bank.list_objects_v2(Bucket="gov")) == "AccessDenied"
    assert error_code(lambda: bank.get_object(Bucket="gov", Key="credit_county_summary/x")) == "AccessDenied"
    assert error_code(lambda: gov.list_objects_v2(Bucket="bank")) == "AccessDenied"
    assert error_code(lambda: bank.put_object(Bucket="bank", Key="planted.parquet", Body=b"x")) == "AccessDenied"
    assert error_code(lambda: bank.delete_object(Bucket="bank", Key=f"coop_credit_profile/as_of={D1}/_manifest.json")) \
        == "AccessDenied"
    assert error_code(lambda: bank.create_bucket(Bucket="bank-copy")) == "AccessDenied"
    # the writer writes objects, nothing more: no bucket made or removed, none but its own touched
    pipeline = store.client("pipeline")
    assert error_code(lambda: pipeline.create_bucket(Bucket="pipeline-made")) == "AccessDenied"
    assert error_code(lambda: pipeline.delete_bucket(Bucket="gov")) == "AccessDenied"


def test_the_compose_init_makes_its_buckets_through_the_master_and_a_rerun_changes_nothing(store, tmp_path):
    """infra/compose.yaml's seaweedfs-init as compose renders it, run against a real SeaweedFS (the session's
    store stands in for the compose service): with no S3 identity allowed to make a bucket, this is how the
    three buckets come to exist, and every `docker compose up` runs it again."""
    from tests.unit.test_infra import COMPOSE_FILE, compose_binary, dummy_secrets

    buckets = {"AGRILAKE_LAKE_BUCKET": "init-lake", "AGRILAKE_BANK_BUCKET": "init-bank",
               "AGRILAKE_GOV_BUCKET": "init-gov"}
    (tmp_path / "empty.env").write_text("")
    config = subprocess.run([str(compose_binary()), "--env-file", str(tmp_path / "empty.env"), "-f",
                             str(COMPOSE_FILE), "config", "--format", "json"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **dummy_secrets(), **buckets})
    assert config.returncode == 0, config.stderr
    script = json.loads(config.stdout)["services"]["seaweedfs-init"]["command"][0].replace("$$", "$")
    ports = store.state()["ports"]
    master, filer = f"127.0.0.1:{ports['master.port']}", f"127.0.0.1:{ports['filer.port']}"
    env = {"PATH": f"{Path(store.weed).parent}:/usr/bin:/bin", "SEAWEEDFS_MASTER": master, "SEAWEEDFS_FILER": filer}

    def weed_shell(commands: str) -> str:
        return subprocess.run([store.weed, "shell", f"-master={master}", f"-filer={filer}"], input=commands,
                              capture_output=True, text=True, timeout=60).stdout

    try:
        for _ in range(2):
            run = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=180)
            assert run.returncode == 0, run.stdout + run.stderr
            assert [line for line in run.stdout.splitlines() if line.endswith("ready")] == [
                f"seaweedfs-init: bucket {b} ready" for b in buckets.values()]
        listed = weed_shell("s3.bucket.list\n")
        assert all(b in listed for b in buckets.values()), listed
    finally:
        weed_shell("".join(f"s3.bucket.delete -name {b}\n" for b in buckets.values()))


def test_a_wrong_secret_is_rejected(store):
    good = store.target("bank")
    wrong = dataclasses.replace(good, secret_key=good.secret_key[::-1])
    assert error_code(lambda: s3_client(wrong, max_attempts=1).list_objects_v2(Bucket="bank")) == "SignatureDoesNotMatch"


def test_the_privacy_guard_refuses_before_anything_is_uploaded(lake, store, bank):
    rows = coop_rows(D5, 3)
    rows[1] = rows[1][:4] + ("+86 13812345678",) + rows[1][5:]  # a phone number in `status`
    write_partition(lake, "coop_credit_profile", D5, lake.spark.createDataFrame(rows, COOP_DDL))
    with pytest.raises(export.PrivacyViolation, match="column 'status' has 1 value.* mobile phone") as err:
        export.export_platform(lake, "bank", D5, target=store.target(), datasets=["coop_credit_profile"])
    assert "13812345678" not in str(err.value)
    assert keys_under(bank, "bank", f"coop_credit_profile/as_of={D5}/") == []
    refused = tables.read(lake, "ops", "export_manifests").where(f"as_of_date = '{D5}'").first()
    assert refused.status == "refused"


def test_the_quality_gate_is_the_validation_of_the_publication_exported(lake, store, bank):
    """Issue 26: the gate read the newest validation of D, not the publication's own: a later run's passing
    validation let through a publication whose own failed, and a later run that failed its gate (and so
    published nothing) blocked the data that was published."""
    def validated(*runs: tuple[str, bool]) -> None:
        """ops.dq_results rows of a critical expectation, validated by each run in turn (one commit)."""
        start = datetime.now(UTC).replace(tzinfo=None)
        rows = [{"run_id": run, "suite": "gold_coop_credit_profile", "table_name": "gold.coop_credit_profile",
                 "partition": DQ.isoformat(), "expectation": "expect_column_values_to_be_unique",
                 "column_name": "coop_id", "kwargs": "{}", "severity": "critical", "success": ok,
                 "observed": "0 duplicates" if ok else "1 duplicate", "validated_at": start + timedelta(seconds=i)}
                for i, (run, ok) in enumerate(runs)]
        ops.ensure(lake)
        tables.append(lake, ops.rows_df(lake, ops.ddl(lake, "dq_results"), rows), "ops", "dq_results")

    write_coops(lake, DQ, 2, run_id="gate-1")
    validated(("gate-1", False), ("gate-2", True))  # gate-2 validated D later and never published
    with pytest.raises(export.ExportError, match=r"gold.coop_credit_profile for 2024-06-25 by the gold run that "
                                                 r"published it \(gate-1\) failed critical checks "
                                                 r"\(expect_column_values_to_be_unique\(coop_id\)\)"):
        export.export_platform(lake, "bank", DQ, target=store.target(), datasets=["coop_credit_profile"])
    assert keys_under(bank, "bank", f"coop_credit_profile/as_of={DQ}/") == []

    write_coops(lake, DQ, 2, run_id="gate-3")
    validated(("gate-3", True), ("gate-4", False))  # gate-4's gate failed: it published nothing
    export.export_platform(lake, "bank", DQ, target=store.target(), datasets=["coop_credit_profile"])
    quality = consume(bank, "bank", "coop_credit_profile", DQ)[1]["quality"]
    assert (quality["run_id"], quality["success"]) == ("gate-3", True)


def test_cli_export_and_links_never_show_a_secret(spark, store, cli_env, capsys, caplog):
    monkeypatch = cli_env
    pipeline = store.target("pipeline")
    monkeypatch.setenv("AGRILAKE_S3_ENDPOINT", store.endpoint)
    monkeypatch.setenv("AGRILAKE_S3_ACCESS_KEY", pipeline.access_key)
    monkeypatch.setenv("AGRILAKE_S3_SECRET_KEY", pipeline.secret_key)
    caplog.set_level(logging.DEBUG)  # botocore's request logging included
    # main() asks for the production session settings; give the shared test session its own back after.
    confs = {k: spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.databricks.delta.snapshotPartitions")}
    try:
        assert export.main(["--platform", "bank", "--date", D1.isoformat(), "--link", "--expires", "600"]) == 0
    finally:
        for k, v in confs.items():
            spark.conf.set(k, v)

    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert "exported gold.coop_credit_profile" in caplog.text and out.out.count("link ") == 2
    for identity in ("pipeline", "bank", "gov"):
        assert store.target(identity).secret_key not in text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("agrilake"))
    assert "exporting" in ours or "S3 endpoint" in ours
    assert pipeline.access_key not in ours  # masked in our own logs (a presigned link itself carries it)


def test_presigned_manifest_links_work_then_expire(store, cli_env, capsys):
    monkeypatch = cli_env
    monkeypatch.setenv("AGRILAKE_EXPORTS", str(store.root))  # credentials from the local store's file
    assert export.main(["--platform", "bank", "--date", D1.isoformat(), "--links-only", "--expires", "2"]) == 0
    links = dict(re.findall(r"^link (\S+) .*: (http\S+)$", capsys.readouterr().out, re.M))
    assert set(links) == {"coop_credit_profile", "household_credit_profile"}
    manifest = json.loads(urllib.request.urlopen(links["coop_credit_profile"], timeout=10).read())
    assert manifest["dataset"] == "coop_credit_profile"
    time.sleep(3)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(links["coop_credit_profile"], timeout=10)
    assert err.value.code == 403

    assert export.main(["--platform", "bank", "--date", "2030-01-01", "--links-only"]) == 1
    assert "is not exported" in capsys.readouterr().err


def test_local_store_secrets_are_private_and_never_in_its_logs(store):
    for path in (store.credentials_file, store.s3_config_file):
        assert path.stat().st_mode & 0o777 == 0o600
    secrets = [store.target(i).secret_key for i in ("pipeline", "bank", "gov")]
    public = store.log_file.read_text(errors="replace") + store.state_file.read_text() + json.dumps(store.status())
    assert not any(s in public for s in secrets)


class Uploading(threading.Thread):
    """A multipart upload of `size` zero bytes running in the background; `sent` is set once bytes flow."""

    def __init__(self, client, bucket: str, key: str, size: int):
        super().__init__(daemon=True)
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.bytes, self.error, self.sent = 0, None, threading.Event()
        self.start()

    def _progress(self, n: int) -> None:
        self.bytes += n
        self.sent.set()

    def run(self) -> None:
        from boto3.s3.transfer import TransferConfig

        zeros = io.BufferedReader(_Zeros(self.size), 8 << 20)
        try:
            self.client.upload_fileobj(zeros, self.bucket, self.key, Callback=self._progress,
                                       Config=TransferConfig(multipart_chunksize=8 << 20, max_concurrency=1))
        except Exception as exc:  # what the client sees when the store goes away under it
            self.error = exc
        self.sent.set()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def test_objectstore_command_starts_stops_and_keeps_data(settings, tmp_path, capsys):
    root = str(tmp_path / "store")
    from agrilake.services.objectstore import main

    assert main(["start", "--root", root, "--port", "0"]) == 0
    local = ObjectStore(settings=settings, root=root)
    try:
        assert "object store running: http://127.0.0.1:" in capsys.readouterr().out
        assert main(["status", "--root", root]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["running"] and set(status["identities"]) == {"pipeline", "bank", "gov"}
        local.client().put_object(Bucket="gov", Key="kept.txt", Body=b"kept")
        creds = local.credentials_file.read_bytes()
        port = local.state()["ports"]["s3.port"]
        # stopped in the middle of an upload: every process of the store ends, the upload with it
        upload = Uploading(local.client(max_attempts=1), "gov", "big.bin", 1 << 30)
        upload.sent.wait(60)
        tree = [psutil.Process(p) for p in {local.pid(), *descendants(local.pid())}]
        assert main(["stop", "--root", root]) == 0 and not local.is_running()
        upload.join(60)
        assert 0 < upload.bytes < upload.size and upload.error is not None, (upload.bytes, upload.error)
        assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert port_is_free(port)
        assert main(["start", "--root", root, "--port", "0"]) == 0
        # start returns only once the volumes on disk are served again (S3 answers earlier than that)
        assert list(local.data_dir.rglob("*.dat")) and local._unregistered_volumes() == set()
        assert local.client("gov").get_object(Bucket="gov", Key="kept.txt")["Body"].read() == b"kept"
        assert error_code(lambda: local.client("gov").head_object(Bucket="gov", Key="big.bin")) == "404"
        assert local.credentials_file.read_bytes() == creds
    finally:
        local.stop()


def test_the_demo_summary_prints_manifests_endpoint_and_the_newest_gold(lake, store, capsys):
    from agrilake.devdata import demo

    export.export_platform(lake, "gov", D1, target=store.target())
    demo.print_manifests(store)
    demo.print_gold_summary(lake)
    out = capsys.readouterr().out
    assert f"s3://gov/logistics_division_daily/as_of={D1}/_manifest.json" in out
    assert f"endpoint {store.endpoint} " in out
    newest = tables.read(lake, "gold", "coop_credit_profile").agg({"as_of_date": "max"}).first()[0]
    assert f"gold as of {newest}: credit tiers per county" in out and "village coverage and cold chain" in out
    assert f"{lake.settings.lakehouse}/gold/<table>" in out
