"""USCC and RIC checks as Spark SQL expressions give python-stdnum's verdict, value for value.

On every identifier the synthetic generator makes (valid ones, and the bad ones its defects inject)
and on hand-made invalid ones: wrong check characters, impossible birth dates, unknown county codes,
county codes not yet (or no longer) in use in the birth year, separators, case, Unicode look-alikes.
"""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F
from stdnum.cn import ric, uscc

from agrilake.devdata.generate import build_feeds
from agrilake.devdata.generate.common import Params
from agrilake.devdata.generate.ids import bad_ric, bad_uscc
from agrilake.stages.silver.identifiers import ric_valid, uscc_valid, with_ric_regions


def stdnum_ric(value: str) -> bool:
    try:
        return bool(ric.is_valid(value))
    except KeyError:  # stdnum raises on some county codes it half-knows: not a valid RIC
        return False


def _with_ric_check(ric_value: str, valid_body: str) -> str:
    """`valid_body` (17 digits) with the correct MOD 11-2 check character."""
    return valid_body + ric.calc_check_digit(valid_body + "0")


@pytest.fixture(scope="module")
def generated() -> tuple[list[str], list[str]]:
    """Every USCC and RIC the generator writes for a small world, defects included."""
    feeds = build_feeds(Params(date(2026, 10, 1), 2, 0.05, 5, defect_rate=0.05), log=lambda *_: None)
    usccs, rics = set(), set()
    for fd in feeds:
        for col in fd.frame.columns:
            values = {str(v) for v in fd.frame[col].dropna().unique()}
            if col.endswith("uscc"):
                usccs |= values
            elif col.endswith("ric"):
                rics |= values
    return sorted(usccs), sorted(rics)


def hand_made_rics(valid: list[str]) -> list[str]:
    base = valid[0]
    out = [bad_ric(v) for v in valid[:50]]
    out += [base.lower(), f" {base} ", base[:-1], base + "1", base[:6] + "x" + base[7:], "", "X" * 18,
            base.replace(base[0], "１", 1),  # a full-width digit stdnum maps to ASCII
            f"{base[:9]}-{base[9:]}"]
    # impossible dates, each with a correct check character
    for birth in ("20230230", "20231301", "20230100", "00000101", "19000229", "20000229", "19991231"):
        out.append(_with_ric_check("", base[:6] + birth + base[14:17]))
    # county codes: unknown, and 130123 (in use only from 1986 on) before and after
    for region, birth in (("999999", "19800101"), ("110000", "19800101"), ("130123", "19700101"),
                          ("130123", "19900101"), ("110103", "20150101"), ("110103", "20050101")):
        out.append(_with_ric_check("", region + birth + "123"))
    return out


def hand_made_usccs(valid: list[str]) -> list[str]:
    base = valid[0]
    out = [bad_uscc(v) for v in valid[:50]]
    out += [base.lower(), f" {base} ", base[:8] + "-" + base[8:], base[:8] + " " + base[8:],
            base[:8] + "\u2013" + base[8:], base[:-1], base + "0", "I" * 18, base[:8] + "O" + base[9:],
            base.replace(base[2], "３", 1), "", "9" * 18]
    body = base[:17]
    for c in "0123456789ABCDEFGHJKLMNPQRTUWXYZIOSV":
        out.append(body + c)  # exactly one of these is the right check character
    return out


def verdicts(spark, values: list[str], kind: str) -> dict[str, bool]:
    df = spark.createDataFrame([(v,) for v in values], "v string")
    if kind == "ric":
        df = with_ric_regions(df, ["v"])
        checked = df.select("v", ric_valid(F.col("v"), F.col("__ric_ranges_v")).alias("ok"))
    else:
        checked = df.select("v", uscc_valid(F.col("v")).alias("ok"))
    return {r.v: r.ok for r in checked.collect()}


def test_uscc_sql_matches_stdnum(spark, generated):
    usccs, _ = generated
    values = sorted(set(usccs + hand_made_usccs(usccs)))
    ours = verdicts(spark, values, "uscc")
    theirs = {v: bool(uscc.is_valid(v)) for v in values}
    assert sum(theirs.values()) > 20 and sum(not x for x in theirs.values()) > 20  # both kinds tested
    assert ours == theirs, {v: (ours[v], theirs[v]) for v in values if ours[v] != theirs[v]}


def test_ric_sql_matches_stdnum(spark, generated):
    _, rics = generated
    values = sorted(set(rics + hand_made_rics(rics)))
    ours = verdicts(spark, values, "ric")
    theirs = {v: stdnum_ric(v) for v in values}
    assert sum(theirs.values()) > 20 and sum(not x for x in theirs.values()) > 20
    assert ours == theirs, {v: (ours[v], theirs[v]) for v in values if ours[v] != theirs[v]}


def test_a_null_identifier_is_not_valid(spark):
    df = with_ric_regions(spark.createDataFrame([(None,)], "v string"), ["v"])
    row = df.select(uscc_valid(F.col("v")).alias("u"), ric_valid(F.col("v"), F.col("__ric_ranges_v")).alias("r")).first()
    assert (row.u, row.r) == (False, False)
