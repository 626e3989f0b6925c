"""`agrilake status`: each date's deliveries per system, and what is built from them.

    agrilake status [--from D1] [--to D2] [--format table|json]

One row per delivery date (default: the last 14 dates anything was delivered or published): the state
of each system's delivery (ops.deliveries: delivered, nothing, waiting, rejected; `-` for a system that
owes nothing that day, MISSING for a daily system that owes it), whether gold of the date is published
(and with which run, or partially), what it waits for otherwise, and how many datasets each platform has
a complete export of. It answers the on-call question "why is D not on the platforms?" without a log.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta

from agrilake.core import dates, deliveries, tables

DEFAULT_DAYS = 14


def collect(ctx, start: date | None, end: date | None) -> list[dict]:
    """The status rows of [start, end] (defaults: the last DEFAULT_DAYS dates with any record)."""
    from pyspark.sql import functions as F

    rows = deliveries.read(ctx)
    calendars = ctx.contracts.delivery_calendars()
    publications: dict[date, object] = {}
    if tables.exists(ctx, "ops", "gold_publications"):
        for r in (tables.read(ctx, "ops", "gold_publications").orderBy("published_at").collect()):
            publications[r.as_of_date] = r  # the newest publication of each date wins
    exports: dict[tuple[date, str], set[str]] = {}
    if tables.exists(ctx, "ops", "export_manifests"):
        for r in (tables.read(ctx, "ops", "export_manifests").where(F.col("status") == "complete")
                  .select("as_of_date", "platform", "dataset").distinct().collect()):
            exports.setdefault((r.as_of_date, r.platform), set()).add(r.dataset)
    known = sorted({r.delivery_date for r in rows} | set(publications))
    if not known:
        return []
    end = end or known[-1]
    start = start or max(known[0], end - timedelta(days=DEFAULT_DAYS - 1))
    days = dates.days(start, end)
    by_key = {(r.system, r.delivery_date): r for r in rows}
    published = set(publications)
    plan = deliveries.plan_dates([d for d in days if d not in published], published, rows, calendars)
    daily = [r.delivery_date for r in rows if calendars.get(r.system) == "daily"]
    first = min(daily) if daily else None
    out = []
    for d in days:
        systems = {}
        for s in sorted(calendars):
            r = by_key.get((s, d))
            if r is not None:
                systems[s] = r.status + (" (late)" if r.late else "")
            elif calendars[s] == "daily" and first is not None and d >= first:
                systems[s] = "MISSING"
            else:
                systems[s] = "-"
        pub = publications.get(d)
        if pub is not None:
            missing = list(pub.missing_deliveries or []) if "missing_deliveries" in pub.asDict() else []
            gold = f"published {pub.run_id}" + (f" WITHOUT {', '.join(missing)}" if missing else "")
        else:
            gold = f"waits: {plan.waiting[d]}" if d in plan.waiting else "ready to build"
        out.append({"date": d.isoformat(), "deliveries": systems, "gold": gold,
                    "exports": {p: len(exports.get((d, p), ())) for p in ("bank", "gov")}})
    return out


def render(rows: list[dict]) -> str:
    if not rows:
        return "agrilake status: nothing delivered or published yet (run agrilake ingest, or the ingest DAGs)"
    systems = list(rows[0]["deliveries"])
    width = {s: max(len(s), *(len(r["deliveries"][s]) for r in rows)) for s in systems}
    head = f"{'date':<10}  " + "  ".join(f"{s:<{width[s]}}" for s in systems) + "  bank gov  gold"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['date']:<10}  " + "  ".join(f"{r['deliveries'][s]:<{width[s]}}" for s in systems)
                     + f"  {r['exports']['bank']:>4} {r['exports']['gov']:>3}  {r['gold']}")
    lines.append("bank/gov: datasets with a complete export; MISSING: a daily system's delivery that does not exist "
                 "(no folder, no nothing-to-deliver marker): `agrilake no-delivery --help`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context

    parser = argparse.ArgumentParser(prog="agrilake status", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", type=dates.parse, help="first date (default: 14 days before --to)")
    parser.add_argument("--to", dest="end", type=dates.parse, help="last date (default: the newest date recorded)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    rows = collect(context.from_env("agrilake-status"), args.start, args.end)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(render(rows))
    waiting = [r["date"] for r in rows if r["gold"].startswith("waits")]
    if waiting:
        print(f"WARNING: status: {len(waiting)} date(s) wait for deliveries: {', '.join(waiting)}", file=sys.stderr)
    return 0
