"""Property-based fuzzing of the landing reader (agrilake.stages.bronze.reader) on the real Spark reader.

- Any valid CSV (Python's csv.writer, any text: quotes, commas, line breaks, U+2028, form feed,
  U+0085, Chinese) reads exactly as Python's csv.reader reads it, each record on the line it starts.
- Any bytes at all, as CSV or JSONL, never raise: every record is accepted or quarantined with a
  known reason, line numbers are unique, in order and within the file, and for JSONL every
  non-blank line is exactly one record.
"""

from __future__ import annotations

import csv
import io
import itertools
import tempfile
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agrilake.core import quarantine as q
from agrilake.core.contracts import packaged
from agrilake.stages.bronze import reader
from agrilake.stages.bronze.landing import LandedFile

COOPS = packaged().feed("coop_cooperatives")
SALES = packaged().feed("coop_sales")
REASONS = {q.MALFORMED_CSV, q.MALFORMED_JSON, q.WRONG_FIELD_COUNT, q.MISSING_COLUMN}
FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_ids = itertools.count()

# Text a field may hold; `\r` alone is left out: a record ends at `\n` or `\r\n` (the reader's rule).
FIELD = st.text(alphabet=st.sampled_from(list('ab ,"\n\u2028\x0c\x85é合作社0')), max_size=12)


def _read(spark, content: bytes, feed):
    with tempfile.TemporaryDirectory() as tmp:
        n = next(_ids)
        path = Path(tmp) / f"fuzz {n}[x].{'jsonl' if feed.format == 'jsonl' else 'csv'}"
        path.write_bytes(content)
        landed = LandedFile(feed.name, str(path), f"{feed.system}/{feed.feed}/2026-11-02/{path.name}",
                            date(2026, 11, 2), len(content))
        with reader.one_task_per_file(spark):
            return sorted(reader.read(spark, [(landed, f"{n:064d}")], feed).collect(), key=lambda r: r["_line"])


@FUZZ
@given(rows=st.lists(st.lists(FIELD, min_size=len(COOPS.column_names), max_size=len(COOPS.column_names)),
                     min_size=1, max_size=6),
       order=st.permutations(COOPS.column_names), bom=st.booleans())
def test_valid_csv_reads_as_python_csv_reads_it(spark, rows, order, bom):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(order)
    starts = []
    for row in rows:
        starts.append(buf.getvalue().count("\n") + 1)
        writer.writerow(row)
    text = buf.getvalue()
    expected = list(csv.reader(io.StringIO(text, newline=""), strict=True))[1:]
    blank = [not any(r) and len(r) <= 1 for r in expected]  # a record of one empty field is a blank line
    got = _read(spark, (("\ufeff" if bom else "") + text).encode(), COOPS)
    want = [(line, dict(zip(order, r, strict=True))) for line, r, b in zip(starts, expected, blank, strict=True) if not b]
    assert [(r["_line"], r["_reason"]) for r in got] == [(line, None) for line, _ in want]
    for r, (_, values) in zip(got, want, strict=True):
        assert {c: r[c] for c in order} == {c: (v if v != "" else None) for c, v in values.items()}


LINE = st.one_of(st.binary(max_size=20),
                 st.text(alphabet=st.sampled_from(list('{}[]":,0123456789eE.-ab \t\u2028\x85')), max_size=20)
                 .map(lambda t: t.encode()),
                 st.sampled_from([b'{"sale_id": "S1"}', b'{"sale_id": 1e400}', b'{"a":' * 30 + b"1" + b"}" * 30,
                                  b"\xff\xfe", b"\x00", b'"unclosed,a', b"sale_id,coop_id"]))


@FUZZ
@given(lines=st.lists(LINE, max_size=8), fmt=st.sampled_from(["csv", "jsonl"]), crlf=st.booleans())
def test_any_bytes_are_accepted_or_quarantined_line_by_line(spark, lines, fmt, crlf):
    feed = SALES if fmt == "jsonl" else COOPS
    lines = [ln.replace(b"\n", b"") for ln in lines]
    if fmt == "csv":
        lines = [",".join(COOPS.column_names).encode(), *lines]
    content = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if lines else b"")
    if not lines:
        return  # nothing to read: bronze never reads an empty selection
    got = _read(spark, content, feed)
    numbers = [r["_line"] for r in got]
    assert numbers == sorted(set(numbers)) and all(1 <= n <= len(lines) for n in numbers)
    for r in got:
        assert r["_reason"] is None or r["_reason"] in REASONS, r
        assert (r["_reason"] is None) == (r["_raw"] is None)
    if fmt == "jsonl":
        non_blank = [i + 1 for i, ln in enumerate(lines) if ln.decode("utf-8", "replace").strip(" \t\r\x0b\x0c")]
        assert numbers == non_blank
