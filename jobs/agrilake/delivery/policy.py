"""What each platform may receive: its datasets, the privacy guard, and the small cells of gov datasets.

Pure Arrow (no Spark, no S3): the export stage hands each dataset here as an Arrow table, after
reading gold, and uploads only what comes back.

Privacy guard (refuses the whole dataset, naming the columns; never prints the offending values):
- a platform gets only its own datasets; gov never gets a column identifying one person or one
  cooperative (`person_key`, `coop_id`, `coop_ids`, `uscc`, `coop_name`);
- no column a contract flags `pii` (`member_name`, `legal_rep_ric`, `phone`, ...), and no column
  whose name looks personal (`*name*`, `*ric*`, `*phone*`, `*mobile*`, `*tel*`, `*address*`,
  `*id_card*`, `*email*`, `*contact*`) unless allow-listed for that dataset: `coop_name` and
  `county_name` (coop profile), `county_name` (county summary), `name` (division names);
- in every string, array-of-string and integer column, anywhere in a value (but not glued to Latin
  letters or digits, as inside a hex digest): no clear RIC (18 characters, a plausible birth date,
  a valid GB 11643 check character) and no mainland mobile number (1[3-9] and 9 digits, optionally
  +86). In a `uscc`/`*_uscc` column a valid USCC is exempt: an all-digit one can look like either;
- in every string column not allow-listed: no value of 2-4 CJK characters (or CJK around a middle
  dot), since that is what a person's name looks like. Division and cooperative names look the
  same, which is why they pass only through the allow-list;
- nested types other than arrays of strings are refused: the guard cannot look inside them.

Small cells (gov, docs/metrics.md): a figure that describes fewer than K parties, but at least one, is
exported as null (K = AGRILAKE_GOV_MIN_CELL, 3; 1 disables). Each dataset declares, per group of
figures, whose figures they are (`SMALL_CELLS`): a count column of the row itself (`InRow`), or
the parties counted in another gold table of the same publication and date (`InGold`). The manifest
counts the suppressed cells per column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agrilake.delivery import ExportError

PLATFORMS: dict[str, tuple[str, ...]] = {
    "bank": ("coop_credit_profile", "household_credit_profile"),
    "gov": ("logistics_division_daily", "credit_county_summary"),
}

# -- privacy rules ---------------------------------------------------------------------------
NAME_ALLOWED = {
    "coop_credit_profile": {"coop_name", "county_name"},
    "credit_county_summary": {"county_name"},
    "logistics_division_daily": {"name"},
}
GOV_FORBIDDEN = ("person_key", "coop_id", "coop_ids", "uscc", "coop_name")
PERSONAL_COLUMN = re.compile(
    r"(^|_)(name|names|ric|idcard|id_card|id_no|idno|phone|mobile|tel|telephone|contact|address|addr|email)(_|$)"
)
# Unanchored, so a RIC or phone inside a text is found too ("电话13812345678"). The ends must not
# touch a Latin letter or digit: longer digit runs (village codes) and hex digests (person_key, an
# HMAC-SHA256 in hex: one in ~300 holds an 11-digit run starting 1[3-9]) are not phone numbers.
# RE2 (Arrow, vectorised) finds the candidate rows; Python then checks only those.
_EDGE_L, _EDGE_R = r"(?:^|[^0-9A-Za-z])", r"(?:$|[^0-9A-Za-z])"
_BIRTH = r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
RIC_RE2 = rf"{_EDGE_L}[1-9][0-9]{{5}}{_BIRTH}[0-9]{{3}}[0-9Xx]{_EDGE_R}"
RIC_PY = re.compile(rf"(?<![0-9A-Za-z])[1-9][0-9]{{5}}{_BIRTH}[0-9]{{3}}[0-9Xx](?![0-9A-Za-z])")
PHONE_RE2 = rf"{_EDGE_L}(?:\+?86[- ]?)?1[3-9][0-9]{{9}}{_EDGE_R}"
_CJK = r"[\x{4e00}-\x{9fff}]"
PERSON_NAME_RE2 = rf"^(?:{_CJK}{{2,4}}|{_CJK}{{1,8}}[\x{{00b7}}\x{{2022}}]{_CJK}{{1,8}})$"
# Loan-derived columns nulled in gov rows that aggregate too few cooperatives (count column first).


class PrivacyViolation(ExportError):
    """The privacy guard refused a dataset; the message names the columns (never their values)."""


def contract_pii_columns(contracts=None) -> set[str]:
    """Every column a source or silver contract marks as personal data (shipped contracts by default)."""
    from agrilake.core.contracts import packaged

    contracts = contracts or packaged()
    cols = [c for f in contracts.feeds().values() for c in f.columns]
    cols += [c for t in contracts.silver_tables().values() for c in t.columns]
    return {c.name for c in cols if c.pii}


def is_clear_ric(text: str) -> bool:
    """Does `text` contain an 18-character RIC with a plausible birth date and a valid GB 11643 check?

    Deliberately not `stdnum.cn.ric.is_valid`: it also rejects unknown or younger county codes, and a
    real RIC with such a code is still a RIC."""
    from stdnum.cn import ric

    return any(ric.calc_check_digit(m.group()) == m.group()[-1].upper() for m in RIC_PY.finditer(text))


def is_uscc(text: str) -> bool:
    """A cooperative's USCC (GB 32100) is public, and an all-digit one can pass the RIC and phone patterns."""
    from stdnum.cn import uscc

    return len(text) == 18 and uscc.is_valid(text)


