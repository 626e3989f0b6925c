"""`agrilake demo` (what `make run` runs): the main job on the embedded default, through Airflow.

Each step prints what it does; the DAGs run with `airflow dags test`, the real Airflow code path
in one process, against the SQLite metadata DB that `make setup` prepared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from jobs import doctor
from jobs.settings import get_settings


def airflow_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(settings.airflow_home))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.home / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["AGRILAKE_DEMO"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_dag(dag_id: str, logical_date: str, env: dict[str, str], log_dir: Path) -> None:
    """Run one DAG for one date through Airflow; on failure, show the log's tail and stop."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{dag_id}_{logical_date}.log"
    started = time.monotonic()
    print(f">> airflow dags test {dag_id} {logical_date}", flush=True)
    with log_file.open("w") as fh:
        proc = subprocess.run(["airflow", "dags", "test", dag_id, logical_date], env=env, stdout=fh,
                              stderr=subprocess.STDOUT)
    text = log_file.read_text(errors="replace")
    tail = text.split("DagRun Finished")[-1] if "DagRun Finished" in text else ""
    if proc.returncode != 0 or "state=success" not in tail:
        print(text[-4000:], file=sys.stderr)
        raise SystemExit(f"DAG {dag_id} failed for {logical_date}; full log: {log_file}")
    print(f"   {dag_id} {logical_date}: success in {time.monotonic() - started:.0f}s (log: {log_file})", flush=True)


DEMO_START = "2026-10-01"
DEMO_DAYS = 30
DEMO_END = "2026-10-30"


def ensure_landing(settings, scale: float) -> None:
    from jobs import generate

    manifest = Path(settings.landing) / "_manifest" / "defects.csv"
    if manifest.exists():
        print(f">> demo landing data present in {settings.landing}", flush=True)
        return
    print(f">> generating the demo landing data (scale {scale}, {DEMO_DAYS} days) into {settings.landing}", flush=True)
    rc = generate.main(["--start", DEMO_START, "--days", str(DEMO_DAYS), "--scale", str(scale), "--seed", "7",
                        "--landing", settings.landing])
    if rc:
        raise SystemExit("generating the demo data failed; see above")


def print_counts(settings) -> None:
    from pyspark.sql import functions as F

    from jobs import tables
    from jobs.spark import get_spark

    spark = get_spark("agrilake-demo-summary")
    log = tables.read(spark, "ops", "ingest_log")
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
    if tables.exists(spark, "ops", "silver_ledger"):
        print("\nsilver: outcome of every bronze row")
        led = (tables.read(spark, "ops", "silver_ledger").groupBy("feed")
               .pivot("outcome", ["accepted", "quarantined", "duplicate", "held"]).count().orderBy("feed").collect())
        print(f"  {'feed':<28}{'accepted':>10}{'quarant.':>10}{'duplicate':>10}{'held':>8}")
        for r in led:
            print(f"  {r.feed:<28}{r.accepted or 0:>10}{r.quarantined or 0:>10}{r.duplicate or 0:>10}{r.held or 0:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake demo", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="size of the generated demo data (1 = demo)")
    parser.add_argument("--skip-doctor", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()
    os.environ["AGRILAKE_DEMO"] = "1"
    started = time.monotonic()
    if not args.skip_doctor:
        print(">> agrilake doctor", flush=True)
        if doctor.main([]) != 0:
            return 1
    ensure_landing(settings, args.scale)
    env = airflow_env(settings)
    logs = Path(settings.lakehouse).parent / "logs"
    run_dag("agrilake_doctor", DEMO_END, env, logs)
    for dag_id in DEMO_DAGS:
        run_dag(dag_id, DEMO_END, env, logs)
    print_counts(settings)
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s. Lakehouse: {settings.lakehouse}; "
          f"Airflow logs: {logs}")
    return 0


# Through Airflow, for the newest demo date: ingest picks up every delivery folder <= that date.
DEMO_DAGS = [
    "agrilake_ingest_ref", "agrilake_ingest_coop", "agrilake_ingest_postal", "agrilake_ingest_bank",
    "agrilake_silver_divisions", "agrilake_silver_coop", "agrilake_silver_postal", "agrilake_silver_bank",
]
