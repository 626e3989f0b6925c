"""Generator benchmark: scales 1 and 10 (30 delivery days) into temporary folders.

    .venv/bin/python -m agrilake.devdata.bench.generate [--scales 1 10] [--days 30] [--seed 7]

Each scale runs in its own process, so the peak RSS printed is that run's alone (from the kernel's
rusage of the child). CPU seconds are printed next to wall seconds: on a busy machine the wall
clock says more about the neighbours than about the generator.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

SUMMARY = re.compile(r"^summary rows=(\d+) files=(\d+) .*seconds=([\d.]+) rows_per_s=(\d+)", re.M)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agrilake.devdata.bench.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default="2026-11-01")
    args = ap.parse_args(argv)
    print(f"{'scale':>6} {'rows':>10} {'files':>6} {'seconds':>8} {'rows/s':>9} {'cpu_s':>7} {'cpu rows/s':>10} "
          f"{'peak_rss_mb':>11}", flush=True)
    for scale in args.scales:
        r = _measured(scale, args)
        print(f"{r['scale']:>6g} {r['rows']:>10} {r['files']:>6} {r['seconds']:>8.1f} {r['rows_per_s']:>9.0f} "
              f"{r['cpu']:>7.1f} {r['rows'] / r['cpu']:>10.0f} {r['rss_mb']:>11.0f}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.1f} on {os.cpu_count()} cores; seconds = generator's own clock, "
          f"cpu = user+sys of the run's process)")
    return 0


def _measured(scale: float, args) -> dict:
    """Run one scale with fork/exec and wait4, to read that child's own rusage."""
    with tempfile.TemporaryDirectory(prefix=f"agrilake-gen-{scale:g}-") as landing:
        cmd = [sys.executable, "-c", "import sys; from agrilake.devdata.generate import main; sys.exit(main(sys.argv[1:]))",
               "--start", args.start, "--days", str(args.days), "--scale", str(scale), "--seed", str(args.seed),
               "--landing", landing]
        with tempfile.TemporaryFile(mode="w+") as out:
            pid = os.posix_spawn(sys.executable, cmd, dict(os.environ), file_actions=[
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)])
            _, status, usage = os.wait4(pid, 0)
            out.seek(0)
            text = out.read()
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"scale {scale} failed:\n{text[-2000:]}")
        m = SUMMARY.search(text)
        if not m:
            raise SystemExit(f"no summary line from scale {scale}:\n{text[-2000:]}")
        rows, files, seconds = int(m.group(1)), int(m.group(2)), float(m.group(3))
        return {"scale": scale, "rows": rows, "files": files, "seconds": seconds, "rows_per_s": rows / seconds,
                "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


if __name__ == "__main__":
    sys.exit(main())
