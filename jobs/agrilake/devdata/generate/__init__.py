"""`agrilake generate`: synthetic landing feeds in the exact formats of docs/sources.md, with defects.

    agrilake generate --start 2026-11-01 --days 30 --scale 1 --seed 7 [--landing PATH] [--defect-rate 0.01]

The first delivery day carries an initial load with history (cooperatives registered years ago,
loans disbursed up to two years before with their past installments, a year of sales); every
later day carries that day's increment, late rows, change rows and re-delivered files. Injected
defects are listed in `<landing>/_manifest/defects.csv`, outside the feed folders.
Same arguments, same bytes: nothing depends on the wall clock or on dict/set ordering.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

import numpy as np
import pyarrow as pa

from agrilake.core import dates
from agrilake.core.contracts import Contracts, packaged
from agrilake.core.deliveries import MARKER_DIR
from agrilake.devdata.generate import bank, coop, defects, divisions, postal, writer
from agrilake.devdata.generate.common import FeedData, Params, rng_for, to_date

MANIFEST_DIR = "_manifest"
FEED_ORDER = ("ref_divisions", "coop_cooperatives", "coop_members", "coop_sales", "postal_outlets",
              "postal_shipment_events", "postal_cold_chain_readings", "bank_loans", "bank_repayments",
              "bank_subsidies")
# Order of rows inside one file: by business time; ties keep the generator's (deterministic) order.
SORT_KEYS = {
    "ref_divisions": None,
    "coop_cooperatives": "updated_at",
    "coop_members": "updated_at",
    "coop_sales": "sale_date",
    "postal_outlets": "updated_at",
    "postal_shipment_events": "event_time",
    "postal_cold_chain_readings": "reading_time",
    "bank_loans": "updated_at",
    "bank_repayments": "recorded_at",
    "bank_subsidies": "granted_date",
}
BOM_SHARE = {"ref": 1.0, "coop": 0.3, "postal": 0.1, "bank": 0.0}  # Excel exports carry one


@dataclass
class Stats:
    rows: int = 0
    files: int = 0
    redelivered: int = 0
    nothing_days: int = 0  # a daily system's days with nothing new: marked, not left without a trace
    defects: int = 0
    seconds: float = 0.0
    per_feed: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="agrilake generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, type=dates.parse, help="first delivery day, YYYY-MM-DD")
    ap.add_argument("--days", required=True, type=int, help="number of delivery days")
    ap.add_argument("--scale", type=float, default=1.0, help="1 = the demo (a few hundred thousand rows)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--landing", default=None, help="landing root (default: settings' landing)")
    ap.add_argument("--defect-rate", type=float, default=0.01, help="share of defective rows (0 = clean)")
    args = ap.parse_args(argv)
    if args.days < 1 or args.scale <= 0 or not 0 <= args.defect_rate <= 0.5:
        ap.error("need --days >= 1, --scale > 0 and 0 <= --defect-rate <= 0.5")
    return args


def main(argv: list[str] | None = None) -> int:
    from agrilake.core.contracts import load
    from agrilake.core.settings import get_settings

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = get_settings()
    args.landing = args.landing or settings.landing
    params = Params(args.start, args.days, args.scale, args.seed, args.defect_rate)
    try:
        stats = generate(params, Path(args.landing), contracts=load(settings.schemas_dir))
    except LandingNotEmpty as exc:
        print(f"agrilake generate: {exc}", file=sys.stderr)
        return 2
    print(f"summary rows={stats.rows} files={stats.files} redelivered={stats.redelivered} defects={stats.defects} "
          f"seconds={stats.seconds:.2f} rows_per_s={stats.rows_per_s:.0f} landing={args.landing}")
    return 0


def _say(message: str) -> None:
    print(message, flush=True)


class LandingNotEmpty(RuntimeError):
    pass


def _prepare(landing: Path, params: Params, contracts: Contracts) -> None:
    """Replace an earlier generated landing; never touch folders this generator did not write.

    The marker is written before any feed file, so an interrupted run is still recognised as ours.
    """
    ours = [landing / f.system / f.feed for f in contracts.feeds().values()] + [
        landing / system / MARKER_DIR for system in contracts.systems()]
    marker = landing / MANIFEST_DIR / "run.json"
    if marker.exists():
        for d in ours:
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(landing / MANIFEST_DIR, ignore_errors=True)
    elif any(d.is_dir() and any(d.iterdir()) for d in ours):
        raise LandingNotEmpty(f"{landing} already holds feed files that this generator did not write "
                              f"(no {MANIFEST_DIR}/run.json); choose an empty --landing")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"generator": "agrilake generate", "complete": False, **_run_args(params)},
                                 indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_feeds(params: Params, log=None) -> list[FeedData]:
    """Every feed's rows for the whole run (typed, with delivery day and part)."""
    log = log or _say
    t0 = time.perf_counter()
    geo = divisions.build(params)
    cw = coop.build(params, geo)
    pw = postal.build(params, geo)
    book = bank.build(params, cw)
    sales = coop.sales(params, geo, cw)
    parcels = postal.parcels(params, geo, cw, pw, sales)
    out = [
        divisions.feed(params, geo),
        coop.cooperatives_feed(params, geo, cw),
        coop.members_feed(params, cw),
        coop.sales_feed(params, geo, cw, sales),
        postal.outlets_feed(params, pw),
        postal.events_feed(params, cw, pw, parcels),
        postal.readings_feed(params, parcels),
        bank.loans_feed(params, cw, book),
        bank.repayments_feed(params, book),
        bank.subsidies_feed(params, cw, book),
    ]
    log(f"world: {len(geo.counties)} counties, {len(geo.villages)} villages, {len(cw.coops)} cooperatives, "
        f"{len(cw.members)} memberships, {len(pw.outlets)} outlets, {len(parcels)} parcels, {len(book.loans)} loans "
        f"({time.perf_counter() - t0:.1f} s)")
    return out


