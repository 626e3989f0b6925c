"""What a feed's landing folder holds, sorted without reading a byte (agrilake.stages.bronze.landing.survey):
files to take, entries rejected with a reason code, and what waits for a later run. Nothing raises,
nothing is skipped without a trace, no link is followed out of the landing zone."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pytest

from agrilake.core.contracts import packaged
from agrilake.stages.bronze import landing

MEMBERS = packaged().feed("coop_members")
SALES = packaged().feed("coop_sales")
D = date(2026, 11, 2)


def _put(root, rel: str, content: bytes = b"member_id\n1\n"):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "landing"
    base = "coop/members"
    for rel in (f"{base}/2026-11-01/a.csv", f"{base}/2026-11-02/b[1]*?.csv", f"{base}/2026-11-02/B.CSV",
                f"{base}/2026-11-02/c.csv.gz", f"{base}/2026-11-02/notes.txt", f"{base}/2026-13-45/d.csv",
                f"{base}/2026-02-30/deep/e.csv", f"{base}/stray.csv", f"{base}/2026-11-02/sub/f.csv",
                f"{base}/2026-11-03/later.csv", f"{base}/2026-11-02/.partial.csv"):
        _put(root, rel)
    (root / base / "not-a-date").mkdir()
    secret = _put(tmp_path, "secrets/credentials", b"AWS_SECRET=sentinel\n")
    os.symlink(secret, root / base / "2026-11-02" / "creds.csv")
    os.symlink(tmp_path / "nowhere.csv", root / base / "2026-11-02" / "broken.csv")
    os.symlink(root / base / "2026-11-01" / "a.csv", root / base / "2026-11-02" / "inside-link.csv")
    os.mkfifo(root / base / "2026-11-02" / "pipe.csv")
    return root


def test_every_entry_is_taken_rejected_or_waiting(tree):
    found = landing.survey(str(tree), MEMBERS, D)
    assert [f.name for f in found.files] == ["coop/members/2026-11-01/a.csv", "coop/members/2026-11-02/b[1]*?.csv",
                                             "coop/members/2026-11-02/inside-link.csv"]
    assert [(f.delivery_date, f.size) for f in found.files][:2] == [(date(2026, 11, 1), 12), (D, 12)]
    rejected = {r.name.removeprefix("coop/members/"): r.reason for r in found.rejected}
    assert rejected == {
        "2026-11-02/B.CSV": landing.WRONG_EXTENSION, "2026-11-02/c.csv.gz": landing.WRONG_EXTENSION,
        "2026-11-02/notes.txt": landing.WRONG_EXTENSION,
        "2026-11-02/broken.csv": landing.LINK_OUT_OF_LANDING, "2026-11-02/creds.csv": landing.LINK_OUT_OF_LANDING,
        "2026-11-02/pipe.csv": landing.NOT_A_REGULAR_FILE, "2026-11-02/sub": landing.NOT_A_REGULAR_FILE,
        "2026-13-45/d.csv": landing.NOT_A_DATE_FOLDER, "2026-02-30/deep/e.csv": landing.NOT_A_DATE_FOLDER,
        "not-a-date": landing.NOT_A_DATE_FOLDER, "stray.csv": landing.OUTSIDE_DELIVERY_FOLDER,
    }
    by_name = {r.name: r for r in found.rejected}
    assert by_name["coop/members/2026-13-45/d.csv"].delivery_date is None
    assert by_name["coop/members/2026-11-02/B.CSV"].delivery_date == D
    assert by_name["coop/members/2026-11-02/creds.csv"].message.startswith("LINK_OUT_OF_LANDING: ")
    assert by_name["coop/members/2026-11-02/creds.csv"].size is None  # a link: its target is never looked at
    assert found.later == ["coop/members/2026-11-03/later.csv"]
    assert found.settling == []
    assert found.hidden == ["coop/members/2026-11-02/.partial.csv"]


def test_a_file_still_being_written_waits_until_it_has_settled(tmp_path):
    root = tmp_path / "landing"
    fresh = _put(root, "coop/sales/2026-11-02/now.jsonl", b'{"sale_id": "S1"}\n')
    old = _put(root, "coop/sales/2026-11-02/old.jsonl", b'{"sale_id": "S2"}\n')
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    found = landing.survey(str(root), SALES, D, settle_seconds=300)
    assert [f.name for f in found.files] == ["coop/sales/2026-11-02/old.jsonl"]
    assert found.settling == ["coop/sales/2026-11-02/now.jsonl"]
    later = landing.survey(str(root), SALES, D, settle_seconds=300, now=fresh.stat().st_mtime + 301)
    assert [f.name for f in later.files] == ["coop/sales/2026-11-02/now.jsonl", "coop/sales/2026-11-02/old.jsonl"]


@pytest.mark.parametrize("name", ["2026-11-02", "2024-02-29"])
def test_delivery_dates_are_real_days(name):
    assert landing.delivery_date(name) == date.fromisoformat(name)


@pytest.mark.parametrize("name", ["2026-13-45", "2026-02-30", "2026-1-02", "20261102", "2026-11-02x", "２０２６-11-02"])
def test_anything_else_is_not_a_delivery_date(name):
    assert landing.delivery_date(name) is None


def test_an_object_store_landing_is_refused_not_listed_as_empty():
    with pytest.raises(ValueError, match="local or mounted folder"):
        landing.survey("s3a://bucket/landing", SALES, D)


def test_a_folder_or_file_the_pipeline_may_not_read_is_rejected_not_fatal(tmp_path, monkeypatch):
    """Permission denied, faked because the tests may run as root (which no mode bit stops): the
    folder or file is logged UNREADABLE and every other file is still taken."""
    root = tmp_path / "landing"
    locked_dir = _put(root, "coop/members/2026-11-01/a.csv").parent
    locked_file = _put(root, "coop/members/2026-11-02/b.csv")
    _put(root, "coop/members/2026-11-02/c.csv")
    iterdir, access = landing.Path.iterdir, os.access

    def listing(self):
        if self == locked_dir:
            raise PermissionError(13, "Permission denied")
        return iterdir(self)

    monkeypatch.setattr(landing.Path, "iterdir", listing)
    monkeypatch.setattr(landing.os, "access", lambda p, mode: Path(p) != locked_file and access(p, mode))
    found = landing.survey(str(root), MEMBERS, D, settle_seconds=0)
    assert [f.name for f in found.files] == ["coop/members/2026-11-02/c.csv"]
    assert {r.name: (r.reason, r.message) for r in found.rejected} == {
        "coop/members/2026-11-01": (landing.UNREADABLE, "UNREADABLE: delivery folder cannot be listed: Permission denied"),
        "coop/members/2026-11-02/b.csv": (landing.UNREADABLE, "UNREADABLE: cannot be read: permission denied")}
