"""`agrilake report --date D|latest`: one self-contained HTML report of the gold tables for analysts.

For the government platform and the bank's analysts: credit tiers by county, village coverage by
county, the lead-time p50/p95 trend and the cold-chain excursion trend up to D, with row counts and
the data-quality status of D's partitions. Aggregates only (county level and network level): no
row about one person or one cooperative is in it. Charts are inline SVG drawn here, styles are
inline CSS: the file opens offline, from a mail attachment or an object store, with no CDN.

`aggregate` is the Spark part (gold DataFrames in, small pandas frames out); `render` is pure.
"""

from __future__ import annotations

import argparse
import html
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

TABLES = ("coop_credit_profile", "household_credit_profile", "logistics_division_daily", "credit_county_summary")
TIERS = ("A", "B", "C", "D")
TIER_COLORS = {"A": "#1a9850", "B": "#91cf60", "C": "#fdae61", "D": "#d73027"}
SUPPRESSED_COLOR = "#b0b7c0"
COVERAGE_COLOR = "#3182bd"
SERIES_COLORS = {"p50": "#2c7fb8", "p95": "#d95f0e", "excursion": "#756bb1"}
DEFAULT_DAYS = 90
DEFAULT_TOP = 30


@dataclass
class ReportData:
    as_of: date
    tiers: pd.DataFrame  # county_code, county_name, coops, A..D (None when suppressed), suppressed
    coverage: pd.DataFrame  # county_code, county_name, villages_total, villages_covered, coverage_rate
    trend: pd.DataFrame  # as_of_date, counties, delivered, lead_time_p50_h, lead_time_p95_h, cold_chain_*
    row_counts: dict[str, int]
    quality: dict[str, dict | None] = field(default_factory=dict)
    min_cell: int = 3
    counties_total: dict[str, int] = field(default_factory=dict)  # before the top-N cut, per chart
    days: int = DEFAULT_DAYS
    lineage: list[dict] = field(default_factory=list)  # agrilake.analyst.lineage of each published table


# --- aggregation (Spark) ---------------------------------------------------------------------------

def tiers_by_county(summary, as_of: date, *, min_cell: int, top: int) -> tuple[pd.DataFrame, int]:
    """Tier counts per county on D, largest counties first; a county under `min_cell` cooperatives has
    its split suppressed, as the gov export does (a split of two coops would reveal each one's tier)."""
    from pyspark.sql import functions as F

    rows = (summary.where(F.col("as_of_date") == F.lit(as_of))
            .select("county_code", "county_name", "coops", *[f"coops_tier_{t.lower()}" for t in TIERS])
            .orderBy(F.desc("coops"), "county_code").collect())
    records = []
    for r in rows:
        suppressed = (r.coops or 0) < min_cell
        records.append({"county_code": r.county_code, "county_name": r.county_name or r.county_code,
                        "coops": int(r.coops or 0), "suppressed": suppressed,
                        **{t: None if suppressed else int(r[f"coops_tier_{t.lower()}"] or 0) for t in TIERS}})
    frame = pd.DataFrame(records, columns=["county_code", "county_name", "coops", "suppressed", *TIERS])
    return frame.head(top).reset_index(drop=True), len(frame)


def coverage_by_county(logistics, as_of: date, *, top: int) -> tuple[pd.DataFrame, int]:
    """Villages covered by an open parcel outlet, per county on D (counties with most villages first)."""
    from pyspark.sql import functions as F

    rows = (logistics.where((F.col("as_of_date") == F.lit(as_of)) & (F.col("level") == "county"))
            .select(F.substring("division_code", 1, 6).alias("county_code"), F.col("name").alias("county_name"),
                    "villages_total", "villages_covered", "coverage_rate")
            .orderBy(F.desc("villages_total"), "county_code").collect())
    frame = pd.DataFrame([{"county_code": r.county_code, "county_name": r.county_name or r.county_code,
                           "villages_total": int(r.villages_total or 0),
                           "villages_covered": int(r.villages_covered or 0),
                           "coverage_rate": r.coverage_rate} for r in rows],
                         columns=["county_code", "county_name", "villages_total", "villages_covered",
                                  "coverage_rate"])
    return frame.head(top).reset_index(drop=True), len(frame)


