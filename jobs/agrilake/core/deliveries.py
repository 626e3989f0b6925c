"""Deliveries are facts, not schedules: which system delivered which day, and which as-of dates may be built.

Each upstream system has a delivery calendar in its contract (schemas/source/_systems.yaml): `daily`
systems owe a delivery for every day from the first day any daily system delivered; `on_change` ones
(reference data) deliver when their data changes and are never waited for.

A system's delivery for D is **ready** when
- `delivered`: its folders for D hold settled files, every one ingested (a header-only CSV or an empty
  JSONL file is a delivery with nothing new), and none is still being written or hidden; or
- `nothing`: upstream (or an operator: `agrilake no-delivery`) marked D as nothing to deliver with the
  file `<landing>/<system>/_nothing_to_deliver/<YYYY-MM-DD>` (its text, if any, says why).
It is `waiting` while a file of D is younger than AGRILAKE_LANDING_SETTLE_SECONDS or hidden (`.name`,
an upload's temporary file), and `rejected` when D holds only entries the landing rules refuse.
A day with no folder and no marker has no row: not delivered (yet).

Every ingest records the state of each of its system's days in ops.deliveries (one MERGE of the rows
that changed). Gold for D is built only when every daily system has a ready delivery on D and on every
day since the newest publication before D: a date published while an earlier day was missing would
make that day's late rows count only after it (the point-in-time rule for late files, docs/metrics.md),
so the earlier date could never get the cells it would have had on time. Dates wait in order, and are
built in order once the missing delivery lands.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agrilake.core.dates import folder_date

MARKER_DIR = "_nothing_to_deliver"
READY = ("delivered", "nothing")
STATUSES = ("delivered", "nothing", "waiting", "rejected")


@dataclass(frozen=True)
class DayState:
    """What one system's folders hold for one delivery date, as an ingest saw them."""
    system: str
    day: date
    status: str
    files: int = 0
    waiting_files: int = 0
    rejected_files: int = 0
    marker: bool = False
    message: str | None = None


def _landing_root(landing: str) -> Path:
    return Path(landing.removeprefix("file://").removeprefix("file:"))


def marker_path(landing: str, system: str, day: date) -> Path:
    return _landing_root(landing) / system / MARKER_DIR / day.isoformat()