def _count(values, pattern: str, confirm=None, *, uscc_column: bool = False) -> int:
    """Values matching `pattern` (vectorised), confirmed one by one in Python where `confirm` is given."""
    import pyarrow.compute as pc

    hits = pc.match_substring_regex(values, pattern)
    if confirm is None:
        return int(pc.sum(hits).as_py() or 0)
    candidates = values.filter(pc.fill_null(hits, False)).to_pylist()
    # One RIC in 31 is also a valid USCC: the exemption holds only where USCCs belong.
    return sum(1 for v in candidates if not (uscc_column and is_uscc(v)) and confirm(v))


def find_violations(table, *, platform: str, dataset: str) -> list[str]:
    """Every reason the guard refuses an Arrow `table` for `platform`; empty when it is clean."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if dataset not in PLATFORMS.get(platform, ()):
        return [f"dataset {dataset!r} is not one the {platform} platform gets (docs/metrics.md Exports: "
                f"{', '.join(PLATFORMS.get(platform, ())) or 'unknown platform'})"]
    problems: list[str] = []
    if platform == "gov":
        problems += [f"column {c!r} identifies one person or cooperative, which gov never gets"
                     for c in table.column_names if c in GOV_FORBIDDEN]
    pii = contract_pii_columns()
    allowed = NAME_ALLOWED.get(dataset, set())
    for c in table.column_names:
        if c in pii:
            problems.append(f"column {c!r} is flagged pii in the contracts")
        elif c not in allowed and PERSONAL_COLUMN.search(c.lower()):
            problems.append(f"column {c!r} has a personal-data name (name/RIC/phone/address) and is not "
                            f"allow-listed for {dataset}")

    for f in table.schema:
        values, dtype = table.column(f.name), f.type
        if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
            values = pc.list_flatten(values)
        elif pa.types.is_integer(dtype):
            values = values.cast(pa.string())
        elif pa.types.is_large_string(dtype):
            values = values.cast(pa.string())
        elif pa.types.is_nested(dtype) or pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
            problems.append(f"column {f.name!r} has type {dtype}, which the guard cannot check")
            continue
        elif not pa.types.is_string(dtype):
            continue  # dates, decimals, floats, booleans cannot hold a RIC, phone or name
        uscc_column = f.name == "uscc" or f.name.endswith("_uscc")
        rules = [("a clear RIC (resident identity card number)",
                  _count(values, RIC_RE2, is_clear_ric, uscc_column=uscc_column)),
                 ("a mainland mobile phone number", _count(values, PHONE_RE2, bool, uscc_column=uscc_column))]
        if f.name not in allowed and not pa.types.is_integer(dtype):
            rules.append(("a person's name (2-4 CJK characters)", _count(values, PERSON_NAME_RE2)))
        problems += [f"column {f.name!r} has {n} value(s) that look like {rule}" for rule, n in rules if n]
    return problems


def guard(table, *, platform: str, dataset: str) -> None:
    """Refuse (PrivacyViolation) a dataset that could put personal data on `platform`."""
    problems = find_violations(table, platform=platform, dataset=dataset)
    if problems:
        raise PrivacyViolation(f"refusing to export {dataset} to {platform}: " + "; ".join(problems))



# -- small cells -----------------------------------------------------------------------------
@dataclass(frozen=True)
class InRow:
    """The parties a figure describes, counted by a column of the row itself."""

    column: str

    def describe(self, min_cell: int) -> str:
        return f"`{self.column}` is 1..{min_cell - 1}"


@dataclass(frozen=True)
class InGold:
    """The parties a figure describes, counted in another gold table read from the same publication
    and date: its rows that share the row's `on` columns and meet `where` (Spark SQL). The export
    computes the count into `column`, a helper that is never exported (gold tables keep no such
    column: they are checked cell by cell against docs/metrics.md)."""

    column: str
    table: str
    on: tuple[str, ...]
    where: str
    parties: str  # what is counted, in words

    def describe(self, min_cell: int) -> str:
        return f"the {self.parties} (gold.{self.table} where {self.where}) number 1..{min_cell - 1}"


@dataclass(frozen=True)
class SmallCells:
    """`figures` of a row describe the parties counted by each of `parties`; they are exported as null
    when any of those counts is 1..K-1 (none at all describes nobody, and is kept)."""

    figures: tuple[str, ...]
    parties: tuple[InRow | InGold, ...]

    def describe(self, min_cell: int) -> str:
        return ", ".join(self.figures) + " when " + " or ".join(p.describe(min_cell) for p in self.parties)


# docs/metrics.md, Exports. A gov dataset without an entry has no small cells (its figures describe
# outlets, parcels or divisions, not parties).
SMALL_CELLS: dict[str, tuple[SmallCells, ...]] = {
    "credit_county_summary": (
        SmallCells(("coops_tier_a", "coops_tier_b", "coops_tier_c", "coops_tier_d"), (InRow("coops"),)),
        SmallCells(("principal_active_cny", "arrears_cny"), (InGold(
            "_coops_with_principal_or_arrears", "coop_credit_profile", ("county_code",),
            "principal_active_cny > 0 OR arrears_cny > 0", "cooperatives with principal or arrears"),)),
        SmallCells(("mean_on_time_rate_12m",), (InGold(
            "_coops_with_on_time_rate", "coop_credit_profile", ("county_code",),
            "on_time_rate_12m IS NOT NULL", "cooperatives with an on-time rate"),)),
    ),
}


def small_cell_rules(platform: str, dataset: str, min_cell: int) -> tuple[SmallCells, ...]:
    """The rules that apply to `dataset` on `platform`: none for the bank, or with K <= 1."""
    if platform != "gov" or min_cell <= 1:
        return ()
    return SMALL_CELLS.get(dataset, ())


def counted_in_gold(rules: tuple[SmallCells, ...]) -> list[InGold]:
    return [p for r in rules for p in r.parties if isinstance(p, InGold)]


def describe_small_cells(dataset: str, min_cell: int) -> str | None:
    """One sentence for readers (data contract, data dictionary); None when the dataset has no rules."""
    rules = small_cell_rules("gov", dataset, min_cell)
    if not rules:
        return None
    return (f"A figure describing 1..{min_cell - 1} parties is exported as null (K = {min_cell}): "
            + "; ".join(r.describe(min_cell) for r in rules)
            + ". The manifest's disclosure_control counts the suppressed cells per column.")


def attach_counts(table, counts, party: InGold):
    """`table` with the column `party.column`: for each row, the count `counts` (columns `party.on`
    and `party.column`, one row per `on` value) has for its `on` values, else 0. Row order kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    on, row = list(party.on), "__row__"
    keyed = table.select(on).append_column(row, pa.array(range(table.num_rows), pa.int64()))
    joined = keyed.join(counts.select([*on, party.column]), keys=on, join_type="left outer").sort_by(row)
    if joined.num_rows != table.num_rows:
        raise ExportError(f"the counts of the {party.parties} are not one row per {', '.join(on)}")
    return table.append_column(party.column, pc.fill_null(joined.column(party.column).cast(pa.int64()), 0))


