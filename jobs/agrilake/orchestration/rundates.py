"""Which dates an Asset-triggered run builds: the dates its upstream runs delivered, not `latest`.

The ingest DAGs run per logical date (`ds`, with catchup) and every stage task records the dates it
built in the `extra` of its Asset events (`{"dates": [...]}`). A silver, gold or export run is
triggered by those events and builds from them:

- silver: up to the newest date its bronze events carry (one run settles every row delivered up to
  it, so a catchup of five days needs one silver run);
- gold and export: every date up to the *frontier*, the newest date that every upstream domain has
  delivered (the smallest of the domains' newest dates), from the oldest date in the events. A date
  past the frontier waits: some domain has not delivered it yet, and gold built now would miss its
  rows. The log says which domain it waits for; a later run, when that domain arrives, builds it.

A run triggered by hand (no Asset events) builds `params.date`, `latest` included, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date

log = logging.getLogger(__name__)


def event_dates(extra: Mapping | None) -> list[date]:
    """The dates one Asset event says were built (`{"dates": [...]}`), or none."""
    out = []
    for value in (extra or {}).get("dates") or []:
        try:
            out.append(date.fromisoformat(str(value)))
        except ValueError:
            log.warning("ignoring an Asset event date that is not a date: %r", value)
    return out


def dates_by_group(events: Mapping[str, Iterable[Mapping | None]], group_of: Mapping[str, str]) -> dict[str, set[date]]:
    """Asset name -> the `extra`s of its triggering events, folded into upstream group (system or
    domain) -> the dates its events carry."""
    out: dict[str, set[date]] = {}
    for name, extras in events.items():
        group = group_of.get(name, name)
        for extra in extras:
            out.setdefault(group, set()).update(event_dates(extra))
    return out


def plan(events: Mapping[str, Iterable[Mapping | None]], group_of: Mapping[str, str]
         ) -> tuple[list[date], dict[date, str]]:
    """(dates covered, dates that wait -> the group they wait for) from a run's triggering events.

    Covered: every day from the oldest event date to the frontier. Gold and export build each;
    silver builds once, at the last (it settles every row delivered up to it).
    """
    by_group = dates_by_group(events, group_of)
    if not any(by_group.values()):
        return [], {}
    newest = {g: max(ds) for g, ds in by_group.items() if ds}
    every = sorted(set().union(*by_group.values()))
    if len(newest) < len(by_group):  # a group whose events carry no date cannot vouch for any
        missing = min(g for g in by_group if g not in newest)
        return [], dict.fromkeys(every, missing)
    frontier = min(newest.values())
    waiting = {d: min(g for g, n in newest.items() if n < d) for d in every if d > frontier}
    return [date.fromordinal(o) for o in range(every[0].toordinal(), frontier.toordinal() + 1)], waiting
