"""`agrilake tables`: every table of every layer, with its description; new tables are registered first."""

from __future__ import annotations

import argparse
import sys

from agrilake.analyst.output import FORMATS, explain, quiet_pyspark, write
from agrilake.core.settings import get_settings
from agrilake.core.tables import LAYERS


def rows(ctx, layers: list[str]) -> list[list[str]]:
    """(table, kind, description) per catalog entry of `layers`, descriptions from the contracts."""
    from agrilake.analyst.catalog import descriptions

    spark = ctx.spark
    out = []
    for layer in layers:
        if not spark.catalog.databaseExists(layer):
            continue
        views = {r.viewName for r in spark.sql(f"SHOW VIEWS IN {layer}").collect()}
        for r in sorted(spark.sql(f"SHOW TABLES IN {layer}").collect(), key=lambda r: r.tableName):
            if r.isTemporary:
                continue
            kind = "view" if r.tableName in views else "delta"
            out.append([f"{layer}.{r.tableName}", kind, descriptions(ctx.contracts, layer, r.tableName)[0]])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake tables", description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=LAYERS, action="append", help="only this layer (repeatable)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    args = parser.parse_args(argv)
    quiet_pyspark()
    from agrilake.analyst.catalog import open_context, refresh

    try:
        ctx = open_context(get_settings(), "agrilake-tables")
        report = refresh(ctx)
        listed = rows(ctx, args.layer or list(LAYERS))
    except Exception as exc:  # one clear message instead of a JVM stack trace
        print(f"agrilake tables: {explain(exc)}", file=sys.stderr)
        return 1
    write(["table", "kind", "description"], listed, args.format)
    if report.registered:
        print(f"agrilake tables: registered {len(report.registered)} new table(s): {', '.join(report.registered)}",
              file=sys.stderr)
    if not listed:
        print("agrilake tables: the lakehouse has no tables yet; run the pipeline first (`agrilake pipeline` "
              "or `make run`)", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
