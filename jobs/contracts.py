"""Loads schemas/: the source-feed contracts and the silver table contracts, in one place.

The generator, bronze parsing, silver typing, the data dictionary and the privacy guard all read
these objects; nobody else opens the YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Silver entities per domain, in dependency order (a table's references come before it).
SILVER_DOMAINS = {
    "divisions": ["divisions"],
    "coop": ["cooperatives", "members", "sales"],
    "postal": ["outlets", "shipment_events", "cold_chain_readings"],
    "bank": ["loans", "installments", "subsidies"],
}

GOLD_TABLES = ["coop_credit_profile", "household_credit_profile", "logistics_division_daily",
               "credit_county_summary"]

SPARK_TYPES = {
    "string": "string",
    "date": "date",
    "timestamp": "timestamp",
    "int": "int",
    "long": "bigint",
    "double": "double",
    "money": "decimal(18,2)",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array<string>",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""
    required: bool = False
    pii: str | None = None  # ric | name | phone
    check: str | None = None  # uscc | ric | division_code | county_code
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    references: str | None = None
    required_when: dict[str, Any] | None = None

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES.get(self.type, self.type)


@dataclass(frozen=True)
class Feed:
    system: str
    feed: str
    format: str  # csv | jsonl
    kind: str  # reference | upsert | event
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    grain: str = ""
    version_by: str | None = None

    @property
    def name(self) -> str:
        return f"{self.system}_{self.feed}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]


@dataclass(frozen=True)
class Table:
    name: str  # layer.table
    source: str
    kind: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    version_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ddl(self) -> str:
        return ", ".join(f"{c.name} {c.spark_type}" for c in self.columns)


def _column(raw: dict[str, Any]) -> Column:
    raw = dict(raw)
    if raw.get("allowed") is not None:
        raw["allowed"] = tuple(raw["allowed"])
    return Column(**raw)


@cache
def feeds() -> dict[str, Feed]:
    """Every source feed, keyed by `<system>_<feed>`."""
    out = {}
    for path in sorted((SCHEMAS_DIR / "source").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        feed = Feed(
            system=raw["system"],
            feed=raw["feed"],
            format=raw["format"],
            kind=raw["kind"],
            key=tuple(raw["key"]),
            columns=tuple(_column(c) for c in raw["columns"]),
            grain=raw.get("grain", ""),
            version_by=raw.get("version_by"),
        )
        out[feed.name] = feed
    return out


def feed(name: str) -> Feed:
    try:
        return feeds()[name]
    except KeyError:
        raise KeyError(f"no contract for feed {name!r}; known: {sorted(feeds())}") from None


def systems() -> dict[str, list[Feed]]:
    out: dict[str, list[Feed]] = {}
    for f in feeds().values():
        out.setdefault(f.system, []).append(f)
    return out


@cache
def lineage_columns() -> tuple[Column, ...]:
    raw = yaml.safe_load((SCHEMAS_DIR / "silver" / "_lineage.yaml").read_text(encoding="utf-8"))
    return tuple(_column(c) for c in raw["columns"])


@cache
def silver_tables() -> dict[str, Table]:
    """Silver table contracts keyed by entity name (`cooperatives`, ...), lineage columns included."""
    out = {}
    for path in sorted((SCHEMAS_DIR / "silver").glob("[!_]*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        cols = tuple(_column(c) for c in raw["columns"]) + lineage_columns()
        t = Table(
            name=raw["table"],
            source=raw["source"],
            kind=raw["kind"],
            key=tuple(raw["key"]),
            columns=cols,
            description=raw.get("description", ""),
            version_by=raw.get("version_by"),
        )
        out[t.name.split(".", 1)[1]] = t
    return out
