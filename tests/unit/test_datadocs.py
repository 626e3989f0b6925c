"""GX data docs: the result of each validation is kept as it is computed, and `agrilake datadocs`
renders the latest one per suite with GX's site builder, naming the failing expectation."""

from __future__ import annotations

import re
from pathlib import Path

from agrilake import cli
from agrilake.core import quality

SUITE = "silver.datadocs_probe"
NOT_NULL = {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "n"}, "severity": "critical"}
COLUMNS = {"expectation": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": ["n", "s"]},
           "severity": "critical"}
AT_MOST_2 = {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "n", "max_value": 2},
             "severity": "critical"}


def _text(page: Path) -> str:
    """The page's visible text (GX's markup splits phrases over many tags)."""
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", raw))


def _build(ctx, monkeypatch, capsys) -> Path:
    """`agrilake datadocs` with its defaults: the CLI is an entry point, its lakehouse comes from the environment."""
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", ctx.settings.lakehouse)
    assert cli.main(["datadocs"]) == 0
    index = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert index == quality.data_docs_dir(ctx.settings) / "index.html" and index.exists()
    return index


def test_data_docs_of_the_latest_validation(ctx, lakehouse, monkeypatch, capsys):
    df = ctx.spark.createDataFrame([(1, "a"), (2, "b"), (3, None)], "n int, s string")
    results = quality.results_dir(ctx.settings)
    result = quality.validate(df, SUITE, [NOT_NULL, AT_MOST_2, COLUMNS], keep_in=results)
    assert [o.success for o in result.outcomes] == [True, False, True]
    kept = results / f"{SUITE}.json"
    assert kept.exists() and kept.parent.parent.parent == lakehouse.parent  # beside the lakehouse, not in the repo

    quality.validate(df, "doctor", [NOT_NULL], keep_in=results)  # the doctor's scratch check is not a table's
    assert sorted(p.name for p in results.iterdir()) == [f"{SUITE}.json"]

    index = _build(ctx, monkeypatch, capsys)
    pages = sorted((index.parent / "validations").rglob("*.html"))
    assert len(pages) == 1, pages
    page = _text(pages[0])
    assert "Unsuccessful Expectations 1" in page
    # each expectation by its type, arguments and severity, the failing one marked as blocking
    assert re.search(r"expect_column_values_to_be_between\(max_value=2(\.0)?\): critical, blocks the publish", page)
    assert "expect_column_values_to_not_be_null(): critical 100% not null" in page
    # a passed table-level expectation keeps its page renderable (GX drops a page lacking observed_value)
    assert "expect_table_columns_to_match_ordered_list(column_list=['n', 's']): critical" in page
    assert f"Data asset: {SUITE}" in page
    assert "1 unexpected values found" in page
    index_html = index.read_text(encoding="utf-8")
    link = pages[0].relative_to(index.parent).as_posix()
    assert link in index_html and "datadocs_probe" in index_html
    assert list((index.parent / "expectations").rglob("*.html")), "the suite's own page is missing"

    # a later validation of the suite replaces the earlier one: the site shows the latest run only
    quality.validate(df.where("n <= 2"), SUITE, [NOT_NULL, AT_MOST_2], keep_in=results)
    index = _build(ctx, monkeypatch, capsys)
    pages = sorted((index.parent / "validations").rglob("*.html"))
    assert len(pages) == 1
    assert "Unsuccessful Expectations 0" in _text(pages[0])
    assert not (index.parent.parent / "data_docs.building").exists()
