"""`agrilake report` on a small gold lakehouse, then the page rendered in headless Chromium: the
charts must be laid out and painted, not merely present in the file."""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import zlib
from contextlib import redirect_stdout
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql.types import DateType, DecimalType

from agrilake import cli
from agrilake.analyst import report
from agrilake.core import ops, tables
from agrilake.core.quality import ExpectationOutcome, SuiteResult

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
D = date(2026, 6, 30)
C1, C2, C3 = ("130123", "正定县"), ("130124", "新名县"), ("130125", "小<县>&")
PERSONS = ["a" * 64, "b" * 64]
EXPECTED_MARKS = {"chart-tiers": 3 + 4 + 1, "chart-coverage": 2, "chart-lead-time": 6, "chart-excursions": 2}


def gold_frame(ctx, name: str, rows: list[dict]):
    """A gold.<name> DataFrame with the contract's columns; missing values are null."""
    spark = ctx.spark
    struct_ = spark.createDataFrame([], ctx.contracts.gold_table(name).ddl).schema

    def value(field, v):
        if isinstance(v, str) and isinstance(field.dataType, DateType):
            return date.fromisoformat(v)
        if v is not None and isinstance(field.dataType, DecimalType):
            return Decimal(str(v))
        return v

    return spark.createDataFrame([tuple(value(f, r.get(f.name)) for f in struct_.fields) for r in rows], struct_)


def division(day: date, county: tuple[str, str], *, total, covered, delivered, p50=None, p95=None, cc=0, rate=None,
             village: str | None = None) -> dict:
    return {"as_of_date": day, "division_code": county[0] + (village or "000000"),
            "level": "village" if village else "county", "name": county[1], "villages_total": total,
            "villages_covered": covered, "coverage_rate": covered / total if total else None, "delivered": delivered,
            "lead_time_p50_h": p50, "lead_time_p95_h": p95, "cold_chain_delivered": cc,
            "cold_chain_excursion_rate": rate, "outlets_open": 1, "parcel_outlets_open": 1}


def summary(day: date, county: tuple[str, str], a: int, b: int, c: int, d: int) -> dict:
    return {"as_of_date": day, "county_code": county[0], "county_name": county[1], "coops": a + b + c + d,
            "coops_tier_a": a, "coops_tier_b": b, "coops_tier_c": c, "coops_tier_d": d,
            "principal_active_cny": "1000.00", "arrears_cny": "0.00"}


def log_deliveries(ctx, *days: date) -> None:
    """ops.ingest_log rows of one delivery per day: what `--date latest` resolves against."""
    ops.create(ctx, "ingest_log")
    rows = [dict(batch_id="test", system="coop", feed="sales", delivery_date=day,
                 file_name=f"coop/sales/{day}/sales.jsonl", file_sha256=f"{i:064x}", file_bytes=0, status="ingested",
                 read=0, accepted=0, quarantined=0, schema_drift=[], ingested_at=datetime(2026, 7, 1))
            for i, day in enumerate(days)]
    tables.append(ctx, ops.rows_df(ctx, ops.ddl(ctx, "ingest_log"), rows), "ops", "ingest_log")


def write_gold(ctx) -> None:
    d1, d2, after = D - timedelta(days=1), D - timedelta(days=2), D + timedelta(days=1)
    logistics = [
        # D: the network is C1 + C2 + C3; the village row must not count twice
        division(D, C1, total=40, covered=30, delivered=100, p50=20.0, p95=50.0, cc=10, rate=0.2),
        division(D, C2, total=10, covered=5, delivered=50, p50=30.0, p95=80.0, cc=5, rate=0.4),
        division(D, C3, total=0, covered=0, delivered=0),
        division(D, C1, total=1, covered=1, delivered=5000, p50=500.0, p95=900.0, cc=100, rate=1.0, village="001001"),
        division(d1, C1, total=40, covered=30, delivered=80, p50=22.0, p95=55.0),
        division(d1, C2, total=10, covered=5, delivered=0),
        division(d2, C1, total=40, covered=29, delivered=90, p50=18.0, p95=40.0, cc=8, rate=0.125),
        division(d2, C2, total=10, covered=5, delivered=0),
        # after D: never in a report as of D
        division(after, C1, total=40, covered=40, delivered=10, p50=999.0, p95=999.0, cc=1, rate=1.0),
    ]
    frames = {
        "logistics_division_daily": logistics,
        "credit_county_summary": [summary(D, C1, 3, 5, 0, 4), summary(D, C2, 1, 1, 1, 1), summary(D, C3, 0, 1, 1, 0),
                                  summary(d1, C1, 9, 1, 1, 0)],
        "coop_credit_profile": [{"as_of_date": D, "coop_id": f"COOP{i}", "county_code": C1[0], "credit_tier": "A",
                                 "score": 700} for i in range(3)],
        "household_credit_profile": [{"as_of_date": D, "person_key": p, "age_band": "30-44"} for p in PERSONS],
    }
    for name, rows in frames.items():
        tables.overwrite(ctx, gold_frame(ctx, name, rows), "gold", name)
    outcome = ExpectationOutcome
    partition = D.isoformat()  # as agrilake.stages.gold records it
    ops.record_dq_results(ctx, SuiteResult("gold_coop_credit_profile", True, [
        outcome("expect_column_values_to_not_be_null", "coop_id", "critical", True, ""),
        outcome("expect_column_values_to_not_be_null", "county_name", "warning", False, "unexpected_count=3"),
    ]), table="gold.coop_credit_profile", partition=partition)
    ops.record_dq_results(ctx, SuiteResult("gold_credit_county_summary", True, [
        outcome("expect_column_values_to_be_between", "coops", "critical", True, ""),
    ]), table="gold.credit_county_summary", partition=partition)


