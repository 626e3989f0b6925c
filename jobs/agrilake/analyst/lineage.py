"""`agrilake lineage gold.TABLE[.COLUMN] [--date D]`: where a gold partition came from, and where it went.

Upstream, down to the landing: the silver tables the gold table is computed from (schemas/gold
`sources`, checked against the code by tests/unit/test_gold_lineage.py), and in each the rows
available by D (`_available_date <= D`, the point-in-time rule gold reads by), grouped by the landed
file they came from; each file with its name, system/feed, delivery date and SHA-256 from
ops.ingest_log. Those are the deliveries that fed the partition: every file with a row D could see
in a table D reads (an older version of a row a later one replaced is counted too: it was read).
The partition itself: the Delta version of D's latest complete publication (ops.gold_publications).
Downstream: each complete export of the partition (ops.export_manifests), with its manifest's SHA-256.

A column (`gold.coop_credit_profile.score`) also shows its definition (docs/metrics.md) and the silver
columns its values are computed from, read from Spark's plan of the gold builder on the lakehouse's
silver tables (agrilake.analyst.column_lineage: direct lineage; columns that only filter or join rows
are not listed, and a value picked out of a struct of several columns counts them all).
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


def by_path(ctx, name: str, *, optional: bool = False):
    """`_table` for a pipeline session (no catalog): the lakehouse's table at its path."""
    from agrilake.core import tables

    layer, table = name.split(".")
    if tables.exists(ctx, layer, table):
        return tables.read(ctx, layer, table)
    if optional:
        return None
    raise ValueError(f"{name} does not exist under {ctx.settings.lakehouse}")


def column_sources(ctx, table: str, as_of: date, read=_table) -> dict[str, list[tuple[str, str]]]:
    """Each column of gold.`table` for D -> the (silver table, column) pairs it is computed from: the
    gold builder's plan on the lakehouse's silver tables (nothing is executed)."""
    from agrilake.analyst.column_lineage import column_sources as from_plan
    from agrilake.core.tables import LAYERS
    from agrilake.stages import gold

    silver = ctx.contracts.silver_tables()
    frames = {name: read(ctx, f"silver.{name}", optional=True) for name in silver}
    # a table not built yet: an empty stand-in, named by its columns (it scans no files)
    by_columns = {tuple(sorted(c.name for c in t.columns)): f"silver.{name}" for name, t in silver.items()}
    frames = {name: df if df is not None else ctx.spark.createDataFrame([], silver[name].ddl)
              for name, df in frames.items()}

    def name_of(location: str) -> str | None:
        layer, _, name = location.rstrip("/").rpartition("/")
        layer = layer.rpartition("/")[2]
        return f"{layer}.{name}" if layer in LAYERS else None

    def stand_in(node: dict) -> str | None:
        return by_columns.get(tuple(sorted(e[0]["name"] for e in node.get("output", []))))

    built = gold.transform(frames, as_of, ctx.contracts)[table]
    return from_plan(built, name_of, leaf_name=stand_in)


def parse_target(target: str, silver_tables=()) -> tuple[str, str, str | None]:
    """(layer, table, column or None) of `gold.<table>[.<column>]` or `silver.<table>`."""
    parts = target.split(".")
    if len(parts) == 2 and parts[0] == "silver" and parts[1] in silver_tables:
        return "silver", parts[1], None
    if len(parts) not in (2, 3) or parts[0] != "gold" or parts[1] not in GOLD_TABLES:
        raise ValueError(f"{target!r}: give gold.<table>[.<column>] with a table among {', '.join(GOLD_TABLES)}, "
                         f"or silver.<table> with a table among {', '.join(silver_tables)}")
    return "gold", parts[1], parts[2] if len(parts) == 3 else None


