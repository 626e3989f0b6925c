"""Parsing landed files by the contracts: header matching, BOM, quoting, line numbers, reasons."""

from __future__ import annotations

import json

from agrilake.core import quarantine as q
from agrilake.core.contracts import packaged
from agrilake.stages.bronze import parser as landing

COOPS = packaged().feed("coop_cooperatives")
SALES = packaged().feed("coop_sales")
HEADER = ",".join(COOPS.column_names)


def _row(**over):
    base = dict(coop_id="C1", uscc="93110000MA0000000X", name="合作社", village_code="110101001001",
                legal_rep_name="张三", legal_rep_ric="11010119800101001X", phone="13800000000",
                established_date="2015-01-01", member_count="10", land_area_mu="100.5", main_products="grain|tea",
                status="active", updated_at="2026-11-01T09:00:00+08:00")
    base.update(over)
    return base


def _csv(header: list[str], rows: list[dict], bom: bool = False) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    return (("\ufeff" if bom else "") + buf.getvalue()).encode("utf-8")


def test_header_in_any_order_with_bom_and_quoted_newlines():
    header = list(reversed(COOPS.column_names))
    rows = [_row(name='阳光"果蔬",专业\n合作社'), _row(coop_id="C2")]
    missing, extra, records = landing.parse(_csv(header, rows, bom=True), COOPS)
    records = list(records)
    assert missing == [] and extra == []
    assert [r.reason for r in records] == [None, None]
    assert records[0].values["name"] == '阳光"果蔬",专业\n合作社'
    assert records[0].values["coop_id"] == "C1"
    # the first record spans physical lines 2-3, so the second starts on line 4
    assert [r.line for r in records] == [2, 4]


def test_empty_field_is_null_and_extra_column_is_kept_as_drift():
    header = COOPS.column_names + ["wechat_id"]
    rows = [_row(phone="", wechat_id="wx123")]
    missing, extra, records = landing.parse(_csv(header, rows), COOPS)
    (rec,) = list(records)
    assert extra == ["wechat_id"] and rec.extra == {"wechat_id": "wx123"}
    assert rec.values["phone"] is None


def test_bad_quote_and_wrong_field_count_are_quarantined_with_their_lines():
    text = HEADER + "\n" + ",".join(_row().values()) + "\n"
    bad_quote = ",".join(_row(coop_id='"C3"x').values())
    short = ",".join(list(_row(coop_id="C4").values())[:-1])
    text += bad_quote + "\n" + short + "\n" + ",".join(_row(coop_id="C5").values()) + "\n\n"
    _, _, records = landing.parse(text.encode(), COOPS)
    got = [(r.line, r.reason) for r in records]
    assert got == [(2, None), (3, q.MALFORMED_CSV), (4, q.WRONG_FIELD_COUNT), (5, None)]


def test_missing_column_quarantines_the_whole_file_naming_it():
    header = [c for c in COOPS.column_names if c != "uscc"]
    missing, _, records = landing.parse(_csv(header, [_row(), _row()]), COOPS)
    records = list(records)
    assert missing == ["uscc"]
    assert [r.reason for r in records] == [q.MISSING_COLUMN] * 2
    assert "uscc" in records[0].detail


def test_jsonl_absent_key_is_null_and_bad_lines_are_quarantined():
    good = {"sale_id": "S1", "coop_id": "C1", "product_code": "tea", "channel": "retail", "quantity_kg": 12.5,
            "amount_cny": 100, "sale_date": "2026-11-01", "extra_field": True}
    lines = [json.dumps(good, ensure_ascii=False), '{"sale_id": "S2", "coop_id": ', "", "[1, 2]"]
    _, _, records = landing.parse("\n".join(lines).encode(), SALES)
    records = list(records)
    assert [(r.line, r.reason) for r in records] == [(1, None), (2, q.MALFORMED_JSON), (4, q.MALFORMED_JSON)]
    assert records[0].values["buyer_county_code"] is None
    assert records[0].values["quantity_kg"] == "12.5" and records[0].values["amount_cny"] == "100"
    assert records[0].extra == {"extra_field": "true"}


def test_invalid_utf8_is_quarantined_not_fatal():
    text = (HEADER + "\n").encode() + ",".join(_row(coop_id="C1").values()).encode() + b"\n"
    text += ",".join(_row(name="x").values()).encode().replace(b",x,", b",\xff\xfe,") + b"\n"
    _, _, records = landing.parse(text, COOPS)
    assert [r.reason for r in records] == [None, q.MALFORMED_CSV]


def test_unreadable_header_quarantines_every_line():
    text = b'"coop_id"x,uscc\nC1,93\n\nC2,93\n'
    missing, _, records = landing.parse(text, COOPS)
    assert missing == ["<header>"]
    assert [(r.line, r.reason) for r in records] == [(1, q.MISSING_COLUMN), (2, q.MISSING_COLUMN),
                                                     (4, q.MISSING_COLUMN)]
