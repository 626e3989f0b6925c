"""Defect injection: which defect classes each feed can carry, how many per file, and the exact
text each one puts in the file.

Every injected defect is recorded (feed, file, physical line, class, expected reason, column) so
the pipeline can be held to "catch each, lose nothing, say why". A defective row is defective in
exactly one way. Rows of the feeds others refer to (divisions, cooperatives, outlets, loans) are
never spoiled in place: the defect is an extra, corrupted copy of a good row, so quarantining it
does not orphan the members, sales, events or repayments that refer to the good row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agrilake.core.contracts import Column, Feed
from agrilake.core.quarantine import DEFECT_REASONS
from agrilake.devdata.generate import writer
from agrilake.devdata.generate.ids import bad_ric, bad_uscc

# feed -> row defect class -> columns it may hit (() = the whole record)
ROW_CLASSES: dict[str, dict[str, tuple[str, ...]]] = {
    "ref_divisions": {
        "malformed_csv": ("name", "division_code"), "wrong_field_count": (), "bad_date": ("valid_from",),
        "missing_key": ("division_code",), "duplicate_row": (),
    },
    "coop_cooperatives": {
        "malformed_csv": ("coop_id", "legal_rep_name"), "wrong_field_count": (), "bad_date": ("established_date",),
        "bad_timestamp": ("updated_at",), "bad_number": ("member_count", "land_area_mu"), "missing_key": ("coop_id",),
        "bad_uscc": ("uscc",), "bad_ric": ("legal_rep_ric",), "unknown_division": ("village_code",),
        "duplicate_row": (),
    },
    "coop_members": {
        "malformed_csv": ("member_name", "coop_id"), "wrong_field_count": (), "bad_date": ("joined_date",),
        "bad_timestamp": ("updated_at",), "bad_number": ("household_size", "land_area_mu"),
        "missing_key": ("coop_id", "member_ric"), "bad_ric": ("member_ric",), "unknown_coop": ("coop_id",),
        "duplicate_row": (),
    },
    "coop_sales": {
        "malformed_json": (), "bad_date": ("sale_date",), "bad_number": ("quantity_kg", "amount_cny"),
        "missing_key": ("sale_id",), "unknown_coop": ("coop_id",), "negative_amount": ("amount_cny",),
        "absurd_amount": ("amount_cny",), "absurd_weight": ("quantity_kg",), "duplicate_row": (), "late_row": (),
    },
    "postal_outlets": {
        "malformed_csv": ("name", "outlet_id"), "wrong_field_count": (), "bad_date": ("opened_date",),
        "bad_timestamp": ("updated_at",), "bad_number": ("latitude", "longitude"), "missing_key": ("outlet_id",),
        "unknown_division": ("division_code",), "duplicate_row": (),
    },
    "postal_shipment_events": {
        "malformed_json": (), "bad_timestamp": ("event_time",), "bad_number": ("weight_kg", "promised_hours"),
        "bad_boolean": ("cold_chain",), "missing_key": ("event_id",), "unknown_outlet": ("outlet_id",),
        "absurd_weight": ("weight_kg",), "duplicate_row": (), "out_of_order_event": (),
    },
    "postal_cold_chain_readings": {
        "malformed_csv": ("tracking_no", "sensor_id"), "wrong_field_count": (), "bad_timestamp": ("reading_time",),
        "bad_number": ("temperature_c",), "missing_key": ("tracking_no", "sensor_id"),
        "temperature_out_of_range": ("temperature_c",), "duplicate_row": (), "late_row": (),
    },
    "bank_loans": {
        "malformed_csv": ("loan_id", "product"), "wrong_field_count": (), "bad_date": ("disbursed_date",),
        "bad_timestamp": ("updated_at",), "bad_number": ("principal_cny", "annual_rate_pct"),
        "missing_key": ("loan_id",), "bad_uscc": ("borrower_uscc",), "bad_ric": ("borrower_ric",),
        "negative_amount": ("principal_cny",), "absurd_amount": ("principal_cny",), "duplicate_row": (),
    },
    "bank_repayments": {
        "malformed_csv": ("loan_id",), "wrong_field_count": (), "bad_date": ("due_date",),
        "bad_timestamp": ("recorded_at",), "bad_number": ("amount_due_cny",), "missing_key": ("loan_id",),
        "unknown_loan": ("loan_id",), "negative_amount": ("amount_due_cny", "amount_paid_cny"),
        "absurd_amount": ("amount_due_cny",), "duplicate_row": (),
    },
    "bank_subsidies": {
        "malformed_csv": ("subsidy_id", "machinery_type"), "wrong_field_count": (), "bad_date": ("granted_date",),
        "bad_number": ("amount_cny",), "missing_key": ("subsidy_id",), "bad_uscc": ("beneficiary_uscc",),
        "bad_ric": ("beneficiary_ric",), "negative_amount": ("amount_cny",), "absurd_amount": ("amount_cny",),
        "duplicate_row": (), "late_row": (),
    },
}
# Decided by the generators, because they move a row to a later delivery.
PRE_MARKED = {"late_row", "out_of_order_event"}
FILE_CLASSES = ("extra_column", "reordered_columns")  # CSV only
COPY_MODE = {"ref_divisions", "coop_cooperatives", "postal_outlets", "bank_loans"}
LARGE_FILE_ROWS = 4_000_000
MANIFEST_COLUMNS = ("feed", "file", "line", "defect", "expected_reason", "column")
EXTRA_COLUMN_NAMES = ("remark", "source_batch", "etl_flag", "备注")

# Every class the pipeline has a reason for is producible somewhere.
_ALL_ROW = {c for classes in ROW_CLASSES.values() for c in classes}
assert _ALL_ROW | set(FILE_CLASSES) | {"duplicate_file"} == set(DEFECT_REASONS), "defect classes out of sync"


def pre_mark_share(rate: float, feed: str) -> float:
    """Per-row probability a generator gives its own pre-marked class (rate split over the feed's classes)."""
    return rate / len(ROW_CLASSES[feed])


def expected_reason(defect: str) -> str:
    return DEFECT_REASONS[defect] or ""


@dataclass
class FilePlan:
    row_classes: list[str] = field(default_factory=list)
    file_class: str | None = None
    duplicate: str | None = None  # "same_folder" | "next_day"


def plan(files: list[tuple[str, int, str, int, str]], rate: float, last_day: int,
         rng: np.random.Generator) -> dict[tuple[str, int, str], FilePlan]:
    """Defects per file; files are (feed, day, part, rows, format) in writing order.

    With rate > 0 every class appears at least once: a row class the dice missed goes to the largest
    file that can carry it, a file class to a small one (pre-marked classes are guaranteed by their
    generators).
    """
    plans: dict[tuple[str, int, str], FilePlan] = {}
    for feed, day, part, rows, fmt in files:
        p = FilePlan()
        plans[(feed, day, part)] = p
        if rate <= 0 or rows == 0:
            continue
        classes = [c for c in ROW_CLASSES[feed] if c not in PRE_MARKED]
        share = len(classes) / len(ROW_CLASSES[feed])
        n = min(int(rng.binomial(rows, min(1.0, rate * share))), max(1, rows // 3))
        p.row_classes = [classes[i] for i in rng.integers(0, len(classes), n)]
        if fmt == "csv" and rng.random() < min(1.0, 2 * rate):
            p.file_class = FILE_CLASSES[int(rng.integers(0, len(FILE_CLASSES)))]
        if rng.random() < min(1.0, 2 * rate):
            p.duplicate = "next_day" if day < last_day and rng.random() < 0.5 else "same_folder"
    if rate <= 0 or not files:
        return plans
    seen = {c for p in plans.values() for c in p.row_classes}
    seen |= {p.file_class for p in plans.values() if p.file_class}
    if any(p.duplicate for p in plans.values()):
        seen.add("duplicate_file")
    by_size = sorted(files, key=lambda f: (-f[3], f[1], f[0], f[2]))
    for cls in sorted(set(DEFECT_REASONS) - seen - PRE_MARKED):
        # rows: the largest file surely has a row that fits; files: a small daily one will do
        candidates = by_size if cls in _ALL_ROW else [f for f in reversed(by_size) if f[3] >= 2]
        for feed, day, part, rows, fmt in candidates:
            p = plans[(feed, day, part)]
            if cls == "duplicate_file":
                p.duplicate = p.duplicate or "same_folder"
            elif cls in FILE_CLASSES:
                if fmt != "csv" or p.file_class:
                    continue
                p.file_class = cls
            elif cls in ROW_CLASSES[feed] and rows >= 2:
                p.row_classes.append(cls)
            else:
                continue
            break
    return plans


# --- the text of each defect -------------------------------------------------------------------

def _raw(cell: str, fmt: str) -> str:
    if fmt == "jsonl":
        return json.loads(cell) if cell.startswith('"') else cell
    if cell.startswith('"') and cell.endswith('"'):
        return cell[1:-1].replace('""', '"')
    return cell


def _encode(value: str | None, fmt: str, *, number: bool = False) -> str | None:
    if value is None:
        return None
    if fmt == "jsonl":
        return value if number else writer.json_string_one(value)
    return writer.csv_quote_one(value)


def _bad_date(raw: str, rng: np.random.Generator) -> str:
    y, m, d = raw[:4], raw[5:7], raw[8:10]
    return [f"{y}-02-30", f"{y}-13-{d}", f"{d}/{m}/{y}", f"{y}年{int(m)}月{int(d)}日"][int(rng.integers(4))]


def _bad_timestamp(raw: str, rng: np.random.Generator) -> str:
    y, mo, d, t = raw[:4], raw[5:7], raw[8:10], raw[11:19]
    return [f"{y}-{mo}-{d}T25{t[2:]}+08:00", f"{d}/{mo}/{y} {t}", f"{y}-{mo}-32T{t}+08:00",
            f"{y}年{int(mo)}月{int(d)}日 {t}"][int(rng.integers(4))]


def _bad_number(raw: str, rng: np.random.Generator) -> str:
    return [f"{raw}元", f"约{raw}", raw.replace("0", "O") if "0" in raw else f"{raw}O", f"{raw}.5.1"][
        int(rng.integers(4))]


def _unknown_id(column: str, raw: str, rng: np.random.Generator) -> str:
    if column in ("coop_id",):  # C + county + 5-digit sequence; sequences never reach 90000
        return f"C{raw[1:7]}9{int(rng.integers(0, 10_000)):04d}"
    if column == "outlet_id":  # PO + county + 4-digit sequence; sequences never reach 9000
        return f"PO{raw[2:8]}9{int(rng.integers(0, 1000)):03d}"
    if column == "loan_id":  # LN + 10 digits starting with 1
        return f"LN9{int(rng.integers(0, 10**9)):09d}"
    # division: village numbers never reach 900 under any township
    return f"{raw[:9]}9{int(rng.integers(0, 100)):02d}"


def corrupt_cell(defect: str, cell: str, col: Column, fmt: str, rng: np.random.Generator) -> str | None:
    raw = _raw(cell, fmt)
    if defect == "bad_date":
        return _encode(_bad_date(raw, rng), fmt)
    if defect == "bad_timestamp":
        return _encode(_bad_timestamp(raw, rng), fmt)
    if defect == "bad_number":
        return _encode(_bad_number(raw, rng), fmt)
    if defect == "missing_key":
        if fmt == "jsonl":
            return [None, "null", '""'][int(rng.integers(3))]
        return ""
    if defect == "bad_uscc":
        return _encode(bad_uscc(raw), fmt)
    if defect == "bad_ric":
        return _encode(bad_ric(raw), fmt)
    if defect.startswith("unknown_"):
        return _encode(_unknown_id(col.name, raw, rng), fmt)
    if defect == "negative_amount":
        value = raw if raw.strip("0.") else "5.00"
        return _encode(f"-{value}", fmt, number=True)
    if defect in ("absurd_amount", "absurd_weight"):
        return _encode(f"{col.max * rng.uniform(2.5, 40):.2f}", fmt, number=True)
    if defect == "temperature_out_of_range":
        value = [85.3, -55.0, 72.4, -48.6, 127.0, 61.5][int(rng.integers(6))]
        return _encode(f"{value:.1f}", fmt, number=True)
    if defect == "bad_boolean":
        return ['"maybe"', '"unknown"', '"2"'][int(rng.integers(3))] if fmt == "jsonl" else "maybe"
    if defect == "malformed_csv":
        suffix = ["x", "备注", "A1"][int(rng.integers(3))]
        return '"' + raw.replace('"', '""') + '"' + suffix
    raise ValueError(f"no cell form for {defect}")


def corrupt_record(defect: str, record: str, fmt: str, rng: np.random.Generator) -> str:
    if defect == "malformed_json":
        if rng.random() < 0.5:
            return record[: int(rng.integers(len(record) // 3, len(record) - 1))]
        return record[:-1] + ",}"
    if defect == "wrong_field_count":
        last = record.rsplit(",", 1)
        if rng.random() < 0.5 and len(last) == 2 and '"' not in last[1] and "\n" not in record:
            return last[0]
        return record + "," + ["", "x", "0"][int(rng.integers(3))]
    raise ValueError(f"no record form for {defect}")


# --- one file ----------------------------------------------------------------------------------

@dataclass
class Rendered:
    data: bytes
    records: int
    defects: list[tuple[int | None, str, str]]  # (line, defect, column)


def _pick(rng: np.random.Generator, probes: np.ndarray, free: np.ndarray, nonnull: np.ndarray | None,
          single_line: np.ndarray | None) -> int | None:
    """A random free row where the column has a value (and, for malformed_csv, on one line).

    Pre-drawn random rows are tried first (almost always enough); an exhaustive look is the fallback.
    """
    for r in probes.tolist():
        if free[r] and (nonnull is None or nonnull[r]) and (single_line is None or single_line[r]):
            return r
    ok = free.copy()
    if nonnull is not None:
        ok &= nonnull
    if single_line is not None:
        ok &= single_line
    every = np.flatnonzero(ok)
    return int(every[rng.integers(len(every))]) if len(every) else None


def render(feed: Feed, frame, cells: dict[str, pa.Array], fplan: FilePlan, fmt: str, rng: np.random.Generator,
           bom: bool) -> Rendered:
    """The bytes of one file, with its planned defects, and where each defect landed.

    `cells` is writer.format_cells of `frame`'s rows. Records are built for the clean rows in one
    join; copies (duplicates, corrupted copies) are taken from those records; the few records a
    defect changes are rebuilt from their cells.
    """
    n = len(frame)
    if n > LARGE_FILE_ROWS:  # 32-bit string offsets could overflow on a file this size
        cells = {k: v.cast(pa.large_string()) for k, v in cells.items()}
    types = {c.name: c.type for c in feed.columns}
    pre = frame["_defect"].to_numpy()
    pre_rows = np.flatnonzero(pd.notna(pre)) if n else np.array([], dtype=np.int64)
    free = np.ones(n, dtype=bool)
    free[pre_rows] = False
    nonnull_cache: dict[str, np.ndarray] = {}
    single_line = None

    copies: list[tuple[int, float]] = []  # (source row, sort key)
    edits: dict[int, tuple[int, str, str]] = {}  # extended row -> (source row, defect, column)
    copy_mode = feed.name in COPY_MODE
    probes = rng.integers(0, max(n, 1), (len(fplan.row_classes), 16))
    for k, defect in enumerate(fplan.row_classes):
        columns = ROW_CLASSES[feed.name][defect] or ("",)
        src = None
        for ci in rng.permutation(len(columns)):
            column = columns[ci]
            nonnull = None
            if column:
                if column not in nonnull_cache:
                    nonnull_cache[column] = pc.is_valid(cells[column]).to_numpy(zero_copy_only=False)
                nonnull = nonnull_cache[column]
            if defect == "malformed_csv" and single_line is None:
                single_line = np.ones(n, dtype=bool)
                for c in feed.columns:
                    if c.type in writer.TEXT_TYPES:
                        single_line &= ~pc.fill_null(pc.match_substring(cells[c.name], "\n"), False).to_numpy(
                            zero_copy_only=False)
            src = _pick(rng, probes[k], free, nonnull, single_line if defect == "malformed_csv" else None) if n else None
            if src is not None:
                break
        if src is None:
            continue
        free[src] = False
        if defect == "duplicate_row" or copy_mode:
            key = rng.uniform(src, n) + 0.5 if defect == "duplicate_row" else rng.uniform(0, n)
            target = n + len(copies)
            copies.append((src, key))
        else:
            target = src
        edits[target] = (src, defect, column)

    # File-level drift: column order and extra columns.
    names = feed.column_names
    file_defect = None
    extra_name = None
    if fmt == "csv" and fplan.file_class == "reordered_columns":
        perm = list(rng.permutation(len(names)))
        if perm == sorted(perm):
            perm = perm[1:] + perm[:1]
        names = [names[i] for i in perm]
        file_defect = "reordered_columns"
    elif fmt == "csv" and fplan.file_class == "extra_column":
        extra_name = EXTRA_COLUMN_NAMES[int(rng.integers(len(EXTRA_COLUMN_NAMES)))]
        values = np.array([None, None, None, "补录", "系统迁移", "核对"], dtype=object)[rng.integers(0, 6, n)]
        cells = {**cells, extra_name: pa.array(values, type=pa.string()).cast(cells[names[0]].type)}
        names = list(names)
        names.insert(int(rng.integers(1, len(names) + 1)), extra_name)
        file_defect = "extra_column"
        types = {**types, extra_name: "string"}

    ordered = [cells[c] for c in names]
    if fmt == "csv":
        records = writer.csv_records(ordered)
    else:
        records = writer.jsonl_records(names, [types[c] for c in names], ordered)

    # Rebuild the records a defect changes, from their cells.
    changed = sorted((t, s, d, c) for t, (s, d, c) in edits.items() if d != "duplicate_row")
    if changed:
        src_idx = pa.array([s for _, s, _, _ in changed])
        row_cells = {c: cells[c].take(src_idx).to_pylist() for c in names}
        new_records = []
        for k, (_, _, defect, column) in enumerate(changed):
            values = [row_cells[c][k] for c in names]
            if fmt == "jsonl":
                values = [writer.json_token(types[c], v) for c, v in zip(names, values, strict=True)]
            if column:
                i = names.index(column)
                values[i] = corrupt_cell(defect, values[i], feed.column(column), fmt, rng)
            if fmt == "csv":
                record = writer.csv_record(values)
            else:
                record = writer.json_record(names, values)
            if defect in ("wrong_field_count", "malformed_json"):
                eol = writer.CSV_EOL if fmt == "csv" else writer.JSON_EOL
                record = corrupt_record(defect, record[: -len(eol)], fmt, rng) + eol
            new_records.append(record)
    total = n + len(copies)
    if copies:
        records = pa.concat_arrays([records, records.take(pa.array([s for s, _ in copies]))])
    if changed:
        mask = np.zeros(total, dtype=bool)
        mask[[t for t, _, _, _ in changed]] = True
        records = pc.replace_with_mask(records, pa.array(mask), pa.array(new_records, type=records.type))
    position = np.arange(total)
    if copies:
        keys = np.concatenate([np.arange(n, dtype=np.float64), np.array([k for _, k in copies])])
        final = np.argsort(keys, kind="stable")  # final position -> extended row
        records = records.take(pa.array(final))
        position[final] = np.arange(total)

    marked = [(int(t), d, c) for t, (_, d, c) in edits.items()] + [(int(r), str(pre[r]), "") for r in pre_rows]
    lines = None
    if marked:
        lines = writer.record_lines(records, 2) if fmt == "csv" else np.arange(1, total + 1, dtype=np.int64)
    found: list[tuple[int | None, str, str]] = [(None, file_defect, "")] if file_defect else []
    found += [(int(lines[position[t]]), d, c) for t, d, c in marked]
    found.sort(key=lambda t: (t[0] or 0, t[1]))

    body = writer.text_bytes(records)
    if fmt == "csv":
        head = (writer.BOM if bom else b"") + (",".join(writer.csv_quote_one(c) for c in names) + writer.CSV_EOL).encode()
        data = head + bytes(body)
    else:
        data = bytes(body)
    return Rendered(data, total, found)