def landed_files(ctx, sources: list[str], as_of: date, read=_table) -> dict[str, dict[str, Any]]:
    """Per silver table: its rows available by D and the landed files they came from (one Spark job)."""
    from pyspark.sql import functions as F

    per_file = None
    built = {}
    for source in sources:
        silver = read(ctx, f"silver.{source}", optional=True)
        built[source] = silver is not None
        if silver is None:
            continue
        rows = (silver.where(F.col("_available_date") <= F.lit(as_of))
                .groupBy("_file_sha256").agg(F.count(F.lit(1)).alias("rows"))
                .select(F.lit(source).alias("silver_table"), "_file_sha256", "rows"))
        per_file = rows if per_file is None else per_file.unionByName(rows)
    log = read(ctx, "ops.ingest_log")
    log_columns = log.columns  # an ingest log from before late files were told apart has no available_date
    log = (log.where(F.col("file_sha256").isNotNull() & (F.col("status") != "duplicate"))
           .select("file_sha256", "file_name", "system", "feed", "delivery_date", "status",
                   (F.col("available_date") if "available_date" in log_columns else F.lit(None).cast("date"))
                   .alias("available_date"))
           .dropDuplicates(["file_sha256"]))
    joined = ([] if per_file is None else
              per_file.join(log, per_file._file_sha256 == log.file_sha256, "left").orderBy("silver_table", "file_name")
              .collect())
    out: dict[str, dict[str, Any]] = {s: {"rows": 0, "files": [], "built": built[s]} for s in sources}
    for r in joined:
        entry = out[r.silver_table]
        entry["rows"] += r.rows
        entry["files"].append({"sha256": r._file_sha256, "file": r.file_name, "feed": f"{r.system}/{r.feed}"
                               if r.system else None, "delivery_date": r.delivery_date.isoformat()
                               if r.delivery_date else None, "rows": r.rows,
                               # a late file: landed in its folder after that date was published
                               "late_available_from": r.available_date.isoformat()
                               if r.available_date and r.available_date != r.delivery_date else None})
    return out


def silver_lineage(ctx, table: str, as_of: date, *, read=_table) -> dict[str, Any]:
    """A silver table's rows available by D with their landed files, and the gold tables that read it."""
    return {"table": f"silver.{table}", "as_of_date": as_of.isoformat(),
            "sources": landed_files(ctx, [table], as_of, read),
            "read_by": [f"gold.{g}" for g in GOLD_TABLES if table in ctx.contracts.gold_table(g).extra["sources"]]}


def latest_published(ctx, read=_table) -> date:
    """The newest as-of date with a complete gold publication (the default of --date)."""
    from pyspark.sql import functions as F

    row = read(ctx, "ops.gold_publications").agg(F.max("as_of_date")).first()
    if row is None or row[0] is None:
        raise ValueError("no gold publication yet (ops.gold_publications): run `agrilake gold --date D` first")
    return row[0]


def lineage(ctx, table: str, as_of: date, column: str | None = None, *, read=_table) -> dict[str, Any]:
    """The upstream chain and the downstream exports of gold.`table`'s partition D, as one dict.
    `read(ctx, name, optional=)`: the catalog's tables (analyst sessions) or `by_path`."""
    from pyspark.sql import functions as F

    contract = ctx.contracts.gold_table(table)
    out: dict[str, Any] = {"table": f"gold.{table}", "as_of_date": as_of.isoformat(), "column": None}
    if column is not None:
        described = {c.name: c.description for c in contract.columns}
        if column not in described:
            raise ValueError(f"gold.{table} has no column {column!r}; its columns: {', '.join(described)}")
        out["column"] = {"name": column, "definition": described[column],
                         "computed_from": [{"table": t, "column": c}
                                           for t, c in column_sources(ctx, table, as_of, read)[column]]}
    publication = (read(ctx, "ops.gold_publications").where(F.col("as_of_date") == F.lit(as_of))
                   .orderBy(F.col("published_at").desc()).first())
    if publication is None:
        raise ValueError(f"gold.{table} has no complete publication for {as_of} (ops.gold_publications): "
                         f"build it with `agrilake gold --date {as_of}`")
    out["publication"] = {"run_id": publication.run_id, "delta_version": publication.versions.get(table),
                          "rows": publication.row_counts.get(table),
                          "published_at": publication.published_at.isoformat(sep=" ")}
    out["sources"] = landed_files(ctx, contract.extra["sources"], as_of, read)
    manifests = read(ctx, "ops.export_manifests", optional=True)
    exports = [] if manifests is None else (
        manifests.where((F.col("dataset") == table) & (F.col("as_of_date") == F.lit(as_of))
                        & (F.col("status") == "complete")).orderBy("exported_at").collect())
    out["exports"] = [{"platform": e.platform, "location": f"s3://{e.bucket}/{e.prefix}",
                       "manifest_sha256": e.manifest_sha256, "rows": e.row_count,
                       "exported_at": e.exported_at.isoformat(sep=" ")} for e in exports]
    return out


