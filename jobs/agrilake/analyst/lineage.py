"""`agrilake lineage gold.TABLE[.COLUMN] --date D`: where a gold partition came from, and where it went.

Upstream, down to the landing: the silver tables the gold table is computed from (schemas/gold
`sources`, checked against the code by tests/unit/test_gold_lineage.py), and in each the rows
available by D (`_available_date <= D`, the point-in-time rule gold reads by), grouped by the landed
file they came from; each file with its name, system/feed, delivery date and SHA-256 from
ops.ingest_log. Those are the deliveries that fed the partition: every file with a row D could see
in a table D reads (an older version of a row a later one replaced is counted too: it was read).
The partition itself: the Delta version of D's latest complete publication (ops.gold_publications).
Downstream: each complete export of the partition (ops.export_manifests), with its manifest's SHA-256.

A column (`gold.coop_credit_profile.score`) shows its definition (docs/metrics.md) and the chain of
its table: sources are tracked per table, not per column.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from agrilake.core.contracts import GOLD_TABLES


def _table(ctx, name: str, *, optional: bool = False):
    """A registered table; registers the lakehouse's tables once if it is not known yet. An `optional`
    one the lakehouse does not have (a silver table no delivery has built yet) is None."""
    from agrilake.analyst.catalog import refresh
    from agrilake.analyst.output import condition

    missing = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND")
    try:
        return ctx.spark.table(name)
    except Exception as exc:
        if condition(exc) not in missing:
            raise
        refresh(ctx)
    try:
        return ctx.spark.table(name)
    except Exception as exc:
        if optional and condition(exc) in missing:
            return None
        raise


def parse_target(target: str) -> tuple[str, str | None]:
    parts = target.split(".")
    if len(parts) not in (2, 3) or parts[0] != "gold" or parts[1] not in GOLD_TABLES:
        raise ValueError(f"{target!r}: give gold.<table>[.<column>] with a table among {', '.join(GOLD_TABLES)}")
    return parts[1], parts[2] if len(parts) == 3 else None


def lineage(ctx, table: str, as_of: date, column: str | None = None) -> dict[str, Any]:
    """The upstream chain and the downstream exports of gold.`table`'s partition D, as one dict."""
    from pyspark.sql import functions as F

    contract = ctx.contracts.gold_table(table)
    out: dict[str, Any] = {"table": f"gold.{table}", "as_of_date": as_of.isoformat(), "column": None}
    if column is not None:
        described = {c.name: c.description for c in contract.columns}
        if column not in described:
            raise ValueError(f"gold.{table} has no column {column!r}; its columns: {', '.join(described)}")
        out["column"] = {"name": column, "definition": described[column]}
    publication = (_table(ctx, "ops.gold_publications").where(F.col("as_of_date") == F.lit(as_of))
                   .orderBy(F.col("published_at").desc()).first())
    if publication is None:
        raise ValueError(f"gold.{table} has no complete publication for {as_of} (ops.gold_publications): "
                         f"build it with `agrilake gold --date {as_of}`")
    out["publication"] = {"run_id": publication.run_id, "delta_version": publication.versions.get(table),
                          "rows": publication.row_counts.get(table),
                          "published_at": publication.published_at.isoformat(sep=" ")}
    per_file = None
    built = {}
    for source in contract.extra["sources"]:
        silver = _table(ctx, f"silver.{source}", optional=True)
        built[source] = silver is not None
        if silver is None:
            continue
        rows = (silver.where(F.col("_available_date") <= F.lit(as_of))
                .groupBy("_file_sha256").agg(F.count(F.lit(1)).alias("rows"))
                .select(F.lit(source).alias("silver_table"), "_file_sha256", "rows"))
        per_file = rows if per_file is None else per_file.unionByName(rows)
    log = (_table(ctx, "ops.ingest_log").where(F.col("file_sha256").isNotNull() & (F.col("status") != "duplicate"))
           .select("file_sha256", "file_name", "system", "feed", "delivery_date", "status")
           .dropDuplicates(["file_sha256"]))
    joined = ([] if per_file is None else
              per_file.join(log, per_file._file_sha256 == log.file_sha256, "left").orderBy("silver_table", "file_name")
              .collect())
    sources: dict[str, dict[str, Any]] = {s: {"rows": 0, "files": [], "built": built[s]}
                                          for s in contract.extra["sources"]}
    for r in joined:
        entry = sources[r.silver_table]
        entry["rows"] += r.rows
        entry["files"].append({"sha256": r._file_sha256, "file": r.file_name, "feed": f"{r.system}/{r.feed}"
                               if r.system else None, "delivery_date": r.delivery_date.isoformat()
                               if r.delivery_date else None, "rows": r.rows})
    out["sources"] = sources
    manifests = _table(ctx, "ops.export_manifests", optional=True)
    exports = [] if manifests is None else (
        manifests.where((F.col("dataset") == table) & (F.col("as_of_date") == F.lit(as_of))
                        & (F.col("status") == "complete")).orderBy("exported_at").collect())
    out["exports"] = [{"platform": e.platform, "location": f"s3://{e.bucket}/{e.prefix}",
                       "manifest_sha256": e.manifest_sha256, "rows": e.row_count,
                       "exported_at": e.exported_at.isoformat(sep=" ")} for e in exports]
    return out


def render(info: dict[str, Any]) -> str:
    pub = info["publication"]
    lines = [f"{info['table']} as_of_date={info['as_of_date']}: {pub['rows']} rows, Delta version "
             f"{pub['delta_version']} (publication {pub['run_id']}, {pub['published_at']})"]
    if info["column"]:
        lines.append(f"  column {info['column']['name']}: {info['column']['definition']}")
    lines.append("  upstream (rows available by D, per landed file):")
    for table, entry in info["sources"].items():
        lines.append(f"    silver.{table}: {entry['rows']} rows from {len(entry['files'])} file(s)"
                     + ("" if entry["built"] else " (not built yet: no delivery of its feed)"))
        for f in entry["files"]:
            lines.append(f"      {f['file'] or '(not in ops.ingest_log)'}  sha256 {f['sha256']}  "
                         f"delivered {f['delivery_date']}  {f['rows']} rows")
    lines.append("  downstream:")
    lines += [f"    {e['platform']}: {e['location']} (manifest sha256 {e['manifest_sha256']}, {e['rows']} rows, "
              f"exported {e['exported_at']})" for e in info["exports"]] or ["    (not exported)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from agrilake.analyst.catalog import open_context
    from agrilake.analyst.output import explain, quiet_pyspark
    from agrilake.core.settings import get_settings

    parser = argparse.ArgumentParser(prog="agrilake lineage", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="gold.<table> or gold.<table>.<column>")
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="the as-of date D of the partition")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        table, column = parse_target(args.target)
    except ValueError as exc:
        print(f"agrilake lineage: {exc}", file=sys.stderr)
        return 2
    quiet_pyspark()
    try:
        info = lineage(open_context(get_settings(), "agrilake-lineage"), table, args.date, column)
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake lineage: {explain(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=1, ensure_ascii=False) if args.format == "json" else render(info))
    return 0
