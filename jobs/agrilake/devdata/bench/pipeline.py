"""Bronze, silver and gold at each scale: generate a landing, ingest it, conform it, build gold.

    python -m agrilake.devdata.bench.pipeline --scales 1 10 --days 30

Each scale runs in a fresh temporary lakehouse with one Spark session (the settings' master):
bronze and silver rows/s, then the four gold tables for the last day by Spark and, on the same
silver snapshot, by the independent DuckDB SQL of jobs/agrilake/devdata/bench/gold_duckdb.py, with both times,
their ratio and a row-by-row comparison (exit 1 on any difference). The table at the end sums up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from agrilake.core import dates


def _tree_rss_mb() -> float:
    """RSS of this process and its children (the Spark JVM and Python workers), in MB, now."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=dates.parse, default=date(2026, 10, 1))
    parser.add_argument("--no-silver", action="store_true", help="bronze only (implies --no-gold)")
    parser.add_argument("--no-gold", action="store_true")
    args = parser.parse_args(argv)
    from agrilake.core.context import RunContext
    from agrilake.core.settings import Settings
    from agrilake.devdata import generate
    from agrilake.devdata.bench.gold import build_and_compare
    from agrilake.stages import bronze, silver

    end = args.start + timedelta(days=args.days - 1)
    header = (f"{'scale':>6}{'bronze rows':>13}{'bronze s':>10}{'rows/s':>10}{'silver s':>10}{'rows/s':>10}"
              f"{'gold s':>9}{'duckdb s':>9}{'ratio':>7}{'RSS MB':>9}")
    lines, mismatches = [], 0
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix=f"agrilake-bench-{scale}-") as tmp:
            landing, lake = Path(tmp) / "landing", Path(tmp) / "lake"
            # Synthetic data only: the public demo key is the one to pseudonymise it with.
            ctx = RunContext(Settings.from_env(landing=str(landing), lakehouse=str(lake), demo_mode=True),
                             app_name="agrilake-bench")
            generate.main(["--start", args.start.isoformat(), "--days", str(args.days), "--scale", str(scale),
                           "--seed", "1", "--landing", str(landing)])
            t = time.monotonic()
            rows = bronze.ingest(ctx, None, end)
            bronze_s = time.monotonic() - t
            read = sum(r["read"] for r in rows)
            silver_s = float("nan")
            if not args.no_silver:
                t = time.monotonic()
                silver.run(ctx, None, end)
                silver_s = time.monotonic() - t
            print(f"scale {scale:g}: bronze {read} rows in {bronze_s:.1f} s, silver {silver_s:.1f} s", flush=True)
            gold_s = duck_s = float("nan")
            if not (args.no_silver or args.no_gold):
                gold_s, duck_s, bad = build_and_compare(ctx, end, str(Path(tmp) / "gold"))
                mismatches += bad
            rss = _tree_rss_mb()
            lines.append(f"{scale:>6g}{read:>13}{bronze_s:>10.1f}{read / bronze_s:>10.0f}{silver_s:>10.1f}"
                         f"{read / silver_s:>10.0f}{gold_s:>9.1f}{duck_s:>9.1f}{gold_s / duck_s:>6.1f}x{rss:>9.0f}")
            print("\n".join([header, *lines]), flush=True)
            ctx.spark.stop()  # the next scale starts clean: its own lakehouse, its own JVM heap
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
