"""The one date parser of every command, and the one meaning of `latest`.

`--date D` takes `YYYY-MM-DD`. Where a command also takes `latest`, it always means the same
thing: **the newest delivery date in ops.ingest_log** (the newest delivery folder ingested so far),
resolved when the command runs. `--from D1 --to D2` is an inclusive range of days.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

LATEST = "latest"
LATEST_HELP = "`latest`: the newest delivery date ingested (ops.ingest_log)"


def parse(value: str) -> date:
    """`YYYY-MM-DD` -> date; anything else is an argparse error that shows the value."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD") from None


def parse_or_latest(value: str) -> date | str:
    return LATEST if value == LATEST else parse(value)


def folder_date(name: str) -> date | None:
    """The date a delivery folder's name spells (exactly YYYY-MM-DD, a real day), else None."""
    if len(name) != 10 or name[4] != "-" or name[7] != "-" or not (name[:4] + name[5:7] + name[8:]).isdigit():
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:  # 2026-13-45, 2026-02-30
        return None


def days(start: date, end: date) -> list[date]:
    """Every day from start to end, inclusive."""
    if end < start:
        raise SystemExit(f"--to {end} is before --from {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def add_date_options(parser: argparse.ArgumentParser, *, what: str, latest: bool = True,
                     ranges: bool = False, required: bool = True) -> None:
    """--date (D, or `latest` when allowed) and, with `ranges`, --from/--to."""
    help_ = f"{what} (YYYY-MM-DD)" + (f", or {LATEST_HELP}" if latest else "")
    parser.add_argument("--date", type=parse_or_latest if latest else parse, required=required and not ranges,
                        help=help_)
    if ranges:
        parser.add_argument("--from", dest="from_", type=parse, help="first day of a range")
        parser.add_argument("--to", type=parse, help="last day of a range (inclusive)")


def from_options(args: argparse.Namespace) -> list[date] | str:
    """The days the options ask for, or LATEST (resolve it with `resolve` once a session is up)."""
    if getattr(args, "date", None) is not None:
        return args.date if args.date == LATEST else [args.date]
    start, end = getattr(args, "from_", None), getattr(args, "to", None)
    if start is None:
        raise SystemExit("give --date D (or `latest`), or --from D1 [--to D2]")
    return days(start, end or start)


def newest_delivery(ctx) -> date | None:
    """The newest delivery date the ingest log has seen (None before the first ingest)."""
    from pyspark.sql import functions as F

    from agrilake.core import tables

    if not tables.exists(ctx, "ops", "ingest_log"):
        return None
    # a rejected entry (a bad file in a delivery folder) was never read: it delivers nothing
    return tables.read(ctx, "ops", "ingest_log").where("status <> 'rejected'").agg(F.max("delivery_date")).first()[0]


def resolve(ctx, value: date | str) -> date:
    """A date, or LATEST turned into the newest delivery date ingested."""
    if value != LATEST:
        return value
    newest = newest_delivery(ctx)
    if newest is None:
        raise SystemExit("--date latest: nothing has been ingested yet; run the ingest DAGs (or agrilake ingest) first")
    return newest


def resolve_all(ctx, value: list[date] | str) -> list[date]:
    return [resolve(ctx, LATEST)] if value == LATEST else list(value)