def logistics_trend(logistics, first: date, last: date) -> pd.DataFrame:
    """Network figures per as-of date from the county rows (counties partition the network).

    The excursion rate is exact: each county's rate times its cold-chain deliveries gives its
    excursions. Exact network percentiles would need parcel-level data, which gold does not hold,
    so the lead time is the mean of the county p50 (p95), weighted by the county's deliveries.
    """
    from pyspark.sql import functions as F

    county = logistics.where((F.col("level") == "county") & F.col("as_of_date").between(F.lit(first), F.lit(last)))
    known = F.col("lead_time_p50_h").isNotNull()
    weight = F.when(known, F.col("delivered"))

    def weighted(col: str):
        total = F.sum(weight)
        return F.when(total > 0, F.sum(F.col(col) * weight) / total)

    excursions = F.round(F.col("cold_chain_excursion_rate") * F.col("cold_chain_delivered"))
    rows = (county.groupBy("as_of_date")
            .agg(F.count("*").alias("counties"), F.sum("delivered").alias("delivered"),
                 weighted("lead_time_p50_h").alias("lead_time_p50_h"),
                 weighted("lead_time_p95_h").alias("lead_time_p95_h"),
                 F.sum("cold_chain_delivered").alias("cold_chain_delivered"),
                 F.sum(F.coalesce(excursions, F.lit(0))).alias("cold_chain_excursions"))
            .orderBy("as_of_date").collect())
    records = []
    for r in rows:
        cc = int(r.cold_chain_delivered or 0)
        exc = int(r.cold_chain_excursions or 0)
        records.append({"as_of_date": r.as_of_date, "counties": int(r.counties), "delivered": int(r.delivered or 0),
                        "lead_time_p50_h": _round(r.lead_time_p50_h), "lead_time_p95_h": _round(r.lead_time_p95_h),
                        "cold_chain_delivered": cc, "cold_chain_excursions": exc,
                        "cold_chain_excursion_rate": exc / cc if cc else None})
    return pd.DataFrame(records, columns=["as_of_date", "counties", "delivered", "lead_time_p50_h", "lead_time_p95_h",
                                          "cold_chain_delivered", "cold_chain_excursions",
                                          "cold_chain_excursion_rate"])


def _round(value, digits: int = 2):
    return None if value is None else round(float(value), digits)


def aggregate(gold: dict, as_of: date, *, days: int = DEFAULT_DAYS, top: int = DEFAULT_TOP,
              min_cell: int = 3) -> ReportData:
    """The report's figures from the four gold DataFrames (all partitions; D and the trend window are
    selected here)."""
    from pyspark.sql import functions as F

    tiers, n_tiers = tiers_by_county(gold["credit_county_summary"], as_of, min_cell=min_cell, top=top)
    coverage, n_cov = coverage_by_county(gold["logistics_division_daily"], as_of, top=top)
    trend = logistics_trend(gold["logistics_division_daily"], as_of - timedelta(days=days - 1), as_of)
    counts = {name: gold[name].where(F.col("as_of_date") == F.lit(as_of)).count() for name in TABLES}
    return ReportData(as_of, tiers, coverage, trend, counts, min_cell=min_cell,
                      counties_total={"tiers": n_tiers, "coverage": n_cov}, days=days)


# --- SVG ---------------------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _ticks(hi: float, target: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least `hi` (steps of 1, 2 or 5 times a power of ten)."""
    if not hi or hi <= 0 or math.isnan(hi):
        hi = 1.0
    raw = hi / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e6 else f"{v:,.0f}"


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _svg_open(chart_id: str, width: int, height: int, label: str, marks: int) -> str:
    return (f'<svg id="{_e(chart_id)}" class="chart" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" '
            f'data-marks="{marks}">')


