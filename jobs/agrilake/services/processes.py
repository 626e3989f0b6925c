"""Local server processes (object store, Airflow, SQL endpoint, test clusters): ports, liveness, trees."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

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
    """Is `pid` running? A zombie (exited, not yet reaped: PID 1 in a container may reap nothing) counts as gone.
    Never raises: a process that exits while it is being looked at is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The leader of a multithreaded process (a JVM) can show "Z" while its other threads still run and
    # hold its sockets: gone only when every thread is a zombie or dead.
    tasks = f"/proc/{pid}/task"
    try:
        names = os.listdir(tasks)
    except FileNotFoundError:
        # Reaped between kill(0) and the listing (`agrilake airflow stop` once died of exactly this),
        # unless there is no /proc at all, where kill(0) is all there is.
        return not os.path.isdir("/proc/self")
    except OSError:
        return True
    for task in names:
        with contextlib.suppress(OSError):
            if Path(tasks, task, "stat").read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
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


def descendants(*pids: int) -> set[int]:
    """Live pids below `pids` in the process tree (task processes run in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = set(), list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def handle(pid: int) -> psutil.Process | None:
    """A psutil handle on `pid` (it remembers the start time, so a pid reused later is never taken for it),
    or None when the process is gone."""
    try:
        return psutil.Process(pid)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None  # another user's process: never one of ours


def identities(*pids: int) -> list[list[float]]:
    """[pid, start time] of each of `pids` still running: how a state file records a process so that a pid
    reused later is not taken for it."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append([pid, psutil.Process(pid).create_time()])
    return found


class ProcessTree:
    """Every process of a server, gathered again and again while it stops, never forgotten: its leader, the
    leader's and every known process's descendants, its process group, and the processes its state recorded.

    A process whose parent exits under us is reparented (to init, or to a subreaper), so it is no longer a
    descendant of the leader: it stays known because it was seen before. Each is a psutil handle, so a pid
    that a new, unrelated process takes over after ours exited is never signalled."""

    def __init__(self, leader: int, recorded: list | tuple = ()):
        self.leader = leader
        self.pgid = leader  # every server is started as the leader of its own session and group
        self.known: dict[int, psutil.Process] = {}  # never this process: a supervisor ends what is below it
        for entry in [leader, *recorded]:
            pid, started = (entry, None) if isinstance(entry, int) else (int(entry[0]), entry[1])
            proc = handle(pid) if pid != os.getpid() else None
            with contextlib.suppress(psutil.Error):
                if proc is not None and (started is None or abs(proc.create_time() - started) < 0.05):
                    self.known[pid] = proc

    def _same(self, pid: int) -> bool:
        """`pid` still names the process we knew under it (not a reused pid)."""
        proc = self.known.get(pid)
        try:
            return proc is not None and proc.is_running()
        except psutil.Error:
            return False

    def _leader_replaced(self) -> bool:
        """Is the leader's pid running another process now? Then its process group is someone else's too. (A
        group outliving its leader keeps the leader's pid as its id, and Linux gives that pid to nobody else
        meanwhile: while the pid is free, the group is still ours.)"""
        if self.leader == os.getpid():
            return False
        now, known = handle(self.leader), self.known.get(self.leader)
        try:
            return now is not None and (known is None or now.create_time() != known.create_time())
        except psutil.Error:
            return False

    def discover(self) -> list[psutil.Process]:
        """Look again; the processes found that were not known yet (they are known from now on)."""
        roots = [pid for pid in self.known if self._same(pid)]
        if self.leader == os.getpid():
            roots.append(self.leader)
        replaced = self._leader_replaced()
        group = [] if replaced else [pid for pid, _, g in _processes() if g == self.pgid]
        new = []
        for pid in descendants(*roots) | set(group):
            if pid == os.getpid() or (pid in self.known and self._same(pid)):
                continue
            proc = handle(pid)
            if proc is not None:
                self.known[pid] = proc
                new.append(proc)
        return new

    def alive(self) -> list[psutil.Process]:
        """Known processes still running (a zombie is gone; a zombie leader with live threads is not)."""
        return [proc for pid, proc in self.known.items() if self._same(pid) and pid_alive(pid)]

    def signal(self, sig: int, procs: list[psutil.Process] | None = None) -> None:
        for proc in self.alive() if procs is None else procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)  # psutil checks the start time first: never a reused pid

    def kill(self, timeout: float = 10.0) -> list[psutil.Process]:
        """SIGKILL every process of the tree, none escaping: stop them all first (a stopped process cannot
        fork), looking again until nothing new turns up, then kill. Returns those still running after
        `timeout` (none, unless the kernel holds one in uninterruptible sleep)."""
        for _ in range(100):
            self.signal(signal.SIGSTOP)
            if not self.discover():
                break
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while (left := self.alive()) and time.monotonic() < deadline:
            self.signal(signal.SIGKILL, left)
            time.sleep(0.05)
        return self.alive()

    def end(self, timeout: float) -> tuple[list[int], list[int]]:
        """SIGTERM to every process, looking again for new ones until all are gone or `timeout` passed, then
        `kill` what is left. Returns (pids that needed SIGKILL, pids still running after it)."""
        self.discover()
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            if new := self.discover():
                self.signal(signal.SIGTERM, new)
            self.reap()  # our own children exit as zombies until collected
            time.sleep(0.1)
        stubborn = sorted(p.pid for p in self.alive())
        left = sorted(p.pid for p in self.kill()) if stubborn else []
        self.reap()
        return stubborn, left

    def reap(self) -> None:
        """Collect those that were this process's children, so none lingers as our zombie."""
        for pid in self.known:
            if self._same(pid):  # a zombie still is; a pid reused by another child of ours is not
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
