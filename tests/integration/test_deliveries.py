"""Deliveries are facts: young, missing and late files never give a silent wrong answer (docs/reliability.md).

One landing of three days, run through the documented commands on real Spark and Delta:
1. bank's delivery of day 2 has not landed and coop's files of day 2 are still being written: the
   pipeline publishes day 1 only, says on the terminal what day 2 waits for, and exits 3; gold of
   day 2 asked for by hand refuses too;
2. the delivery lands and the copy finishes: the waiting date is built with exactly the cells of a
   lakehouse that got every delivery on time (a second lakehouse, one ingest);
3. a file lands in day 1's folder after day 2 was published: day 3 counts its rows, days 1-2 stay what
   they were on a rerun, and the ingest log and `agrilake lineage` say it was late.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest

import agrilake.stages.gold as gold
from agrilake.core import deliveries, tables
from agrilake.core.contracts import GOLD_TABLES
from agrilake.devdata import generate
from agrilake.stages import bronze, pipeline, silver

pytestmark = pytest.mark.integration

D1 = date(2026, 11, 1)
D2, D3 = (D1 + timedelta(days=i) for i in (1, 2))
LATE_IDS = ("LATE-SALE-1", "LATE-SALE-2", "LATE-SALE-3")
# A file changed less than this ago is still being written (the product's default is 300 s; an hour here,
# so that a young file stays young however slowly the machine runs the days before it).
SETTLE = 3600


def _digest(df) -> tuple[str, int]:
    text = sorted(json.dumps([repr(v) for v in r], ensure_ascii=False) for r in df.collect())
    return hashlib.sha256("\n".join(text).encode()).hexdigest(), len(text)


def _published(ctx, day: date) -> dict[str, tuple[str, int]]:
    return {n: _digest(tables.read(ctx, "gold", n).where(f"as_of_date = '{day}'")) for n in GOLD_TABLES}


def _in_memory(ctx, day: date) -> dict[str, tuple[str, int]]:
    """What a (re)publish of `day` writes: the frames gold.publish validates and writes."""
    frames = gold.transform(gold.read_silver(ctx), day, ctx.contracts)
    return {n: _digest(df) for n, df in frames.items()}


def _age(paths, seconds: float = 86400) -> None:
    old = time.time() - seconds
    for p in paths:
        os.utime(p, (old, old))


def _run(main, argv, ctx, spark, capsys) -> tuple[int, str]:
    """An entry point on this module's lakehouse and landing, in the test run's Spark session."""
    import agrilake.core.spark

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGRILAKE_LAKEHOUSE", ctx.settings.lakehouse)
        mp.setenv("AGRILAKE_LANDING", ctx.settings.landing)
        mp.setenv("AGRILAKE_LANDING_SETTLE_SECONDS", str(SETTLE))
        mp.setattr(agrilake.core.spark, "get_spark", lambda *a, **k: spark)
        capsys.readouterr()
        rc = main(argv)
        return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def scenario(session_ctx, spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("deliveries")
    landing = root / "landing"
    assert generate.main(["--start", D1.isoformat(), "--days", "3", "--scale", "0.01", "--seed", "11",
                          "--defect-rate", "0.01", "--landing", str(landing)]) == 0
    ctx = session_ctx.with_settings(lakehouse=str(root / "lake"), landing=str(landing), landing_settle_seconds=SETTLE)
    return {"ctx": ctx, "landing": landing}


@pytest.fixture(scope="module")
def first_run(scenario, spark):
    """Bank's day 2 withheld, coop's day 2 still being copied."""
    landing = scenario["landing"]
    held = landing.parent / "held"
    bank_d2 = [p for p in (landing / "bank").glob(f"*/{D2}") if p.is_dir()]
    marker = deliveries.marker_path(str(landing), "bank", D2)
    assert bank_d2 or marker.exists(), "the generator gave bank no delivery of day 2"
    for p in bank_d2:
        shutil.move(str(p), str(held / p.parent.name / D2.isoformat()))
    if marker.exists():
        shutil.move(str(marker), str(held / "_marker"))
    young = sorted(p for p in (landing / "coop").glob(f"*/{D2}/*") if p.is_file())
    assert young
    _age(young, seconds=10)  # changed 10 s ago: still being written
    return {"held": held, "bank_d2": bank_d2, "marker": marker, "young": young}


def test_missing_and_young_deliveries_wait_and_say_so(scenario, first_run, spark, capsys):
    ctx = scenario["ctx"]
    rc, err = _run(pipeline.main, ["--from", str(D1), "--to", str(D2)], ctx, spark, capsys)
    assert rc == deliveries.EXIT_WAITING, err
    assert deliveries.published_dates(ctx) == {D1}
    assert "1 date(s) NOT published" in err
    assert f"bank has not delivered {D2}" in err and f"coop {D2} is waiting" in err
    assert "file(s) wait for a later run" in err and "still being written" in err
    assert f"agrilake pipeline --from {D2} --to {D2}" in err
    states = {(r.system, r.delivery_date): r for r in deliveries.read(ctx)}
    assert (("bank", D2) not in states) and states[("coop", D2)].status == "waiting"
    assert states[("coop", D2)].waiting_files == len(first_run["young"])
    # by hand, gold of day 2 refuses as well
    rc, err = _run(gold.main, ["--date", str(D2)], ctx, spark, capsys)
    assert rc == deliveries.EXIT_WAITING and f"{D2}: bank has not delivered {D2}" in err
    assert deliveries.published_dates(ctx) == {D1}
    scenario["waited"] = True


def test_once_delivered_the_waiting_date_gets_the_on_time_cells(scenario, first_run, spark, capsys, session_ctx):
    ctx, landing = scenario["ctx"], scenario["landing"]
    if "waited" not in scenario:
        pytest.skip("needs test_missing_and_young_deliveries_wait_and_say_so (same module, runs first)")
    for p in first_run["bank_d2"]:
        shutil.move(str(first_run["held"] / p.parent.name / D2.isoformat()), str(p))
    if (first_run["held"] / "_marker").exists():
        shutil.move(str(first_run["held"] / "_marker"), str(first_run["marker"]))
    _age(first_run["young"])  # the copy finished a day ago
    rc, err = _run(pipeline.main, ["--from", str(D2), "--to", str(D2)], ctx, spark, capsys)
    assert rc == 0, err
    assert deliveries.published_dates(ctx) == {D1, D2}
    # a lakehouse that got every delivery on time, in one ingest
    ontime = session_ctx.with_settings(lakehouse=str(landing.parent / "ontime"), landing=str(landing),
                                       landing_settle_seconds=0)
    bronze.ingest(ontime, None, D2, str(landing))
    silver.run(ontime, None, D2)
    assert _published(ctx, D2) == _in_memory(ontime, D2)
    scenario["published"] = {d: _published(ctx, d) for d in (D1, D2)}


def test_a_late_file_counts_from_the_next_date_and_the_past_stays(scenario, spark, capsys):
    ctx, landing = scenario["ctx"], scenario["landing"]
    if "published" not in scenario:
        pytest.skip("needs test_once_delivered_the_waiting_date_gets_the_on_time_cells (same module, runs first)")
    coop_id = (tables.read(ctx, "silver", "cooperatives").orderBy("coop_id").first()).coop_id
    late = landing / "coop" / "sales" / D1.isoformat() / "sales_resent_late.jsonl"
    lines = [json.dumps({"sale_id": sid, "coop_id": coop_id, "product_code": "tea", "channel": "postal_ecommerce",
                         "quantity_kg": 10, "amount_cny": 1000.25 + i, "sale_date": "2026-10-30",
                         "buyer_county_code": None}) for i, sid in enumerate(LATE_IDS)]
    late.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _age([late])
    rc, err = _run(pipeline.main, ["--from", str(D3), "--to", str(D3)], ctx, spark, capsys)
    assert rc == 0, err
    assert f"{late.name} is late" in err
    logged = tables.read(ctx, "ops", "ingest_log").where(f"file_name = 'coop/sales/{D1}/{late.name}'").collect()
    assert len(logged) == 1 and logged[0].available_date == D3 and "LATE" in logged[0].message
    rows = tables.read(ctx, "silver", "sales").where(tables_in("sale_id", LATE_IDS)).collect()
    assert sorted(r.sale_id for r in rows) == list(LATE_IDS) and {r._available_date for r in rows} == {D3}
    # the past: a rerun computes exactly what was published, and a real rerun of day 1 writes it again
    assert _in_memory(ctx, D2) == scenario["published"][D2]
    rc, err = _run(gold.main, ["--date", str(D1)], ctx, spark, capsys)
    assert rc == 0, err
    assert _published(ctx, D1) == scenario["published"][D1]
    # day 3 counts the late rows: exactly their amounts on that cooperative, nothing else moves
    without = gold.read_silver(ctx)
    without["sales"] = without["sales"].where(~tables_in("sale_id", LATE_IDS))
    before = {r.coop_id: r.sales_12m_cny for r in gold.transform(without, D3, ctx.contracts)["coop_credit_profile"]
              .select("coop_id", "sales_12m_cny").collect()}
    after = {r.coop_id: r.sales_12m_cny for r in tables.read(ctx, "gold", "coop_credit_profile")
             .where(f"as_of_date = '{D3}'").select("coop_id", "sales_12m_cny").collect()}
    assert after[coop_id] - before[coop_id] == sum(Decimal("1000.25") + i for i in range(3))
    assert {k: v for k, v in after.items() if k != coop_id} == {k: v for k, v in before.items() if k != coop_id}
    # what the operator sees: lineage marks the file late, status shows every date published
    from agrilake.analyst import lineage, status

    # by path, not through the session catalog: the test run's one session serves other lakehouses too, and
    # registering this one's tables there would make later tests in the session read them
    text = lineage.render(lineage.lineage(ctx, "coop_credit_profile", D3, read=lineage.by_path))
    assert f"{late.name}" in text and f"LATE (counted from {D3})" in text
    rows = {r["date"]: r for r in status.collect(ctx, D1, D3)}
    assert all(rows[d.isoformat()]["gold"].startswith("published") for d in (D1, D2, D3))


def tables_in(column: str, values):
    from pyspark.sql import functions as F

    return F.col(column).isin(list(values))


def test_a_marked_day_is_a_delivery_and_a_header_only_file_too(tmp_path):
    """Pure: the day states an ingest records from a survey and the markers."""
    from agrilake.core.contracts import packaged
    from agrilake.stages.bronze import landing as landed

    feeds = packaged().systems()["bank"]
    root = tmp_path / "landing"
    (root / "bank" / "loans" / str(D1)).mkdir(parents=True)
    (root / "bank" / "loans" / str(D1) / "loans.csv").write_text(",".join(feeds[0].column_names) + "\n")
    (root / "bank" / "loans" / str(D3)).mkdir(parents=True)
    (root / "bank" / "loans" / str(D3) / ".loans.csv.part").write_text("x")
    deliveries.write_marker(str(root), "bank", D2, "bank holiday")
    _age([p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")])
    surveys = [landed.survey(str(root), f, D3 + timedelta(days=1), settle_seconds=SETTLE) for f in feeds]
    found = deliveries.markers(str(root), "bank", D3 + timedelta(days=1), settle_seconds=SETTLE)
    states = {s.day: s for s in deliveries.day_states("bank", surveys, found)}
    assert states[D1].status == "delivered" and states[D1].files == 1
    assert states[D2].status == "nothing" and "bank holiday" in states[D2].message
    assert states[D3].status == "waiting" and states[D3].waiting_files == 1
    assert D3 + timedelta(days=1) not in states
