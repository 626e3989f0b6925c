"""Asset-triggered runs build the dates their upstream runs delivered (agrilake.orchestration.rundates),
not whatever date is newest when they happen to run."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

from agrilake.orchestration import rundates, tasks

D1, D2, D3, D4 = (date(2026, 10, d) for d in (1, 2, 3, 4))
GROUPS = {"bronze.coop_sales": "coop", "bronze.coop_members": "coop", "bronze.bank_loans": "bank"}


def _extra(*days: date) -> dict:
    return {"dates": [d.isoformat() for d in days]}


def test_a_catchup_of_several_days_covers_each_up_to_the_frontier():
    events = {"bronze.coop_sales": [_extra(D1), _extra(D2), _extra(D3)], "bronze.coop_members": [_extra(D3)],
              "bronze.bank_loans": [_extra(D1), _extra(D2)]}
    covered, waiting = rundates.plan(events, GROUPS)
    assert covered == [D1, D2]  # bank has delivered up to D2 only
    assert waiting == {D3: "bank"}


def test_dates_between_events_are_covered_and_an_old_backfill_alone_is_built():
    assert rundates.plan({"gold.a": [_extra(D1), _extra(D4)]}, {"gold.a": "gold"}) == ([D1, D2, D3, D4], {})
    assert rundates.plan({"gold.a": [_extra(D2)]}, {"gold.a": "gold"}) == ([D2], {})


def test_events_without_dates_fall_back_to_the_date_given():
    assert rundates.plan({"bronze.coop_sales": [None, {}]}, GROUPS) == ([], {})
    covered, waiting = rundates.plan({"bronze.coop_sales": [_extra(D1)], "bronze.bank_loans": [{}]}, GROUPS)
    assert covered == [] and waiting == {D1: "bank"}
    assert rundates.event_dates({"dates": ["2026-10-01", "not a date"]}) == [D1]


class _Outlets(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra=None)
        return self[key]


class _Asset(SimpleNamespace):
    __hash__ = object.__hash__


def _context(events: dict) -> dict:
    asset = lambda name: _Asset(name=name)  # noqa: E731
    triggering = {asset(name): [SimpleNamespace(extra=e) for e in extras] for name, extras in events.items()}
    return {"triggering_asset_events": triggering, "outlet_events": _Outlets(),
            "task": SimpleNamespace(outlets=["silver.members", "silver.cooperatives"])}


def test_a_triggered_run_rewrites_its_dates_and_records_what_it_built():
    context = _context({"bronze.coop_sales": [_extra(D1), _extra(D2)], "bronze.bank_loans": [_extra(D2)]})
    argv, built = tasks.run_dates("agrilake.stages.silver", ["--date", "latest", "--domain", "coop"], GROUPS, True,
                                  context)
    assert argv == ["--domain", "coop", "--date", "2026-10-02"] and built == [D1, D2]
    tasks.record_dates(context, built)
    assert {o: e.extra for o, e in context["outlet_events"].items()} == {
        "silver.members": _extra(D1, D2), "silver.cooperatives": _extra(D1, D2)}

    argv, built = tasks.run_dates("agrilake.stages.gold", ["--date", "latest"], GROUPS, False, context)
    assert argv == ["--from", "2026-10-01", "--to", "2026-10-02"] and built == [D1, D2]


def test_a_run_whose_dates_all_wait_builds_nothing_and_a_manual_run_keeps_its_date():
    waiting = _context({"bronze.coop_sales": [_extra(D3)], "bronze.bank_loans": [{}]})
    assert tasks.run_dates("agrilake.stages.silver", ["--date", "latest"], GROUPS, True, waiting)[1] == []
    manual = {"triggering_asset_events": {}}
    assert tasks.run_dates("agrilake.stages.gold", ["--date", "2026-10-03"], GROUPS, False, manual) == (
        ["--date", "2026-10-03"], [D3])
    assert tasks.run_dates("agrilake.stages.gold", ["--date", "latest"], GROUPS, False, manual) == (
        ["--date", "latest"], None)
    # an ingest run records its logical date for the silver runs it triggers
    assert tasks.run_dates("agrilake.stages.bronze", ["--date", "2026-10-04", "--system", "coop"], None, False,
                           {}) == (["--date", "2026-10-04", "--system", "coop"], [D4])


def test_a_task_whose_dates_all_wait_ends_skipped_and_emits_no_asset_event(monkeypatch):
    """run_stage: nothing built (every event date waits upstream, or the stage's deliveries wait) is a skip,
    never a success: a successful task would emit Asset events and trigger the export with nothing new."""
    import sys

    import pytest
    from airflow.sdk.exceptions import AirflowSkipException

    from agrilake.core import deliveries

    waiting = _context({"bronze.coop_sales": [_extra(D3)], "bronze.bank_loans": [{}]})
    with pytest.raises(AirflowSkipException, match="nothing to build"):
        tasks.run_stage("agrilake.stages.silver", ["--date", "latest"], GROUPS, True, **waiting)
    assert dict(waiting["outlet_events"]) == {}

    stage = SimpleNamespace(task=lambda argv, planned: deliveries.Outcome(built=[], waiting={D1: "bank has not "
                                                                                               "delivered"}))
    monkeypatch.setitem(sys.modules, "agrilake_test_stage", stage)
    context = _context({"bronze.coop_sales": [_extra(D1)], "bronze.bank_loans": [_extra(D1)]})
    with pytest.raises(AirflowSkipException, match="2026-10-01 waits: bank has not delivered"):
        tasks.run_stage("agrilake_test_stage", ["--date", "latest"], GROUPS, False, **context)
    assert dict(context["outlet_events"]) == {}

    stage.task = lambda argv, planned: deliveries.Outcome(built=[D1], waiting={})
    tasks.run_stage("agrilake_test_stage", ["--date", "latest"], GROUPS, False, **context)
    assert context["outlet_events"]["silver.members"].extra == _extra(D1)
