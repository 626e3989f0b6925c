"""Reading landed files by the contracts on Spark (agrilake.stages.bronze.reader): header matching,
BOM, RFC 4180 quoting across lines, line numbers, JSON values as Python's json gives them, reasons.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from types import SimpleNamespace

import pytest

from agrilake.core import quarantine as q
from agrilake.core.contracts import packaged
from agrilake.stages.bronze import reader, transform
from agrilake.stages.bronze.landing import LandedFile

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


_names = itertools.count()


@pytest.fixture
def parse(spark, tmp_path):
    """parse(content, feed) -> (the read's records in line order, as namespaces)."""
    def run(content: bytes, feed):
        n = next(_names)
        path = tmp_path / f"file {n} 文件.{'jsonl' if feed.format == 'jsonl' else 'csv'}"
        path.write_bytes(content)
        landed = LandedFile(feed.name, str(path), f"{feed.system}/{feed.feed}/2026-11-02/{path.name}",
                            date(2026, 11, 2), len(content))
        df = reader.read(spark, [(landed, f"{n:064d}")], feed)
        assert df.schema.simpleString() == spark.createDataFrame([], transform.parsed_ddl(feed)).schema.simpleString()
        rows = sorted(df.collect(), key=lambda r: r["_line"])
        assert {(r["_file_sha256"], r["_file_name"], r["_delivery_date"]) for r in rows} <= {
            (f"{n:064d}", landed.name, landed.delivery_date)}
        return [SimpleNamespace(line=r["_line"], reason=r["_reason"], detail=r["_detail"], raw=r["_raw"],
                                extra=r["_extra"], values=None if r["_reason"] else
                                {c: r[c] for c in feed.column_names}) for r in rows]
    return run


def test_header_in_any_order_with_bom_and_quoted_newlines(parse):
    header = list(reversed(COOPS.column_names))
    rows = [_row(name='阳光"果蔬",专业\n合作社'), _row(coop_id="C2")]
    records = parse(_csv(header, rows, bom=True), COOPS)
    assert [r.extra for r in records] == [None, None]
    assert [r.reason for r in records] == [None, None]
    assert records[0].values["name"] == '阳光"果蔬",专业\n合作社'
    assert records[0].values["coop_id"] == "C1"
    # the first record spans physical lines 2-3, so the second starts on line 4
    assert [r.line for r in records] == [2, 4]


def test_empty_field_is_null_and_extra_column_is_kept_as_drift(parse):
    header = COOPS.column_names + ["wechat_id"]
    rows = [_row(phone="", wechat_id="wx123")]
    (rec,) = parse(_csv(header, rows), COOPS)
    assert rec.extra == {"wechat_id": "wx123"}
    assert rec.values["phone"] is None


def test_bad_quote_and_wrong_field_count_are_quarantined_with_their_lines(parse):
    text = HEADER + "\n" + ",".join(_row().values()) + "\n"
    bad_quote = ",".join(_row(coop_id='"C3"x').values())
    short = ",".join(list(_row(coop_id="C4").values())[:-1])
    text += bad_quote + "\n" + short + "\n" + ",".join(_row(coop_id="C5").values()) + "\n\n"
    records = parse(text.encode(), COOPS)
    got = [(r.line, r.reason) for r in records]
    assert got == [(2, None), (3, q.MALFORMED_CSV), (4, q.WRONG_FIELD_COUNT), (5, None)]


def test_missing_column_quarantines_the_whole_file_naming_it(parse):
    header = [c for c in COOPS.column_names if c != "uscc"]
    records = parse(_csv(header, [_row(), _row()]), COOPS)
    assert [r.reason for r in records] == [q.MISSING_COLUMN] * 2
    assert records[0].detail == "file lacks column(s): uscc"


def test_jsonl_absent_key_is_null_and_bad_lines_are_quarantined(parse):
    good = {"sale_id": "S1", "coop_id": "C1", "product_code": "tea", "channel": "retail", "quantity_kg": 12.5,
            "amount_cny": 100, "sale_date": "2026-11-01", "extra_field": True}
    lines = [json.dumps(good, ensure_ascii=False), '{"sale_id": "S2", "coop_id": ', "", "[1, 2]"]
    records = parse("\n".join(lines).encode(), SALES)
    assert [(r.line, r.reason) for r in records] == [(1, None), (2, q.MALFORMED_JSON), (4, q.MALFORMED_JSON)]
    assert records[0].values["buyer_county_code"] is None
    assert records[0].values["quantity_kg"] == "12.5" and records[0].values["amount_cny"] == "100"
    assert records[0].extra == {"extra_field": "true"}


def test_invalid_utf8_is_quarantined_not_fatal(parse):
    text = (HEADER + "\n").encode() + ",".join(_row(coop_id="C1").values()).encode() + b"\n"
    text += ",".join(_row(name="x").values()).encode().replace(b",x,", b",\xff\xfe,") + b"\n"
    records = parse(text, COOPS)
    assert [r.reason for r in records] == [None, q.MALFORMED_CSV]


def test_unreadable_header_quarantines_every_line(parse):
    text = b'"coop_id"x,uscc\nC1,93\n\nC2,93\n'
    records = parse(text, COOPS)
    assert [(r.line, r.reason, r.raw) for r in records] == [(1, q.MISSING_COLUMN, '"coop_id"x,uscc'),
                                                            (2, q.MISSING_COLUMN, "C1,93"),
                                                            (4, q.MISSING_COLUMN, "C2,93")]
    assert {r.detail for r in records} == {reader.NO_HEADER}


def test_records_end_only_at_newline_and_crlf_stays_inside_quotes(parse):
    """U+2028, U+0085 and form feed are text, not line ends; `\r\n` inside a quoted field is kept."""
    rows = [_row(name="甲\u2028乙\x85丙\x0c丁"), _row(coop_id="C2", name="line1\r\nline2"), _row(coop_id="C3")]
    text = _csv(COOPS.column_names, rows).decode().replace("\n", "\r\n").replace("line1\r\r\n", "line1\r\n")
    records = parse(text.encode(), COOPS)
    assert [(r.line, r.reason) for r in records] == [(2, None), (3, None), (5, None)]
    assert records[0].values["name"] == "甲\u2028乙\x85丙\x0c丁"
    assert records[1].values["name"] == "line1\r\nline2"


def test_jsonl_records_and_bad_bytes_keep_their_own_lines(parse):
    """A JSONL value holding a raw U+2028, U+0085 or form feed is one record (Python's splitlines() would
    cut it in two); a line with bytes that are not UTF-8 is quarantined with its own line and raw text,
    and the good line after it is still accepted on the next line."""
    odd = json.dumps({"sale_id": "S1", "coop_id": "C1\u2028\x85\x0c"}, ensure_ascii=False)
    bad = b'{"sale_id": "S2", "coop_id": "' + b"\xff" + b'"}'
    good = json.dumps({"sale_id": "S3", "coop_id": "C3"}).encode()
    records = parse(odd.encode() + b"\n" + bad + b"\n" + good + b"\n", SALES)
    assert [(r.line, r.reason) for r in records] == [(1, None), (2, q.MALFORMED_JSON), (3, None)]
    assert records[0].values["coop_id"] == "C1\u2028\x85\x0c"
    assert records[1].raw == '{"sale_id": "S2", "coop_id": "\ufffd"}' and records[2].values["sale_id"] == "S3"


def test_a_quote_inside_an_unquoted_field_is_text_as_in_python_csv(parse):
    text = HEADER + "\n" + ",".join(_row(name='王"五').values()) + "\n" + ",".join(_row(coop_id="C2").values()) + "\n"
    records = parse(text.encode(), COOPS)
    assert [(r.line, r.reason) for r in records] == [(2, None), (3, None)]
    assert records[0].values["name"] == '王"五'


def test_a_bad_line_inside_a_multiline_file_takes_no_good_line_with_it(parse):
    """A quoted field closed by garbage ends its record; the lines after it are records again."""
    lines = [HEADER, ",".join(_row(name='"two\nlines"').values()),
             ",".join(_row(coop_id='"C3"x').values()),
             ",".join(_row(coop_id="C4", name='"opens\nand closes"x').values()),
             ",".join(_row(coop_id="C5").values())]
    records = parse(("\n".join(lines) + "\n").encode(), COOPS)
    assert [(r.line, r.reason) for r in records] == [(2, None), (4, q.MALFORMED_CSV), (5, q.MALFORMED_CSV),
                                                     (7, None)]
    assert records[0].values["name"] == "two\nlines"
    assert records[2].raw.startswith('C4,') and records[2].raw.count("\n") == 1


def test_an_unclosed_quote_runs_to_the_end_of_the_file_as_one_malformed_record(parse):
    lines = [HEADER, ",".join(_row().values()), ",".join(_row(name='"never closed').values()),
             ",".join(_row(coop_id="C9").values())]
    records = parse(("\n".join(lines) + "\n").encode(), COOPS)
    assert [(r.line, r.reason) for r in records] == [(2, None), (3, q.MALFORMED_CSV)]
    assert records[1].raw.endswith(",".join(_row(coop_id="C9").values()))


def test_json_numbers_read_as_pythons_json_writes_them(parse):
    """Jackson would write 5.0E7; Python's json (and so silver's number rules) sees 50000000.0."""
    line = ('{"sale_id":"S1","amount_cny":50000000.00,"quantity_kg":12.50,"a":0.00015,"b":1e-5,"c":1e20,'
            '"d":-2.5E8,"e":100,"f":1.5e300,"g":"5.0E7","h":true,"i":null,"j":{"k":[1,2]}}')
    (rec,) = parse(line.encode(), SALES)
    assert rec.reason is None
    assert (rec.values["amount_cny"], rec.values["quantity_kg"]) == ("50000000.0", "12.5")
    python = {k: v if isinstance(v, str) or v is None else json.dumps(v)
              for k, v in json.loads(line).items() if k in "abcdefgh"}
    assert {k: rec.extra[k] for k in python} == python
    assert rec.extra["i"] is None and json.loads(rec.extra["j"]) == {"k": [1, 2]}


def test_json_repeated_key_is_quarantined_naming_it_and_trailing_text_is_malformed(parse):
    lines = ['{"sale_id":"S1","coop_id":"C1","sale_id":"S2"}', '{"sale_id":"S3"} and more', "{'sale_id':'S4'}",
             '  \t ', '"text"', '{"sale_id":"S6","x":1,"x":1,"coop_id":"C1"}', '{"sale_id":"S7","x":1}']
    records = parse("\n".join(lines).encode(), SALES)
    assert [(r.line, r.reason) for r in records] == [(1, q.DUPLICATE_KEY), (2, q.MALFORMED_JSON), (3, q.MALFORMED_JSON),
                                                     (5, q.MALFORMED_JSON), (6, q.DUPLICATE_KEY), (7, None)]
    assert [r.detail for r in records[:-1]] == ["record repeats key(s): sale_id", reader.JSON_SYNTAX, reader.JSON_SYNTAX,
                                                reader.JSON_NOT_OBJECT, "record repeats key(s): x"]
    assert records[-1].values["sale_id"] == "S7" and records[-1].extra == {"x": "1"}


def test_a_header_naming_a_column_twice_quarantines_the_whole_file_naming_it(parse):
    header = [*COOPS.column_names, "uscc", "note", "note"]
    text = _csv(header, [_row(), _row()]).decode().splitlines()
    records = parse(("\n".join([",".join(header), *text[1:]]) + "\n").encode(), COOPS)
    assert [(r.reason, r.detail) for r in records] == [(q.DUPLICATE_COLUMN, "header repeats column(s): note, uscc")] * 2


def test_the_rfc4180_patterns_agree_with_python_csv_line_by_line():
    """The SQL automaton's regexes, against Python's csv on the lines that matter (Java regex = re here)."""
    import csv
    import io
    import re

    def java(pattern):  # the patterns use only syntax Python's re shares, plus possessive forms (3.11+)
        return re.compile(pattern.replace(r"\z", r"\Z"))

    record, opens = java(reader.RECORD), java(reader.OPENS)
    for line, ok, is_open in [('a,b', True, False), ('"a,b",c', True, False), ('"a""b",c', True, False),
                              ('a"b,c', True, False), ('"a"x,c', False, False), ('a,"b', False, True),
                              ('a,"b""', False, True), ('a,"b"""', True, False), ('"a"x,"b', False, False),
                              (',,', True, False), ('"",""', True, False)]:
        assert (bool(record.search(line)), bool(opens.search(line))) == (ok, is_open), line
        if ok:
            assert next(csv.reader(io.StringIO(line, newline=""), strict=True)) is not None
