"""Lakehouse maintenance: OPTIMIZE (compaction) and VACUUM of every Delta table, with a before/after report.

Appends, MERGEs and per-date partition replaces leave many small files and, after every rewrite,
files that only old versions still reference. Weekly (dags/agrilake_maintenance.py) this job
compacts each table's current version into fewer files, then deletes the unreferenced files older
than the retention (AGRILAKE_VACUUM_RETENTION_HOURS, default 168 = Delta's own default; time travel
further back than the retention stops working).

    agrilake maintenance [--retention-hours H] [--tables 'gold.*' --tables ops.ingest_log]

The report (printed, and appended to ops.maintenance_log, one row per table and run) gives, before
and after: the current version's files and bytes (DESCRIBE DETAIL numFiles/sizeInBytes, what
OPTIMIZE shrinks) and the data files on storage, old versions included (what VACUUM shrinks).
A table that fails is reported with its error and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import time
from datetime import UTC, datetime

from agrilake.core import lineage, ops, tables
from agrilake.core.context import RunContext

log = logging.getLogger(__name__)

def select(found: list[tuple[str, str]], patterns: list[str] | None) -> list[tuple[str, str]]:
    """The (layer, name) pairs whose `layer.name` matches any glob of `patterns` (all when none)."""
    if not patterns:
        return list(found)
    return [(layer, name) for layer, name in found
            if any(fnmatch.fnmatchcase(f"{layer}.{name}", p) for p in patterns)]


def maintain_table(ctx: RunContext, layer: str, name: str, retention_hours: float, run_id: str) -> dict:
    started = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.monotonic()
    row = {"run_id": run_id, "table_name": f"{layer}.{name}", "retention_hours": float(retention_hours),
           "started_at": started}
    try:
        before = tables.detail(ctx, layer, name)
        row.update(files_before=before["num_files"], bytes_before=before["size_bytes"])
        row["storage_files_before"], row["storage_bytes_before"] = tables.storage_usage(ctx, layer, name)
        compaction = tables.optimize(ctx, layer, name)
        row.update(optimize_files_removed=compaction["files_removed"], optimize_files_added=compaction["files_added"])
        tables.vacuum(ctx, layer, name, retention_hours)
        after = tables.detail(ctx, layer, name)
        row.update(files_after=after["num_files"], bytes_after=after["size_bytes"])
        row["storage_files_after"], row["storage_bytes_after"] = tables.storage_usage(ctx, layer, name)
        row.update(status="ok", message="")
    except Exception as exc:  # one broken table must not stop the maintenance of the others
        log.exception("maintenance of %s.%s failed", layer, name)
        row.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:2000])
    row["seconds"] = round(time.monotonic() - t0, 3)
    return row


def run(ctx: RunContext, *, retention_hours: float | None = None, patterns: list[str] | None = None,
        record: bool = True) -> list[dict]:
    """Maintain every matching table; returns the report rows (and appends them to ops.maintenance_log)."""
    if retention_hours is None:
        retention_hours = ctx.settings.vacuum_retention_hours
    if retention_hours < 0:
        raise ValueError(f"--retention-hours must be >= 0, got {retention_hours}")
    targets = select(tables.list_tables(ctx), patterns)
    if not targets:
        log.warning("no Delta table under %s matches %s", ctx.settings.lakehouse, patterns or "*")
    run_id = ops.new_run_id()
    with lineage.stage_run(ctx, "maintenance"):
        rows = [maintain_table(ctx, layer, name, retention_hours, run_id) for layer, name in targets]
        if record and rows:
            ops.create(ctx, "maintenance_log")
            tables.append(ctx, ops.rows_df(ctx, ops.ddl(ctx, "maintenance_log"), rows), "ops", "maintenance_log")
    return rows


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_report(rows: list[dict]) -> str:
    """The report as a fixed-width text table, one line per table."""
    header = ("table", "files", "size", "files on storage", "size on storage", "status")
    lines = []
    for r in rows:
        lines.append((
            r["table_name"],
            f"{r.get('files_before', '-')} -> {r.get('files_after', '-')}",
            f"{_size(r.get('bytes_before'))} -> {_size(r.get('bytes_after'))}",
            f"{r.get('storage_files_before', '-')} -> {r.get('storage_files_after', '-')}",
            f"{_size(r.get('storage_bytes_before'))} -> {_size(r.get('storage_bytes_after'))}",
            r["status"] if r["status"] == "ok" else f"{r['status']}: {r['message'][:80]}",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake maintenance", description=__doc__.splitlines()[0])
    parser.add_argument("--retention-hours", type=float,
                        help="VACUUM retention (default AGRILAKE_VACUUM_RETENTION_HOURS, 168)")
    parser.add_argument("--tables", action="append", metavar="GLOB",
                        help="layer.name globs, repeatable or comma-separated (default: every table)")
    args = parser.parse_args(argv)
    patterns = [p.strip() for arg in args.tables or [] for p in arg.split(",") if p.strip()]
    if args.retention_hours is not None and args.retention_hours < 0:
        parser.error("--retention-hours must be >= 0")
    from agrilake.core import context

    ctx = context.from_env("agrilake-maintenance")
    rows = run(ctx, retention_hours=args.retention_hours, patterns=patterns or None)
    retention = args.retention_hours if args.retention_hours is not None else ctx.settings.vacuum_retention_hours
    print(f"maintenance of {len(rows)} table(s), VACUUM retention {retention:g} h")
    if rows:
        print(format_report(rows))
    pruned = lineage.prune_events(ctx.settings)
    print(f"lineage events older than {ctx.settings.lineage_retention_days} days deleted: {pruned}")
    failed = [r["table_name"] for r in rows if r["status"] != "ok"]
    if failed:
        log.error("maintenance failed for %s (see ops.maintenance_log and the log above)", ", ".join(failed))
        return 1
    return 0
