"""Runs that must not overlap: two ingests of one system, two silver runs of one domain.

Both would plan from the same state (files not yet logged, bronze rows not yet settled) and both
would write them: rows twice. Delta's optimistic concurrency does not see it, since each append is
valid on its own. So such a run takes an exclusive lock first and waits for the other to finish; it
then plans from what that run committed, and has nothing to redo.

On a local or mounted lakehouse the lock is an flock on `<lakehouse>/_locks/<name>.lock`, released by
the kernel if the process dies (a SIGKILLed run never leaves a stale lock). An object-store
lakehouse has no such primitive: there the scheduler serialises these runs (one active run per DAG,
docs/deployment.md), and the lock is a no-op that says so once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def _local_root(lakehouse: str) -> Path | None:
    if "://" in lakehouse and not lakehouse.startswith("file:"):
        return None
    return Path(lakehouse.removeprefix("file://").removeprefix("file:"))


@contextlib.contextmanager
def exclusive(settings, names: list[str], *, what: str) -> Iterator[None]:
    """Hold the locks `names` (taken in sorted order, so two runs never wait on each other in a
    cycle) for the block; waits, saying for what, while another run holds one."""
    root = _local_root(settings.lakehouse)
    if root is None:
        log.info("%s: object-store lakehouse, no lock here; the scheduler runs one at a time", what)
        yield
        return
    folder = root / "_locks"
    folder.mkdir(parents=True, exist_ok=True)
    held: list[int] = []
    try:
        for name in sorted(set(names)):
            fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            held.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s: another run holds %s; waiting for it to finish", what, name)
                started = time.monotonic()
                fcntl.flock(fd, fcntl.LOCK_EX)
                log.info("%s: %s free after %.0f s", what, name, time.monotonic() - started)
        yield
    finally:
        for fd in reversed(held):
            os.close(fd)  # closing the descriptor releases its flock
