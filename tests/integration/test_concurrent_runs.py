"""Runs at once, for real: `agrilake ingest` processes of different systems and of one system started
together on one new lakehouse (they race to create the ops tables and MERGE into the same ingest log
and quarantine), then two silver domains and a second run of one of them together (threads of this
process: the domain lock is an flock, which separate opens contend for even in one process). Every run succeeds, every
landed file is logged once, every bronze row is settled once, and a rerun finds nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from agrilake.core import tables
from agrilake.devdata import generate
from agrilake.stages import bronze, silver

pytestmark = pytest.mark.integration

DAY = date(2026, 10, 1)


def _together(commands: list[list[str]], env: dict) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    out = []
    for p, c in zip(procs, commands, strict=True):
        stdout, stderr = p.communicate(timeout=900)
        out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
    return out


def test_ingests_and_silver_runs_at_once_give_exact_tables(ctx, tmp_path):
    landing = tmp_path / "landing"
    assert generate.main(["--start", DAY.isoformat(), "--days", "1", "--scale", "0.02", "--seed", "11",
                          "--landing", str(landing)]) == 0
    env = dict(os.environ, AGRILAKE_LAKEHOUSE=ctx.settings.lakehouse, AGRILAKE_LANDING=str(landing),
               AGRILAKE_SPARK_MASTER="local[1]", AGRILAKE_SHUFFLE_PARTITIONS="1", AGRILAKE_DRIVER_MEMORY="1g")
    cli = [sys.executable, "-m", "agrilake.cli"]
    ingest = [*cli, "ingest", "--date", DAY.isoformat(), "--system"]
    # two processes, and a third ingest of `coop` in this process (its JVM is already up) meanwhile
    with ThreadPoolExecutor(1) as pool:
        here = pool.submit(bronze.ingest, ctx, "coop", DAY, str(landing))
        runs = _together([[*ingest, "ref"], [*ingest, "coop"]], env)
        here.result()
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]

    log = tables.read(ctx, "ops", "ingest_log").collect()
    names = Counter(r.file_name for r in log)
    assert names and max(names.values()) == 1, [n for n, c in names.items() if c > 1]
    landed = {p.relative_to(landing).as_posix() for system in ("ref", "coop") for p in (landing / system).rglob("*.*")}
    assert set(names) == landed
    for feed in {f"{r.system}_{r.feed}" for r in log}:
        rows = [r for r in log if f"{r.system}_{r.feed}" == feed]
        assert tables.read(ctx, "bronze", feed).count() == sum(r.accepted for r in rows), feed
        quarantined = tables.read(ctx, "ops", "quarantine").where(f"stage = 'bronze' AND feed = '{feed}'").count()
        assert quarantined == sum(r.quarantined for r in rows), feed
    assert bronze.ingest(ctx, "coop", DAY, str(landing)) == []  # a rerun: nothing new

    # two domains at once, and two runs of one of them: `coop` refers to `divisions`, so rows a coop run
    # conforms before the divisions are committed wait (held) and a later run releases them
    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(silver.run, ctx, domain, DAY) for domain in ("divisions", "coop", "coop")]
        for run in runs:
            run.result()
    silver.run(ctx, "coop", DAY)
    again = silver.run(ctx, "divisions", DAY) + silver.run(ctx, "coop", DAY)  # a rerun: nothing new
    assert all(c["accepted"] == c["quarantined"] == c["duplicate"] == 0 for c in again), again
    divisions = tables.read(ctx, "ops", "silver_ledger").where("feed = 'ref_divisions'")
    assert divisions.count() == divisions.select("_file_sha256", "_line").distinct().count() \
        == tables.read(ctx, "bronze", "ref_divisions").count()
    ledger = tables.read(ctx, "ops", "silver_ledger").where("feed LIKE 'coop_%'")
    assert ledger.count() == ledger.select("_file_sha256", "_line").distinct().count()  # one outcome per row
    coop_rows = sum(tables.read(ctx, "bronze", f).count() for f in ("coop_cooperatives", "coop_members", "coop_sales"))
    assert ledger.count() == coop_rows
    accepted = ledger.where("outcome = 'accepted'").groupBy("feed").count().collect()
    in_silver = {"coop_cooperatives": "cooperatives", "coop_members": "members", "coop_sales": "sales"}
    for r in accepted:
        assert tables.read(ctx, "silver", in_silver[r.feed]).count() == r["count"], r.feed
