"""`agrilake pipeline --from D1 --to D2`: every stage, date by date, without a scheduler.

For real drops and for backfills: each stage is idempotent for its date, so a range can be run
again at any time and gives the same tables. Stages that are not asked for are skipped.

Gold (and so the export) of a date is published only when every system due on it has delivered
(agrilake.core.deliveries): a date that waits, and every later one, is not published; the run goes on
ingesting and conforming the rest, says on the terminal what each date waits for, and exits with 3.
`--allow-partial` publishes them all the same and records what was missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

from agrilake.core import dates, deliveries
from agrilake.core.context import RunContext

log = logging.getLogger(__name__)

STAGES = ("bronze", "silver", "gold", "export")


def run_date(ctx: RunContext, day: date, stages: list[str], *, allow_partial: bool = False,
             outcome: deliveries.Outcome | None = None) -> dict[str, float]:
    """The stages of one date; `outcome` collects the dates gold built and those that wait."""
    outcome = outcome if outcome is not None else deliveries.Outcome()
    timings = {}
    if "bronze" in stages:
        from agrilake.stages import bronze

        t = time.monotonic()
        for line in bronze.ingest(ctx, None, day).warnings(day):
            print(f"WARNING: ingest {day}: {line}", file=sys.stderr)
        timings["bronze"] = time.monotonic() - t
    if "silver" in stages:
        from agrilake.stages import silver

        t = time.monotonic()
        silver.run(ctx, None, day)
        timings["silver"] = time.monotonic() - t
    built = False
    if "gold" in stages:
        from agrilake.stages import gold

        t = time.monotonic()
        if outcome.waiting and not allow_partial:  # an earlier date waits: publishing this one would skip it
            outcome.waiting[day] = f"an earlier date waits ({min(outcome.waiting)})"
        else:
            done = gold.run(ctx, [day], allow_partial=allow_partial)
            outcome.built += done.built
            outcome.waiting.update(done.waiting)
            built = day in done.built
        timings["gold"] = time.monotonic() - t
    if "export" in stages and (built or "gold" not in stages):
        from agrilake.stages import export

        t = time.monotonic()
        for platform in ("bank", "gov"):
            export.export_platform(ctx, platform, day)
        timings["export"] = time.monotonic() - t
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake pipeline", description=__doc__)
    parser.add_argument("--from", dest="start", required=True, type=dates.parse, help="first date")
    parser.add_argument("--to", dest="end", type=dates.parse, help="last date (default: --from)")
    parser.add_argument("--stages", default="bronze,silver,gold",
                        help=f"comma-separated subset of {','.join(STAGES)} (default: bronze,silver,gold)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="publish gold of a date even when a system due on it has not delivered (recorded in ops)")
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    from agrilake.core import context

    ctx = context.from_env("agrilake-pipeline")
    days = dates.days(args.start, args.end or args.start)
    started = time.monotonic()
    outcome = deliveries.Outcome()
    for i, day in enumerate(days, start=1):
        try:
            timings = run_date(ctx, day, stages, allow_partial=args.allow_partial, outcome=outcome)
        except Exception as exc:  # noqa: BLE001 - say which date and stage failed, then stop
            print(f"pipeline: {day} failed: {type(exc).__name__}: {exc}\n"
                  f"fix the cause, then rerun from {day}: agrilake pipeline --from {day} --to {days[-1]}",
                  file=sys.stderr)
            return 1
        spent = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        note = " (gold waits)" if day in outcome.waiting else ""
        print(f"[{i}/{len(days)}] {day}: {spent}{note}", flush=True)
    print(f"pipeline: {len(days)} date(s), stages {','.join(stages)}, {time.monotonic() - started:.0f}s")
    waiting = sorted(outcome.waiting)
    return outcome.report("pipeline", rerun=f"agrilake pipeline --from {waiting[0]} --to {days[-1]}" if waiting else None)