def _late(f: dict[str, Any]) -> str:
    return f" LATE (counted from {f['late_available_from']})" if f.get("late_available_from") else ""


def render(info: dict[str, Any]) -> str:
    if "publication" not in info:  # a silver table
        (entry,) = info["sources"].values()
        lines = [f"{info['table']}: {entry['rows']} rows available by {info['as_of_date']} from "
                 f"{len(entry['files'])} landed file(s)"]
        lines += [f"    {f['file'] or '(not in ops.ingest_log)'}  sha256 {f['sha256']}  delivered "
                  f"{f['delivery_date']}{_late(f)}  {f['rows']} rows" for f in entry["files"]]
        lines.append(f"  read by: {', '.join(info['read_by']) or '(no gold table)'}")
        return "\n".join(lines)
    pub = info["publication"]
    lines = [f"{info['table']} as_of_date={info['as_of_date']}: {pub['rows']} rows, Delta version "
             f"{pub['delta_version']} (publication {pub['run_id']}, {pub['published_at']})"]
    if info["column"]:
        lines.append(f"  column {info['column']['name']}: {info['column']['definition']}")
        sources = ", ".join(f"{s['table']}.{s['column']}" for s in info["column"]["computed_from"])
        lines.append(f"  computed from: {sources or '(no column: a count of rows, or a constant)'}")
    lines.append("  upstream (rows available by D, per landed file):")
    for table, entry in info["sources"].items():
        lines.append(f"    silver.{table}: {entry['rows']} rows from {len(entry['files'])} file(s)"
                     + ("" if entry["built"] else " (not built yet: no delivery of its feed)"))
        for f in entry["files"]:
            lines.append(f"      {f['file'] or '(not in ops.ingest_log)'}  sha256 {f['sha256']}  "
                         f"delivered {f['delivery_date']}{_late(f)}  {f['rows']} rows")
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
    parser.add_argument("target", help="gold.<table>, gold.<table>.<column> or silver.<table>")
    parser.add_argument("--date", type=date.fromisoformat,
                        help="the as-of date D (default: the newest date gold has published)")
    parser.add_argument("--format", choices=("text", "json", "svg"), default="text",
                        help="svg: the graph of the chain (landed feeds, silver, gold, exports) as an SVG file")
    args = parser.parse_args(argv)
    from agrilake.core.contracts import load

    settings = get_settings()
    try:
        layer, table, column = parse_target(args.target, list(load(settings.schemas_dir).silver_tables()))
    except ValueError as exc:
        print(f"agrilake lineage: {exc}", file=sys.stderr)
        return 2
    quiet_pyspark()
    try:
        ctx = open_context(settings, "agrilake-lineage")
        as_of = args.date or latest_published(ctx)
        info = lineage(ctx, table, as_of, column) if layer == "gold" else silver_lineage(ctx, table, as_of)
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake lineage: {explain(exc)}", file=sys.stderr)
        return 1
    if args.format == "svg":
        from agrilake.analyst.lineage_graph import svg

        print(svg([info], title=f"lineage of {info['table']} as of {info['as_of_date']}"))
    else:
        print(json.dumps(info, indent=1, ensure_ascii=False) if args.format == "json" else render(info))
    return 0