def command_env(mp: pytest.MonkeyPatch, lakehouse, spark) -> None:
    """`agrilake report` is an entry point: its settings come from the environment (pointed at
    `lakehouse`), and the session it asks agrilake.core.spark for must be the one session of the run."""
    import agrilake.core.spark

    mp.setenv("AGRILAKE_LAKEHOUSE", str(lakehouse))
    mp.setattr(agrilake.core.spark, "get_spark", lambda *a, **k: spark)


@pytest.fixture(scope="module")
def report_file(session_ctx, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    out = root / "report.html"
    ctx = session_ctx.with_settings(lakehouse=str(root / "lakehouse"))
    write_gold(ctx)
    # deliveries up to D: gold's logistics row for D + 1 must not move `latest` past D
    log_deliveries(ctx, D - timedelta(days=1), D)
    with pytest.MonkeyPatch.context() as mp:
        command_env(mp, ctx.settings.lakehouse, ctx.spark)
        printed = StringIO()
        with redirect_stdout(printed):
            assert cli.main(["report", "--date", "latest", "--out", str(out)]) == 0
    assert printed.getvalue().strip().splitlines()[-1] == str(out)
    return out


def _titles(page: str, chart_id: str) -> list[str]:
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', page, flags=re.S).group(0)
    return [html.unescape(t) for t in re.findall(r'class="mark[^"]*"[^>]*><title>([^<]*)</title>', svg)]


def test_report_figures_come_from_the_gold_partitions(report_file):
    page = report_file.read_text(encoding="utf-8")
    assert f"as of {D.isoformat()}" in page  # `latest` = the newest delivery ingested
    for chart_id, n in EXPECTED_MARKS.items():
        assert len(_titles(page, chart_id)) == n, chart_id
    tiers = _titles(page, "chart-tiers")
    assert "正定县 (130123): tier B, 5 of 12 cooperatives" in tiers
    assert "小<县>& (130125): 2 cooperative(s); tier split suppressed (fewer than 3)" in tiers
    assert "小&lt;县&gt;&amp;" in page and "小<县>" not in page
    assert _titles(page, "chart-coverage") == ["正定县 (130123): 30 of 40 villages covered (75.0%)",
                                               "新名县 (130124): 5 of 10 villages covered (50.0%)"]
    lead = _titles(page, "chart-lead-time")
    # delivered-weighted over the county rows only: (20*100 + 30*50) / 150; the village row and D+1 ignored
    assert f"{D}: p50 23.33 h (150 parcels delivered in 3 counties)" in lead
    assert f"{D}: p95 60.00 h (150 parcels delivered in 3 counties)" in lead
    assert f"{D - timedelta(days=2)}: p50 18.00 h (90 parcels delivered in 2 counties)" in lead
    assert "999" not in page
    assert _titles(page, "chart-excursions") == [
        f"{D - timedelta(days=2)}: 12.5% of cold-chain parcels with an excursion (1 of 8)",
        f"{D}: 26.7% of cold-chain parcels with an excursion (4 of 15)"]
    rows = dict(re.findall(r"<tr><td>gold\.(\w+)</td><td class=\"num\">(\d+)</td>", page))
    assert rows == {"coop_credit_profile": "3", "household_credit_profile": "2", "logistics_division_daily": "4",
                    "credit_county_summary": "3"}
    assert "passed</span> 2 expectations" in page and "1 warning(s)" in page and "not validated" in page
    assert not any(p in page for p in PERSONS) and "COOP0" not in page  # aggregates only
    assert not re.search(r"https?://|<script|<link|<img", page)  # opens offline


def test_report_without_gold_says_what_to_run(spark, lakehouse, monkeypatch):
    command_env(monkeypatch, lakehouse, spark)
    # nothing ingested: `latest` (the newest delivery) has nothing to resolve to
    with pytest.raises(SystemExit, match="nothing has been ingested yet; run the ingest DAGs"):
        cli.main(["report", "--date", "latest", "--out", str(lakehouse / "r.html")])
    # a date without gold: the command says which to run
    with pytest.raises(SystemExit, match=rf"gold has no partition yet: run `agrilake gold --date {D}` first"):
        cli.main(["report", "--date", D.isoformat(), "--out", str(lakehouse / "r.html")])
    assert not (lakehouse / "r.html").exists()


# --- headless Chromium ---------------------------------------------------------------------------------

PROBE = """<script>
(() => {
  const out = {};
  for (const svg of document.querySelectorAll("svg.chart")) {
    const box = svg.getBoundingClientRect();
    const inside = (b) => b.width > 0 && b.height > 0 && b.left >= box.left - 1 && b.right <= box.right + 1
      && b.top >= box.top - 1 && b.bottom <= box.bottom + 1;
    const marks = [...svg.querySelectorAll(".mark")];
    out[svg.id] = {
      box: [box.left + scrollX, box.top + scrollY, box.width, box.height],
      marks: marks.length,
      drawn: marks.filter((m) => inside(m.getBoundingClientRect())).length,
      titled: marks.filter((m) => (m.querySelector("title")?.textContent || "").length > 0).length,
      lines: [...svg.querySelectorAll("path.line")].filter((p) => p.getTotalLength() > 0).length,
    };
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
})();
</script>"""


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--force-device-scale-factor=1", "--hide-scrollbars",
           "--window-size=1280,2000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def read_png(path: Path) -> np.ndarray:
    """RGB pixels of an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes), stdlib + numpy only."""
    data, pos, idat = path.read_bytes(), 8, []
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, chunk = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
        elif kind == b"IDAT":
            idat.append(chunk)
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    pixels = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average and Paeth depend on the byte just decoded: byte by byte
            cur_l, up = line.tolist(), prev.tolist()
            for i in range(stride):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    cur_l[i] = (cur_l[i] + ((a + b) >> 1)) & 255
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    cur_l[i] = (cur_l[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.array(cur_l, dtype=np.int64)
        pixels[y] = cur
        prev = cur
    return pixels.reshape(height, width, bpp)[:, :, :3]


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def test_report_renders_in_headless_chromium(report_file, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: run `make test`, which installs it (apt-get install chromium)")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report_file.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                          encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", probe_page.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, "the page did not finish rendering: " + dom[-500:]
    charts = json.loads(html.unescape(found.group(1)))
    assert set(charts) == set(EXPECTED_MARKS)
    for chart_id, n in EXPECTED_MARKS.items():
        c = charts[chart_id]
        # every mark laid out with a size inside its chart, each with its tooltip
        assert (c["marks"], c["drawn"], c["titled"]) == (n, n, n), (chart_id, c)
        assert c["box"][2] >= 500 and c["box"][3] >= 80, (chart_id, c["box"])
    assert charts["chart-lead-time"]["lines"] == 2  # p50 and p95 are drawn lines, not just points

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", report_file.as_uri())
    image = read_png(shot)
    assert image.shape == (2000, 1280, 3)
    assert (image[5, 5] == 255).all(), "the background should be white"
    colors = {"chart-tiers": [report.TIER_COLORS[t] for t in report.TIERS] + [report.SUPPRESSED_COLOR],
              "chart-coverage": [report.COVERAGE_COLOR],
              "chart-lead-time": [report.SERIES_COLORS["p50"], report.SERIES_COLORS["p95"]],
              "chart-excursions": [report.SERIES_COLORS["excursion"]]}
    for chart_id, wanted in colors.items():
        x, y, w, h = (round(v) for v in charts[chart_id]["box"])
        assert y + h <= image.shape[0], f"{chart_id} is below the screenshot"
        # below the legend (its swatches share the colours): only bars, points and lines count
        area = image[y + 24:y + h, x:x + w].astype(int)
        assert (area != 255).any(axis=2).sum() > 500, f"{chart_id}: nothing painted"
        for color in wanted:
            painted = int((np.abs(area - _rgb(color)).max(axis=2) <= 8).sum())
            assert painted >= 20, f"{chart_id}: {color} not painted ({painted} px)"
