"""`agrilake demo` (what `make run` runs): the main job on the embedded default, through Airflow.

Each step prints what it does; the DAGs run one after the other with `agrilake dags-test`
(`DAG.test()`, the code path of `airflow dags test`, all in one process so that one warm Spark
JVM serves every task), against the SQLite metadata DB that `make setup` prepared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from agrilake import doctor
from agrilake.core import context, lineage
from agrilake.orchestration.tasks import pipeline_dag_ids


def airflow_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(settings.airflow_home))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.home / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["AGRILAKE_DEMO"] = "1"
    for name, value in lineage.airflow_env(settings).items():
        env.setdefault(name, value)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_dags(dag_ids: list[str], logical_date: str, env: dict[str, str], log_dir: Path) -> None:
    """The DAGs in order for one date, in one `agrilake dags-test` process (one Airflow import, one
    warm Spark JVM for all of them): its progress lines here, everything it logs in a file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"dags-test_{logical_date}.log"
    cmd = [sys.executable, "-m", "agrilake.cli", "dags-test", "--date", logical_date, *dag_ids]
    with log_file.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            fh.write(line)
            if line.startswith((">> airflow dags test", "   agrilake_")):
                print(line.rstrip(), flush=True)
        rc = proc.wait()
    if rc != 0:
        text = log_file.read_text(errors="replace")
        print(text[-4000:], file=sys.stderr)
        raise SystemExit(f"a DAG run failed (see above); full log: {log_file}")


DEMO_START = "2026-10-01"
DEMO_DAYS = 30
DEMO_END = "2026-10-30"


def ensure_landing(settings, scale: float) -> None:
    from agrilake.devdata import generate

    manifest = Path(settings.landing) / "_manifest" / "defects.csv"
    run = Path(settings.landing) / "_manifest" / "run.json"
    # A landing from a generator before deliveries were facts has no nothing-to-deliver markers: its
    # systems' quiet days would look undelivered and gold would wait for them. Generated anew.
    current = run.exists() and "nothing_to_deliver_days" in run.read_text(encoding="utf-8")
    if manifest.exists() and current:
        print(f">> demo landing data present in {settings.landing}", flush=True)
        return
    if manifest.exists():
        print(f">> the demo landing data in {settings.landing} predates delivery markers: generating it anew",
              flush=True)
    print(f">> generating the demo landing data (scale {scale}, {DEMO_DAYS} days) into {settings.landing}", flush=True)
    rc = generate.main(["--start", DEMO_START, "--days", str(DEMO_DAYS), "--scale", str(scale), "--seed", "7",
                        "--landing", settings.landing])
    if rc:
        raise SystemExit("generating the demo data failed; see above")


def print_counts(ctx) -> None:
    from pyspark.sql import functions as F

    from agrilake.core import tables

    log = tables.read(ctx, "ops", "ingest_log")
    print("\nbronze: files and rows per feed (read = accepted + quarantined)")
    rows = (log.groupBy("system", "feed")
            .agg(F.sum(F.when(F.col("status") != "duplicate", 1).otherwise(0)).alias("files"),
                 F.sum("read").alias("read"), F.sum("accepted").alias("accepted"),
                 F.sum("quarantined").alias("quarantined"),
                 F.sum(F.when(F.col("status") == "duplicate", 1).otherwise(0)).alias("dup_files"))
            .orderBy("system", "feed").collect())
    print(f"  {'feed':<28}{'files':>6}{'read':>10}{'accepted':>10}{'quarant.':>10}{'dup files':>10}")
    for r in rows:
        print(f"  {r.system + '_' + r.feed:<28}{r.files:>6}{r.read:>10}{r.accepted:>10}{r.quarantined:>10}"
              f"{r.dup_files:>10}")
    if tables.exists(ctx, "ops", "silver_ledger"):
        print("\nsilver: outcome of every bronze row")
        led = (tables.read(ctx, "ops", "silver_ledger").groupBy("feed")
               .pivot("outcome", ["accepted", "quarantined", "duplicate", "held"]).count().orderBy("feed").collect())
        print(f"  {'feed':<28}{'accepted':>10}{'quarant.':>10}{'duplicate':>10}{'held':>8}")
        for r in led:
            print(f"  {r.feed:<28}{r.accepted or 0:>10}{r.quarantined or 0:>10}{r.duplicate or 0:>10}{r.held or 0:>8}")


