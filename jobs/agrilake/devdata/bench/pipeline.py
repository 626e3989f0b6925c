"""The pipeline benchmark: every stage at each scale, each figure beside its anchor from the same run.

    python -m agrilake.devdata.bench.pipeline --scales 1 10 [--days 7] [--json bench.json] [--incremental]
                                              [--bronze-only]

Per scale, in a fresh temporary landing and lakehouse with one Spark session (the settings' master):
generate the landing; DuckDB reads it into columnar rows with lineage (every column as text, file
name, row number per file) and writes Parquet (the bronze anchor); bronze, silver and gold run
directly (no Airflow); DuckDB builds gold from the same silver snapshot (the gold anchor), compared
row by row (exit 1 on any difference). Printed and written as JSON: wall seconds, rows in and out,
rows/s, the share of the stage spent in Great Expectations, and the peak memory of the driver
process and of the whole process tree (JVM and Python workers), sampled every 0.2 s. With
--incremental, one more delivery day is ingested on top of the history and timed against a full
rebuild of all days in a new lakehouse. The last lines are the ratios: bronze/DuckDB, gold/DuckDB,
incremental/rebuild, and each scale against the first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from agrilake.core import dates


class PeakMemory:
    """Peak RSS (MiB) of this process and of it plus its children, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.driver, self.tree = interval, 0.0, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                rss = {p.pid: p.memory_info().rss / 2**20 for p in procs}
            except psutil.Error:
                continue
            # The Spark driver is the JVM child of this Python process (py4j); its heap is the driver's.
            jvm = max((v for pid, v in rss.items() if pid != me.pid), default=0.0)
            self.driver = max(self.driver, jvm + rss[me.pid])
            self.tree = max(self.tree, sum(rss.values()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn, *args, **kwargs) -> dict:
    """Run a stage; its wall seconds, the seconds spent in GX validations, and peak memory."""
    from agrilake.core import quality

    gx_before = quality.VALIDATION_SECONDS.total
    with PeakMemory() as mem:
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t
    gx = quality.VALIDATION_SECONDS.total - gx_before
    return {"seconds": round(seconds, 2), "gx_seconds": round(gx, 2), "gx_share": round(gx / seconds, 3),
            "driver_peak_mb": round(mem.driver), "tree_peak_mb": round(mem.tree), "result": out}


def duckdb_landing(landing: Path, out: Path, contracts) -> dict:
    """The bronze anchor: every landed file into text columns + file name + row number, written to Parquet.

    DuckDB skips the records it cannot parse (ignore_errors) where bronze quarantines them with a
    reason, and a file it cannot read at all is left out and counted: the anchor does less work than
    bronze, never more."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    rows, skipped = 0, []
    t = time.perf_counter()
    for feed in contracts.feeds().values():
        files = sorted(str(p) for p in (landing / feed.system / feed.feed).glob(f"*/*.{feed.format}"))
        columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in feed.column_names) + "}"
        for i, path in enumerate(files):
            if feed.format == "csv":
                source = (f"read_csv('{path}', all_varchar=true, header=true, filename=true, delim=',', quote='\"', "
                          "escape='\"', strict_mode=false, ignore_errors=true, null_padding=true)")
            else:
                source = (f"read_json('{path}', format='newline_delimited', columns={columns}, filename=true, "
                          "ignore_errors=true)")
            target = out / f"{feed.name}_{i}.parquet"
            try:
                con.execute(f"COPY (SELECT *, row_number() OVER () AS _line FROM {source}) TO '{target}' "
                            "(FORMAT parquet)")
            except duckdb.Error:
                skipped.append(path)
                continue
            rows += con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0]
    seconds = time.perf_counter() - t
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "files_skipped": len(skipped)}


def run_scale(scale: float, start: date, days: int, workdir: Path, args) -> dict:
    from agrilake.core.context import RunContext
    from agrilake.core.settings import Settings
    from agrilake.devdata import generate
    from agrilake.devdata.bench.gold import build_and_compare
    from agrilake.stages import bronze, silver

    landing, lake = workdir / "landing", workdir / "lake"
    end = start + timedelta(days=days - 1)
    # Synthetic data only: the public demo key is the one to pseudonymise it with.
    ctx = RunContext(Settings.from_env(landing=str(landing), lakehouse=str(lake), demo_mode=True),
                     app_name="agrilake-bench")
    out: dict = {"scale": scale, "days": days, "as_of": end.isoformat()}
    last = end - timedelta(days=1) if args.incremental else end
    t = time.perf_counter()
    generate.main(["--start", start.isoformat(), "--days", str(days), "--scale", str(scale), "--seed", "1",
                   "--landing", str(landing)])
    out["generate_seconds"] = round(time.perf_counter() - t, 2)
    anchor_dir = workdir / "duckdb_landing"
    anchor_dir.mkdir()
    out["duckdb_landing"] = duckdb_landing(landing, anchor_dir, ctx.contracts)

    t = time.perf_counter()
    assert ctx.spark is not None  # the session starts outside the stages' clocks, reported apart
    out["spark_start_seconds"] = round(time.perf_counter() - t, 2)
    b = timed(bronze.ingest, ctx, None, last)
    read = sum(r["read"] for r in b["result"])
    accepted = sum(r["accepted"] for r in b["result"])
    out["bronze"] = {**{k: v for k, v in b.items() if k != "result"}, "rows_in": read, "rows_out": accepted,
                     "rows_per_s": round(read / b["seconds"])}
    if args.bronze_only:
        ctx.spark.stop()
        return out
    s = timed(silver.run, ctx, None, last)
    candidates = sum(c["candidates"] for c in s["result"])
    out["silver"] = {**{k: v for k, v in s.items() if k != "result"}, "rows_in": candidates,
                     "rows_out": sum(c["accepted"] for c in s["result"]),
                     "rows_per_s": round(candidates / s["seconds"]) if s["seconds"] else None}
    g = timed(build_and_compare, ctx, last, str(workdir / "gold"))
    gold_s, duck_s, bad = g["result"]
    out["gold"] = {**{k: v for k, v in g.items() if k != "result"}, "spark_seconds": round(gold_s, 2),
                   "duckdb_seconds": round(duck_s, 2), "mismatches": bad}
    if args.incremental:
        from agrilake.stages import gold

        def one_day(c, day):
            bronze.ingest(c, None, day)
            silver.run(c, None, day)
            gold.publish(c, gold.read_silver(c), day)

        inc = timed(one_day, ctx, end)
        rebuild_ctx = RunContext(ctx.settings.replace(lakehouse=str(workdir / "lake_rebuild")), ctx.spark,
                                 "agrilake-bench")
        reb = timed(one_day, rebuild_ctx, end)
        out["incremental"] = {"day_seconds": inc["seconds"], "rebuild_seconds": reb["seconds"],
                              "ratio": round(inc["seconds"] / reb["seconds"], 3)}
    ctx.spark.stop()  # the next scale starts clean: its own lakehouse, its own JVM heap
    return out


def summary(results: list[dict]) -> list[str]:
    lines = [f"{'scale':>6}{'bronze rows':>13}{'bronze s':>10}{'rows/s':>10}{'vs duckdb':>10}{'gx %':>6}"
             f"{'silver s':>10}{'rows/s':>10}{'gx %':>6}{'gold s':>8}{'duckdb s':>9}{'ratio':>7}{'drv MB':>8}{'tree MB':>8}"]
    if any("silver" not in r for r in results):  # --bronze-only
        return [f"scale {r['scale']:g}: bronze {r['bronze']['rows_in']} rows in {r['bronze']['seconds']:.1f} s "
                f"({r['bronze']['rows_per_s']} rows/s, GX {100 * r['bronze']['gx_share']:.0f}%), DuckDB landing read "
                f"{r['duckdb_landing']['seconds']:.1f} s: {r['bronze']['seconds'] / r['duckdb_landing']['seconds']:.1f}x; "
                f"driver peak {r['bronze']['driver_peak_mb']} MB, tree {r['bronze']['tree_peak_mb']} MB" for r in results]
    for r in results:
        b, s, g, a = r["bronze"], r["silver"], r["gold"], r["duckdb_landing"]
        peak_d = max(b["driver_peak_mb"], s["driver_peak_mb"], g["driver_peak_mb"])
        peak_t = max(b["tree_peak_mb"], s["tree_peak_mb"], g["tree_peak_mb"])
        lines.append(f"{r['scale']:>6g}{b['rows_in']:>13}{b['seconds']:>10.1f}{b['rows_per_s']:>10}"
                     f"{b['seconds'] / a['seconds']:>9.1f}x{100 * b['gx_share']:>6.0f}{s['seconds']:>10.1f}"
                     f"{s['rows_per_s'] or 0:>10}{100 * s['gx_share']:>6.0f}{g['spark_seconds']:>8.1f}"
                     f"{g['duckdb_seconds']:>9.1f}{g['spark_seconds'] / g['duckdb_seconds']:>6.1f}x{peak_d:>8}{peak_t:>8}")
    first = results[0]
    for r in results[1:]:
        total = sum(r[k]["seconds"] for k in ("bronze", "silver", "gold"))
        base = sum(first[k]["seconds"] for k in ("bronze", "silver", "gold"))
        lines.append(f"scale {r['scale']:g} against scale {first['scale']:g}: {total / base:.2f}x the time "
                     f"for {r['bronze']['rows_in'] / first['bronze']['rows_in']:.1f}x the rows")
    for r in results:
        if "incremental" in r:
            i = r["incremental"]
            lines.append(f"scale {r['scale']:g}: one incremental day {i['day_seconds']:.1f} s against a rebuild "
                         f"of {r['days']} days {i['rebuild_seconds']:.1f} s ({i['ratio']:.2f}x)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", type=dates.parse, default=date(2026, 10, 1))
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--incremental", action="store_true",
                        help="also time one more day on top of the history against a rebuild of all days")
    parser.add_argument("--bronze-only", action="store_true", help="generate, the DuckDB landing read and bronze only")
    args = parser.parse_args(argv)
    results = []
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix=f"agrilake-bench-{scale:g}-") as tmp:
            results.append(run_scale(scale, args.start, args.days, Path(tmp), args))
        print("\n".join(summary(results)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"figures: {args.json}")
    return 1 if any(r.get("gold", {}).get("mismatches") for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
