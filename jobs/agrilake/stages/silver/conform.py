"""Bronze text -> typed, validated columns, by the contract: pure DataFrame -> DataFrame.

Every rule adds a flag; a row with any flag carries `_reason` (the first by priority) and
`_detail` (every failed rule as `REASON(column)`), and is quarantined by the caller, never dropped.
"""

from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from agrilake.core import quarantine as q
from agrilake.core.contracts import Column, Feed
from agrilake.stages.silver.identifiers import ric_valid, uscc_valid, with_ric_regions

DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
INT_RE = r"^[+-]?\d{1,9}$"
DOUBLE_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
MONEY_RE = r"^[+-]?\d{1,16}(\.\d{1,2})?$"
BOOL_VALUES = ("true", "false")

# Lower number = reported first when a row breaks several rules.
PRIORITY = [q.MISSING_REQUIRED, q.BAD_DATE, q.BAD_TIMESTAMP, q.BAD_NUMBER, q.BAD_BOOLEAN, q.NOT_ALLOWED,
            q.OUT_OF_RANGE, q.BAD_USCC, q.BAD_RIC, q.BAD_DIVISION_CODE, q.BORROWER_MISMATCH]

PARSE_ERROR = {"date": q.BAD_DATE, "timestamp": q.BAD_TIMESTAMP, "int": q.BAD_NUMBER, "long": q.BAD_NUMBER,
               "double": q.BAD_NUMBER, "money": q.BAD_NUMBER, "bool": q.BAD_BOOLEAN}


def _text(name: str) -> SparkColumn:
    trimmed = F.trim(F.col(name))
    return F.when(trimmed != "", trimmed)


def typed_value(c: Column) -> SparkColumn:
    """The typed value of a text column (null when absent or unparsable)."""
    t = _text(c.name)
    if c.type == "date":
        return F.when(t.rlike(DATE_RE), F.to_date(t, "yyyy-MM-dd"))
    if c.type == "timestamp":
        return F.when(t.rlike(TIMESTAMP_RE), t.cast("timestamp"))
    if c.type in ("int", "long"):
        return F.when(t.rlike(INT_RE), t.cast("int" if c.type == "int" else "bigint"))
    if c.type == "double":
        return F.when(t.rlike(DOUBLE_RE), t.cast("double"))
    if c.type == "money":
        return F.when(t.rlike(MONEY_RE), t.cast("decimal(18,2)"))
    if c.type == "bool":
        return F.when(F.lower(t).isin(*BOOL_VALUES), F.lower(t) == "true")
    if c.type == "list":
        return F.when(t.isNotNull(), F.filter(F.transform(F.split(t, r"\|"), F.trim), lambda x: x != ""))
    return t


def rules(c: Column, feed: Feed) -> list[tuple[str, SparkColumn]]:
    """(reason, failed?) for each rule of the column; `failed?` is true when the rule is broken."""
    t = _text(c.name)
    v = F.col(f"__typed_{c.name}")
    out: list[tuple[str, SparkColumn]] = []
    if c.required:
        out.append((q.MISSING_REQUIRED, t.isNull()))
    if c.required_when:
        cond = F.lit(True)
        for other, value in c.required_when.items():
            cond = cond & (_text(other) == F.lit(value))
        out.append((q.MISSING_REQUIRED, cond & t.isNull()))
    if c.type in PARSE_ERROR:
        out.append((PARSE_ERROR[c.type], t.isNotNull() & v.isNull()))
    if c.allowed:
        allowed = list(c.allowed)
        if c.type == "list":
            out.append((q.NOT_ALLOWED, v.isNotNull() & F.exists(v, lambda x: ~x.isin(*allowed))))
        else:
            out.append((q.NOT_ALLOWED, v.isNotNull() & ~v.isin(*allowed)))
    if c.min is not None:
        out.append((q.OUT_OF_RANGE, v.isNotNull() & (v < F.lit(c.min))))
    if c.max is not None:
        out.append((q.OUT_OF_RANGE, v.isNotNull() & (v > F.lit(c.max))))
    if c.check == "uscc":
        out.append((q.BAD_USCC, t.isNotNull() & ~uscc_valid(t)))
    elif c.check == "ric":
        out.append((q.BAD_RIC, t.isNotNull() & ~ric_valid(t, F.col(f"__ric_ranges_{c.name}"))))
    elif c.check == "division_code":
        out.append((q.BAD_DIVISION_CODE, t.isNotNull() & ~t.rlike(r"^\d{12}$")))
    elif c.check == "county_code":
        out.append((q.BAD_DIVISION_CODE, t.isNotNull() & ~t.rlike(r"^\d{6}$")))
    return out


def entity_rules(feed: Feed) -> list[tuple[str, str, SparkColumn]]:
    """Rules across columns that the contract's per-column fields cannot say."""
    out = []
    if feed.name in ("bank_loans", "bank_subsidies"):
        who = "borrower" if feed.name == "bank_loans" else "beneficiary"
        kind, uscc, ric = _text(f"{who}_type"), _text(f"{who}_uscc"), _text(f"{who}_ric")
        mismatch = (((kind == "cooperative") & (uscc.isNull() | ric.isNotNull()))
                    | ((kind == "household") & (ric.isNull() | uscc.isNotNull())))
        out.append((q.BORROWER_MISMATCH, f"{who}_type", mismatch))
    if feed.name == "postal_shipment_events":
        cold = F.col("__typed_cold_chain")
        tmin, tmax = F.col("__typed_temp_min_c"), F.col("__typed_temp_max_c")
        out.append((q.MISSING_REQUIRED, "temp_min_c", (cold == F.lit(True)) & (tmin.isNull() | tmax.isNull())))
        out.append((q.OUT_OF_RANGE, "temp_min_c", tmin.isNotNull() & tmax.isNotNull() & (tmin > tmax)))
    return out


def conform(df: DataFrame, feed: Feed) -> DataFrame:
    """Adds `__typed_<col>` for every contract column plus `_reason` and `_detail` (null when valid)."""
    rics = [c.name for c in feed.columns if c.check == "ric"]
    typed = with_ric_regions(df, rics).select("*", *[typed_value(c).alias(f"__typed_{c.name}") for c in feed.columns])
    flags = []
    for c in feed.columns:
        for reason, failed in rules(c, feed):
            flags.append((PRIORITY.index(reason), reason, c.name, failed))
    for reason, column, failed in entity_rules(feed):
        flags.append((PRIORITY.index(reason), reason, column, failed))
    flags.sort(key=lambda f: f[0])
    failures = F.filter(
        F.array(*[F.when(failed, F.lit(f"{reason}({column})")) for _, reason, column, failed in flags]),
        lambda x: x.isNotNull(),
    )
    return (typed.withColumn("_failures", failures)
            .withColumn("_reason", F.when(F.size("_failures") > 0, F.regexp_extract(F.col("_failures")[0], r"^(\w+)", 1)))
            .withColumn("_detail", F.when(F.size("_failures") > 0, F.array_join("_failures", ", ")))
            .drop("_failures", *[f"__ric_ranges_{name}" for name in rics]))
