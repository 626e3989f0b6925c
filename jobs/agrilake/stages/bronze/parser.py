"""Parsing landed files as they come, record by record (pure Python, no Spark).

Kept apart from the rest of bronze because it is to be replaced by the engine's own readers; until
then the parsing rules are unit-tested on bytes: CSV matched by header name
in any order, with or without a BOM, RFC 4180 quoting; JSONL one object per line. Every physical
record ends either as a parsed record or as a quarantine entry with a reason; blank lines are not
records.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from agrilake.core import quarantine as q
from agrilake.core.contracts import Feed


@dataclass(frozen=True)
class ParsedRecord:
    """One record of a file: `values` when parsed, else `reason` (and `detail`) for quarantine."""

    line: int
    raw: str
    values: dict[str, str | None] | None = None
    extra: dict[str, str | None] | None = None
    reason: str | None = None
    detail: str | None = None


def _decode(content: bytes) -> str:
    # Undecodable bytes survive as surrogates, so one bad record does not take the file down with it.
    text = content.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _clean(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def header_problems(feed: Feed, header: list[str]) -> tuple[list[str], list[str]]:
    """(missing contract columns, extra unknown columns) of a CSV header."""
    names = set(header)
    missing = [c for c in feed.column_names if c not in names]
    extra = [h for h in header if h not in set(feed.column_names)]
    return missing, extra


def parse_csv(content: bytes, feed: Feed) -> tuple[list[str], Iterator[ParsedRecord]]:
    """Returns (header, records). Records carry their 1-based physical start line (header = line 1)."""
    text = _decode(content)
    physical = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], iter(())
    except csv.Error:
        return [], iter(())

    def records() -> Iterator[ParsedRecord]:
        width = len(header)
        contract = set(feed.column_names)
        previous_end = reader.line_num
        while True:
            start = previous_end + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = max(reader.line_num, start)
                previous_end = end
                raw = "".join(physical[start - 1:end]).rstrip("\r\n")
                yield ParsedRecord(start, _clean(raw), reason=q.MALFORMED_CSV, detail=str(exc))
                continue
            end = reader.line_num
            previous_end = end
            raw = "".join(physical[start - 1:end]).rstrip("\r\n")
            if not row:  # a blank line is not a record
                continue
            if _has_bad_bytes(raw):
                yield ParsedRecord(start, _clean(raw), reason=q.MALFORMED_CSV, detail="bytes that are not UTF-8")
                continue
            if len(row) != width:
                yield ParsedRecord(start, raw, reason=q.WRONG_FIELD_COUNT,
                                   detail=f"{len(row)} fields, header has {width}")
                continue
            values = {h: (v if v != "" else None) for h, v in zip(header, row, strict=True)}
            known = {k: v for k, v in values.items() if k in contract}
            extra = {k: v for k, v in values.items() if k not in contract} or None
            yield ParsedRecord(start, raw, values=known, extra=extra)

    return header, records()


def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def parse_jsonl(content: bytes, feed: Feed) -> Iterator[ParsedRecord]:
    text = _decode(content)
    contract = set(feed.column_names)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if _has_bad_bytes(line):
            yield ParsedRecord(number, _clean(line), reason=q.MALFORMED_JSON, detail="bytes that are not UTF-8")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ParsedRecord(number, line, reason=q.MALFORMED_JSON, detail=str(exc))
            continue
        if not isinstance(obj, dict):
            yield ParsedRecord(number, line, reason=q.MALFORMED_JSON, detail=f"a JSON {type(obj).__name__}, not an object")
            continue
        known = {c: _as_text(obj.get(c)) for c in feed.column_names}
        extra = {k: _as_text(v) for k, v in obj.items() if k not in contract} or None
        yield ParsedRecord(number, line, values=known, extra=extra)


def parse(content: bytes, feed: Feed) -> tuple[list[str], list[str], Iterator[ParsedRecord]]:
    """(missing columns, schema-drift columns, records) of one file.

    A CSV file whose header lacks a contract column is quarantined whole: every record gets
    MISSING_COLUMN naming the columns, so that read = accepted + quarantined still holds.
    """
    if feed.format == "jsonl":
        return [], [], parse_jsonl(content, feed)
    header, records = parse_csv(content, feed)
    if not header:
        # No readable header: nothing can be matched by name, so every line is quarantined, none lost.
        lines = _decode(content).splitlines()
        whole = (ParsedRecord(n, _clean(line), reason=q.MISSING_COLUMN, detail="file has no readable header row")
                 for n, line in enumerate(lines, start=1) if line.strip())
        return ["<header>"], [], whole
    missing, extra = header_problems(feed, header)
    if missing:
        detail = "file lacks column(s): " + ", ".join(missing)
        whole = (ParsedRecord(r.line, r.raw, reason=q.MISSING_COLUMN, detail=detail) for r in records)
        return missing, extra, whole
    return [], extra, records
