"""`agrilake no-delivery --system S --date D --reason TEXT`: mark D as "nothing to deliver" for system S.

A daily system owes a delivery for every day (schemas/source/_systems.yaml). When it has nothing new it
sends a header-only file, or marks the day with `<landing>/<system>/_nothing_to_deliver/<YYYY-MM-DD>`
(its text says why). This writes that marker, for an upstream without the habit or an operator who
knows (a holiday, an outage the system will not catch up). Gold of D waits for the marker as for a
delivery; the next ingest of S records it (ops.deliveries, status `nothing`).

Refused: a day that already holds files of S (it was delivered: nothing to mark) and a day in the future.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from agrilake.core import dates, deliveries


def main(argv: list[str] | None = None) -> int:
    from agrilake.core.contracts import load
    from agrilake.core.settings import get_settings

    parser = argparse.ArgumentParser(prog="agrilake no-delivery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", required=True, help="the upstream system (coop, postal, bank)")
    parser.add_argument("--date", required=True, type=dates.parse, help="the delivery date with nothing to deliver")
    parser.add_argument("--reason", required=True, help="why (kept in the marker and in ops.deliveries)")
    parser.add_argument("--landing", help="landing root (default: AGRILAKE_LANDING)")
    args = parser.parse_args(argv)
    settings = get_settings()
    calendars = load(settings.schemas_dir).delivery_calendars()
    if args.system not in calendars:
        parser.error(f"unknown --system {args.system!r}; one of {sorted(calendars)}")
    if args.date > date.today():
        parser.error(f"--date {args.date} is in the future: mark a day once it has passed")
    landing = args.landing or settings.landing
    root = deliveries.marker_path(landing, args.system, args.date).parent.parent
    held = sorted(p for p in root.glob(f"*/{args.date.isoformat()}/*") if p.is_file() and not p.name.startswith("."))
    if held:
        print(f"no-delivery: {args.system} {args.date} already holds {len(held)} file(s) (e.g. {held[0]}): it was "
              "delivered, there is nothing to mark", file=sys.stderr)
        return 2
    path = deliveries.write_marker(landing, args.system, args.date, args.reason)
    print(f"marked {args.system} {args.date} as nothing to deliver: {path}\n"
          f"the next ingest of {args.system} records it; gold of {args.date} then no longer waits for {args.system}")
    return 0