def _empty(chart_id: str, label: str, message: str, width: int = 600, height: int = 80) -> str:
    return (_svg_open(chart_id, width, height, label, 0)
            + f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">{_e(message)}</text></svg>')


def _legend(items: list[tuple[str, str]], x: float, y: float) -> str:
    out, cx = [], x
    for name, color in items:
        out.append(f'<rect class="legend" x="{cx:.1f}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
                   f'<text class="legend" x="{cx + 14:.1f}" y="{y}">{_e(name)}</text>')
        cx += 22 + 7 * len(name)
    return "".join(out)


def svg_tiers(frame: pd.DataFrame, *, chart_id: str = "chart-tiers", width: int = 600, min_cell: int = 3) -> str:
    """Horizontal stacked bars: cooperatives per credit tier, one bar per county."""
    label = "Cooperatives by credit tier, per county"
    if frame.empty:
        return _empty(chart_id, label, "no county has a cooperative on this date")
    left, right, top, row, bar = 150, 24, 30, 24, 16
    plot_w = width - left - right
    ticks = _ticks(float(frame["coops"].max()))
    scale = plot_w / ticks[-1]
    height = top + row * len(frame) + 34
    marks = []
    for i, r in frame.iterrows():
        y = top + i * row + (row - bar) / 2
        name = f"{r.county_name} ({r.county_code})"
        marks.append(f'<text class="label" x="{left - 6}" y="{y + bar - 3:.1f}" text-anchor="end">'
                     f'{_e(_short(r.county_name))}</text>')
        if r.suppressed:
            marks.append(f'<rect class="mark bar suppressed" x="{left}" y="{y:.1f}" width="{r.coops * scale:.1f}" '
                         f'height="{bar}" fill="{SUPPRESSED_COLOR}"><title>{_e(name)}: {r.coops} cooperative(s); '
                         f'tier split suppressed (fewer than {min_cell})</title></rect>')
            continue
        x = float(left)
        for t in TIERS:
            n = int(r[t])
            if n == 0:
                continue
            w = n * scale
            marks.append(f'<rect class="mark bar tier-{t}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar}" '
                         f'fill="{TIER_COLORS[t]}"><title>{_e(name)}: tier {t}, {n} of {r.coops} cooperatives'
                         f'</title></rect>')
            x += w
    n_marks = sum(1 for m in marks if m.startswith("<rect"))
    axis_y = top + row * len(frame)
    axis = [f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/>']
    for t in ticks:
        x = left + t * scale
        axis.append(f'<line class="grid" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}"/>'
                    f'<text class="tick" x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{_num(t)}</text>')
    legend = _legend([(f"tier {t}", TIER_COLORS[t]) for t in TIERS] + [("suppressed", SUPPRESSED_COLOR)], left, 16)
    return (_svg_open(chart_id, width, height, label, n_marks) + "".join(axis) + "".join(marks) + legend
            + f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
              "cooperatives</text></svg>")


def svg_coverage(frame: pd.DataFrame, *, chart_id: str = "chart-coverage", width: int = 600) -> str:
    """Horizontal bars: share of villages with an open parcel outlet, one bar per county."""
    label = "Village coverage by county"
    if frame.empty:
        return _empty(chart_id, label, "no county division on this date")
    left, right, top, row, bar = 150, 60, 14, 24, 16
    plot_w = width - left - right
    height = top + row * len(frame) + 34
    parts, n_marks = [], 0
    for i, r in frame.iterrows():
        y = top + i * row + (row - bar) / 2
        name = f"{r.county_name} ({r.county_code})"
        parts.append(f'<text class="label" x="{left - 6}" y="{y + bar - 3:.1f}" text-anchor="end">'
                     f'{_e(_short(r.county_name))}</text>'
                     f'<rect class="track" x="{left}" y="{y:.1f}" width="{plot_w}" height="{bar}"/>')
        rate = r.coverage_rate
        if rate is None or (isinstance(rate, float) and math.isnan(rate)):
            parts.append(f'<text class="value" x="{left + 4}" y="{y + bar - 3:.1f}">no villages</text>')
            continue
        n_marks += 1
        parts.append(f'<rect class="mark bar coverage" x="{left}" y="{y:.1f}" width="{rate * plot_w:.1f}" '
                     f'height="{bar}" fill="{COVERAGE_COLOR}"><title>{_e(name)}: {r.villages_covered} of '
                     f'{r.villages_total} villages covered ({rate:.1%})</title></rect>'
                     f'<text class="value" x="{left + plot_w + 4}" y="{y + bar - 3:.1f}">{rate:.0%}</text>')
    axis_y = top + row * len(frame)
    axis = [f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/>']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + t * plot_w
        axis.append(f'<text class="tick" x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{t:.0%}</text>')
    return (_svg_open(chart_id, width, height, label, n_marks) + "".join(parts) + "".join(axis)
            + f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
              "villages with an open parcel outlet</text></svg>")


def svg_lines(frame: pd.DataFrame, series: list[tuple[str, str, str]], *, chart_id: str, label: str,
              y_title: str, y_format, tooltip, width: int = 600, height: int = 260) -> str:
    """A time series chart: one line and one point per non-null value of each (column, name, color)."""
    values = [(col, name, color, [(d, v) for d, v in zip(frame["as_of_date"], frame[col], strict=True)
                                  if v is not None and not (isinstance(v, float) and math.isnan(v))])
              for col, name, color in series]
    if not any(points for *_, points in values):
        return _empty(chart_id, label, "no value in the window")
    left, right, top, bottom = 56, 20, 26, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    dates = list(frame["as_of_date"])
    first, last = min(dates), max(dates)
    span = max((last - first).days, 1)
    ticks = _ticks(max(v for *_, points in values for _, v in points))

    def px(d: date) -> float:
        return left + (plot_w / 2 if first == last else (d - first).days / span * plot_w)

    def py(v: float) -> float:
        return top + plot_h - v / ticks[-1] * plot_h

    out = []
    for t in ticks:
        out.append(f'<line class="grid" x1="{left}" y1="{py(t):.1f}" x2="{left + plot_w}" y2="{py(t):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{y_format(t)}</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>')
    step = max(1, math.ceil(len(dates) / 6))
    shown = dates[::step] + ([] if (len(dates) - 1) % step == 0 else [dates[-1]])
    for d in shown:
        out.append(f'<text class="tick" x="{px(d):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f'{d.isoformat()[5:]}</text>')
    n_marks = 0
    rows = {d: r for d, r in zip(frame["as_of_date"], frame.itertuples(index=False), strict=True)}
    for col, name, color, points in values:
        by_date = dict(points)
        path, pen = [], "M"
        for d in dates:  # a date without a value breaks the line instead of bridging the gap
            if d in by_date:
                path.append(f"{pen}{px(d):.1f},{py(by_date[d]):.1f}")
                pen = "L"
            else:
                pen = "M"
        out.append(f'<path class="line series-{_e(col)}" d="{" ".join(path)}" fill="none" stroke="{color}" '
                   f'stroke-width="2"/>')
        for d, v in points:
            n_marks += 1
            out.append(f'<circle class="mark point series-{_e(col)}" cx="{px(d):.1f}" cy="{py(v):.1f}" r="3.5" '
                       f'fill="{color}"><title>{_e(tooltip(name, d, v, rows[d]))}</title></circle>')
    out.append(_legend([(name, color) for _, name, color, _ in values], left, 14))
    out.append(f'<text class="axis-title" x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{_e(y_title)}</text>')
    out.append(f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
               "as-of date</text>")
    return _svg_open(chart_id, width, height, label, n_marks) + "".join(out) + "</svg>"


def svg_lead_time(trend: pd.DataFrame, *, chart_id: str = "chart-lead-time") -> str:
    def tip(name, d, v, r):
        return f"{d}: {name} {v:.2f} h ({r.delivered} parcels delivered in {r.counties} counties)"

    return svg_lines(trend, [("lead_time_p50_h", "p50", SERIES_COLORS["p50"]),
                             ("lead_time_p95_h", "p95", SERIES_COLORS["p95"])],
                     chart_id=chart_id, label="Lead time p50 and p95 trend", y_title="hours",
                     y_format=_num, tooltip=tip)


def svg_excursions(trend: pd.DataFrame, *, chart_id: str = "chart-excursions") -> str:
    def tip(name, d, v, r):
        return (f"{d}: {v:.1%} of cold-chain parcels with an excursion "
                f"({r.cold_chain_excursions} of {r.cold_chain_delivered})")

    return svg_lines(trend, [("cold_chain_excursion_rate", "excursion rate", SERIES_COLORS["excursion"])],
                     chart_id=chart_id, label="Cold-chain excursion rate trend", y_title="share of parcels",
                     y_format=lambda t: f"{t:.0%}" if t * 100 == int(t * 100) else f"{t:.1%}", tooltip=tip)


# --- HTML ----------------------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","Noto Sans SC",sans-serif;
color:#1f2933;background:#fff;line-height:1.4}
header,main,footer{max-width:1260px;margin:0 auto;padding:0 16px}
h1{font-size:1.5rem;margin:18px 0 4px}.sub{color:#52606d;margin:0 0 12px}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #d9e2ec;padding:3px 8px;text-align:left}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0b6e4f;font-weight:600}.warn{color:#8d6000;font-weight:600}.fail{color:#b00020;font-weight:700}
.grid4{display:grid;grid-template-columns:repeat(auto-fit,minmax(600px,1fr));gap:16px;margin:16px 0}
figure{margin:0;border:1px solid #e4e7eb;border-radius:6px;padding:8px 10px}figure.wide{grid-column:1/-1;overflow-x:auto}
figcaption{font-weight:600;margin-bottom:4px}.note{font-size:.8rem;color:#52606d;margin:4px 0}
svg.chart{display:block;max-width:100%;height:auto;font-size:11px}
svg .grid{stroke:#e4e7eb}svg .axis{stroke:#7b8794}svg .track{fill:#eef2f6}svg .tick,svg .value{fill:#52606d}
svg .label{fill:#1f2933}svg .axis-title{fill:#52606d}svg .empty{fill:#9aa5b1;font-size:13px}
details{font-size:.8rem;margin-top:4px}footer{font-size:.8rem;color:#52606d;margin:16px auto 24px}
"""


def _quality_cell(q: dict | None) -> str:
    if q is None:
        return '<span class="warn">not validated</span>'
    if not q["success"]:
        names = ", ".join(f"{f['expectation']}({f['column'] or ''})" for f in q["failed"] if f["severity"] == "critical")
        return (f'<span class="fail">latest validation FAILED</span> ({_e(names)}); the published partition is '
                "from an earlier passing run")
    warnings = [f for f in q["failed"] if f["severity"] != "critical"]
    n = q["expectations"]
    text = f'<span class="ok">passed</span> {n} expectation{"" if n == 1 else "s"}'
    if warnings:
        text += (f', <span class="warn">{len(warnings)} warning(s)</span>: '
                 + _e(", ".join(f"{f['expectation']}({f['column'] or ''})" for f in warnings)))
    return text + f' <span class="note">validated {_e(q["validated_at"][:19])}</span>'


def _data_table(frame: pd.DataFrame, columns: list[tuple[str, str, object]]) -> str:
    head = "".join(f"<th>{_e(title)}</th>" for _, title, _ in columns)
    body = []
    for r in frame.itertuples(index=False):
        cells = []
        for col, _, fmt in columns:
            v = getattr(r, col)
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            cells.append(f'<td class="num">{"–" if missing else _e(fmt(v) if fmt else v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<details><summary>data</summary><table><tr>{head}</tr>{''.join(body)}</table></details>"


def _more(shown: int, total: int, what: str) -> str:
    return f'<p class="note">{total - shown} more {what} not shown.</p>' if total > shown else ""


def render(data: ReportData, *, generated_at: datetime | None = None) -> str:
    """The whole report as one HTML document (pure: same data, same page)."""
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    d = data.as_of.isoformat()
    counts = "".join(
        f'<tr><td>gold.{_e(t)}</td><td class="num">{data.row_counts.get(t, 0):,}</td>'
        f"<td>{_quality_cell(data.quality.get(t))}</td></tr>" for t in TABLES)
    pct = (lambda v: f"{v:.1%}")  # noqa: E731
    tiers_cols = [("county_code", "county", None), ("county_name", "name", None), ("coops", "coops", None)]
    tiers_cols += [(t, f"tier {t}", None) for t in TIERS]
    figures = [
        ("Credit tiers by county", svg_tiers(data.tiers, min_cell=data.min_cell),
         f"Cooperatives of each county by credit tier on {d} (gold.credit_county_summary). Counties with fewer "
         f"than {data.min_cell} cooperatives show their total only, as in the export to the government platform.",
         _more(len(data.tiers), data.counties_total.get("tiers", len(data.tiers)), "counties")
         + _data_table(data.tiers, tiers_cols)),
        ("Village coverage by county", svg_coverage(data.coverage),
         f"Share of a county's villages with at least one open parcel outlet on {d} "
         "(gold.logistics_division_daily, county rows).",
         _more(len(data.coverage), data.counties_total.get("coverage", len(data.coverage)), "counties")
         + _data_table(data.coverage, [("county_code", "county", None), ("county_name", "name", None),
                                       ("villages_total", "villages", None), ("villages_covered", "covered", None),
                                       ("coverage_rate", "rate", pct)])),
        ("Lead time p50 / p95", svg_lead_time(data.trend),
         f"Hours from acceptance to delivery, as-of dates of the last {data.days} days up to {d}: the mean of the "
         "counties' p50 (p95), weighted by their delivered parcels (exact network percentiles need "
         "parcel-level data, which the report does not read).",
         _data_table(data.trend, [("as_of_date", "as of", None), ("delivered", "delivered", None),
                                  ("lead_time_p50_h", "p50 h", None), ("lead_time_p95_h", "p95 h", None)])),
        ("Cold-chain excursion rate", svg_excursions(data.trend),
         "Share of delivered cold-chain parcels with a reading outside their range or no reading at all, "
         "network-wide per as-of date (exact: the sum of the counties' excursions over their cold-chain "
         "deliveries).",
         _data_table(data.trend, [("as_of_date", "as of", None), ("cold_chain_delivered", "cold-chain delivered", None),
                                  ("cold_chain_excursions", "excursions", None),
                                  ("cold_chain_excursion_rate", "rate", pct)])),
    ]
    figs = "".join(f"<figure><figcaption>{_e(title)}</figcaption>{svg}<p class=\"note\">{_e(note)}</p>{extra}"
                   "</figure>" for title, svg, note, extra in figures)
    if data.lineage:
        from agrilake.analyst.lineage_graph import svg as lineage_svg

        figs += ("<figure class=\"wide\"><figcaption>Lineage of the date</figcaption>"
                 f"{lineage_svg(data.lineage, title=f'lineage of the gold tables as of {d}')}"
                 "<p class=\"note\">Where each gold table of the date came from and went: the landed files of each "
                 "feed that silver holds rows of by this date (hover a feed for its files and their SHA-256), the "
                 "silver tables, the published gold tables and their exports. File by file: "
                 f"<code>agrilake lineage gold.&lt;table&gt; --date {d}</code>.</p></figure>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>agrilake report as of {d}</title><style>{CSS}</style></head>
<body>
<header><h1>Rural credit and logistics report, as of {d}</h1>
<p class="sub">From the gold tables of the agrilake lakehouse; generated {generated}. Definitions: docs/metrics.md and
the data dictionary (docs/data_dictionary.html).</p>
<table><tr><th>table</th><th>rows as of {d}</th><th>data quality of the partition</th></tr>{counts}</table>
</header>
<main><div class="grid4">{figs}</div></main>
<footer id="privacy"><p><strong>Aggregate data only.</strong> Every figure is a county-level or network-level count,
share or percentile. No person-level data is included (no person_key, RIC, name or phone) and no row about one
cooperative or its loans; tier splits of counties under {data.min_cell} cooperatives are suppressed. This is the
level of detail the government platform receives in its export.</p></footer>
</body></html>
"""


# --- command ---------------------------------------------------------------------------------------------

def read_gold(ctx) -> dict:
    from agrilake.core import tables

    return {name: tables.read_or_empty(ctx, "gold", name, ctx.contracts.gold_table(name).ddl) for name in TABLES}


def published_dates(gold: dict) -> list[date]:
    return sorted(r[0] for r in gold["credit_county_summary"].select("as_of_date").distinct().collect())


def build(ctx, as_of: date, *, days: int = DEFAULT_DAYS, top: int = DEFAULT_TOP) -> ReportData:
    from agrilake.core import ops

    gold = read_gold(ctx)
    data = aggregate(gold, as_of, days=days, top=top, min_cell=ctx.settings.gov_min_cell)
    if not any(data.row_counts.values()):
        published = published_dates(gold)
        have = f"; gold has {published[0]} .. {published[-1]}" if published else "; gold has no partition yet"
        raise SystemExit(f"report: gold has no rows as of {as_of}{have}: run `agrilake gold --date {as_of}` first")
    data.quality = {t: ops.latest_dq(ctx, f"gold.{t}", as_of.isoformat())
                    or ops.latest_dq(ctx, f"gold.{t}", f"as_of_date={as_of.isoformat()}") for t in TABLES}
    if ops.gold_publication(ctx, as_of) is not None:  # gold of releases before the publication record: none
        from agrilake.analyst.lineage import by_path, lineage

        data.lineage = [lineage(ctx, t, as_of, read=by_path) for t in TABLES]
    return data


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context, dates

    parser = argparse.ArgumentParser(prog="agrilake report", description=__doc__.splitlines()[0])
    dates.add_date_options(parser, what="as-of date D")
    parser.add_argument("--out", type=Path, help="the HTML file (default: <data dir>/reports/report_<D>.html)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="trend window in days up to D (default 90)")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="counties shown in the bar charts (default 30)")
    args = parser.parse_args(argv)
    if args.days < 1 or args.top < 1:
        parser.error("--days and --top must be at least 1")
    ctx = context.from_env("agrilake-report")
    data = build(ctx, dates.resolve(ctx, args.date), days=args.days, top=args.top)
    if args.out is None:
        from agrilake.core import quality

        args.out = quality.data_dir(ctx.settings) / "reports" / f"report_{data.as_of.isoformat()}.html"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(data), encoding="utf-8")
    log.info("report as of %s: %s", data.as_of, data.row_counts)
    print(args.out)
    return 0
