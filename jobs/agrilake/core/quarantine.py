"""Reason codes for rows that cannot pass a stage, and the expected reason of each injected defect."""

from __future__ import annotations

# Parse level (bronze): the row never became a record.
MALFORMED_CSV = "MALFORMED_CSV"  # unbalanced quote, undecodable bytes
WRONG_FIELD_COUNT = "WRONG_FIELD_COUNT"  # a CSV row with more or fewer fields than the header
MALFORMED_JSON = "MALFORMED_JSON"  # a JSONL line that is not a JSON object
MISSING_COLUMN = "MISSING_COLUMN"  # the whole file lacks a contract column (reason names it)
DUPLICATE_COLUMN = "DUPLICATE_COLUMN"  # the file's header names a column twice: which value is meant?
DUPLICATE_KEY = "DUPLICATE_KEY"  # a JSONL record holds a key twice: which value is meant?
EMPTY_FILE = "EMPTY_FILE"  # no header at all

# Semantic level (silver): the record is not valid.
MISSING_REQUIRED = "MISSING_REQUIRED"  # key or required value null
BAD_DATE = "BAD_DATE"
BAD_TIMESTAMP = "BAD_TIMESTAMP"
BAD_NUMBER = "BAD_NUMBER"
BAD_BOOLEAN = "BAD_BOOLEAN"
NOT_ALLOWED = "NOT_ALLOWED"  # value outside the contract's allowed set
BAD_USCC = "BAD_USCC"
BAD_RIC = "BAD_RIC"
BAD_DIVISION_CODE = "BAD_DIVISION_CODE"  # not 12 digits / not 6 digits
UNKNOWN_DIVISION = "UNKNOWN_DIVISION"  # well-formed but not in ref/divisions
UNKNOWN_REF = "UNKNOWN_REF"  # cooperative, outlet, loan or parcel not known (yet): held, re-evaluated
OUT_OF_RANGE = "OUT_OF_RANGE"  # negative or absurd amount, weight, temperature outside -40..60
BORROWER_MISMATCH = "BORROWER_MISMATCH"  # borrower/beneficiary columns inconsistent with the type

# Generator defect class -> the reason code the pipeline must give it (None: not a quarantine
# matter, it is checked another way: ingest log, dedup counters, point-in-time reads).
DEFECT_REASONS: dict[str, str | None] = {
    "malformed_csv": MALFORMED_CSV,
    "malformed_json": MALFORMED_JSON,
    "wrong_field_count": WRONG_FIELD_COUNT,
    "bad_date": BAD_DATE,
    "bad_timestamp": BAD_TIMESTAMP,
    "bad_number": BAD_NUMBER,
    "bad_boolean": BAD_BOOLEAN,
    "missing_key": MISSING_REQUIRED,
    "bad_uscc": BAD_USCC,
    "bad_ric": BAD_RIC,
    "unknown_division": UNKNOWN_DIVISION,
    "unknown_outlet": UNKNOWN_REF,
    "unknown_coop": UNKNOWN_REF,
    "unknown_loan": UNKNOWN_REF,
    "negative_amount": OUT_OF_RANGE,
    "absurd_amount": OUT_OF_RANGE,
    "absurd_weight": OUT_OF_RANGE,
    "temperature_out_of_range": OUT_OF_RANGE,
    "duplicate_row": None,  # counted as a duplicate in silver, not quarantined
    "duplicate_file": None,  # ingest_log status 'duplicate'
    "late_row": None,  # business date before the delivery date: accepted
    "out_of_order_event": None,  # accepted; gold takes the earliest events
    "extra_column": None,  # kept in bronze's _extra map, reported as schema drift
    "reordered_columns": None,  # matched by header name
}

PARSE_REASONS = {MALFORMED_CSV, WRONG_FIELD_COUNT, MALFORMED_JSON, MISSING_COLUMN, DUPLICATE_COLUMN, DUPLICATE_KEY,
                 EMPTY_FILE}
# Reasons that hold for a whole file (every record of it quarantined, the file logged `quarantined`).
FILE_REASONS = (MISSING_COLUMN, DUPLICATE_COLUMN)
