"""Reading landed files on the engine: Spark SQL turns every file into records, no Python per row.

Each file is one scan of Spark's line reader (split on `\n` only, one task a file, so a row's
number in its task is its line number), carrying the file's lineage as literals; SQL expressions
do the rest. The driver reads one line of each CSV file (the header) and scans its bytes for a
quote (to know whether a quoted field can span lines). The rules, the same for every file
(unit-tested in tests/unit/test_landing.py):

- A record ends at `\\n` or `\\r\\n`, and nowhere else (U+2028, form feed, a lone `\\r` are text).
  `_line` is the 1-based physical line the record starts on; the CSV header is line 1.
- CSV is RFC 4180 as Python's `csv` module reads it in strict mode: a field that starts with a quote
  is quoted (it may span lines, `""` is a quote inside it) and must be followed by a comma or the
  end of the record; a quote inside an unquoted field is text. Columns bind by the header's names,
  in any order, with or without a BOM; an empty field is null; a record with more or fewer fields
  than the header is WRONG_FIELD_COUNT; a header lacking a contract column quarantines every record
  of the file as MISSING_COLUMN, one naming a column twice as DUPLICATE_COLUMN; a file whose first
  line is not a readable header quarantines every non-blank line. Blank records are not records.
- JSONL is one object per line; an absent key is null; a value is its text as Python's json gives
  it (`12.50` -> `12.5`, `5e7` -> `50000000.0`, `true`, a nested object as compact JSON); a record
  holding a key twice is DUPLICATE_KEY (which value is meant cannot be known); a line that is not one
  JSON object is MALFORMED_JSON. Blank lines are not records.
- A line with bytes that are not UTF-8 quarantines its record (MALFORMED_CSV / MALFORMED_JSON), its
  raw text shown with U+FFFD in their place.

Multi-line CSV records need to know, line by line, whether the line before ended inside a quoted
field: a two-state automaton run by window functions, only over the files that have such a line,
so the common file (one record a line) never pays a shuffle.
"""

from __future__ import annotations

import csv
import re
from contextlib import contextmanager
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from agrilake.core import quarantine as q
from agrilake.core.contracts import Feed

# RFC 4180 as strict Python csv reads it; possessive quantifiers keep every match linear in the text.
QUOTED = '"(?:[^"]++|"")*+"'
UNQUOTED = '[^",][^,]*+'
FIELD = f"(?:{QUOTED}|{UNQUOTED})?+"
RECORD = rf"^{FIELD}(?:,{FIELD})*+\z"
OPEN_TAIL = r'"(?:[^"]++|"")*+\z'
# From outside a quoted field, the line ends inside one (a record that goes on to the next line).
OPENS = rf"^(?:{FIELD},)*+{OPEN_TAIL}"
# From inside a quoted field, the line ends inside one (the same field, or a later one it opens).
STAYS = rf'^(?:[^"]++|"")*+(?:"(?:,{FIELD}(?=,))*+,{OPEN_TAIL})?\z'
# One field per match, on ',' + record.
FIELDS = f",({FIELD})"

BAD_BYTES = "bytes that are not UTF-8"
NO_HEADER = "file has no readable header row"
NOT_RFC4180 = "not RFC 4180: a quoted field must be closed and followed by a comma or the end of the record"
JSON_SYNTAX = "not valid JSON"
JSON_NOT_OBJECT = "a JSON value that is not an object"

# The file's lineage on every row read (the whole row: transform.parsed_ddl).
FILE_COLUMNS = ["_file_sha256", "_file_name", "_delivery_date"]


def _strip_cr(text: Column) -> Column:
    """A line without the `\r` of its `\r\n`."""
    return F.when(text.endswith("\r"), text.substr(F.lit(1), F.length(text) - 1)).otherwise(text)


def _unquote(field: Column) -> Column:
    return F.when(field.startswith('"'),
                  F.replace(field.substr(F.lit(2), F.length(field) - 2), F.lit('""'), F.lit('"'))).otherwise(field)


def _fields(record: Column) -> Column:
    """The record's fields as text (quotes removed); a record without a quote is a plain split."""
    quoted = F.transform(F.regexp_extract_all(F.concat(F.lit(","), record), F.lit(FIELDS), 1), _unquote)
    return F.when(F.instr(record, '"') == 0, F.split(record, ",", -1)).otherwise(quoted)


