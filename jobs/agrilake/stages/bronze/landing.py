"""The landing zone as upstream systems fill it: which files were delivered, and their identity.

`<landing>/<system>/<feed>/<YYYY-MM-DD>/<file>.<csv|jsonl>`: a file is identified by its SHA-256,
its delivery date is its folder's name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from agrilake.core.contracts import Feed

DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SUFFIX = {"csv": ".csv", "jsonl": ".jsonl"}


@dataclass(frozen=True)
class LandedFile:
    feed: str  # <system>_<feed>
    path: str
    name: str  # path relative to the landing root
    delivery_date: date
    size: int



def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def discover(landing: str, feed: Feed, up_to: date) -> list[LandedFile]:
    """Files of `feed` in delivery folders dated <= up_to, oldest delivery first, then by name."""
    base = Path(landing) / feed.system / feed.feed
    if not base.is_dir():
        return []
    found = []
    for day_dir in sorted(base.iterdir()):
        if not (day_dir.is_dir() and DATE_DIR.match(day_dir.name)):
            continue
        delivered = date.fromisoformat(day_dir.name)
        if delivered > up_to:
            continue
        for f in sorted(day_dir.iterdir()):
            if f.is_file() and f.suffix == SUFFIX[feed.format]:
                found.append(LandedFile(feed.name, str(f), str(f.relative_to(landing)), delivered, f.stat().st_size))
    return found
