"""The landing zone as upstream systems fill it: which files were delivered, and their identity.

`<landing>/<system>/<feed>/<YYYY-MM-DD>/<file>.<csv|jsonl>`: a file is identified by its SHA-256,
its delivery date is its folder's name.

Nothing in a feed's folder is skipped without a trace. A survey sorts every entry into:
- a file to take: a regular file (or a link to one inside the landing zone) with the feed's
  extension, in a delivery folder dated <= D, settled (below);
- rejected, with a reason code, recorded in the ingest log as `rejected` and never read:
  a folder that is not a date (`2026-13-45`), a file outside a delivery folder, another extension
  or case (`.CSV`, `.csv.gz`), a folder or special file inside a delivery folder, a link that is
  broken or leads out of the landing zone (never followed: it could expose any file on the machine);
- waiting, reported and taken by a later run: delivery folders dated after D, files still
  being written, and hidden ones (`.name`: the temporary file of an upload, renamed when done).

Completion rule: upstream drops carry no marker, so a file is complete once it has not changed for
`AGRILAKE_LANDING_SETTLE_SECONDS` (its modification time is at least that old). A file that changes
after it was ingested (same name, new content) is a new version: it is read again under its new
SHA-256 and the log says which version it replaces.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from agrilake.core.contracts import Feed
from agrilake.core.dates import folder_date

SUFFIX = {"csv": ".csv", "jsonl": ".jsonl"}

# Reason codes of a rejected landing entry (ops.ingest_log.message starts with one).
NOT_A_DATE_FOLDER = "NOT_A_DATE_FOLDER"
OUTSIDE_DELIVERY_FOLDER = "OUTSIDE_DELIVERY_FOLDER"
WRONG_EXTENSION = "WRONG_EXTENSION"
NOT_A_REGULAR_FILE = "NOT_A_REGULAR_FILE"
LINK_OUT_OF_LANDING = "LINK_OUT_OF_LANDING"
UNREADABLE = "UNREADABLE"
REJECTION_REASONS = (NOT_A_DATE_FOLDER, OUTSIDE_DELIVERY_FOLDER, WRONG_EXTENSION, NOT_A_REGULAR_FILE,
                     LINK_OUT_OF_LANDING, UNREADABLE)


@dataclass(frozen=True)
class LandedFile:
    feed: str  # <system>_<feed>
    path: str
    name: str  # path relative to the landing root
    delivery_date: date
    size: int
    mtime: float = 0.0


@dataclass(frozen=True)
class Rejected:
    """A landing entry that is not read: `name` relative to the landing root, why, and its folder's date
    when it has one."""
    feed: str
    name: str
    reason: str
    detail: str
    delivery_date: date | None = None
    size: int | None = None

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass
class Survey:
    files: list[LandedFile] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    later: list[str] = field(default_factory=list)  # in folders dated after D
    settling: list[str] = field(default_factory=list)  # still changing
    hidden: list[str] = field(default_factory=list)  # `.name`: an upload's temporary file, an editor's


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# The date a delivery folder's name spells, else None (one parser for landing folders and markers).
delivery_date = folder_date


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(root)
    except (OSError, ValueError):
        return False


def survey(landing: str, feed: Feed, up_to: date, *, settle_seconds: float = 0, now: float | None = None) -> Survey:
    """Every entry under the feed's folder, sorted into files to take, rejected and waiting (module doc).

    Files come oldest delivery first, then by name; nothing here raises for what a folder holds.
    """
    if "://" in landing and not landing.startswith("file:"):
        raise ValueError(f"landing {landing!r}: the landing zone must be a local or mounted folder; "
                         "an object-store landing is not listed by this pipeline (mount it, or sync it to disk)")
    root = Path(landing.removeprefix("file://").removeprefix("file:"))
    real_root = Path(os.path.realpath(root))
    base = root / feed.system / feed.feed
    out = Survey()
    if not base.is_dir():
        return out
    now = time.time() if now is None else now
    suffix = SUFFIX[feed.format]

    def rel(p: Path) -> str:
        return str(p.relative_to(root))

    def reject(p: Path, reason: str, detail: str, day: date | None = None) -> None:
        size = None
        try:
            info = p.lstat()
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
        except OSError:
            pass
        out.rejected.append(Rejected(feed.name, rel(p), reason, detail, day, size))

    for entry in sorted(base.iterdir()):
        if entry.name.startswith("."):
            out.hidden.append(rel(entry))
            continue
        if not entry.is_dir() or entry.is_symlink():
            reject(entry, OUTSIDE_DELIVERY_FOLDER, f"not inside a delivery folder {feed.system}/{feed.feed}/YYYY-MM-DD/")
            continue
        day = delivery_date(entry.name)
        if day is None:
            inside = [Path(d, n) for d, dirs, names in os.walk(entry) for n in names + [x for x in dirs
                      if os.path.islink(os.path.join(d, x))]]  # links to folders are listed, never walked
            for f in sorted(inside) or [entry]:
                reject(f, NOT_A_DATE_FOLDER, f"folder {entry.name!r} is not a delivery date (YYYY-MM-DD)")
            continue
        try:
            listed = sorted(entry.iterdir())
        except OSError as exc:  # e.g. permission denied: the folder's files cannot even be named
            reject(entry, UNREADABLE, f"delivery folder cannot be listed: {exc.strerror or exc}", day)
            continue
        if day > up_to:
            out.later.extend(rel(f) for f in listed)
            continue
        for f in listed:
            if f.name.startswith("."):
                out.hidden.append(rel(f))
                continue
            if f.is_symlink():
                if not f.exists():
                    reject(f, LINK_OUT_OF_LANDING, "a link to nothing (broken)", day)
                    continue
                if not _inside(f, real_root):
                    reject(f, LINK_OUT_OF_LANDING, "a link to a file outside the landing zone: not followed", day)
                    continue
            if f.is_dir():
                reject(f, NOT_A_REGULAR_FILE, "a folder inside a delivery folder: its files are not read", day)
                continue
            if not f.is_file():
                reject(f, NOT_A_REGULAR_FILE, "not a regular file (a pipe, socket or device)", day)
                continue
            if f.suffix != suffix:
                reject(f, WRONG_EXTENSION, f"the {feed.feed} feed is delivered as *{suffix} (exactly this, lower case)", day)
                continue
            try:
                info = f.stat()
            except OSError as exc:
                reject(f, UNREADABLE, f"cannot be read: {exc.strerror or exc}", day)
                continue
            if not os.access(f, os.R_OK):
                reject(f, UNREADABLE, "cannot be read: permission denied", day)
                continue
            if now - info.st_mtime < settle_seconds:
                out.settling.append(rel(f))
                continue
            out.files.append(LandedFile(feed.name, str(f), rel(f), day, info.st_size, info.st_mtime))
    return out


def discover(landing: str, feed: Feed, up_to: date) -> list[LandedFile]:
    """Files of `feed` in delivery folders dated <= up_to, oldest delivery first, then by name."""
    return survey(landing, feed, up_to).files
