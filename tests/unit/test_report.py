"""The report's pure half: small frames in, one self-contained HTML page with inline SVG charts out."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from agrilake.analyst import report

D = date(2026, 6, 30)


def _data(**overrides) -> report.ReportData:
    tiers = pd.DataFrame([
        {"county_code": "130123", "county_name": "正定县", "coops": 12, "suppressed": False, "A": 3, "B": 5, "C": 0, "D": 4},
        {"county_code": "130124", "county_name": "<b>新&县</b>", "coops": 4, "suppressed": False,
         "A": 1, "B": 1, "C": 1, "D": 1},
        {"county_code": "130125", "county_name": "小县", "coops": 2, "suppressed": True,
         "A": None, "B": None, "C": None, "D": None},
    ])
    coverage = pd.DataFrame([
        {"county_code": "130123", "county_name": "正定县", "villages_total": 40, "villages_covered": 30,
         "coverage_rate": 0.75},
        {"county_code": "130125", "county_name": "小县", "villages_total": 0, "villages_covered": 0,
         "coverage_rate": None},
    ])
    trend = pd.DataFrame([
        {"as_of_date": D - timedelta(days=2), "counties": 2, "delivered": 90, "lead_time_p50_h": 18.0,
         "lead_time_p95_h": 40.0, "cold_chain_delivered": 8, "cold_chain_excursions": 1,
         "cold_chain_excursion_rate": 0.125},
        {"as_of_date": D - timedelta(days=1), "counties": 2, "delivered": 0, "lead_time_p50_h": None,
         "lead_time_p95_h": None, "cold_chain_delivered": 0, "cold_chain_excursions": 0,
         "cold_chain_excursion_rate": None},
        {"as_of_date": D, "counties": 2, "delivered": 150, "lead_time_p50_h": 23.33, "lead_time_p95_h": 60.0,
         "cold_chain_delivered": 15, "cold_chain_excursions": 4, "cold_chain_excursion_rate": 4 / 15},
    ])
    values = {"as_of": D, "tiers": tiers, "coverage": coverage, "trend": trend,
              "row_counts": dict.fromkeys(report.TABLES, 3), "counties_total": {"tiers": 5, "coverage": 2}}
    return report.ReportData(**{**values, **overrides})


def _chart(page: str, chart_id: str) -> str:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', page, flags=re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


def _marks(svg: str) -> list[str]:
    return re.findall(r'<(?:rect|circle) class="mark[^"]*"[^>]*><title>([^<]*)</title>', svg)


def test_every_chart_has_its_marks_with_tooltips():
    page = report.render(_data(), generated_at=datetime(2026, 7, 1, 8, 0))
    expected = {"chart-tiers": 3 + 4 + 1, "chart-coverage": 1, "chart-lead-time": 4, "chart-excursions": 2}
    for chart_id, n in expected.items():
        svg = _chart(page, chart_id)
        assert len(_marks(svg)) == n, chart_id
        assert f'data-marks="{n}"' in svg
    tiers = _marks(_chart(page, "chart-tiers"))
    assert "正定县 (130123): tier A, 3 of 12 cooperatives" in tiers
    assert not any("tier C" in t and "130123" in t for t in tiers), "a zero segment is not drawn"
    assert "小县 (130125): 2 cooperative(s); tier split suppressed (fewer than 3)" in tiers
    assert _marks(_chart(page, "chart-coverage")) == ["正定县 (130123): 30 of 40 villages covered (75.0%)"]
    lead = _marks(_chart(page, "chart-lead-time"))
    assert f"{D}: p50 23.33 h (150 parcels delivered in 2 counties)" in lead
    assert f"{D - timedelta(days=1)}" not in " ".join(lead), "no point where no parcel was delivered"
    # the missing day breaks the line: two sub-paths per series
    assert re.search(r'class="line series-lead_time_p50_h" d="M[^"]*M[^"]*"', page)
    assert f"{D}: 26.7% of cold-chain parcels with an excursion (4 of 15)" in _marks(_chart(page, "chart-excursions"))
    assert "2 more counties not shown." in page


def test_page_is_self_contained_escaped_and_aggregate_only():
    page = report.render(_data())
    assert not re.search(r"https?://|<script|<link|<img|<iframe|@import|url\(", page)
    assert "&lt;b&gt;新&amp;县&lt;/b&gt;" in page and "<b>新" not in page
    assert 'id="privacy"' in page and "No person-level data is included" in page
    assert "not validated" in page  # no ops.dq_results row for any table
    assert page.count("<figure>") == 4


def test_quality_status_in_the_header():
    ok = {"success": True, "expectations": 24, "validated_at": "2026-06-30T10:00:00",
          "failed": [{"expectation": "expect_column_values_to_not_be_null", "column": "county_name",
                      "severity": "warning", "observed": ""}]}
    bad = {"success": False, "expectations": 10, "validated_at": "2026-06-30T11:00:00",
           "failed": [{"expectation": "expect_column_values_to_be_between", "column": "coops", "severity": "critical",
                       "observed": ""}]}
    page = report.render(_data(quality={"coop_credit_profile": ok, "credit_county_summary": bad}))
    assert "passed</span> 24 expectations" in page and "1 warning(s)" in page
    assert "expect_column_values_to_not_be_null(county_name)" in page
    assert "latest validation FAILED" in page and "expect_column_values_to_be_between(coops)" in page


def test_empty_frames_say_so_instead_of_drawing_nothing():
    empty = _data(tiers=_data().tiers.iloc[0:0], coverage=_data().coverage.iloc[0:0],
                  trend=_data().trend.iloc[0:0])
    page = report.render(empty)
    for chart_id in ("chart-tiers", "chart-coverage", "chart-lead-time", "chart-excursions"):
        svg = _chart(page, chart_id)
        assert 'data-marks="0"' in svg and 'class="empty"' in svg


@pytest.mark.parametrize(("hi", "ticks"), [(12, [0, 5, 10, 15]), (0.27, [0, 0.1, 0.2, 0.3]),
                                          (0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (80, [0, 20, 40, 60, 80])])
def test_axis_ticks_are_round_and_cover_the_maximum(hi, ticks):
    assert report._ticks(hi) == pytest.approx(ticks)
