"""Reading landed files on the engine: Spark SQL turns every file into records, no Python per row.

One query per feed: `binaryFile` gives each file's bytes, `split` on `\\n` and `posexplode` give its
physical lines with their numbers, and SQL expressions do the rest. The rules, the same for every
file (unit-tested in tests/unit/test_landing.py):

- A record ends at `\\n` or `\\r\\n`, and nowhere else (U+2028, form feed, a lone `\\r` are text).
  `_line` is the 1-based physical line the record starts on; the CSV header is line 1.
- CSV is RFC 4180 as Python's `csv` module reads it in strict mode: a field that starts with a quote
  is quoted (it may span lines, `""` is a quote inside it) and must be followed by a comma or the
  end of the record; a quote inside an unquoted field is text. Columns bind by the header's names,
  in any order, with or without a BOM; an empty field is null; a record with more or fewer fields
  than the header is WRONG_FIELD_COUNT; a header lacking a contract column quarantines every record
  of the file as MISSING_COLUMN; a file whose first line is not a readable header quarantines every
  non-blank line. Blank records are not records.
- JSONL is one object per line; an absent key is null; values keep their JSON text (`1e3` stays
  `1e3`, an object stays its JSON); a duplicate key keeps its last value; a line that is not a JSON
  object is MALFORMED_JSON. Blank lines are not records.
- Bytes that are not UTF-8 quarantine the record they are in (MALFORMED_CSV / MALFORMED_JSON): in a
  file that is not valid UTF-8, a record holding U+FFFD (the decoder's replacement) is that record.

Multi-line CSV records need to know, line by line, whether the line before ended inside a quoted
field: a two-state automaton run by window functions, only over the files that have such a line,
so the common file (one record a line) never pays a shuffle.
"""

from __future__ import annotations

import os

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


def files_frame(spark: SparkSession, files: list[tuple]) -> DataFrame:
    """One row per landed file: its lineage, whether it is valid UTF-8, its physical lines.

    `files`: (LandedFile, sha256) pairs, as the driver identified them.
    """
    meta = spark.createDataFrame(
        [(os.path.abspath(f.path), sha, f.name, f.delivery_date) for f, sha in files],
        "_key string, _file_sha256 string, _file_name string, _delivery_date date")
    content = (spark.read.format("binaryFile").load([f.path for f, _ in files])
               .select(F.regexp_replace("path", "^file:(//)?", "").alias("_key"), "content"))
    joined = content.join(F.broadcast(meta), "_key", "left")
    # Every file read must be one the driver identified; a path spelt differently would lose its lineage.
    sha = F.coalesce("_file_sha256", F.raise_error(F.concat(F.lit("bronze: no SHA-256 for landed file "), "_key")))
    text = F.col("content").cast("string")  # the bytes as they are: validity is checked before decoding
    return joined.select(sha.alias("_file_sha256"), "_file_name", "_delivery_date",
                         F.is_valid_utf8(text).alias("_utf8"), F.split(text, "\n", -1).alias("_lines"))


def _lines(per_file: DataFrame, *keep: str) -> DataFrame:
    """One row per physical line: `_pos` (0-based), `_text` as in the file, `_t` without BOM and `\r`."""
    out = per_file.select(*FILE_COLUMNS, "_utf8", *keep, F.posexplode("_lines").alias("_pos", "_text"))
    t = _strip_cr(F.col("_text"))
    return out.withColumn("_t", F.when(F.col("_pos") == 0, F.regexp_replace(t, "^\ufeff", "")).otherwise(t))


def _bad_bytes(text: Column) -> Column:
    return ~F.col("_utf8") & F.contains(text, F.lit("\ufffd"))


def _blank(text: Column) -> Column:
    return F.btrim(text, F.lit(" \t\r\x0b\x0c")) == ""


def read(spark: SparkSession, files: list[tuple], feed: Feed) -> DataFrame:
    """Every physical record of `files` (LandedFile, sha256) as a parsed_ddl(feed) row."""
    per_file = files_frame(spark, files)
    return _jsonl(per_file, feed) if feed.format == "jsonl" else _csv(per_file, feed)


def _out(df: DataFrame, feed: Feed, reason: Column, detail: Column, raw: Column, values: dict[str, Column],
         extra: Column, line: Column) -> DataFrame:
    ok = reason.isNull()
    return df.select(reason.alias("_reason"), detail.alias("_detail"), F.when(~ok, raw).alias("_raw"),
                     *(F.when(ok, values.get(c)).cast("string").alias(c) for c in feed.column_names),
                     F.when(ok, extra).cast("map<string,string>").alias("_extra"), line.cast("bigint").alias("_line"), *FILE_COLUMNS)


def _jsonl(per_file: DataFrame, feed: Feed) -> DataFrame:
    lines = _lines(per_file).where(~_blank(F.col("_t")))
    # Jackson stops after the first value; Python's json (and JSONL) wants the line to be one object.
    whole = F.rtrim(F.col("_t"), F.lit(" \t\r")).endswith("}")
    lines = lines.withColumn("_whole", whole)
    whole = F.col("_whole")
    parsed = lines.withColumn("_obj", F.when(whole, F.from_json("_t", "map<string,string>",
                                                                 {"allowSingleQuotes": "false"})))
    # A repeated key keeps its last value, as in Python's json: the parsed map keeps both, and
    # rebuilding it dedups by spark.sql.mapKeyDedupPolicy=LAST_WIN (core/spark.py).
    obj = F.col("_obj")
    parsed = parsed.withColumn("_obj", F.when(F.size(F.array_distinct(F.map_keys(obj))) < F.size(obj),
                                              F.map_from_arrays(F.map_keys(obj), F.map_values(obj))).otherwise(obj))
    text, obj = F.col("_t"), F.col("_obj")
    bad = _bad_bytes(text)
    not_json = F.try_parse_json(text).isNull()
    trailing = ~whole & F.ltrim(text).startswith("{")  # an object with more after it
    detail = (F.when(bad, F.lit(BAD_BYTES))
              .when(obj.isNull(), F.when(not_json | trailing, F.lit(JSON_SYNTAX)).otherwise(F.lit(JSON_NOT_OBJECT))))
    contract = F.array(*(F.lit(c) for c in feed.column_names))
    extra = F.map_filter(obj, lambda k, v: ~F.array_contains(contract, k))
    extra = F.transform_values(extra, lambda k, v: _python_number(v, text, k))
    return _out(parsed, feed, F.when(bad | obj.isNull(), F.lit(q.MALFORMED_JSON)), detail, text,
                {c: _python_number(obj[c], text, F.lit(c)) for c in feed.column_names},
                F.when(F.cardinality(extra) > 0, extra), F.col("_pos") + 1)


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


