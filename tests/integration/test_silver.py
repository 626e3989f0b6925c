"""Silver on real Spark and Delta: typing, reasons, held references released later, no clear PII, reruns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date

import pytest
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from agrilake.core import tables
from agrilake.core.contracts import packaged
from agrilake.core.pseudonymise import person_key
from agrilake.core.settings import DEMO_PSEUDO_KEY
from agrilake.stages import bronze, silver
from tests.integration.test_bronze import _drop
from tests.unit.test_landing import _csv

pytestmark = pytest.mark.integration

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
VILLAGE = "110101001001"


def valid_uscc(body: str = "93110101MA01ABCD1") -> str:
    return body + stdnum_uscc.calc_check_digit(body)


def valid_ric(body: str = "11010119800101001") -> str:
    return body + stdnum_ric.calc_check_digit(body + "0")


def divisions_csv() -> bytes:
    feed = packaged().feed("ref_divisions")
    rows = [
        dict(division_code="110000000000", name="北京市", level="province", valid_from="2000-01-01"),
        dict(division_code="110100000000", name="市辖区", level="prefecture", parent_code="110000000000",
             valid_from="2000-01-01"),
        dict(division_code="110101000000", name="东城区", level="county", parent_code="110100000000",
             valid_from="2000-01-01"),
        dict(division_code="110101001000", name="东华门街道", level="township", parent_code="110101000000",
             valid_from="2000-01-01"),
        dict(division_code=VILLAGE, name="多福巷社区", level="village", parent_code="110101001000",
             urban_rural_code="111", valid_from="2000-01-01"),
    ]
    return _csv(feed.column_names, rows)


def coop_row(coop_id: str, **over) -> dict:
    row = dict(coop_id=coop_id, uscc=valid_uscc(), name="东城果蔬专业合作社", village_code=VILLAGE, legal_rep_name="王五",
               legal_rep_ric=valid_ric(), phone="13912345678", established_date="2015-03-01", member_count="12",
               land_area_mu="88.5", main_products="fruit|vegetable", status="active",
               updated_at="2026-10-31T10:00:00+08:00")
    row.update(over)
    return row


def member_row(coop_id: str, ric: str, **over) -> dict:
    row = dict(coop_id=coop_id, member_ric=ric, member_name="赵六", household_size="4", land_area_mu="6.5",
               joined_date="2020-01-01", updated_at="2026-10-31T10:00:00+08:00")
    row.update(over)
    return row


def sales_jsonl(rows: list[dict]) -> bytes:
    base = dict(product_code="fruit", channel="postal_ecommerce", quantity_kg=100, amount_cny=1234.5,
                sale_date="2026-10-30", buyer_county_code="110101")
    return ("\n".join(json.dumps({**base, **r}, ensure_ascii=False) for r in rows) + "\n").encode()


def land(root):
    """The landing of these tests: D1 with every outcome (accepted, quarantined, held, duplicate), D2
    with the reference that releases the held sale, a new cooperative version and a resent sale."""
    coops, members = packaged().feed("coop_cooperatives"), packaged().feed("coop_members")
    _drop(root, "ref_divisions", D1, "divisions.csv", divisions_csv())
    _drop(root, "coop_cooperatives", D1, "coops.csv", _csv(coops.column_names, [
        coop_row("C1"),
        coop_row("C2", uscc="93110101MA01ABCD19"),  # bad check character
        coop_row("C3", village_code="110101001999"),  # a village nobody delivered
        coop_row("C1"),  # the same version twice: a duplicate, not a second version
    ]))
    _drop(root, "coop_members", D1, "members.csv", _csv(members.column_names, [
        member_row("C1", valid_ric()),
        member_row("C1", valid_ric("44030419900101001"), member_ric=valid_ric("44030419900101001")[:-1] + "9"),
        member_row("C1", valid_ric("44030419900101002"), joined_date="2020-13-01"),
    ]))
    _drop(root, "coop_sales", D1, "sales.jsonl", sales_jsonl([
        {"sale_id": "S1", "coop_id": "C1"},
        {"sale_id": "S2", "coop_id": "C7"},  # C7 arrives on D2: held, then released
        {"sale_id": "S3", "coop_id": "C1", "amount_cny": -5},
        {"sale_id": "S4", "coop_id": "C1", "channel": "pigeon"},
    ]))
    _drop(root, "coop_cooperatives", D2, "coops-2.csv", _csv(coops.column_names, [
        coop_row("C7", uscc=valid_uscc("93110101MA01ABCD7")),
        coop_row("C1", status="suspended", updated_at="2026-11-02T08:00:00+08:00"),
    ]))
    _drop(root, "coop_sales", D2, "sales-2.jsonl", sales_jsonl([{"sale_id": "S1", "coop_id": "C1"}]))
    return root


def _run(ctx, root, day):
    bronze.ingest(ctx, None, day, str(root))
    return {c["table"]: c for c in silver.run(ctx, None, day)}


def _ledger(ctx):
    return {(r.feed, r._line, r._delivery_date): (r.outcome, r.reason) for r in
            tables.read(ctx, "ops", "silver_ledger").collect()}


def _snapshot(ctx):
    return {n: sorted(map(str, tables.read(ctx, "silver", n).drop("_batch_id").collect()))
            for n in ("cooperatives", "members", "sales")}


def _silver_quarantine(ctx):
    return sorted((r.feed, r._line, r.reason) for r in
                  tables.read(ctx, "ops", "quarantine").where("stage = 'silver'").collect())


def _strings(ctx):
    """Every string value of every silver table, by table."""
    out = {}
    for name in ctx.contracts.silver_tables():
        df = tables.read(ctx, "silver", name)
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        out[name] = [v for row in df.select(*strings).collect() for v in row if v is not None]
    return out


@pytest.fixture(scope="module")
def runs(session_ctx, tmp_path_factory):
    """D1, then D2, then D2 again on one lakehouse; what each test looks at, taken after each run.

    One sequence for the module: each run on a fresh lakehouse costs a minute or two of Spark and Delta
    work, and the tests only read what the runs left."""
    root = tmp_path_factory.mktemp("silver")
    ctx = session_ctx.with_settings(lakehouse=str(root / "lakehouse"))
    landed = land(root / "landing")
    out = {"first": _run(ctx, landed, D1), "ledger_d1": _ledger(ctx), "snapshot_d1": _snapshot(ctx),
           "quarantine_d1": _silver_quarantine(ctx),
           "sales_d1": {r.sale_id for r in tables.read(ctx, "silver", "sales").collect()},
           "member_d1": tables.read(ctx, "silver", "members").first(), "strings_d1": _strings(ctx)}
    out["second"] = _run(ctx, landed, D2)
    out["ledger_d2"] = _ledger(ctx)
    out["sales_d2"] = {r.sale_id: r for r in tables.read(ctx, "silver", "sales").collect()}
    out["c1_versions"] = (tables.read(ctx, "silver", "cooperatives").where("coop_id = 'C1'")
                          .orderBy("updated_at").collect())
    out["before_rerun"] = _snapshot(ctx)
    out["again"] = _run(ctx, landed, D2)
    out["after_rerun"] = _snapshot(ctx)
    out["reconcile"] = silver.reconcile(ctx, D2, ["coop_cooperatives", "coop_members", "coop_sales"], "test")
    out["strings_end"] = _strings(ctx)
    return out


def test_reasons_hold_release_and_dedup(runs):
    first = runs["first"]
    assert first["cooperatives"]["accepted"] == 1 and first["cooperatives"]["duplicate"] == 1
    led = runs["ledger_d1"]
    assert led[("coop_cooperatives", 3, D1)] == ("quarantined", "BAD_USCC")
    assert led[("coop_cooperatives", 4, D1)] == ("held", "UNKNOWN_DIVISION")
    assert led[("coop_members", 3, D1)] == ("quarantined", "BAD_RIC")
    assert led[("coop_members", 4, D1)] == ("quarantined", "BAD_DATE")
    assert led[("coop_sales", 2, D1)] == ("held", "UNKNOWN_REF")
    assert led[("coop_sales", 3, D1)] == ("quarantined", "OUT_OF_RANGE")
    assert led[("coop_sales", 4, D1)] == ("quarantined", "NOT_ALLOWED")
    assert runs["sales_d1"] == {"S1"}

    second = runs["second"]
    assert second["sales"]["accepted"] == 1 and second["sales"]["duplicate"] == 1  # S2 released, S1 resent
    sales = runs["sales_d2"]
    assert set(sales) == {"S1", "S2"}
    assert sales["S2"]._delivery_date == D1 and str(sales["S2"].amount_cny) == "1234.50"
    # S2 became usable only when C7 arrived: gold for D1, however late it is rebuilt, does not see it
    assert sales["S2"]._available_date == D2 and sales["S1"]._available_date == D1
    assert runs["ledger_d2"][("coop_sales", 2, D1)] == ("accepted", None)
    versions = runs["c1_versions"]
    assert [v.status for v in versions] == ["active", "suspended"]
    assert [v._delivery_date for v in versions] == [D1, D2]


def test_pseudonymised_and_no_clear_pii_anywhere(runs):
    member = runs["member_d1"]
    assert member.person_key == person_key(valid_ric(), DEMO_PSEUDO_KEY)
    assert member.birth_date == date(1980, 1, 1)
    clear = {valid_ric(), "王五", "赵六", "13912345678"}
    for strings in (runs["strings_d1"], runs["strings_end"]):
        assert strings["members"], "no member strings to check"
        for name, values in strings.items():
            for value in values:
                assert not any(c in value for c in clear), (name, value)


def test_rerun_changes_nothing_and_counts_reconcile(runs):
    assert all(c["accepted"] == 0 for c in runs["again"].values())
    assert runs["after_rerun"] == runs["before_rerun"]
    rows = runs["reconcile"]
    assert rows and all(r["balanced"] for r in rows)


def test_killed_runs_then_rerun_give_the_tables_of_an_uninterrupted_run(session_ctx, tmp_path, runs):
    """Silver appends before it records outcomes: a run killed after its first silver append, then one
    killed after the quarantine commit, then a whole run, must leave what one uninterrupted run does.
    The killed runs are of the coop domain (cooperatives, members, sales; divisions ran before): a
    killed run is a process of its own, and three tables show the windows as well as ten."""
    ctx = session_ctx.with_settings(lakehouse=str(tmp_path / "lakehouse"))
    landed = land(tmp_path / "landing")
    bronze.ingest(ctx, None, D1, str(landed))
    silver.run(ctx, "divisions", D1)
    cmd = [sys.executable, "-m", "agrilake.cli", "silver", "--date", D1.isoformat(), "--domain", "coop"]
    for point in ("after_silver_append", "after_silver_quarantine"):
        # the child is an entry point: the environment is its input (the same lakehouse as ctx's)
        env = dict(os.environ, AGRILAKE_LAKEHOUSE=ctx.settings.lakehouse, AGRILAKE_CRASH_AT=point,
                   AGRILAKE_SHUFFLE_PARTITIONS="1")
        killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
    assert tables.read(ctx, "silver", "cooperatives").count() > 0  # the kills came after silver got rows
    # and before any of the domain's outcomes was recorded
    assert not tables.read(ctx, "ops", "silver_ledger").where("feed LIKE 'coop_%'").count()
    counts = {c["table"]: c for c in silver.run(ctx, "coop", D1)}
    assert counts == {t: runs["first"][t] for t in ("cooperatives", "members", "sales")}
    assert _ledger(ctx) == runs["ledger_d1"]
    assert _snapshot(ctx) == runs["snapshot_d1"]
    assert _silver_quarantine(ctx) == runs["quarantine_d1"]


def test_refuses_to_start_without_a_key_outside_demo(lakehouse, monkeypatch):
    # The command is the entry point: its settings come from the environment.
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", str(lakehouse))
    monkeypatch.setenv("AGRILAKE_DEMO", "0")
    monkeypatch.delenv("AGRILAKE_PSEUDO_KEY", raising=False)
    monkeypatch.delenv("AGRILAKE_PSEUDO_KEY_CONN_ID", raising=False)
    assert silver.main(["--date", D1.isoformat()]) == 1
