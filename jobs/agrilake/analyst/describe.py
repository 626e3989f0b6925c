"""`agrilake describe <layer>.<table>`: columns with their descriptions, rows per partition, Delta history,
and the table's latest data-quality result; `--version N` / `--timestamp T` describe an older version.

Everything is asked in SQL, so the same code runs on a local session and through the SQL server.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agrilake.analyst.output import collect, condition, explain, jsonable, quiet_pyspark, render_table
from agrilake.core.settings import get_settings

MAX_PARTITIONS = 60  # newest partitions shown; older ones are summed in one line


def _time_travel(version: int | None, timestamp: str | None) -> str:
    from agrilake.analyst.catalog import sql_literal

    if version is not None:
        return f" VERSION AS OF {int(version)}"
    if timestamp:
        return f" TIMESTAMP AS OF {sql_literal(timestamp)}"
    return ""


def latest_dq(spark, table: str) -> dict | None:
    """The newest validation of `table` in ops.dq_results, shaped like agrilake.core.ops.latest_dq(ctx, ...).

    Not that function itself: it reads ops.dq_results by path (Delta's Python API, through the JVM),
    which a Spark Connect session cannot; this asks the catalog in SQL, of any partition.
    """
    from agrilake.analyst.catalog import sql_literal

    if not spark.catalog.tableExists("ops.dq_results"):
        return None
    name = sql_literal(table)
    rows = spark.sql(
        "SELECT run_id, suite, partition, CAST(validated_at AS STRING) AS validated_at, expectation, column_name, "
        f"severity, success, observed FROM ops.dq_results WHERE table_name = {name} AND validated_at = "
        f"(SELECT max(validated_at) FROM ops.dq_results WHERE table_name = {name})").collect()
    if not rows:
        return None
    failed = [{"expectation": r.expectation, "column": r.column_name, "severity": r.severity, "observed": r.observed}
              for r in rows if not r.success]
    return {
        "run_id": rows[0].run_id,
        "suite": rows[0].suite,
        "partition": rows[0].partition,
        "success": not any(f["severity"] == "critical" for f in failed),
        "expectations": len(rows),
        "failed": failed,
        "validated_at": rows[0].validated_at,
    }


def _layout(spark, qualified: str) -> tuple[str, list[str]]:
    """(location, partition columns) from DESCRIBE TABLE EXTENDED, which, unlike DESCRIBE DETAIL,
    needs no job to reconstruct the Delta state."""
    rows = [((r[0] or "").strip(), r[1]) for r in spark.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect()]
    names = [name for name, _ in rows]
    location = next((value for name, value in rows if name == "Location"), "")
    partitions: list[str] = []
    if "# Partition Information" in names:
        for name in names[names.index("# Partition Information") + 1:]:
            if name == "# col_name":
                continue
            if not name or name.startswith("#"):
                break
            partitions.append(name)
    return location, partitions


def describe(ctx, name: str, *, version: int | None = None, timestamp: str | None = None,
             history: int = 10) -> dict[str, Any]:
    """Everything `agrilake describe` prints, as one dict (the JSON format prints it as is)."""
    from pyspark.sql import functions as F

    from agrilake.analyst.catalog import descriptions, quote, split_name

    spark = ctx.spark
    layer, table = split_name(name)
    qualified = f"{layer}.{quote(table)}"
    df = spark.sql(f"SELECT * FROM {qualified}{_time_travel(version, timestamp)}")
    location, partition_by = _layout(spark, qualified)
    description, contract = descriptions(ctx.contracts, layer, table)
    columns = [{"name": f.name, "type": f.dataType.simpleString(),
                # the contract's text stands in where a comment could not be committed yet
                "description": f.metadata.get("comment") or contract.get(f.name, "")}
               for f in df.schema.fields]
    partition_by = [c for c in partition_by if c in df.columns]
    if partition_by:
        counts = (df.groupBy(*[F.col(quote(c)).cast("string").alias(c) for c in partition_by]).count()
                  .orderBy(*[F.col(quote(c)).desc() for c in partition_by]))
        _, rows, _ = collect(counts, None)
        partitions = [{**dict(zip(partition_by, r[:-1], strict=True)), "rows": r[-1]} for r in rows]
    else:
        partitions = [{"rows": df.count()}]
    hist = spark.sql(f"DESCRIBE HISTORY {qualified} LIMIT {int(history)}").select(
        "version", F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS").alias("timestamp"), "operation",
        "operationParameters", "operationMetrics").collect()
    return {
        "table": f"{layer}.{table}",
        "description": spark.catalog.getTable(f"{layer}.{table}").description or description,
        "location": location,
        "as_of": {"version": version} if version is not None else ({"timestamp": timestamp} if timestamp else None),
        "current_version": hist[0].version if hist else None,
        "partition_by": partition_by,
        "columns": columns,
        "partitions": partitions,
        "rows": sum(p["rows"] for p in partitions),
        "history": [{
            "version": h.version, "timestamp": h.timestamp, "operation": h.operation,
            "parameters": {k: v for k, v in (h.operationParameters or {}).items() if v not in (None, "", "[]")},
            "rows_written": (h.operationMetrics or {}).get("numOutputRows"),
        } for h in hist],
        "quality": latest_dq(spark, f"{layer}.{table}"),
        "session_time_zone": spark.conf.get("spark.sql.session.timeZone"),
    }


def render(info: dict[str, Any]) -> str:
    out = [f"{info['table']}: {info['description'] or '(no description)'}", f"location: {info['location']}"]
    if info["as_of"]:
        out.append(f"as of {', '.join(f'{k} {v}' for k, v in info['as_of'].items())} "
                   f"(current version {info['current_version']})")
    else:
        out.append(f"version: {info['current_version']}")
    out += ["", "columns:", render_table(["column", "type", "description"],
                                         [[c["name"], c["type"], c["description"]] for c in info["columns"]])]
    parts = info["partitions"]
    if info["partition_by"]:
        shown, older = parts[:MAX_PARTITIONS], parts[MAX_PARTITIONS:]
        rows = [[*(p[c] for c in info["partition_by"]), p["rows"]] for p in shown]
        if older:
            rows.append([f"{len(older)} older partitions", *([""] * (len(info["partition_by"]) - 1)),
                         sum(p["rows"] for p in older)])
        out += ["", f"rows per partition: {info['rows']} in {len(parts)} partition(s)",
                render_table([*info["partition_by"], "rows"], rows)]
    else:
        out += ["", f"rows: {info['rows']} (not partitioned)"]
    out += ["", f"history (newest first; timestamps in {info['session_time_zone']}, as TIMESTAMP AS OF takes them):",
            render_table(["version", "timestamp", "operation", "parameters", "rows_written"],
                         [[h["version"], h["timestamp"], h["operation"],
                           " ".join(f"{k}={v}" for k, v in h["parameters"].items()), h["rows_written"]]
                          for h in info["history"]])]
    dq = info["quality"]
    out.append("")
    if dq is None:
        out.append("latest data-quality result: none recorded in ops.dq_results")
    else:
        warnings = sum(1 for f in dq["failed"] if f["severity"] != "critical")
        verdict = "PASSED" if dq["success"] else "FAILED (a critical expectation failed)"
        out.append(f"latest data-quality result: {verdict}: suite {dq['suite']}, partition {dq['partition'] or '-'}, "
                   f"{dq['expectations']} expectations, {len(dq['failed'])} failed ({warnings} warning), "
                   f"run {dq['run_id']} at {dq['validated_at']}")
        if dq["failed"]:
            out.append(render_table(["expectation", "column", "severity", "observed"],
                                    [[f["expectation"], f["column"], f["severity"], f["observed"]]
                                     for f in dq["failed"]]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake describe", description=__doc__.split("\n\n")[0])
    parser.add_argument("table", help="<layer>.<table>, e.g. gold.coop_credit_profile")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--version", type=int, help="describe this Delta version (time travel)")
    when.add_argument("--timestamp", help="describe the version current at this time (session time zone)")
    parser.add_argument("--history", type=int, default=10, help="history entries to show (default 10)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--operator", action="store_true",
                        help="an operator's session: may read bronze and ops.quarantine (personal data in clear)")
    args = parser.parse_args(argv)
    quiet_pyspark()
    from agrilake.analyst.catalog import open_context, refresh, split_name

    try:
        split_name(args.table)
    except ValueError as exc:
        print(f"agrilake describe: {exc}", file=sys.stderr)
        return 2
    try:
        ctx = open_context(get_settings(), "agrilake-describe", operator=args.operator)
        when = {"version": args.version, "timestamp": args.timestamp, "history": args.history}
        try:
            info = describe(ctx, args.table, **when)
        except Exception as exc:
            if condition(exc) != "TABLE_OR_VIEW_NOT_FOUND" or not refresh(ctx).registered:
                raise
            info = describe(ctx, args.table, **when)
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake describe: {explain(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(jsonable(info), indent=1, ensure_ascii=False) if args.format == "json" else render(info))
    return 0
