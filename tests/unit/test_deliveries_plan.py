"""Which as-of dates may be built from which deliveries (core.deliveries.plan_dates, pure)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

from agrilake.core import deliveries

CAL = {"ref": "on_change", "coop": "daily", "bank": "daily"}
D = [date(2026, 10, 1) + timedelta(days=i) for i in range(6)]


def rows(**by_system):
    """system=[(day index, status)] -> ops.deliveries-like rows."""
    return [SimpleNamespace(system=s, delivery_date=D[i], status=st, message=f"{st} message")
            for s, days in by_system.items() for i, st in days]


def every(n, status="delivered"):
    return [(i, status) for i in range(n)]


def test_a_date_is_built_when_every_daily_system_delivered_it():
    plan = deliveries.plan_dates(D[:3], set(), rows(coop=every(3), bank=every(3)), CAL)
    assert plan.build == D[:3] and plan.waiting == {}


def test_nothing_to_deliver_is_a_delivery_and_on_change_systems_are_never_due():
    plan = deliveries.plan_dates(D[:3], set(), rows(coop=every(3), bank=[(0, "delivered"), (1, "nothing"),
                                                                          (2, "delivered")]), CAL)
    assert plan.build == D[:3]


def test_a_missing_day_holds_it_and_every_later_date_in_order():
    plan = deliveries.plan_dates(D[:4], set(), rows(coop=every(4), bank=[(0, "delivered"), (2, "delivered"),
                                                                          (3, "delivered")]), CAL)
    assert plan.build == [D[0]]
    assert "bank has not delivered 2026-10-02" in plan.waiting[D[1]]
    assert set(plan.waiting) == {D[1], D[2], D[3]} and plan.missing[D[3]] == ["bank:2026-10-02"]


def test_waiting_and_rejected_deliveries_are_not_ready():
    plan = deliveries.plan_dates([D[0]], set(), rows(coop=[(0, "waiting")], bank=[(0, "rejected")]), CAL)
    assert plan.build == [] and "coop 2026-10-01 is waiting" in plan.waiting[D[0]]
    assert plan.missing[D[0]] == ["bank:2026-10-01", "coop:2026-10-01"]


def test_only_the_days_since_the_previous_publication_are_checked():
    # day 2 of bank never came, but dates up to day 3 are published: day 4 needs days 4 alone
    plan = deliveries.plan_dates([D[4]], {D[3]}, rows(coop=every(5), bank=[(0, "delivered"), (3, "delivered"),
                                                                            (4, "delivered")]), CAL)
    assert plan.build == [D[4]]
    # and a rebuild of a published date checks its own day only
    plan = deliveries.plan_dates([D[3]], {D[1], D[3]}, rows(coop=every(5), bank=[(3, "delivered")]), CAL)
    assert plan.build == [D[3]]


def test_allow_partial_builds_and_says_what_was_missing():
    plan = deliveries.plan_dates(D[:2], set(), rows(coop=every(2), bank=[(0, "delivered")]), CAL,
                                 allow_partial=True)
    assert plan.build == D[:2] and plan.missing == {D[1]: ["bank:2026-10-02"]}


def test_nothing_recorded_builds_nothing():
    plan = deliveries.plan_dates([D[0]], set(), [], CAL)
    assert plan.build == [] and "has been recorded yet" in plan.waiting[D[0]]


def test_a_date_before_the_first_delivery_is_not_published_empty():
    plan = deliveries.plan_dates([D[0]], set(), rows(coop=[(2, "delivered")], bank=[(2, "delivered")]), CAL)
    assert plan.build == [] and "before the first delivery" in plan.waiting[D[0]]


def test_a_late_file_counts_from_the_day_after_the_newest_publication():
    assert deliveries.availability(D[1], set()) == D[1]
    assert deliveries.availability(D[3], {D[0], D[1]}) == D[3]
    assert deliveries.availability(D[0], {D[0], D[2]}) == D[3]
    assert deliveries.availability(D[2], {D[2]}) == D[3]