def print_manifests(store) -> None:
    print("\nexports (manifest-complete datasets):")
    for platform in ("bank", "gov"):
        client = store.client(platform)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=platform)
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("_manifest.json")]
        for key in sorted(keys):
            print(f"  s3://{platform}/{key}")
    print(f"  endpoint {store.endpoint} (restart with `agrilake objectstore start`; "
          f"credentials in {store.credentials_file}, mode 0600)")


def print_gold_summary(ctx) -> None:
    from pyspark.sql import functions as F

    from agrilake.core import tables

    if not tables.exists(ctx, "gold", "coop_credit_profile"):
        return
    coops = tables.read(ctx, "gold", "coop_credit_profile")
    newest = coops.agg(F.max("as_of_date")).first()[0]
    print(f"\ngold as of {newest}: credit tiers per county")
    tiers = (coops.where(F.col("as_of_date") == newest).groupBy("county_code", "county_name")
             .pivot("credit_tier", ["A", "B", "C", "D"]).count().orderBy("county_code").collect())
    print(f"  {'county':<8}{'name':<12}{'A':>5}{'B':>5}{'C':>5}{'D':>5}")
    for r in tiers:
        print(f"  {r.county_code:<8}{(r.county_name or '')[:10]:<12}{r.A or 0:>5}{r.B or 0:>5}{r.C or 0:>5}{r.D or 0:>5}")
    logi = tables.read(ctx, "gold", "logistics_division_daily").where(
        (F.col("as_of_date") == newest) & (F.col("level") == "county"))
    print("\n  village coverage and cold chain per county")
    print(f"  {'county':<14}{'villages':>9}{'covered':>9}{'rate':>7}{'cc deliv.':>10}{'excursion':>10}")
    for r in logi.orderBy("division_code").collect():
        rate = "-" if r.coverage_rate is None else f"{r.coverage_rate:.2f}"
        exc = "-" if r.cold_chain_excursion_rate is None else f"{r.cold_chain_excursion_rate:.2f}"
        print(f"  {r.division_code:<14}{r.villages_total:>9}{r.villages_covered:>9}{rate:>7}"
              f"{r.cold_chain_delivered:>10}{exc:>10}")
    print(f"\n  tables: {ctx.settings.lakehouse}/gold/<table> (Delta, partitioned by as_of_date)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake demo", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="size of the generated demo data (1 = demo)")
    parser.add_argument("--skip-doctor", action="store_true")
    args = parser.parse_args(argv)
    os.environ["AGRILAKE_DEMO"] = "1"
    ctx = context.from_env("agrilake-demo-summary")
    settings = ctx.settings
    started = time.monotonic()
    if not args.skip_doctor:
        print(">> agrilake doctor", flush=True)
        if doctor.main([]) != 0:
            return 1
    ensure_landing(settings, args.scale)
    env = airflow_env(settings)
    logs = Path(settings.lakehouse).parent / "logs"
    from agrilake.services.objectstore import ObjectStore

    store = ObjectStore(settings=settings)
    print(f">> starting the local object store (SeaweedFS) in {store.root}, for the export DAG", flush=True)
    store.start()
    try:
        # Through Airflow, for the newest demo date: ingest picks up every delivery folder <= that date.
        run_dags(pipeline_dag_ids(ctx.contracts), DEMO_END, env, logs)
        print_manifests(store)
    finally:
        store.stop()
    print_counts(ctx)
    print_gold_summary(ctx)
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s. Lakehouse: {settings.lakehouse}; "
          f"Airflow logs: {logs}")
    return 0
