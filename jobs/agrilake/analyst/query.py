"""`agrilake sql "SELECT ..."`: one read-only statement on the catalog, printed as a table, CSV or JSON.

Tables are `<layer>.<table>`: silver, gold and ops for everyone; bronze and ops.quarantine hold personal
data in clear and are read with --operator only (analysts read ops.quarantine_masked). Delta time
travel works on any of them:

    agrilake sql "SELECT * FROM gold.coop_credit_profile VERSION AS OF 3"
    agrilake sql "SELECT * FROM gold.coop_credit_profile TIMESTAMP AS OF '2026-10-30 18:00:00'" --format csv

Timestamps, in and out, are in the session time zone (Asia/Shanghai, as METRICS.md's dates).

Read-only: the session refuses, on Spark's analysed plan, anything but queries over the registered
tables and SHOW / DESCRIBE / EXPLAIN / USE (no writes, no file paths, no reflection, no UDFs), and it
runs with only the environment variables it needs (no secret). The pipeline is the lakehouse's only writer,
so that every version has passed its quality gate.
"""

from __future__ import annotations

import argparse
import sys

from agrilake.analyst.output import FORMATS, collect, condition, explain, quiet_pyspark, write
from agrilake.core.settings import get_settings

NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND")


def run(ctx, statement: str, limit: int | None):
    """Run `statement`; a table unknown to the catalog triggers one refresh (it may be new) and a retry."""
    from agrilake.analyst.catalog import refresh

    try:
        return collect(ctx.spark.sql(statement), limit)
    except Exception as exc:
        if condition(exc) not in NOT_FOUND or not refresh(ctx).registered:
            raise
    return collect(ctx.spark.sql(statement), limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake sql", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("statement", help="the SQL statement; `-` reads it from standard input")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many rows (default 1000; 0: all)")
    parser.add_argument("--operator", action="store_true",
                        help="an operator's session: may read bronze and ops.quarantine (personal data in clear)")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be >= 0")
    statement = sys.stdin.read() if args.statement == "-" else args.statement
    if not statement.strip().rstrip(";").strip():
        print("agrilake sql: no statement given", file=sys.stderr)
        return 2
    quiet_pyspark()
    from agrilake.analyst.catalog import open_context

    try:
        ctx = open_context(get_settings(), operator=args.operator)
        columns, rows, truncated = run(ctx, statement.strip().rstrip(";"), args.limit or None)
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake sql: {explain(exc)}", file=sys.stderr)
        return 1
    write(columns, rows, args.format)
    if truncated:
        print(f"agrilake sql: showing the first {args.limit} rows; --limit N for more, --limit 0 for all",
              file=sys.stderr)
    return 0
