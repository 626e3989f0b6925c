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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake demo", description=__doc__)
    parser.parse_args(argv)
    settings = get_settings()
    os.environ["AGRILAKE_DEMO"] = "1"
    print(">> agrilake doctor", flush=True)
    if doctor.main([]) != 0:
        return 1
    env = airflow_env(settings)
    run_dag("agrilake_doctor", "2026-11-01", env, Path(settings.lakehouse).parent / "logs")
    print(f"\nDemo finished. Lakehouse: {settings.lakehouse}")
    return 0