def suppress_small_cells(table, rules: tuple[SmallCells, ...], *, min_cell: int):
    """Null each rule's figures in the rows where one of its party counts is 1..min_cell-1, and drop the
    helper count columns (`InGold`). Returns (table, the manifest's disclosure_control, or None when no
    rule applies)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not rules:
        return table, None
    needed = [c for r in rules for c in (*r.figures, *(p.column for p in r.parties))]
    missing = sorted({c for c in needed if c not in table.column_names})
    if missing:  # a rule that names no column would export the figures it is there to protect
        raise ExportError(f"the small-cell rules need column(s) {missing}, which the table lacks")
    masks: dict[str, object] = {}
    described = []
    for rule in rules:
        small = None
        for party in rule.parties:
            n = table.column(party.column)
            hit = pc.fill_null(pc.and_(pc.greater_equal(n, 1), pc.less(n, min_cell)), False)
            small = hit if small is None else pc.or_(small, hit)
        described.append({"figures": list(rule.figures), "null_when": rule.describe(min_cell),
                          "rows": int(pc.sum(small).as_py() or 0)})
        for c in rule.figures:
            masks[c] = small if c not in masks else pc.or_(masks[c], small)
    cells, any_row = {}, None
    for c, mask in masks.items():
        i = table.column_names.index(c)
        values = table.column(i)
        cells[c] = int(pc.sum(pc.and_(mask, pc.is_valid(values))).as_py() or 0)  # values withheld
        table = table.set_column(i, table.field(i), pc.if_else(mask, pa.scalar(None, table.field(i).type), values))
        any_row = mask if any_row is None else pc.or_(any_row, mask)
    table = table.drop_columns([p.column for p in counted_in_gold(rules)])
    return table, {"min_cell": min_cell, "rules": described, "cells_suppressed": cells,
                   "rows_suppressed": int(pc.sum(any_row).as_py() or 0)}