def _valid(record: Column) -> Column:
    return (F.instr(record, '"') == 0) | record.rlike(RECORD)


def header_facts(path: str, feed: Feed) -> tuple[list[str] | None, bool]:
    """Driver side, per CSV file: (its header's column names, or None when line 1 is no readable
    header; whether a quoted field spans lines somewhere in it).

    One line is parsed in Python (the header); the rest is a byte scan, line by line only in files
    that hold a quote at all, with the same patterns as the engine's.
    """
    with open(path, "rb") as fh:
        first = _py_line(fh.readline())
        multi = False
        fh.seek(0)
        if any(b'"' in block for block in iter(lambda: fh.read(1 << 20), b"")):
            fh.seek(0)
            opens = re.compile(_python_pattern(OPENS))
            multi = any(b'"' in line and opens.search(_py_line(line)) for line in fh)
    first = first.removeprefix("\ufeff")
    if first == "" or ('"' in first and not re.search(_python_pattern(RECORD), first)):
        return None, multi
    try:
        return [h.strip() for h in next(csv.reader([first], strict=True))], multi
    except csv.Error:  # e.g. a NUL byte: not a readable header, every line is quarantined
        return None, multi


def _py_line(raw: bytes) -> str:
    line = raw.decode("utf-8", errors="replace").removesuffix("\n")
    return line.removesuffix("\r")


def _python_pattern(java: str) -> str:
    return java.replace(r"\z", r"\Z")  # the only Java-only syntax the patterns use


def _scan(spark: SparkSession, landed, sha: str, **per_file: Column) -> DataFrame:
    """The physical lines of one file in order, `_line` their 1-based number, with the file's lineage.

    A file is one scan (one task) of the line reader, split on `\n` only; a row's number in its task
    is its line number. `one_task_per_file` keeps a big file from being split into several tasks,
    and the read fails loudly should it ever be.
    """
    raw = spark.read.option("lineSep", "\n").text(literal_path(landed.path))
    lines = raw.select(F.monotonically_increasing_id().alias("_id"), F.col("value").alias("_text"),
                       F.col("_metadata.file_block_start").alias("_block"))
    number = F.when(F.col("_block") == 0, F.col("_id").bitwiseAND(F.lit((1 << 33) - 1)) + 1).otherwise(
        F.raise_error(F.lit(f"bronze: {landed.name} was split across tasks; set spark.sql.files."
                            "maxPartitionBytes above its size")))
    t = _strip_cr(F.col("_text"))
    return lines.select(
        number.alias("_line"), "_text",
        F.when(F.col("_id").bitwiseAND(F.lit((1 << 33) - 1)) == 0, F.regexp_replace(t, "^\ufeff", ""))
        .otherwise(t).alias("_t"),
        (~F.is_valid_utf8(F.col("_text"))).alias("_bad"),
        F.lit(sha).alias("_file_sha256"), F.lit(landed.name).alias("_file_name"),
        F.lit(landed.delivery_date).alias("_delivery_date"), *(c.alias(n) for n, c in per_file.items()))


GLOB = re.compile(r"([\\{}\[\]*?])")


def literal_path(path: str) -> str:
    """`path` for Spark's file sources, which expand `{} [] * ?` as a pattern: each escaped, so a
    landed file named `a[1].csv` is that file, not a pattern matching `a1.csv`."""
    return GLOB.sub(r"\\\1", path)


@contextmanager
def one_task_per_file(spark: SparkSession):
    """Line numbers need each landed file read whole by one task: no file split while inside.

    Spark cuts a file into min(maxPartitionBytes, max(openCostInBytes, bytes per core)) pieces.
    """
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    before = {k: spark.conf.get(k) for k in keys}
    for k in keys:
        spark.conf.set(k, str(1 << 40))
    try:
        yield
    finally:
        for k, v in before.items():
            spark.conf.set(k, v)


def _union(frames: list[DataFrame]) -> DataFrame | None:
    return reduce(DataFrame.unionByName, frames) if frames else None


