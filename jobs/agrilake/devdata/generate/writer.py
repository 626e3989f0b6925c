"""Turning typed columns into the exact text docs/sources.md describes: RFC 4180 CSV and JSONL.

Everything is column-at-a-time with pyarrow compute, and a whole file is one string join whose
value buffer already is the file's bytes. The few records a defect touches are rebuilt in Python
from their cells (`csv_record` / `json_record`) and swapped in.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agrilake.core.contracts import Feed
from agrilake.devdata.generate.common import DAY, NULL_INT

# Decimals written per double column (money is always 2; other doubles default to 2).
DECIMALS = {"latitude": 6, "longitude": 6, "temperature_c": 1, "temp_min_c": 1, "temp_max_c": 1,
            "promised_hours": 0, "annual_rate_pct": 2}
TEXT_TYPES = {"string", "list"}
QUOTED_JSON_TYPES = {"string", "list", "date", "timestamp"}
CSV_EOL = "\r\n"  # RFC 4180 record separator; line breaks inside quoted fields stay "\n"
JSON_EOL = "\n"
BOM = "\ufeff".encode()
# Generated ids are kept as integers (fixed digit counts) until written with their prefix.
PREFIXED_IDS = {"sale_id": "S", "event_id": "E", "tracking_no": "98", "subsidy_id": "SB"}


@cache
def _time_table() -> pa.Array:
    s = np.arange(DAY)
    parts = [pc.utf8_lpad(pa.array(v).cast(pa.string()), 2, "0") for v in (s // 3600, s // 60 % 60, s % 60)]
    return pc.binary_join_element_wise(*parts, ":")


def _lookup(values: np.ndarray, valid: np.ndarray, render) -> pa.Array:
    """Render each distinct value once: dates repeat a lot within a file."""
    uniq, inv = np.unique(values[valid], return_inverse=True)
    idx = np.zeros(len(values), dtype=np.int64)
    idx[valid] = inv
    return pa.array(render(uniq)).take(pa.array(idx, mask=~valid))


def fmt_date(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    return _lookup(days, days != NULL_INT, lambda u: np.datetime_as_string(u.astype("datetime64[D]")))


def fmt_timestamp(seconds: np.ndarray) -> pa.Array:
    seconds = np.asarray(seconds, dtype=np.int64)
    valid = seconds != NULL_INT
    safe = np.where(valid, seconds, 0)
    day = fmt_date(np.where(valid, safe // DAY, NULL_INT))
    tod = _time_table().take(pa.array(safe % DAY))
    return pc.binary_join_element_wise(day, "T", tod, "+08:00", "")


def fmt_int(values: np.ndarray) -> pa.Array:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        valid = ~np.isnan(values)
        ints = np.where(valid, values, 0).astype(np.int64)
    else:
        ints = values.astype(np.int64)
        valid = ints != NULL_INT
    return pa.array(ints, mask=~valid).cast(pa.string())


def fmt_fixed(values: np.ndarray, decimals: int) -> pa.Array:
    """Fixed-point text without float repr noise (no 1e+08, no 0.30000000000000004)."""
    values = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    scaled = np.round(np.where(valid, values, 0.0) * 10**decimals).astype(np.int64)
    mag = np.abs(scaled)
    whole = pa.array(mag // 10**decimals, mask=~valid).cast(pa.string())
    if (scaled < 0).any():
        whole = pc.binary_join_element_wise(pc.if_else(pa.array(scaled < 0), "-", ""), whole, "")
    if decimals == 0:
        return whole
    frac = pa.array(mag % 10**decimals)
    frac = _fraction_table(decimals).take(frac) if decimals <= 2 else pc.utf8_lpad(frac.cast(pa.string()), decimals, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


@cache
def _fraction_table(decimals: int) -> pa.Array:
    return pa.array([f"{i:0{decimals}d}" for i in range(10**decimals)])


def fmt_bool(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.int8)
    return pa.array(["false", "true"]).take(pa.array(np.clip(values, 0, 1).astype(np.int64), mask=values < 0))


def fmt_text(series: pd.Series, encode=None) -> pa.Array:
    """Text cells; `encode` (quoting, escaping) runs once per distinct value of a categorical."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int64)
        categories = pa.array(series.cat.categories.astype(str).to_numpy(), type=pa.string())
        if encode is not None:
            categories = encode(categories)
        return categories.take(pa.array(codes, mask=codes < 0))
    text = pa.array(series.to_numpy(), type=pa.string(), from_pandas=True)
    return encode(text) if encode is not None else text


def csv_quote(arr: pa.Array) -> pa.Array:
    """RFC 4180 minimal quoting: only fields holding a comma, quote or line break are quoted."""
    need = pc.match_substring_regex(arr, '[",\r\n]')
    if not pc.any(need).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(need, quoted, arr)


