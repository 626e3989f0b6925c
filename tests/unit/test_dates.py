"""agrilake.core.dates: the one date parser of every command and the one meaning of `latest`."""

from __future__ import annotations

import argparse
from datetime import date

import pytest

from agrilake.core import dates, ops, tables

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "yesterday", "", "01/11/2026"])
def test_a_bad_date_names_the_value(value):
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        dates.parse(value)
    assert str(exc.value) == f"{value!r} is not a date: use YYYY-MM-DD"


def test_parse_and_latest():
    assert dates.parse("2026-11-01") == D1
    assert dates.parse_or_latest("2026-11-01") == D1
    assert dates.parse_or_latest("latest") == dates.LATEST
    with pytest.raises(argparse.ArgumentTypeError, match="'Latest' is not a date"):
        dates.parse_or_latest("Latest")


def test_days_are_inclusive_and_ordered():
    assert dates.days(D1, D3) == [D1, D2, D3]
    assert dates.days(D2, D2) == [D2]
    with pytest.raises(SystemExit, match="--to 2026-11-01 is before --from 2026-11-03"):
        dates.days(D3, D1)


def _parser(**kw) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agrilake test")
    dates.add_date_options(parser, what="as-of date", **kw)
    return parser


def _wanted(argv: list[str], **kw):
    return dates.from_options(_parser(**kw).parse_args(argv))


def test_from_options_date_latest_and_ranges():
    assert _wanted(["--date", "2026-11-02"], ranges=True) == [D2]
    assert _wanted(["--date", "latest"], ranges=True) == dates.LATEST
    assert _wanted(["--from", "2026-11-01", "--to", "2026-11-03"], ranges=True) == [D1, D2, D3]
    assert _wanted(["--from", "2026-11-02"], ranges=True) == [D2]  # --to defaults to --from
    assert _wanted(["--date", "2026-11-02"]) == [D2]
    with pytest.raises(SystemExit, match=r"give --date D \(or `latest`\), or --from D1"):
        _wanted([], ranges=True)
    with pytest.raises(SystemExit, match="is before --from"):
        _wanted(["--from", "2026-11-03", "--to", "2026-11-01"], ranges=True)


def test_options_reject_bad_values_naming_them(capsys):
    with pytest.raises(SystemExit):
        _wanted(["--date", "2026-02-30"], ranges=True)
    assert "'2026-02-30' is not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a command without `latest` refuses it
        _wanted(["--date", "latest"], latest=False)
    assert "'latest' is not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --date is required when there are no ranges
        _wanted([])
    assert "--date" in capsys.readouterr().err
    assert "latest" not in _parser(latest=False).format_help()
    assert "ops.ingest_log" in _parser().format_help()


def _log(ctx, *delivered: date) -> None:
    rows = [{"batch_id": "b", "system": "coop", "feed": "sales", "delivery_date": d,
             "file_name": f"coop/sales/{d}/f{i}.jsonl", "file_sha256": f"{i:064d}", "file_bytes": 1,
             "status": "ingested", "read": 1, "accepted": 1, "quarantined": 0, "schema_drift": []}
            for i, d in enumerate(delivered)]
    tables.append(ctx, ops.rows_df(ctx, ops.ddl(ctx, "ingest_log"), rows), "ops", "ingest_log")


def test_latest_is_the_newest_delivery_ingested(ctx):
    assert dates.resolve(ctx, D1) == D1  # a date is itself, with or without a log
    assert dates.newest_delivery(ctx) is None
    with pytest.raises(SystemExit, match="nothing has been ingested yet; run the ingest DAGs "
                                         r"\(or agrilake ingest\) first"):
        dates.resolve(ctx, dates.LATEST)

    ops.create(ctx, "ingest_log")  # an ingest log without any file is still nothing ingested
    with pytest.raises(SystemExit, match="nothing has been ingested yet"):
        dates.resolve(ctx, dates.LATEST)

    _log(ctx, D1, D3, D2)
    assert dates.newest_delivery(ctx) == D3
    assert dates.resolve(ctx, dates.LATEST) == D3
    assert dates.resolve_all(ctx, dates.LATEST) == [D3]
    assert dates.resolve_all(ctx, [D1, D2]) == [D1, D2]


def test_latest_reads_the_contexts_own_lakehouse(ctx, tmp_path):
    _log(ctx, D2)
    other = ctx.with_settings(lakehouse=str(tmp_path / "other-lakehouse"))
    assert dates.newest_delivery(ctx) == D2
    assert dates.newest_delivery(other) is None
