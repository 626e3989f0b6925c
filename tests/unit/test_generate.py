"""The synthetic generator: formats exactly as SOURCES.md, valid ids and references except where the
defects manifest says otherwise, every defect class present and where the manifest says, and the
same bytes for the same arguments. No Spark: files are read back with `csv` and `json`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from agrilake.core.contracts import packaged
from agrilake.core.deliveries import MARKER_DIR
from agrilake.core.quarantine import DEFECT_REASONS
from agrilake.devdata.generate import generate, main
from agrilake.devdata.generate.common import Params

START = date(2026, 11, 1)
SMALL = Params(START, days=4, scale=0.2, seed=11, defect_rate=0.01)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
FILE_LEVEL = {"duplicate_file", "extra_column", "reordered_columns"}


# --- reading a landing back ----------------------------------------------------------------------

class Record:
    """One record of a landed file: its physical start line, and its values by column (or why not)."""

    def __init__(self, line: int, values: dict | None, error: str | None = None, raw=None):
        self.line, self.values, self.error, self.raw = line, values, error, raw


def read_file(path: Path, fmt: str) -> tuple[list[str] | None, list[Record]]:
    text = path.read_bytes().decode("utf-8")
    if fmt == "jsonl":
        out = []
        for i, line in enumerate(text.split("\n")[:-1], start=1):
            try:
                obj = json.loads(line)
                out.append(Record(i, obj if isinstance(obj, dict) else None, None if isinstance(obj, dict) else "notobj",
                                  line))
            except json.JSONDecodeError as exc:
                out.append(Record(i, None, f"json: {exc}", line))
        return None, out
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(reader)
    out, prev = [], reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.append(Record(prev + 1, None, f"csv: {exc}"))
            prev = reader.line_num
            continue
        if len(row) != len(header):
            out.append(Record(prev + 1, None, f"fields: {len(row)} != {len(header)}", row))
        else:
            out.append(Record(prev + 1, {k: (v if v != "" else None) for k, v in zip(header, row, strict=True)},
                              raw=row))
        prev = reader.line_num
    return header, out


class Landing:
    def __init__(self, root: Path):
        self.root = root
        self.manifest = list(csv.DictReader((root / "_manifest" / "defects.csv").open(encoding="utf-8", newline="")))
        self.flagged = {(m["file"], int(m["line"])): m for m in self.manifest if m["line"]}
        self.file_flags = defaultdict(set)
        for m in self.manifest:
            if not m["line"]:
                self.file_flags[m["file"]].add(m["defect"])
        self._cache: dict[str, list[tuple[str, str, list[str] | None, list[Record]]]] = {}

    def files(self, name: str) -> list[tuple[str, str, list[str] | None, list[Record]]]:
        """(relative path, delivery date, header, records) of every file of a feed, duplicates skipped."""
        if name not in self._cache:
            feed = packaged().feeds()[name]
            out = []
            for path in sorted((self.root / feed.system / feed.feed).glob("*/*")):
                rel = path.relative_to(self.root).as_posix()
                if "duplicate_file" in self.file_flags[rel]:
                    continue
                header, records = read_file(path, feed.format)
                out.append((rel, path.parent.name, header, records))
            self._cache[name] = out
        return self._cache[name]

    def rows(self, name: str, *, clean: bool = True):
        """(file, delivery date, record) of well-formed records; clean=True leaves out flagged ones."""
        for rel, day, _, records in self.files(name):
            for r in records:
                if r.values is None:
                    continue
                if clean and (rel, r.line) in self.flagged:
                    continue
                yield rel, day, r


def _landing_for(params: Params, root: Path) -> Landing:
    generate(params, root, log=lambda _: None)
    return Landing(root)


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Landing:
    return _landing_for(SMALL, tmp_path_factory.mktemp("landing"))


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _ric_ok(value) -> bool:
    try:
        return bool(value) and stdnum_ric.is_valid(value)
    except KeyError:
        return False


def _uscc_ok(value) -> bool:
    return bool(value) and value.startswith("93") and stdnum_uscc.is_valid(value)


def _defined(landing: Landing, feed: str, column: str) -> set[str]:
    return {r.values[column] for _, _, r in landing.rows(feed) if r.values.get(column)}


# --- layout and formats --------------------------------------------------------------------------

def test_layout_is_system_feed_delivery_date(landing):
    contracts = {(f.system, f.feed): f for f in packaged().feeds().values()}
    seen, marked = set(), set()
    for path in landing.root.rglob("*"):
        if path.is_dir():
            continue
        rel = path.relative_to(landing.root)
        if rel.parts[0] == "_manifest":
            assert rel.name in ("defects.csv", "run.json")
            continue
        if rel.parts[1] == MARKER_DIR:  # a daily system's day with nothing new: marked, with a reason
            system, _, day = rel.parts
            assert packaged().delivery_calendars()[system] == "daily" and path.read_text().strip()
            marked.add((system, date.fromisoformat(day)))
            continue
        system, feed, day, name = rel.parts
        contract = contracts[(system, feed)]
        assert name.endswith("." + contract.format)
        delivered = date.fromisoformat(day)
        assert START <= delivered < date(2026, 11, 1 + SMALL.days)
        seen.add(contract.name)
    assert seen == set(packaged().feeds())
    # every daily system delivers every day: files, or the nothing-to-deliver marker, never neither
    for system, calendar in packaged().delivery_calendars().items():
        if calendar != "daily":
            continue
        for i in range(SMALL.days):
            day = START + timedelta(days=i)
            has_files = any((landing.root / system).glob(f"*/{day}/*.*"))
            assert has_files != ((system, day) in marked), (system, day)
    # the first day carries every feed's initial load
    for f in packaged().feeds().values():
        assert list((landing.root / f.system / f.feed / START.isoformat()).glob("*")), f.name


def test_unflagged_rows_honour_the_contract(landing):
    """A row the manifest does not name is clean: right field count, typed values parse, ranges hold."""
    for name, feed in packaged().feeds().items():
        checked = 0
        for rel, _, header, records in landing.files(name):
            if header is not None and not landing.file_flags[rel] & {"extra_column", "reordered_columns"}:
                assert header == feed.column_names, rel
            for r in records:
                if (rel, r.line) in landing.flagged:
                    continue
                assert r.values is not None, (rel, r.line, r.error)
                for col in feed.columns:
                    v = r.values.get(col.name)
                    if v is None:
                        assert not (col.required or col.name in feed.key), (rel, r.line, col.name)
                        continue
                    if col.type == "date":
                        assert DATE_RE.match(v) and date.fromisoformat(v), (rel, r.line, col.name, v)
                    elif col.type == "timestamp":
                        assert TS_RE.match(v) and datetime.fromisoformat(v), (rel, r.line, col.name, v)
                    elif col.type in ("int", "double", "money"):
                        x = float(v)
                        if col.type == "money":
                            assert re.match(r"^-?\d+(\.\d{1,2})?$", str(v)), (rel, r.line, col.name, v)
                        assert col.min is None or x >= col.min, (rel, r.line, col.name, v)
                        assert col.max is None or x <= col.max, (rel, r.line, col.name, v)
                    elif col.type == "bool":
                        assert v in (True, False), (rel, r.line, col.name, v)
                    elif col.type == "list":
                        assert set(v.split("|")) <= set(col.allowed), (rel, r.line, col.name, v)
                    elif col.allowed:
                        assert v in col.allowed, (rel, r.line, col.name, v)
                checked += 1
        assert checked > 0, name


def test_timestamps_dates_and_amounts_are_formatted_as_sources_md(landing):
    rel, _, _, records = landing.files("coop_sales")[0]
    values = next(r.values for r in records if r.values and (rel, r.line) not in landing.flagged)
    assert DATE_RE.match(values["sale_date"])
    assert isinstance(values["amount_cny"], int | float)
    raw = (landing.root / rel).read_text(encoding="utf-8")
    assert re.search(r'"amount_cny":\d+\.\d{2}[,}]', raw)  # money keeps its cents: 12.50, not 12.5
    _, _, _, events = landing.files("postal_shipment_events")[0]
    assert all(TS_RE.match(r.values["event_time"]) for r in events[:50] if r.values and r.values.get("event_time")
               and (landing.files("postal_shipment_events")[0][0], r.line) not in landing.flagged)


# --- identifiers and references ------------------------------------------------------------------

@pytest.mark.parametrize("feed,column,check", [
    ("coop_cooperatives", "uscc", _uscc_ok),
    ("coop_cooperatives", "legal_rep_ric", _ric_ok),
    ("coop_members", "member_ric", _ric_ok),
    ("bank_loans", "borrower_uscc", _uscc_ok),
    ("bank_loans", "borrower_ric", _ric_ok),
    ("bank_subsidies", "beneficiary_uscc", _uscc_ok),
    ("bank_subsidies", "beneficiary_ric", _ric_ok),
])
def test_ids_are_valid_except_injected(landing, feed, column, check):
    values = [r.values[column] for _, _, r in landing.rows(feed) if r.values.get(column)]
    assert len(values) > 0
    bad = [v for v in values if not check(v)]
    assert bad == []
    flagged = [r.values[column] for rel, _, r in landing.rows(feed, clean=False)
               if landing.flagged.get((rel, r.line), {}).get("defect") in ("bad_ric", "bad_uscc")
               and landing.flagged[(rel, r.line)]["column"] == column]
    assert all(not check(v) for v in flagged)


def test_rics_carry_plausible_birth_dates(landing):
    ages = []
    for _, _, r in landing.rows("coop_members"):
        born = stdnum_ric.get_birth_date(r.values["member_ric"])
        ages.append((START - born).days / 365.25)
    assert 20 <= min(ages) and max(ages) <= 76.5
    assert 40 < sum(ages) / len(ages) < 65  # rural China is old


def test_borrower_columns_match_the_type(landing):
    for feed, kind, uscc, ric in (("bank_loans", "borrower_type", "borrower_uscc", "borrower_ric"),
                                  ("bank_subsidies", "beneficiary_type", "beneficiary_uscc", "beneficiary_ric")):
        for _, _, r in landing.rows(feed):
            v = r.values
            assert (v[uscc] is not None) != (v[ric] is not None)
            assert (v[kind] == "cooperative") == (v[uscc] is not None)


def test_references_resolve_except_injected(landing):
    divisions = _defined(landing, "ref_divisions", "division_code")
    coops = _defined(landing, "coop_cooperatives", "coop_id")
    outlets = _defined(landing, "postal_outlets", "outlet_id")
    loans = _defined(landing, "bank_loans", "loan_id")
    villages = {c for c in divisions if not c.endswith("000")}
    checks = [("coop_cooperatives", "village_code", villages), ("postal_outlets", "division_code", divisions),
              ("coop_members", "coop_id", coops), ("coop_sales", "coop_id", coops),
              ("postal_shipment_events", "outlet_id", outlets), ("bank_repayments", "loan_id", loans)]
    for feed, column, known in checks:
        values = [r.values[column] for _, _, r in landing.rows(feed)]
        assert values and all(v in known for v in values), (feed, column, set(values) - known)
    # sender cooperatives of parcels are cooperatives too
    senders = {r.values["sender_coop_id"] for _, _, r in landing.rows("postal_shipment_events")
               if r.values.get("sender_coop_id")}
    assert senders and senders <= coops
    # divisions chain up: village -> township -> county -> prefecture -> province
    parents = {r.values["division_code"]: r.values["parent_code"] for _, _, r in landing.rows("ref_divisions")}
    levels = {r.values["division_code"]: r.values["level"] for _, _, r in landing.rows("ref_divisions")}
    for code, parent in parents.items():
        if levels[code] == "province":
            assert parent is None and code.endswith("0000000000")
        else:
            assert parent in parents, code
        if levels[code] == "village":
            assert parent == code[:9] + "000" and not code.endswith("000")
        if levels[code] == "township":
            assert code.endswith("000") and not code.endswith("000000") and parent == code[:6] + "000000"
        if levels[code] == "county":
            assert code.endswith("000000") and parent == code[:4] + "00000000"


def test_parcels_follow_the_event_sequence(landing):
    order = {"accepted": 0, "dispatched": 1, "arrived": 2, "delivered": 3, "returned": 3}
    events = defaultdict(list)
    for _, _, r in landing.rows("postal_shipment_events"):
        events[r.values["tracking_no"]].append(r.values)
    complete = 0
    for evs in events.values():
        evs.sort(key=lambda v: v["event_time"])
        steps = [order[v["event_type"]] for v in evs]
        assert steps == sorted(steps)
        acc = [v for v in evs if v["event_type"] == "accepted"]
        for v in acc:
            assert v["promised_hours"] > 0 and v["weight_kg"] > 0 and v["direction"] in ("upstream", "downstream")
            assert (v.get("temp_min_c") is not None) == v["cold_chain"]
            if v["direction"] == "downstream":
                assert v.get("sender_coop_id") is None
        for v in evs:
            if v["event_type"] != "accepted":
                assert set(v) == {"event_id", "tracking_no", "event_type", "event_time", "outlet_id"}
        complete += steps == [0, 1, 2, 3]
    assert complete > 100


def test_history_makes_365_day_windows_meaningful(landing):
    sales_days = [date.fromisoformat(r.values["sale_date"]) for _, _, r in landing.rows("coop_sales")]
    assert min(sales_days) <= date(2025, 11, 5)
    disbursed = [date.fromisoformat(r.values["disbursed_date"]) for _, _, r in landing.rows("bank_loans")]
    assert min(disbursed) < date(2025, 3, 1)
    paid = [r.values for _, _, r in landing.rows("bank_repayments") if r.values["paid_date"]]
    assert any(date.fromisoformat(v["paid_date"]) < START for v in paid)
    late = [v for v in paid if (date.fromisoformat(v["paid_date"]) - date.fromisoformat(v["due_date"])).days > 90]
    assert late, "no installment paid more than 90 days late"
    partial = [v for v in paid if float(v["amount_paid_cny"]) < float(v["amount_due_cny"])]
    assert partial
    statuses = Counter(r.values["status"] for _, _, r in landing.rows("bank_loans"))
    assert statuses["active"] and statuses["settled"] and statuses["written_off"]
    established = [date.fromisoformat(r.values["established_date"]) for _, _, r in landing.rows("coop_cooperatives")]
    assert min(established).year <= 2012


def test_machinery_subsidies_follow_machinery_loans(landing):
    machinery_borrowers = {r.values["borrower_uscc"] or r.values["borrower_ric"]
                           for _, _, r in landing.rows("bank_loans") if r.values["product"] == "machinery_purchase"}
    grants = [r.values for _, _, r in landing.rows("bank_subsidies") if r.values["program"] == "machinery_purchase"]
    assert grants
    assert all((g["beneficiary_uscc"] or g["beneficiary_ric"]) in machinery_borrowers for g in grants)
    assert all(g["machinery_type"] for g in grants)


def test_coverage_gaps_and_closed_outlets_exist(landing):
    latest = {}
    for _, _, r in landing.rows("postal_outlets"):
        v = r.values
        if v["outlet_id"] not in latest or v["updated_at"] > latest[v["outlet_id"]]["updated_at"]:
            latest[v["outlet_id"]] = v
    villages = {r.values["division_code"] for _, _, r in landing.rows("ref_divisions") if r.values["level"] == "village"}
    with_parcel = {v["division_code"] for v in latest.values()
                   if v["level"] == "village" and "parcel" in (v["services"] or "") and not v["closed_date"]}
    assert 0 < len(with_parcel) < len(villages)
    assert any(v["closed_date"] for v in latest.values())
    assert {v["level"] for v in latest.values()} == {"county", "township", "village"}


# --- CSV edge cases --------------------------------------------------------------------------------

def test_csv_edge_cases_are_produced_and_round_trip(landing):
    names = [r.values["name"] for _, _, r in landing.rows("coop_cooperatives")]
    assert any('"' in n for n in names)
    assert any("," in n for n in names)
    assert any("\n" in n for n in names)
    assert all(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    boms = {p.read_bytes().startswith("\ufeff".encode()) for p in landing.root.rglob("*.csv") if "_manifest" not in p.parts}
    assert boms == {True, False}
    # RFC 4180 round trip: files without defects re-serialise byte for byte with the csv module
    checked = 0
    for name, feed in packaged().feeds().items():
        if feed.format != "csv":
            continue
        for rel, _, _, _ in landing.files(name):
            if any(f == rel for f, _ in landing.flagged) or landing.file_flags[rel]:
                continue
            raw = (landing.root / rel).read_bytes().decode("utf-8").removeprefix("\ufeff")
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\r\n").writerows(csv.reader(io.StringIO(raw, newline=""), strict=True))
            assert buf.getvalue() == raw, rel
            checked += 1
    assert checked >= 3


def test_multiline_records_are_counted_as_physical_lines(landing):
    """A record after a quoted line break starts further down than its record index suggests."""
    for _, _, _, records in landing.files("coop_cooperatives"):
        lines = [r.line for r in records]
        if lines and lines[-1] > len(records) + 1:
            return
    pytest.fail("no cooperatives file holds a name with a line break")


# --- defects ---------------------------------------------------------------------------------------

def test_manifest_is_outside_the_feed_folders_and_well_formed(landing):
    assert (landing.root / "_manifest" / "defects.csv").is_file()
    header = (landing.root / "_manifest" / "defects.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "feed,file,line,defect,expected_reason,column"
    for m in landing.manifest:
        assert m["feed"] in packaged().feeds()
        assert (landing.root / m["file"]).is_file()
        assert m["expected_reason"] == (DEFECT_REASONS[m["defect"]] or "")
        assert (m["line"] == "") == (m["defect"] in FILE_LEVEL)


def _defect_holds(landing: Landing, m: dict, record: Record | None, header, known: dict) -> bool:
    feed = packaged().feeds()[m["feed"]]
    d, col = m["defect"], m["column"]
    if d == "malformed_csv":
        return record is not None and record.error is not None and record.error.startswith("csv")
    if d == "wrong_field_count":
        return record is not None and record.error is not None and record.error.startswith("fields")
    if d == "malformed_json":
        return record is not None and record.error is not None and record.error.startswith("json")
    if record is None or record.values is None:
        return False
    v = record.values.get(col) if col else None
    if d == "bad_date":
        return v is not None and not (isinstance(v, str) and DATE_RE.match(v) and _parses(date.fromisoformat, v))
    if d == "bad_timestamp":
        return v is not None and not (isinstance(v, str) and TS_RE.match(v) and _parses(datetime.fromisoformat, v))
    if d == "bad_number":
        return v is not None and not _parses(float, v)
    if d == "bad_boolean":
        return v is not None and v not in (True, False, "true", "false")
    if d == "missing_key":
        return col in feed.key and v in (None, "")
    if d == "bad_uscc":
        return v is not None and not _uscc_ok(v)
    if d == "bad_ric":
        return v is not None and not _ric_ok(v)
    if d.startswith("unknown_"):
        return v is not None and v not in known[d] and (d != "unknown_division" or re.match(r"^\d{12}$", v))
    if d == "negative_amount":
        return float(v) < feed.column(col).min
    if d in ("absurd_amount", "absurd_weight"):
        return float(v) > feed.column(col).max
    if d == "temperature_out_of_range":
        return not -40 <= float(v) <= 60
    if d == "duplicate_row":
        return known["first_line"].get(json.dumps(record.values, sort_keys=True), record.line) < record.line
    if d == "late_row":
        business = next(record.values[c] for c in ("sale_date", "reading_time", "granted_date") if c in record.values)
        return business[:10] < m["file"].split("/")[2]
    if d == "out_of_order_event":
        v = record.values
        later = [x for x in known["events"][v["tracking_no"]] if x[0] > v["event_time"]]
        return any(day < m["file"].split("/")[2] for _, day in later)
    raise AssertionError(f"unchecked defect {d}")


def _parses(fn, value) -> bool:
    try:
        fn(value)
        return True
    except (TypeError, ValueError):
        return False


def test_manifest_lines_point_at_rows_defective_in_the_stated_way(landing):
    known = {
        "unknown_division": _defined(landing, "ref_divisions", "division_code"),
        "unknown_coop": _defined(landing, "coop_cooperatives", "coop_id"),
        "unknown_outlet": _defined(landing, "postal_outlets", "outlet_id"),
        "unknown_loan": _defined(landing, "bank_loans", "loan_id"),
        "events": defaultdict(list),
    }
    for _, day, r in landing.rows("postal_shipment_events"):
        known["events"][r.values["tracking_no"]].append((r.values["event_time"], day))
    by_file = defaultdict(list)
    for m in landing.manifest:
        by_file[m["file"]].append(m)
    hashes = _hashes(landing.root)
    seen = Counter()
    for rel, ms in by_file.items():
        feed = packaged().feeds()[ms[0]["feed"]]
        header, records = read_file(landing.root / rel, feed.format)
        at = {r.line: r for r in records}
        known["first_line"] = {}
        for r in records:
            if r.values is not None:
                known["first_line"].setdefault(json.dumps(r.values, sort_keys=True), r.line)
        for m in ms:
            seen[m["defect"]] += 1
            if m["defect"] == "duplicate_file":
                twins = [p for p, h in hashes.items() if h == hashes[rel] and p != rel]
                assert twins, rel
                continue
            if m["defect"] == "extra_column":
                assert set(header) - set(feed.column_names) and set(feed.column_names) <= set(header)
                continue
            if m["defect"] == "reordered_columns":
                assert sorted(header) == sorted(feed.column_names) and header != feed.column_names
                continue
            record = at.get(int(m["line"]))
            assert _defect_holds(landing, m, record, header, known), (m, record and (record.error, record.values))
    assert sum(seen.values()) > 50


def test_defective_rows_are_defective_in_one_way_only(landing):
    """A flagged unknown reference, bad id or out-of-range value is otherwise a clean row."""
    for name, feed in packaged().feeds().items():
        for rel, _, r in landing.rows(name, clean=False):
            m = landing.flagged.get((rel, r.line))
            if not m or m["defect"] in ("duplicate_row", "late_row", "out_of_order_event", "missing_key"):
                continue
            for col in feed.columns:
                v = r.values.get(col.name)
                if col.name == m["column"] or v is None:
                    continue
                if col.type == "date":
                    assert DATE_RE.match(v), (m, col.name, v)
                elif col.type == "timestamp":
                    assert TS_RE.match(v), (m, col.name, v)
                elif col.type in ("double", "money", "int"):
                    assert _parses(float, v) and (col.min is None or float(v) >= col.min), (m, col.name, v)
                    assert col.max is None or float(v) <= col.max, (m, col.name, v)


def test_determinism_same_arguments_same_bytes(landing, tmp_path):
    again = _landing_for(SMALL, tmp_path / "again")
    assert _hashes(again.root) == _hashes(landing.root)


def test_another_seed_gives_other_data(tmp_path):
    a = _landing_for(Params(START, days=1, scale=0.2, seed=1), tmp_path / "a")
    b = _landing_for(Params(START, days=1, scale=0.2, seed=2), tmp_path / "b")
    assert _hashes(a.root) != _hashes(b.root)


def test_every_defect_class_appears_at_scale_1(tmp_path):
    big = _landing_for(Params(START, days=5, scale=1.0, seed=3, defect_rate=0.01), tmp_path / "scale1")
    classes = Counter(m["defect"] for m in big.manifest)
    assert set(classes) == set(DEFECT_REASONS), set(DEFECT_REASONS) - set(classes)
    rows = sum(len(records) for f in packaged().feeds() for _, _, _, records in big.files(f))
    row_defects = sum(v for k, v in classes.items() if k not in FILE_LEVEL)
    assert 0.005 < row_defects / rows < 0.02  # about the requested rate


def test_zero_defect_rate_is_clean(tmp_path):
    clean = _landing_for(Params(START, days=2, scale=0.2, seed=5, defect_rate=0.0), tmp_path / "clean")
    assert clean.manifest == []


# --- the command -----------------------------------------------------------------------------------

def test_cli_writes_and_summarises(tmp_path, capsys):
    rc = main(["--start", "2026-11-01", "--days", "2", "--scale", "0.2", "--seed", "4", "--landing", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "2026-11-02 " in out
    summary = out.strip().splitlines()[-1]
    assert re.match(r"^summary rows=\d+ .*rows_per_s=\d+", summary)
    # a second run replaces its own earlier output
    assert main(["--start", "2026-11-01", "--days", "1", "--scale", "0.2", "--seed", "4", "--landing",
                 str(tmp_path)]) == 0
    assert not (tmp_path / "postal" / "shipment_events" / "2026-11-02").exists()


def test_cli_refuses_a_landing_it_did_not_write(tmp_path, capsys):
    foreign = tmp_path / "coop" / "sales" / "2026-01-01"
    foreign.mkdir(parents=True)
    (foreign / "real.jsonl").write_text("{}\n")
    rc = main(["--start", "2026-11-01", "--days", "1", "--scale", "0.2", "--landing", str(tmp_path)])
    assert rc == 2
    assert (foreign / "real.jsonl").exists()
    assert "did not write" in capsys.readouterr().err


def test_very_large_files_take_the_64_bit_path_with_the_same_bytes(tmp_path, monkeypatch):
    from agrilake.devdata.generate import defects

    params = Params(START, days=1, scale=0.2, seed=6)
    normal = _landing_for(params, tmp_path / "normal")
    monkeypatch.setattr(defects, "LARGE_FILE_ROWS", 0)
    large = _landing_for(params, tmp_path / "large")
    assert _hashes(large.root) == _hashes(normal.root)
