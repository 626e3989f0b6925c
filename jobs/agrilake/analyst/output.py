"""Results as a table, CSV or JSON, and Spark errors as one readable message with what to do next."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
import sys
from decimal import Decimal
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")
MAX_CELL = 60  # characters of one cell in the table format; CSV and JSON are never cut

HINTS = {
    "TABLE_OR_VIEW_NOT_FOUND": "`agrilake tables` lists the tables (and registers new ones); names are "
                               "<layer>.<table>, e.g. gold.coop_credit_profile.",
    "SCHEMA_NOT_FOUND": "the databases are bronze, silver, gold and ops: `agrilake tables` lists their tables.",
    "UNRESOLVED_COLUMN": "`agrilake describe <layer>.<table>` lists a table's columns.",
    "PARSE_SYNTAX_ERROR": "fix the SQL at the marked position (Spark SQL syntax).",
    "DELTA_TIME_TRAVEL": "`agrilake describe <layer>.<table>` shows the table's versions and their timestamps "
             "(session time zone), for VERSION AS OF / TIMESTAMP AS OF.",
}


def quiet_pyspark() -> None:
    """pyspark logs every failed query with its JVM stack trace; the commands report errors themselves."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def condition(exc: BaseException) -> str | None:
    get = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        return get() if get else None
    except Exception:  # a py4j-backed exception whose JVM is gone
        return None


def explain(exc: BaseException) -> str:
    """The error's message without JVM stack trace or query plan, followed by a hint when one helps."""
    from py4j.protocol import Py4JJavaError

    try:
        # str(): getMessage() fails on Delta's errors, whose classes Spark's own error registry lacks
        text = str(exc.java_exception.toString()) if isinstance(exc, Py4JJavaError) else str(exc)
    except Exception:  # a py4j-backed exception whose JVM is gone
        text = type(exc).__name__
    text = text.split("\n\nJVM stacktrace:")[0].strip()
    cond = condition(exc) or ""
    if cond.startswith("PARSE"):
        # keep the `== SQL ==` block: it marks where the parser stopped
        lines = [line for line in text.splitlines() if line.strip()]
    else:
        lines = []
        for line in text.splitlines():
            # stop at what follows the message: search paths, generic advice, analyzer plans
            if not line.strip() or line.startswith(("Search path", "If you did not", "To tolerate")):
                break
            # an analyzer error ends its message with "SQLSTATE: 42703; line 1 pos 7;" and then the plan
            if re.search(r"SQLSTATE: \w+(; line \d+ pos \d+)?;\s*$", line):
                lines.append(line.rstrip().rstrip(";"))
                break
            lines.append(line)
    message = "\n".join(lines) or type(exc).__name__
    if cond.startswith("DELTA") and ("VERSION" in cond or "TIMESTAMP" in cond or "TIME_TRAVEL" in cond):
        cond = "DELTA_TIME_TRAVEL"
    hint = next((h for key, h in HINTS.items() if cond.startswith(key)), None)
    return f"{message}\n{hint}" if hint else message


def jsonable(value: Any) -> Any:
    """A value JSON can hold; decimals stay numbers when a float holds them exactly (money up to 10^13)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "asDict"):
        return {k: jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def text(value: Any) -> str:
    """A value as one cell of the table or CSV format (SQL spelling for null and booleans)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, bytes, bytearray)):
        return jsonable(value)
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "asDict"):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def render_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[text(v) for v in row] for row in rows]
    cells = [[c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in row] for row in cells]
    widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
    right = [bool(rows) and all(_numeric(r[i]) or r[i] is None for r in rows) for i in range(len(columns))]
    lines = [" " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "-" + "-+-".join("-" * w for w in widths) + "-"]
    for row in cells:
        lines.append(" " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                      for c, w, r in zip(row, widths, right, strict=True)))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(line.rstrip() for line in lines)


def write(columns: list[str], rows: list[list[Any]], fmt: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if fmt == "table":
        print(render_table(columns, rows), file=out)
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else text(v) for v in row] for row in rows])
    elif fmt == "json":
        records = [dict(zip(columns, (jsonable(v) for v in row), strict=True)) for row in rows]
        print(json.dumps(records, ensure_ascii=False, indent=1), file=out)
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")


def collect(df, limit: int | None) -> tuple[list[str], list[list[Any]], bool]:
    """(columns, rows, truncated): at most `limit` rows (None: all).

    Timestamps are turned into text by Spark, in the session time zone (Asia/Shanghai): Python would
    show them in its own zone, and the text is what TIMESTAMP AS OF and the analysts' dates expect.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    fields = df.schema.fields
    names = [f.name for f in fields]
    if len(set(names)) == len(names) and any(isinstance(f.dataType, (TimestampType, TimestampNTZType))
                                             for f in fields):
        df = df.select(*[F.col(f"`{f.name}`").cast("string").alias(f.name)
                         if isinstance(f.dataType, (TimestampType, TimestampNTZType)) else F.col(f"`{f.name}`")
                         for f in fields])
    if limit is None:
        return names, [list(r) for r in df.collect()], False
    rows = df.limit(limit + 1).collect()
    return names, [list(r) for r in rows[:limit]], len(rows) > limit