def _text(column: str = "_t") -> Column:
    """A line or record as text: bytes that are not UTF-8 shown as U+FFFD (for the quarantine)."""
    return F.when(F.col("_bad"), F.make_valid_utf8(F.col(column))).otherwise(F.col(column))


def _blank(text: Column) -> Column:
    return F.btrim(text, F.lit(" \t\r\x0b\x0c")) == ""


def read(spark: SparkSession, files: list[tuple], feed: Feed) -> DataFrame:
    """Every physical record of `files` (LandedFile, sha256) as a transform.parsed_ddl(feed) row."""
    if feed.format == "jsonl":
        return _jsonl(_union([_scan(spark, f, sha) for f, sha in files]), feed)
    return _csv(spark, files, feed)


def _out(df: DataFrame, feed: Feed, reason: Column, detail: Column, raw: Column, values: dict[str, Column],
         extra: Column, line: Column) -> DataFrame:
    ok = reason.isNull()
    return df.select(reason.alias("_reason"), detail.alias("_detail"), F.when(~ok, raw).alias("_raw"),
                     *(F.when(ok, values.get(c)).cast("string").alias(c) for c in feed.column_names),
                     F.when(ok, extra).cast("map<string,string>").alias("_extra"), line.cast("bigint").alias("_line"), *FILE_COLUMNS)


def _jsonl(lines: DataFrame, feed: Feed) -> DataFrame:
    lines = lines.where(~_blank(F.col("_t")))
    # Jackson stops after the first value; Python's json (and JSONL) wants the line to be one object.
    lines = lines.withColumn("_whole", F.rtrim(F.col("_t"), F.lit(" \t\r")).endswith("}"))
    text, whole = F.col("_t"), F.col("_whole")
    parsed = lines.withColumn("_obj", F.when(whole, F.from_json(text, "map<string,string>",
                                                                {"allowSingleQuotes": "false"})))
    obj = F.col("_obj")
    # The common line has the contract's keys, once each, and no number Jackson writes otherwise than
    # Python: it costs one parse and a few map lookups. Only the others take the slow path below.
    present = reduce(Column.__add__, (F.map_contains_key(obj, c).cast("int") for c in feed.column_names))
    scientific = reduce(Column.__or__, (F.contains(obj[c], F.lit("E")) & obj[c].rlike(JAVA_DOUBLE)
                                        for c in feed.column_names))
    parsed = parsed.withColumn("_plain", F.size(obj) == present)
    plain = F.col("_plain")
    parsed = parsed.withColumn("_sci", ~plain | scientific)
    sci = F.col("_sci")
    # A repeated key quarantines the record (which value is meant?); the parsed map keeps both, and
    # rebuilding it dedups (spark.sql.mapKeyDedupPolicy=LAST_WIN, core/spark.py) for what follows.
    keys = F.map_keys(obj)
    parsed = parsed.withColumn("_repeated", F.when(~plain, F.filter(
        F.array_distinct(keys), lambda k: F.size(F.filter(keys, lambda x: x == k)) > 1)))
    repeated = F.size(F.col("_repeated")) > 0
    deduped = F.map_from_arrays(keys, F.map_values(obj))
    parsed = parsed.withColumn("_obj", F.when(~plain, deduped).otherwise(obj))
    # Jackson's scientific doubles rewritten once in the map (one lambda: per-column copies of the
    # rewrite would grow the generated code past the JVM's 64 KB method limit).
    parsed = parsed.withColumn("_obj", F.when(sci, F.transform_values(
        obj, lambda k, v: _python_number(v, text, k))).otherwise(obj))
    contract = F.array(*(F.lit(c) for c in feed.column_names))
    parsed = parsed.withColumn("_x", F.when(~plain, F.map_filter(obj, lambda k, v: ~F.array_contains(contract, k))))
    extra = F.when(F.cardinality("_x") > 0, F.col("_x"))
    bad = F.col("_bad")
    not_json = F.try_parse_json(text).isNull()
    trailing = ~whole & F.ltrim(text).startswith("{")  # an object with more after it
    detail = (F.when(bad, F.lit(BAD_BYTES))
              .when(obj.isNull(), F.when(not_json | trailing, F.lit(JSON_SYNTAX)).otherwise(F.lit(JSON_NOT_OBJECT)))
              .when(repeated, F.concat(F.lit("record repeats key(s): "), F.array_join("_repeated", ", "))))
    reason = F.when(bad | obj.isNull(), F.lit(q.MALFORMED_JSON)).when(repeated, F.lit(q.DUPLICATE_KEY))
    return _out(parsed, feed, reason, detail, _text(),
                {c: obj[c] for c in feed.column_names}, extra, F.col("_line"))

