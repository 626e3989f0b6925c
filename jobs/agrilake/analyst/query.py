"""`agrilake sql "SELECT ..."`: one read-only statement on the catalog, printed as a table, CSV or JSON.

Tables are `<layer>.<table>` (bronze, silver, gold, ops). Delta time travel works on any of them:

    agrilake sql "SELECT * FROM gold.coop_credit_profile VERSION AS OF 3"
    agrilake sql "SELECT * FROM gold.coop_credit_profile TIMESTAMP AS OF '2026-10-30 18:00:00'" --format csv

Timestamps, in and out, are in the session time zone (Asia/Shanghai, as METRICS.md's dates).
"""

from __future__ import annotations

import argparse
import re
import sys

from agrilake.analyst.output import FORMATS, collect, condition, explain, quiet_pyspark, write
from agrilake.core.settings import get_settings

READ_ONLY = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", "FROM")
WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND")


def _code_only(statement: str) -> str:
    """The statement without comments and string literals, for the keyword checks."""
    statement = re.sub(r"--[^\n]*|/\*.*?\*/", " ", statement, flags=re.DOTALL)
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", "''", statement)


def refusal(statement: str) -> str | None:
    """Why `statement` is not run, or None. The pipeline is the lakehouse's only writer (write-audit-publish)."""
    code = _code_only(statement).strip().rstrip(";").strip()
    if not code:
        return "no statement given"
    if ";" in code:
        return "one statement at a time"
    first = code.lstrip("(").split(None, 1)[0].upper()
    if first not in READ_ONLY or (first == "WITH" and WRITES.search(code)):
        return (f"not a read-only statement ({first} ...): agrilake sql runs statements starting with "
                f"{', '.join(READ_ONLY)}; the pipeline is the only writer of the lakehouse, so that every "
                "version has passed its quality gate")
    return None


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
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be >= 0")
    statement = sys.stdin.read() if args.statement == "-" else args.statement
    why = refusal(statement)
    if why:
        print(f"agrilake sql: {why}", file=sys.stderr)
        return 2
    quiet_pyspark()
    from agrilake.analyst.catalog import open_context

    try:
        ctx = open_context(get_settings())
        columns, rows, truncated = run(ctx, statement.strip().rstrip(";"), args.limit or None)
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake sql: {explain(exc)}", file=sys.stderr)
        return 1
    write(columns, rows, args.format)
    if truncated:
        print(f"agrilake sql: showing the first {args.limit} rows; --limit N for more, --limit 0 for all",
              file=sys.stderr)
    return 0
