"""Find needles (clear RICs, names, phones, planted secrets) in everything a pipeline run leaves behind.

Why: the promise "no clear personal data outside bronze and ops.quarantine_raw, no secret anywhere" is
only worth something if every output is searched, not the few places a test happens to look at: each
Delta table (every cell of every column), every Parquet file of the lake (older versions and deleted
rows included: time travel can still read them), every text-like file (task logs, GX results, data docs,
reports) and every object in the platforms' buckets. Each finder returns every hit as (where, needle), so
a test can show that the scan finds what is meant to be there before asserting it finds nothing elsewhere.
Plain functions on purpose: no fixtures, no pipeline code, nothing here can share a bug with what it checks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path

LAYERS = ("bronze", "silver", "gold", "ops")
TEXT_SUFFIXES = (".log", ".json", ".jsonl", ".crc", ".html", ".yaml", ".yml", ".md", ".txt", ".csv", ".db")
Hit = tuple[str, str]


def scan_text(text: str, needles: Iterable[str], where: str) -> list[Hit]:
    """(where, needle) for every needle in `text`."""
    return [(where, n) for n in needles if n in text]


def delta_tables(lake: Path) -> list[str]:
    """`<layer>/<table>` of every Delta table under the lakehouse root."""
    return sorted(f"{p.parent.parent.name}/{p.parent.name}" for layer in LAYERS
                  for p in (lake / layer).glob("*/_delta_log"))


def scan_tables(spark, lake: Path, needles: list[str]) -> list[Hit]:
    """(`<layer>/<table>`, needle) for every needle in some cell of a Delta table's current snapshot.
    Each row is read as its JSON text (every column, nested values and binaries included) and searched
    here: a test lake is small, and a search in Python cannot mistake a needle for SQL."""
    from pyspark.sql import functions as F

    hits = []
    for table in delta_tables(lake):
        df = spark.read.format("delta").load(str(lake / table))
        rows = df.select(F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))).collect()
        hits += scan_text("\n".join(r[0] for r in rows), needles, table)
    return hits


def parquet_text(data: bytes) -> str:
    """Every cell of a Parquet file as text, one JSON line per row."""
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    return "\n".join(json.dumps(r, default=_plain, ensure_ascii=False) for r in rows)


def _plain(value) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)  # binaries as hex, dates and decimals as text


def scan_files(root: Path, needles: list[str], suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> list[Hit]:
    """(path relative to `root`, needle) for every text-like file (decoded, undecodable bytes replaced;
    an SQLite database's text is stored as is) and every Parquet file (cell by cell) under `root`."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.name.lower()
        if name.endswith(".parquet"):
            text = parquet_text(path.read_bytes())
        elif name.endswith(suffixes):
            text = path.read_bytes().decode("utf-8", errors="replace")
        else:
            continue
        hits += scan_text(text, needles, path.relative_to(root).as_posix())
    return hits


def scan_bucket(client, bucket: str, needles: list[str]) -> list[Hit]:
    """(`<bucket>/<key>`, needle) for every object of a bucket: Parquet cell by cell, the rest as text."""
    hits = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            text = parquet_text(data) if obj["Key"].endswith(".parquet") else data.decode("utf-8", errors="replace")
            hits += scan_text(text, needles, f"{bucket}/{obj['Key']}")
    return hits


def leaks(hits: list[Hit], personal: Iterable[str], allowed: Iterable[str]) -> list[Hit]:
    """The hits that break the rule: a personal needle outside the `allowed` places (fnmatch patterns:
    `*` also spans `/`), or any other needle (a secret) anywhere."""
    personal, allowed = set(personal), tuple(allowed)
    return [(where, n) for where, n in hits if not (n in personal and any(fnmatch(where, p) for p in allowed))]