JAVA_DOUBLE = r"^(-?)(\d)\.(\d+)E(-?\d+)$"


def _python_number(value: Column, line: Column, key: Column) -> Column:
    """A JSON number's text as Python's json gives it (`repr(float)`), where Jackson's differs.

    Jackson writes a parsed double as Java's Double.toString does: scientific below 1e-3 and from
    1e7 (`5.0E7`), where Python writes `50000000.0` up to 1e16 and `1e-05` below 1e-4. Amounts and
    weights must read the same whatever the engine, so the scientific form is rewritten; a JSON
    string that happens to look like it (`"key": "5.0E7"` in the line) is left as it came.
    """
    sign, lead, frac = (F.regexp_extract(value, JAVA_DOUBLE, i) for i in (1, 2, 3))
    exp = F.regexp_extract(value, JAVA_DOUBLE, 4).cast("int")
    frac = F.regexp_replace(frac, "0+$", "")
    digits = F.concat(lead, frac)
    whole = F.rpad(digits, exp + 1, "0")
    rest = F.substring(digits, exp + 2, 400)
    positional = F.when(exp >= 0, F.concat(sign, whole, F.lit("."), F.when(rest == "", F.lit("0")).otherwise(rest))) \
        .otherwise(F.concat(sign, F.lit("0."), F.repeat(F.lit("0"), -exp - 1), digits))
    scientific = F.concat(sign, lead, F.when(frac != "", F.concat(F.lit("."), frac)).otherwise(F.lit("")), F.lit("e"),
                          F.when(exp < 0, F.lit("-")).otherwise(F.lit("+")), F.when(F.abs(exp) < 10, F.lit("0")).otherwise(F.lit("")),
                          F.abs(exp).cast("string"))
    as_string = F.regexp_like(line, F.concat(F.lit('"\\Q'), key, F.lit('\\E"\\s*:\\s*"'),
                                             F.regexp_replace(value, "\\.", "\\\\."), F.lit('"')))
    python = F.when(as_string, value).when((exp >= -4) & (exp < 16), positional).otherwise(scientific)
    return F.when(value.rlike(JAVA_DOUBLE), python).otherwise(value)


def _csv(spark: SparkSession, files: list[tuple], feed: Feed) -> DataFrame:
    contract = feed.column_names

    def strings(values: list[str]) -> Column:
        return F.array(*(F.lit(v) for v in values)).cast("array<string>")

    single, multi, headless = [], [], []
    for landed, sha in files:
        header, spans = header_facts(landed.path, feed)
        if header is None:
            headless.append(_scan(spark, landed, sha))
            continue
        facts = {"_header": strings(header), "_missing": strings([c for c in contract if c not in header]),
                 "_drift": strings([h for h in header if h not in set(contract)]),
                 "_repeated": strings(sorted({h for h in header if header.count(h) > 1}))}
        (multi if spans else single).append(_scan(spark, landed, sha, **facts))
    keep = ("_header", "_missing", "_drift", "_repeated")
    parts = []

    if headless:  # no readable header: nothing binds by name, so every non-blank line is quarantined
        lines = _union(headless).where(~_blank(F.col("_t")))
        parts.append(_out(lines, feed, F.lit(q.MISSING_COLUMN), F.lit(NO_HEADER), _text(), {}, F.lit(None),
                          F.col("_line")))
    # The common file: no line ends inside a quoted field, so a record is a line.
    records = [_union(single).select(*FILE_COLUMNS, "_bad", *keep, F.col("_line").alias("_start"),
                                     F.col("_t").alias("_rec"))] if single else []
    if multi:
        records.append(_multi_line_records(_union(multi), keep))
    if records:
        parts.append(_records(_union(records), feed))
    if not parts:
        raise ValueError("bronze: no files to read")
    return _union(parts)


