"""Bronze and silver throughput: generate a landing at each scale, ingest it, conform it; print rows/s.

    python -m jobs.bench.pipeline --scales 1 10 --days 30

Each scale runs in a fresh temporary lakehouse with one Spark session (the settings' master).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def _tree_rss_mb() -> float:
    """RSS of this process and its children (the Spark JVM and Python workers), in MB, now."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 1))
    parser.add_argument("--no-silver", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("AGRILAKE_DEMO", "1")
    from jobs import bronze, generate, silver
    from jobs.spark import get_spark

    end = args.start + timedelta(days=args.days - 1)
    print(f"{'scale':>6}{'bronze rows':>13}{'bronze s':>10}{'rows/s':>10}{'silver s':>10}{'rows/s':>10}{'RSS MB':>13}")
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix=f"agrilake-bench-{scale}-") as tmp:
            landing, lake = Path(tmp) / "landing", Path(tmp) / "lake"
            os.environ["AGRILAKE_LAKEHOUSE"] = str(lake)
            generate.main(["--start", args.start.isoformat(), "--days", str(args.days), "--scale", str(scale),
                           "--seed", "1", "--landing", str(landing)])
            spark = get_spark("agrilake-bench")
            t = time.monotonic()
            rows = bronze.ingest(spark, None, end, str(landing))
            bronze_s = time.monotonic() - t
            read = sum(r["read"] for r in rows)
            silver_s = float("nan")
            if not args.no_silver:
                t = time.monotonic()
                silver.run(spark, None, end)
                silver_s = time.monotonic() - t
            rss = _tree_rss_mb()
            print(f"{scale:>6g}{read:>13}{bronze_s:>10.1f}{read / bronze_s:>10.0f}{silver_s:>10.1f}"
                  f"{read / silver_s:>10.0f}{rss:>13.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