def _csv(per_file: DataFrame, feed: Feed) -> DataFrame:
    contract = F.array(*(F.lit(c) for c in feed.column_names))
    first = _strip_cr(F.regexp_replace(F.element_at("_lines", 1), "^\ufeff", ""))
    header = F.transform(_fields(first), lambda h: F.regexp_replace(h, r"^\s+|\s+\z", ""))
    files = per_file.select("*", ((first != "") & _valid(first)).alias("_header_ok"), header.alias("_header"))
    files = files.select(
        "*", F.filter(contract, lambda c: ~F.array_contains(F.col("_header"), c)).alias("_missing"),
        F.filter("_header", lambda h: ~F.array_contains(contract, h)).alias("_drift"),
        F.exists("_lines", lambda t: (F.instr(t, '"') > 0) & _strip_cr(t).rlike(OPENS)).alias("_multi"))
    keep = ("_header", "_missing", "_drift")

    # A file without a readable header: nothing binds by name, so every non-blank line is quarantined.
    headless = _lines(files.where(~F.col("_header_ok")), *keep).where(~_blank(F.col("_t")))
    headless = _out(headless, feed, F.lit(q.MISSING_COLUMN), F.lit(NO_HEADER), F.col("_t"), {},
                    F.lit(None), F.col("_pos") + 1)

    # The common file: no line ends inside a quoted field, so a record is a line.
    single = (_lines(files.where(F.col("_header_ok") & ~F.col("_multi")), *keep)
              .select(*FILE_COLUMNS, "_utf8", *keep, F.col("_pos").alias("_start"), F.col("_t").alias("_rec")))
    multi = _multi_line_records(files.where(F.col("_header_ok") & F.col("_multi")), keep)
    records = single.unionByName(multi).where((F.col("_start") > 0) & (F.col("_rec") != ""))

    rec = F.col("_rec")
    fields = F.col("_fields")
    width = F.size("_header")
    missing = F.size("_missing") > 0
    valid, bad = _valid(rec), _bad_bytes(rec)
    count_wrong = F.size(fields) != width
    reason = (F.when(missing, F.lit(q.MISSING_COLUMN)).when(~valid | bad, F.lit(q.MALFORMED_CSV))
              .when(count_wrong, F.lit(q.WRONG_FIELD_COUNT)))
    detail = (F.when(missing, F.concat(F.lit("file lacks column(s): "), F.array_join("_missing", ", ")))
              .when(~valid, F.lit(NOT_RFC4180)).when(bad, F.lit(BAD_BYTES))
              .when(count_wrong, F.format_string("%d fields, header has %d", F.size(fields), width)))

    def value(name: Column | str) -> Column:
        name = F.lit(name) if isinstance(name, str) else name
        return F.nullif(F.get(fields, F.array_position("_header", name) - 1), F.lit(""))

    extra = F.when(F.size("_drift") > 0, F.map_from_arrays(F.col("_drift"), F.transform("_drift", value)))
    records = records.withColumn("_fields", F.when(valid, _fields(rec)))
    return _out(records, feed, reason, detail, rec, {c: value(c) for c in feed.column_names}, extra,
                F.col("_start") + 1).unionByName(headless)


def _multi_line_records(files: DataFrame, keep: tuple[str, ...]) -> DataFrame:
    """Records of files where a quoted field spans lines: a line starts a record unless the line
    before it ended inside a quoted field.

    Each line maps the state at its start (inside a quote or not) to the state at its end: it opens
    (outside -> inside), stays (inside -> inside), or both, or neither. A line with `opens == stays`
    sets the state whatever came before; any other line keeps or flips it. So the state after a line
    is the value set by the last setting line, flipped once per flipping line since: window sums
    over the file's lines in order, no per-line loop.
    """
    lines = _lines(files, *keep)
    t = F.col("_t")
    quoted = F.instr(t, '"') > 0
    opens = quoted & t.rlike(OPENS)
    stays = ~quoted | t.rlike(STAYS)
    in_file = Window.partitionBy("_file_sha256").orderBy("_pos")
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
        F.min("_pos").alias("_start"), F.array_sort(F.collect_list(F.struct("_pos", "_text"))).alias("_parts"),
        *(F.first(c).alias(c) for c in ("_file_name", "_delivery_date", "_utf8", *keep)))
    # an unclosed quote runs to the end of the file, past its last line break: not part of the record
    text = F.regexp_replace(F.array_join(F.transform("_parts", lambda p: p["_text"]), "\n"), "[\r\n]+\\z", "")
    # the first line of the file lost its BOM in `_t`; the header record is dropped, so `_text` is fine
    return by_record.select(*FILE_COLUMNS, "_utf8", *keep, "_start", text.alias("_rec"))
