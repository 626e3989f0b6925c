"""Local server processes (object store, Airflow, SQL endpoint, test clusters): ports and liveness."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Can a server listen on `port`? Like Go's listeners, ignore connections lingering in TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
