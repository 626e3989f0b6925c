"""`agrilake pipeline --from D1 --to D2`: every stage, date by date, without a scheduler.

For real drops and for backfills: each stage is idempotent for its date, so a range can be run
again at any time and gives the same tables. Stages that are not asked for are skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

from agrilake.core import dates
from agrilake.core.context import RunContext

log = logging.getLogger(__name__)

STAGES = ("bronze", "silver", "gold", "export")


def run_date(ctx: RunContext, day: date, stages: list[str]) -> dict[str, float]:
    timings = {}
    if "bronze" in stages:
        from agrilake.stages import bronze

        t = time.monotonic()
        bronze.ingest(ctx, None, day)
        timings["bronze"] = time.monotonic() - t
    if "silver" in stages:
        from agrilake.stages import silver

        t = time.monotonic()
        silver.run(ctx, None, day)
        timings["silver"] = time.monotonic() - t
    if "gold" in stages:
        from agrilake.stages import gold

        t = time.monotonic()
        gold.publish(ctx, gold.read_silver(ctx), day)
        timings["gold"] = time.monotonic() - t
    if "export" in stages:
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
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    from agrilake.core import context

    ctx = context.from_env("agrilake-pipeline")
    days = dates.days(args.start, args.end or args.start)
    started = time.monotonic()
    for i, day in enumerate(days, start=1):
        try:
            timings = run_date(ctx, day, stages)
        except Exception as exc:  # noqa: BLE001 - say which date and stage failed, then stop
            print(f"pipeline: {day} failed: {type(exc).__name__}: {exc}\n"
                  f"fix the cause, then rerun from {day}: agrilake pipeline --from {day} --to {days[-1]}",
                  file=sys.stderr)
            return 1
        spent = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        print(f"[{i}/{len(days)}] {day}: {spent}", flush=True)
    print(f"pipeline: {len(days)} date(s), stages {','.join(stages)}, {time.monotonic() - started:.0f}s")
    return 0
