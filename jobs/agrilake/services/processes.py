"""Local server processes (object store, Airflow, SQL endpoint, test clusters): ports, liveness, trees."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Can a server listen on `port`? Like Go's listeners, ignore connections lingering in TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def answers(port: int, timeout: float = 1.0) -> bool:
    """Does anything accept connections on 127.0.0.1:`port`?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((HOST, port)) == 0


def pid_alive(pid: int) -> bool:
    """Is `pid` running? A zombie (exited, not yet reaped: PID 1 in a container may reap nothing) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The leader of a multithreaded process (a JVM) can show "Z" while its other threads still run and
    # hold its sockets: gone only when every thread is a zombie or dead.
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return True  # no /proc: kill(0) is all there is
    for task in tasks.iterdir():
        with contextlib.suppress(OSError):
            if (task / "stat").read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
                return True
    return False


def cmdline(pid: int) -> list[str] | None:
    """The command line of `pid`, or None where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None


def _processes() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live, non-zombie process (none where there is no /proc)."""
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            state, parent, group = fields[0], int(fields[1]), int(fields[2])
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z":
            yield int(entry.name), parent, group


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is `pgid`."""
    return [pid for pid, _, group in _processes() if group == pgid]


def descendants(pid: int) -> set[int]:
    """Live pids below `pid` in the process tree (task processes run in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