def csv_quote_one(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\r\n') else value


def json_escape(arr: pa.Array) -> pa.Array:
    """JSON string escaping (without the quotes), for the rare text that needs it."""
    if pc.any(pc.match_substring_regex(arr, r'["\\\n\r\t]')).as_py():
        for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            arr = pc.replace_substring(arr, old, new)
    return arr


def json_string_one(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


def format_cells(feed: Feed, frame: pd.DataFrame, fmt: str) -> dict[str, pa.Array]:
    """column -> cell text, null = empty field / absent key.

    CSV cells are final (quoted where RFC 4180 needs it). JSON cells are the value's text: string,
    date and timestamp cells are escaped but not yet quoted (`json_token` adds the quotes).
    """
    out: dict[str, pa.Array] = {}
    for col in feed.columns:
        series = frame[col.name]
        values = series.to_numpy() if not isinstance(series.dtype, pd.CategoricalDtype) else None
        if values is not None and col.name in PREFIXED_IDS and values.dtype.kind in "iu":
            text = pc.binary_join_element_wise(PREFIXED_IDS[col.name], pa.array(values).cast(pa.string()), "")
        elif col.type == "date":
            text = fmt_date(values)
        elif col.type == "timestamp":
            text = fmt_timestamp(values)
        elif col.type in ("int", "long"):
            text = fmt_int(values)
        elif col.type == "money":
            text = fmt_fixed(values, 2)
        elif col.type == "double":
            text = fmt_fixed(values, DECIMALS.get(col.name, 2))
        elif col.type in ("bool", "boolean"):
            text = fmt_bool(values)
        else:
            text = fmt_text(series, csv_quote if fmt == "csv" else json_escape)
        out[col.name] = text
    return out


def json_token(col_type: str, cell: str | None) -> str | None:
    """The JSON value text of a cell as format_cells left it."""
    if cell is None:
        return None
    return f'"{cell}"' if col_type in QUOTED_JSON_TYPES else cell


def _join(items: list, kind: pa.DataType, **options) -> pa.Array:
    """Concatenate arrays and literal strings element-wise (literals typed like the arrays)."""
    args = [pa.scalar(x, kind) if isinstance(x, str) else x for x in items]
    return pc.binary_join_element_wise(*args, pa.scalar("", kind), **options)


def csv_records(cells: list[pa.Array]) -> pa.Array:
    """One string per record, line terminator included."""
    items: list = []
    for c in cells:
        items += [c, ","]
    items[-1] = CSV_EOL
    return _join(items, cells[0].type, null_handling="replace", null_replacement="")


def jsonl_records(names: list[str], types: list[str], cells: list[pa.Array]) -> pa.Array:
    """One JSON object per record, line terminator included; a null cell is an absent key.

    Rows are grouped by which keys they have (events: the accepted shape and the short one), so
    each group is a single join of literal keys and cells, with no per-cell null handling.
    """
    n = len(cells[0]) if cells else 0
    kind = cells[0].type if cells else pa.string()
    valid = np.stack([pc.is_valid(c).to_numpy(zero_copy_only=False) for c in cells], axis=1)
    pattern = valid.astype(np.int64) @ (np.int64(1) << np.arange(len(cells), dtype=np.int64))
    shapes, inverse = np.unique(pattern, return_inverse=True)
    parts, rows = [], []
    for g, shape in enumerate(shapes.tolist()):
        idx = None if len(shapes) == 1 else np.flatnonzero(inverse == g)
        items: list = []
        for i, (name, col_type, cell) in enumerate(zip(names, types, cells, strict=True)):
            if not shape >> i & 1:
                continue
            quote = '"' if col_type in QUOTED_JSON_TYPES else ""
            if items:
                items[-1] += f',"{name}":{quote}'
            else:
                items.append(f'{{"{name}":{quote}')
            items += [cell if idx is None else cell.take(pa.array(idx)), quote]
        if not items:
            items = ["{"]
        items[-1] += "}" + JSON_EOL
        parts.append(_join(items, kind) if len(items) > 1 else
                     pa.array([items[0]] * (n if idx is None else len(idx)), type=kind))
        rows.append(idx)
    if len(shapes) <= 1:
        return parts[0] if parts else pa.array([], type=kind)
    order = np.empty(n, dtype=np.int64)
    order[np.concatenate(rows)] = np.arange(n)
    return pa.concat_arrays(parts).take(pa.array(order))


def csv_record(fields: list[str | None]) -> str:
    return ",".join("" if f is None else f for f in fields) + CSV_EOL


def json_record(names: list[str], tokens: list[str | None]) -> str:
    body = ",".join(f'"{n}":{t}' for n, t in zip(names, tokens, strict=True) if t is not None)
    return "{" + body + "}" + JSON_EOL


def record_lines(records: pa.Array, first_line: int) -> np.ndarray:
    """1-based physical line on which each record starts (quoted line breaks push the next ones down)."""
    breaks = pc.count_substring(records, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.empty(len(breaks), dtype=np.int64)
    if len(breaks):
        starts[0] = first_line
        np.cumsum(breaks[:-1], out=starts[1:])
        starts[1:] += first_line
    return starts


def text_bytes(records: pa.Array) -> memoryview:
    """The concatenated records, straight from the array's value buffer (no Python strings)."""
    width = np.int64 if pa.types.is_large_string(records.type) else np.int32
    offsets = np.frombuffer(records.buffers()[1], dtype=width)[records.offset: records.offset + len(records) + 1]
    data = records.buffers()[2]
    if data is None or not len(records):
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]): int(offsets[-1])]
