"""USCC and RIC validity as Spark SQL expressions: python-stdnum's rules, without a Python worker per row.

The rules are python-stdnum's own (`stdnum.cn.uscc`, `stdnum.cn.ric`), and so are their data: its
Unicode-to-ASCII character map and its table of county codes with the years each was in use
(`stdnum/cn/loc.dat`, read here through `stdnum.numdb` once per process). tests/unit/
test_identifiers.py holds both implementations to the same verdict on the generator's identifiers
and on hand-made invalid ones.

Known difference: stdnum accepts a RIC whose 17th character is a line feed (its `int()` strips it);
these expressions reject it.
"""

from __future__ import annotations

from functools import cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# ISO 7064 MOD 11-2: 2^(17-i) mod 11 for the 17 digits (stdnum computes the same as int(n, 13)).
RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# str.strip() strips Unicode whitespace and the separators U+001C..U+001F.
_STRIP = r"(?U)^[\s\x1c-\x1f]+|[\s\x1c-\x1f]+$"
REGIONS_SCHEMA = "code string, ranges array<struct<start:int,end:int>>"


@cache
def _char_map() -> tuple[str, str]:
    from stdnum import util

    mapping = util._char_map  # stdnum's Unicode -> ASCII table that its clean() applies
    return "".join(mapping), "".join(mapping.values())


def _compact(col: Column, delete: str = "") -> Column:
    """stdnum's `clean(number, delete).upper().strip()`."""
    src, dst = _char_map()
    out = F.translate(col, src, dst)
    if delete:
        out = F.translate(out, delete, "")
    return F.regexp_replace(F.upper(out), _STRIP, "")


def _digit(n: Column, pos: int) -> Column:
    return F.substring(n, pos, 1).cast("int")


def uscc_valid(col: Column) -> Column:
    """stdnum.cn.uscc.is_valid: 18 characters, 8 digits, then the alphabet, and the mod-31 check character."""
    n = _compact(col, " -")
    total = sum((F.instr(F.lit(USCC_ALPHABET), F.substring(n, i + 1, 1)) - 1) * w for i, w in enumerate(USCC_WEIGHTS))
    check = F.substring(F.lit(USCC_ALPHABET), F.pmod(F.lit(31) - total, F.lit(31)) + 1, 1)
    return F.coalesce((F.length(n) == 18)
                      & F.substring(n, 1, 8).rlike("^[0-9]{8}$")
                      & F.substring(n, 9, 10).rlike(f"^[{USCC_ALPHABET}]{{10}}$")
                      & (F.substring(n, 18, 1) == check), F.lit(False))


@cache
def region_rows() -> tuple[tuple[str, tuple[tuple[int | None, int | None], ...]], ...]:
    """(county code, the year ranges it was assigned in) for every code stdnum knows, as it reads them."""
    from stdnum import numdb

    db = numdb.get("cn/loc")
    codes = set()
    province = None
    for line in db_lines():
        code = line.split()[0]
        if not line.startswith(" "):
            province = code
        elif province and "county=" in line:
            codes.add(province + code)
    rows = []
    for code in sorted(codes):
        info = {k: v for _, props in db.info(code) for k, v in props.items()}
        if "county" not in info:
            continue
        ranges = []
        for county in info["county"].split(","):
            if not county.startswith("["):
                ranges.append((None, None))
                continue
            start, end = county[1:].split("]")[0].split("-")
            ranges.append((int(start) if start else None, int(end) if end else None))
        rows.append((code, tuple(ranges)))
    return tuple(rows)


def db_lines() -> list[str]:
    from importlib import resources

    text = resources.files("stdnum").joinpath("cn", "loc.dat").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def regions(spark) -> DataFrame:
    """The county-code table as a small DataFrame (broadcast in the join)."""
    return spark.createDataFrame([(c, [{"start": s, "end": e} for s, e in r]) for c, r in region_rows()],
                                 REGIONS_SCHEMA)


def with_ric_regions(df: DataFrame, columns: list[str]) -> DataFrame:
    """Adds `__ric_ranges_<col>`: the years the RIC's county code was in use (null: unknown code)."""
    if not columns:
        return df
    table = F.broadcast(regions(df.sparkSession))
    for name in columns:
        code = F.substring(_compact(F.trim(F.col(name))), 1, 6)
        lookup = table.select(F.col("code").alias(f"__ric_code_{name}"), F.col("ranges").alias(f"__ric_ranges_{name}"))
        df = df.join(lookup, code == F.col(f"__ric_code_{name}"), "left").drop(f"__ric_code_{name}")
    return df


def ric_valid(col: Column, ranges: Column) -> Column:
    """stdnum.cn.ric.is_valid: 17 digits and the MOD 11-2 check character, a real birth date, and a county
    code in use in the birth year (`ranges` from with_ric_regions)."""
    n = _compact(col)
    total = sum(_digit(n, i + 1) * w for i, w in enumerate(RIC_WEIGHTS))
    remainder = F.pmod(F.lit(12) - F.pmod(total, F.lit(11)), F.lit(11))
    check = F.when(remainder == 10, F.lit("X")).otherwise(remainder.cast("string"))
    year, month, day = (F.substring(n, pos, size).cast("int") for pos, size in ((7, 4), (11, 2), (13, 2)))
    # datetime.date(year, month, day) exists; built from parts, so no date parser policy can interfere.
    days_in_month = F.dayofmonth(F.last_day(F.make_date(year, month, F.lit(1))))
    born = F.when((year >= 1) & month.between(1, 12), (day >= 1) & (day <= days_in_month))
    in_use = F.exists(ranges, lambda r: (r["start"].isNull() | (year >= r["start"]))
                      & (r["end"].isNull() | (year <= r["end"])))
    return F.coalesce((F.length(n) == 18)
                      & F.substring(n, 1, 17).rlike("^[0-9]{17}$")
                      & (F.substring(n, 18, 1) == check)
                      & born & in_use, F.lit(False))