def _records(records: DataFrame, feed: Feed) -> DataFrame:
    """CSV records (one or more lines each, header dropped) bound to the contract by the header's names."""
    records = records.where((F.col("_start") > 1) & (F.col("_rec") != ""))
    rec, bad = F.col("_rec"), F.col("_bad")
    fields = F.col("_fields")
    width = F.size("_header")
    missing = F.size("_missing") > 0
    valid = _valid(rec)
    count_wrong = F.size(fields) != width
    repeated = F.size("_repeated") > 0  # a name twice in the header: no value can be bound to it safely
    reason = (F.when(missing, F.lit(q.MISSING_COLUMN)).when(repeated, F.lit(q.DUPLICATE_COLUMN))
              .when(~valid | bad, F.lit(q.MALFORMED_CSV)).when(count_wrong, F.lit(q.WRONG_FIELD_COUNT)))
    detail = (F.when(missing, F.concat(F.lit("file lacks column(s): "), F.array_join("_missing", ", ")))
              .when(repeated, F.concat(F.lit("header repeats column(s): "), F.array_join("_repeated", ", ")))
              .when(~valid, F.lit(NOT_RFC4180)).when(bad, F.lit(BAD_BYTES))
              .when(count_wrong, F.format_string("%d fields, header has %d", F.size(fields), width)))

    def value(name: Column | str) -> Column:
        name = F.lit(name) if isinstance(name, str) else name
        return F.nullif(F.get(fields, F.array_position("_header", name) - 1), F.lit(""))

    extra = F.when(F.size("_drift") > 0, F.map_from_arrays(F.col("_drift"), F.transform("_drift", value)))
    records = records.withColumn("_fields", F.when(valid, _fields(rec)))
    return _out(records, feed, reason, detail, _text("_rec"), {c: value(c) for c in feed.column_names}, extra,
                F.col("_start"))


def _multi_line_records(lines: DataFrame, keep: tuple[str, ...]) -> DataFrame:
    """Records of files where a quoted field spans lines: a line starts a record unless the line
    before it ended inside a quoted field.

    Each line maps the state at its start (inside a quote or not) to the state at its end: it opens
    (outside -> inside), stays (inside -> inside), or both, or neither. A line with `opens == stays`
    sets the state whatever came before; any other line keeps or flips it. So the state after a line
    is the value set by the last setting line, flipped once per flipping line since: window sums
    over the file's lines in order, no per-line loop.
    """
    t = F.col("_t")
    quoted = F.instr(t, '"') > 0
    opens = quoted & t.rlike(OPENS)
    stays = ~quoted | t.rlike(STAYS)
    in_file = Window.partitionBy("_file_sha256").orderBy("_line")
    lines = (lines.withColumn("_sets", opens == stays).withColumn("_opens", opens)
             .withColumn("_flips", (opens & ~stays).cast("int"))
             .withColumn("_flipped", F.sum("_flips").over(in_file)))
    last_set = F.last(F.when(F.col("_sets"), F.struct(F.col("_flipped").alias("at"), F.col("_opens").alias("to"))),
                      ignorenulls=True).over(in_file)
    lines = lines.withColumn("_set", last_set)
    since = F.col("_flipped") - F.coalesce(F.col("_set.at"), F.lit(0))
    lines = lines.withColumn("_inside", F.coalesce(F.col("_set.to"), F.lit(False)) != (since % 2 == 1))
    starts = ~F.lag("_inside", 1, False).over(in_file)
    lines = lines.withColumn("_record", F.sum(starts.cast("int")).over(in_file))
    by_record = lines.groupBy("_file_sha256", "_record").agg(
        F.min("_line").alias("_start"), F.array_sort(F.collect_list(F.struct("_line", "_text"))).alias("_parts"),
        F.max("_bad").alias("_bad"), *(F.first(c).alias(c) for c in ("_file_name", "_delivery_date", *keep)))
    # an unclosed quote runs to the end of the file, past its last line break: not part of the record
    text = F.regexp_replace(F.array_join(F.transform("_parts", lambda p: p["_text"]), "\n"), "[\r\n]+\\z", "")
    return by_record.select(*FILE_COLUMNS, "_bad", *keep, "_start", text.alias("_rec"))