CHUNK_ROWS = 250_000  # files are formatted together up to this many rows: fewer calls, bounded memory


@dataclass
class Chunk:
    frame: object  # the rows of several consecutive files of one feed, in file order
    files: dict[tuple[int, str], tuple[int, int]]  # (day, part) -> [start, stop) within frame
    cells: dict | None = None


def _split(fd: FeedData) -> list[Chunk]:
    """A feed's rows grouped per (delivery day, part), sorted as the files will hold them."""
    f = fd.frame
    group = f["_delivery"].to_numpy().astype(np.int64) * 2 + ~f["_full"].to_numpy()
    key = SORT_KEYS[fd.name]
    order = np.lexsort((f[key].to_numpy(), group)) if key else np.argsort(group, kind="stable")
    f = f.take(order).reset_index(drop=True)
    group = group[order]
    bounds = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(group)]
    chunks: list[Chunk] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if not chunks or (chunks[-1].files and _rows(chunks[-1]) + (b - a) > CHUNK_ROWS):
            chunks.append(Chunk(None, {}))
            base = a
        key_ = (int(group[a] // 2), "daily" if group[a] % 2 else "full")
        chunks[-1].files[key_] = (a - base, b - base)
        chunks[-1].frame = f.iloc[base:b]
    return chunks


def _rows(chunk: Chunk) -> int:
    return max(stop for _, stop in chunk.files.values())


def file_name(feed_name: str, fmt: str, day: int, part: str) -> str:
    stem = feed_name.split("_", 1)[1]
    tag = to_date(day).strftime("%Y%m%d")
    return f"{stem}_full_{tag}.{fmt}" if part == "full" else f"{stem}_{tag}.{fmt}"


def generate(params: Params, landing: Path, log=None, contracts: Contracts | None = None) -> Stats:
    """Write the run's feeds under `landing` in the source formats of `contracts` (the shipped ones by default)."""
    t0 = time.perf_counter()
    log = log or _say
    specs = contracts or packaged()
    _prepare(landing, params, specs)
    contracts = specs.feeds()
    where: dict[str, dict[tuple[int, str], Chunk]] = {}
    built = build_feeds(params, log)
    while built:  # split each feed, then drop its unsorted rows before the next one
        fd = built.pop(0)
        where[fd.name] = {key: chunk for chunk in _split(fd) for key in chunk.files}
        del fd
    plan_input = []
    for day in range(params.start_day, params.end_day + 1):
        for name in FEED_ORDER:
            for part in ("full", "daily"):
                chunk = where[name].get((day, part))
                if chunk is not None:
                    a, b = chunk.files[(day, part)]
                    plan_input.append((name, day, part, b - a, contracts[name].format))
    plans = defects.plan(plan_input, params.defect_rate, params.end_day, rng_for(params, "defects.plan"))
    files_rng = rng_for(params, "files")

    stats = Stats(per_feed=dict.fromkeys(FEED_ORDER, 0))
    manifest: list[tuple[str, str, str, str, str, str]] = []
    pending_copies: dict[int, list[tuple[str, Path, bytes, int]]] = {}  # re-deliveries per day
    for day in range(params.start_day, params.end_day + 1):
        day_rows: dict[str, int] = {}
        day_defects = 0
        for name in FEED_ORDER:
            feed = contracts[name]
            for part in ("full", "daily"):
                chunk = where[name].get((day, part))
                if chunk is None:
                    continue
                if chunk.cells is None:
                    chunk.cells = writer.format_cells(feed, chunk.frame, feed.format)
                a, b = chunk.files[(day, part)]
                cells = {k: v.slice(a, b - a) for k, v in chunk.cells.items()}
                frame = chunk.frame.iloc[a:b].reset_index(drop=True)
                if b == _rows(chunk):  # the chunk's last file: let its text go
                    chunk.cells, chunk.frame = {}, None
                    pa.default_memory_pool().release_unused()
                fplan = plans[(name, day, part)]
                bom = feed.format == "csv" and files_rng.random() < BOM_SHARE[feed.system]
                rendered = defects.render(feed, frame, cells, fplan, feed.format,
                                          rng_for(params, f"defects:{name}:{day}:{part}"), bom)
                rel = Path(feed.system) / feed.feed / to_date(day).isoformat() / file_name(name, feed.format, day, part)
                _drop(landing / rel, rendered.data, to_date(day))
                stats.files += 1
                stats.rows += rendered.records
                stats.per_feed[name] += rendered.records
                day_rows[name] = day_rows.get(name, 0) + rendered.records
                for line, defect, column in rendered.defects:
                    manifest.append((name, rel.as_posix(), "" if line is None else str(line), defect,
                                     defects.expected_reason(defect), column))
                day_defects += len(rendered.defects)
                if fplan.duplicate == "next_day":  # the same file again, in the next delivery
                    copy = Path(feed.system) / feed.feed / to_date(day + 1).isoformat() / rel.name
                    pending_copies.setdefault(day + 1, []).append((name, copy, rendered.data, rendered.records))
                elif fplan.duplicate:  # a renamed copy in the same delivery
                    copy = rel.with_name(f"{rel.stem}_resend{rel.suffix}")
                    pending_copies.setdefault(day, []).append((name, copy, rendered.data, rendered.records))
        for name, path, blob, records in pending_copies.pop(day, []):
            _drop(landing / path, blob, to_date(day))
            manifest.append((name, path.as_posix(), "", "duplicate_file", defects.expected_reason("duplicate_file"), ""))
            day_defects += 1
            stats.files += 1
            stats.redelivered += 1
            stats.rows += records
            stats.per_feed[name] += records
            day_rows[name] = day_rows.get(name, 0) + records
        stats.defects += day_defects
        # A daily system that has nothing new on a day says so, as a real one must (core/deliveries.py):
        # without the marker the pipeline could not tell "nothing new" from "not delivered yet".
        for system, calendar in specs.delivery_calendars().items():
            if calendar == "daily" and not any(n.split("_", 1)[0] == system for n in day_rows):
                marker = landing / system / MARKER_DIR / to_date(day).isoformat()
                _drop(marker, b"no changes on this day (synthetic data)\n", to_date(day))
                stats.nothing_days += 1
        counts = " ".join(f"{n.split('_', 1)[1]}={day_rows[n]}" for n in FEED_ORDER if n in day_rows)
        log(f"{to_date(day).isoformat()} {counts} defects={day_defects}")

    _write_manifest(landing, manifest, params, stats)
    stats.seconds = time.perf_counter() - t0
    return stats


def _run_args(params: Params) -> dict:
    return {"start": params.start.isoformat(), "days": params.days, "scale": params.scale, "seed": params.seed,
            "defect_rate": params.defect_rate}


def _write_manifest(landing: Path, manifest: list, params: Params, stats: Stats) -> None:
    out = landing / MANIFEST_DIR
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(manifest, key=lambda r: (r[1], int(r[2]) if r[2] else 0, r[3]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(defects.MANIFEST_COLUMNS)
    w.writerows(rows)
    (out / "defects.csv").write_text(buf.getvalue(), encoding="utf-8")
    run = {
        "generator": "agrilake generate", "complete": True, **_run_args(params), "rows": stats.rows,
        "files": stats.files,
        "redelivered_files": stats.redelivered, "nothing_to_deliver_days": stats.nothing_days, "defects": stats.defects, "rows_per_feed": stats.per_feed,
        "defects_per_class": {k: int(v) for k, v in zip(*np.unique([r[3] for r in rows] or [""], return_counts=True),
                                                         strict=True) if k},
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _drop(path: Path, data: bytes, delivered: date) -> None:
    """Write a landed file as upstream would have dropped it: complete, on its delivery day (its
    modification time: the evening of that day, or a day ago when that is later), so that the
    pipeline's settle rule (AGRILAKE_LANDING_SETTLE_SECONDS) sees a finished delivery."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    evening = datetime.combine(delivered, dtime(18), tzinfo=UTC).timestamp()
    dropped = min(evening, time.time() - 86400)
    os.utime(path, (dropped, dropped))