def write_marker(landing: str, system: str, day: date, reason: str) -> Path:
    """Mark `day` as nothing to deliver for `system` (what `agrilake no-delivery` does). Written under a
    hidden name and renamed, so an ingest never reads half a marker."""
    path = marker_path(landing, system, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(reason.strip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class Markers:
    settled: dict[date, str] = field(default_factory=dict)  # day -> its text
    waiting: dict[date, str] = field(default_factory=dict)  # day -> path (still being written)


def markers(landing: str, system: str, up_to: date, *, settle_seconds: float = 0, now: float | None = None) -> Markers:
    """The nothing-to-deliver markers of `system` dated <= up_to. Anything else in the marker folder is
    ignored (a name that is not a date, a folder): only an exact `YYYY-MM-DD` file marks a day."""
    folder = _landing_root(landing) / system / MARKER_DIR
    out = Markers()
    if not folder.is_dir():
        return out
    now = time.time() if now is None else now
    for entry in sorted(folder.iterdir()):
        day = folder_date(entry.name)
        if day is None or day > up_to or entry.is_symlink() or not entry.is_file():
            continue
        try:
            info = entry.stat()
            text = entry.read_text(encoding="utf-8", errors="replace")[:500].strip()
        except OSError:
            continue
        if now - info.st_mtime < settle_seconds:
            out.waiting[day] = str(entry)
        else:
            out.settled[day] = text
    return out


def _day_of(name: str) -> date | None:
    """The delivery date of a landing entry named `<system>/<feed>/<YYYY-MM-DD>/<file>`."""
    parts = name.split(os.sep)
    return folder_date(parts[2]) if len(parts) >= 4 else None


def day_states(system: str, surveys: list, found: Markers) -> list[DayState]:
    """The state of each day of `system` from its feeds' landing surveys (bronze.landing.Survey, after a
    successful ingest: every settled file in them is in the ingest log) and its markers."""
    files: dict[date, int] = {}
    waiting: dict[date, list[str]] = {}
    rejected: dict[date, int] = {}
    for s in surveys:
        for f in s.files:
            files[f.delivery_date] = files.get(f.delivery_date, 0) + 1
        for name in s.settling + s.hidden:
            if (d := _day_of(name)) is not None:
                waiting.setdefault(d, []).append(name)
        for r in s.rejected:
            if r.delivery_date is not None:
                rejected[r.delivery_date] = rejected.get(r.delivery_date, 0) + 1
    for d, path in found.waiting.items():
        waiting.setdefault(d, []).append(path)
    out = []
    for d in sorted(set(files) | set(waiting) | set(rejected) | set(found.settled)):
        w = waiting.get(d, [])
        marker = d in found.settled
        if w:
            status = "waiting"
            message = (f"{len(w)} file(s) still being written or hidden (younger than the settle time, or named "
                       f".*): {', '.join(sorted(w)[:3])}")
        elif files.get(d):
            status, message = "delivered", None
        elif marker:
            status, message = "nothing", f"nothing to deliver: {found.settled[d] or '(no reason given)'}"
        else:
            status, message = "rejected", "only entries the landing rules refuse: see ops.ingest_log (status rejected)"
        out.append(DayState(system, d, status, files.get(d, 0), len(w), rejected.get(d, 0), marker, message))
    return out


# -- the record in ops.deliveries ------------------------------------------------------------------------------

def read(ctx, systems: list[str] | None = None) -> list:
    """The rows of ops.deliveries (of `systems`), or none before the first ingest recorded any."""
    from pyspark.sql import functions as F

    from agrilake.core import tables

    if not tables.exists(ctx, "ops", "deliveries"):
        return []
    df = tables.read(ctx, "ops", "deliveries")
    if systems is not None:
        df = df.where(F.col("system").isin(systems))
    return df.collect()


def published_dates(ctx) -> set[date]:
    """The as-of dates gold has a complete publication of."""
    from agrilake.core import tables

    if not tables.exists(ctx, "ops", "gold_publications"):
        return set()
    return {r[0] for r in tables.read(ctx, "ops", "gold_publications").select("as_of_date").distinct().collect()}


def record(ctx, states: list[DayState], published: set[date], now: datetime | None = None) -> list[DayState]:
    """Merge the days whose state changed into ops.deliveries (one commit, none when nothing changed).
    A day once seen keeps its first sighting, and once ready the time it became ready and whether that
    was late (after gold of that day or a later one was published). A day whose files were cleaned out
    of the landing after ingest keeps its row: a delivery that happened stays a fact."""
    from agrilake.core import ops, tables

    if not states:
        return []
    now = now or datetime.now(UTC).replace(tzinfo=None)
    before = {(r.system, r.delivery_date): r for r in read(ctx, sorted({s.system for s in states}))}
    newest = max(published) if published else None
    rows, changed = [], []
    for s in states:
        old = before.get((s.system, s.day))
        same = old is not None and (old.status, old.files, old.waiting_files, old.rejected_files, old.marker,
                                    old.message) == (s.status, s.files, s.waiting_files, s.rejected_files,
                                                     s.marker, s.message)
        if same:
            continue
        ready_at = old.ready_at if old is not None and old.ready_at is not None else (
            now if s.status in READY else None)
        late = old.late if old is not None and old.ready_at is not None else (
            s.status in READY and newest is not None and s.day <= newest)
        rows.append(dict(system=s.system, delivery_date=s.day, status=s.status, files=s.files,
                         waiting_files=s.waiting_files, rejected_files=s.rejected_files, marker=s.marker,
                         message=s.message, first_seen_at=old.first_seen_at if old is not None else now,
                         ready_at=ready_at, late=bool(late), updated_at=now))
        changed.append(s)
    if rows:
        ops.create(ctx, "deliveries")
        df = ops.rows_df(ctx, ops.ddl(ctx, "deliveries"), rows)
        tables.merge(ctx, df, "ops", "deliveries", "t.system = s.system AND t.delivery_date = s.delivery_date",
                     update=True)
    return changed


# -- which as-of dates may be built --------------------------------------------------------------------------

@dataclass
class DatePlan:
    build: list[date] = field(default_factory=list)
    waiting: dict[date, str] = field(default_factory=dict)  # date -> what it waits for, in words
    missing: dict[date, list[str]] = field(default_factory=dict)  # date -> system:YYYY-MM-DD not ready

    def warnings(self) -> list[str]:
        return [f"{d} waits: {why}" for d, why in sorted(self.waiting.items())]


def _why(system: str, day: date, row) -> str:
    if row is None:
        return f"{system} has not delivered {day} (no delivery folder and no nothing-to-deliver marker)"
    return f"{system} {day} is {row.status}: {row.message}"


def plan_dates(requested: list[date], published: set[date], rows: list, calendars: dict[str, str], *,
               allow_partial: bool = False) -> DatePlan:
    """Which of `requested` may be built now, in order (pure: `rows` are ops.deliveries rows).

    A date D may be built when every daily system has a ready delivery on every day of (P, D], P being
    the newest published date before D (or, before any, the first day a daily system delivered). Dates
    are taken in order and each one built counts as published for the next, so a date that waits makes
    every later date wait too. A date already published is rebuilt as asked (a rerun gives the same cells:
    rows that landed since count from a later date). `allow_partial`: build anyway, and say what was missing."""
    daily = sorted(s for s, c in calendars.items() if c == "daily")
    by_key = {(r.system, r.delivery_date): r for r in rows}
    seen = [r.delivery_date for r in rows if r.system in daily]
    first = min(seen) if seen else None
    done = set(published)
    out = DatePlan()
    for d in sorted(set(requested)):
        if d in published:  # a rerun: its deliveries were judged when it was first published, and it is exact
            out.build.append(d)
            continue
        if first is not None and d < first:  # nothing is known of it: an empty day must not be published
            out.waiting[d] = (f"it is before the first delivery of any daily system ({first}): nothing is known "
                              "of it")
            out.missing[d] = [f"{s}:{d}" for s in daily]
        elif first is None:
            out.waiting[d] = ("no delivery of " + ", ".join(daily) + " has been recorded yet: run the ingest (agrilake "
                              "ingest --date D, or the ingest DAGs) first")
            out.missing[d] = [f"{s}:{d}" for s in daily]
        else:
            before = [p for p in done if p < d]
            start = max(max(before) + timedelta(days=1), first) if before else first
            missing, why = [], []
            day = start
            while day <= d:
                for s in daily:
                    row = by_key.get((s, day))
                    if row is None or row.status not in READY:
                        missing.append(f"{s}:{day}")
                        why.append(_why(s, day, row))
                day += timedelta(days=1)
            if missing:
                out.missing[d] = missing
                shown = "; ".join(why[:4]) + (f"; and {len(why) - 4} more" if len(why) > 4 else "")
                out.waiting[d] = shown
        if d not in out.waiting or allow_partial:
            out.build.append(d)
            done.add(d)
    return out


def plan(ctx, requested: list[date], *, allow_partial: bool = False) -> DatePlan:
    """plan_dates on the lakehouse's record (ops.deliveries, ops.gold_publications)."""
    return plan_dates(requested, published_dates(ctx), read(ctx), ctx.contracts.delivery_calendars(),
                      allow_partial=allow_partial)


def pending(ctx, up_to: date) -> list[date]:
    """Dates after the newest publication, up to `up_to`, on which some daily system has delivered: what
    an Asset-triggered gold run also builds, so that dates which waited are built once their delivery lands."""
    published = published_dates(ctx)
    if not published:  # nothing published yet: a triggered run builds the dates it was asked for, no more
        return []
    newest = max(published)
    daily = {s for s, c in ctx.contracts.delivery_calendars().items() if c == "daily"}
    return sorted({r.delivery_date for r in read(ctx, sorted(daily))
                   if r.status in READY and newest < r.delivery_date <= up_to})


def availability(day: date, published: set[date]) -> date:
    """The first as-of date whose gold may count a file delivered for `day` and first seen now: its day,
    or the day after the newest publication when that publication is of `day` or later (a late file:
    published dates stay reproducible, and the late rows count from the next date built)."""
    newest = max(published) if published else None
    return newest + timedelta(days=1) if newest is not None and newest >= day else day


# A stage that built what it could while some asked-for dates wait for deliveries: not a failure, not a
# success either (EX_TEMPFAIL's spirit; a scheduler task maps it to "skipped" when nothing was built).
EXIT_WAITING = 3


@dataclass
class Outcome:
    """What a date-building stage did: the dates it built and those that wait (date -> what for)."""
    built: list[date] = field(default_factory=list)
    waiting: dict[date, str] = field(default_factory=dict)

    def report(self, stage: str, *, rerun: str | None = None) -> int:
        """Say on the terminal what waits (a warning, not just a log line); the exit code: 0 when nothing
        waits, EXIT_WAITING when some date does."""
        import sys

        if not self.waiting:
            return 0
        first = min(self.waiting)
        print(f"WARNING: {stage}: {len(self.waiting)} date(s) NOT published, waiting for deliveries"
              f" ({len(self.built)} published):", file=sys.stderr)
        for d, why in sorted(self.waiting.items()):
            print(f"  {d}: {why}", file=sys.stderr)
        print(f"  once the deliveries land: {rerun or f'agrilake {stage} --from {first} --to {max(self.waiting)}'}"
              f" (see `agrilake status`); to publish without them: add --allow-partial (recorded in "
              f"ops.gold_publications)", file=sys.stderr)
        return EXIT_WAITING
