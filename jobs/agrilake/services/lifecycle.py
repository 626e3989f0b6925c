"""The one lifecycle of the local servers (object store, Airflow, SQL endpoint): state, start, stop, CLI.

A server is a process started in a session of its own (Ctrl+C in the shell that started it must not
stop it), described by `<run_dir>/server.json`: pid, ports, URL, never a secret, always written
whole. A pid there counts only while it lives (a JVM whose leader thread exited still does:
processes.pid_alive) and its command line is this server's: a stale file may name an unrelated
process by now. `start` waits until the server answers and otherwise says why, with the end of its
logs. `stop` ends the whole server, whatever exits under it meanwhile: SIGTERM to every process of
its tree (processes.ProcessTree: its group, every descendant, the processes it recorded with their
start times, looked for again until they are gone, so a process orphaned or forked meanwhile is
still found), then after a timeout stop them all (SIGSTOP: nothing forks any more) and SIGKILL
them; it returns once nobody answers on its ports any more.

A server subclasses `Server` and says only what is its own: how to launch (`launch`, with `spawn`
and `wait_ready`), when it serves (`ready`), which command lines are its (`owns`) and its `ports`;
it `record`s processes it starts itself. `main(argv)` of each is `command` + `run`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from agrilake.services.processes import ProcessTree, answers, cmdline, identities, pid_alive

log = logging.getLogger(__name__)

STATE_FILE = "server.json"


class LifecycleError(RuntimeError):
    """A local server cannot start, answer or stop; the message says why and where its logs are."""


class ExitedAtStart(LifecycleError):
    """The server exited before it answered (a port taken meanwhile, a bad flag, a full disk)."""


class NotReady(Exception):
    """Raised by Server.ready() while the server does not serve yet; the message says what is missing."""


def write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    """Write `path` whole or not at all; `private`: mode 0600, never readable by others, not even briefly."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer: Airflow's supervisor writes too
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        if private:
            os.fchmod(fd, 0o600)  # O_CREAT keeps the mode of a leftover tmp file
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, without Java stack frames."""
    with contextlib.suppress(OSError):
        keep = [ln for ln in path.read_text(errors="replace").splitlines() if not ln.startswith("\tat ")]
        return "\n".join(keep[-lines:])
    return ""


class Server:
    """One local server whose state lives in `run_dir`; see the module's docstring."""

    title = "server"  # in messages: "<title> stopped"
    error: type[LifecycleError] = LifecycleError
    url_key = "url"  # the state's key for where clients connect
    poll_interval = 0.2  # seconds between readiness checks at start
    start_timeout = 60.0  # seconds start waits for it to serve
    stop_timeout = 30.0  # seconds from SIGTERM to SIGKILL
    tail_lines = 15
    run_dir_mode = 0o777

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._proc: subprocess.Popen | None = None
        self._started_here = False

    # -- what a server says about itself (overridden) ----------------------------------------------
    def owns(self, args: list[str], state: dict) -> bool:
        """Is the command line `args` this server's (given its state)?"""
        return True

    def ports(self, state: dict) -> list[int]:
        """The ports it listens on: stop returns once none answers."""
        return []

    def ready(self) -> Any:
        """Something true once the server serves; else falsy, or NotReady saying what is missing."""
        raise NotImplementedError

    def launch(self, timeout: float) -> None:
        """Prepare and start the server (not running): `spawn`, then `wait_ready` under `stop_on_failure`."""
        raise NotImplementedError

    # -- files and state ---------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.run_dir / "server.log"

    def log_files(self) -> list[Path]:
        return [self.log_file]

    def state(self) -> dict:
        return read_json(self.state_file)

    def write_state(self, state: dict) -> None:
        write_atomic(self.state_file, json.dumps(state, indent=2))

    def _forget_pid(self) -> None:
        state = self.state()
        if state.get("pid"):
            self.write_state({**state, "pid": None})  # the ports stay: a next start may reuse them

    @property
    def url(self) -> str | None:
        return self.state().get(self.url_key)

    def log_tails(self) -> str:
        return "\n".join(f"the end of {path}:\n{log_tail(path, self.tail_lines)}"
                         for path in self.log_files() if path.exists())

    # -- liveness ----------------------------------------------------------------------------------
    def alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # also reaps our own child, which would linger as a zombie
        return pid_alive(pid)

    def is_ours(self, pid: int | None, state: dict | None = None) -> bool:
        """Is `pid` alive and this server? Where /proc cannot tell, the state file is trusted."""
        if not pid or not self.alive(pid):
            return False
        args = cmdline(pid)
        return args is None or self.owns(args, self.state() if state is None else state)

    def pid(self) -> int | None:
        state = self.state()
        return state["pid"] if self.is_ours(state.get("pid"), state) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    @contextlib.contextmanager
    def lock(self):
        """Exclusive while starting: a second `start` waits, then finds the server running."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=self.run_dir_mode)
        with open(self.run_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    # -- start -------------------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> Self:
        """Start the server unless it runs; either way return once it serves."""
        timeout = self.start_timeout if timeout is None else timeout
        with self.lock():
            if self.is_running():
                log.info("%s already running at %s (pid %s)", self.title, self.url, self.pid())
                self.wait_ready(timeout)
            else:
                self.launch(timeout)
        return self

    def spawn(self, argv: list[str], state: dict, *, log_file: Path | None = None,
              **popen) -> subprocess.Popen:
        """Start `argv` in a session and process group of its own, output to its log; add it to the state."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=self.run_dir_mode)
        with open(log_file or self.log_file, "ab") as out:
            self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, **popen)
        self._started_here = True
        self.write_state({"pid": self._proc.pid, **state, "started_at": datetime.now(UTC).isoformat(),
                          "processes": identities(self._proc.pid)})
        return self._proc

    @contextlib.contextmanager
    def stop_on_failure(self):
        """A start that fails or is interrupted leaves nothing running."""
        try:
            yield
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> Any:
        """Until `ready()` says it serves: ExitedAtStart when it exits first, `error` after `timeout`."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            pid = self.state().get("pid")
            if not pid or not self.alive(pid):
                code = self._proc.returncode if self._proc is not None and self._proc.pid == pid else None
                raise ExitedAtStart(f"{self.title} exited during start-up"
                                    f"{'' if code is None else f' (exit {code})'}; {self.log_tails()}")
            try:
                if result := self.ready():
                    return result
            except (NotReady, OSError, ValueError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise self.error(f"{self.title} at {self.url} did not serve within {timeout:.0f} s"
                                 f"{f' ({last})' if last else ''}; {self.log_tails()}")
            time.sleep(self.poll_interval)

    # -- stop --------------------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM to every process of the server (processes.ProcessTree: its group, all descendants, those it
        recorded, also those forked or orphaned meanwhile), SIGKILL after `timeout` to any left; then wait
        until nobody answers on its ports. False when it was not running; `error` naming any process the
        kernel would not let go of."""
        timeout = self.stop_timeout if timeout is None else timeout
        state = self.state()
        pid = state.get("pid")
        if not self.is_ours(pid, state):
            self._forget_pid()
            return False
        stubborn, left = ProcessTree(pid, state.get("processes", [])).end(timeout)
        if stubborn:
            log.warning("%s: processes %s still running %.0f s after SIGTERM: killed them", self.title,
                        stubborn, timeout)
        if left:
            raise self.error(f"{self.title}: processes {left} survived SIGKILL (stuck in the kernel, e.g. on a "
                             "dead disk or mount): they end when the kernel lets them")
        # A listener closes with the last thread of its process: "stopped" means nobody answers any more.
        ports, deadline = self.ports(state), time.monotonic() + 5
        while any(answers(p, timeout=0.2) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._forget_pid()
        log.info("%s in %s stopped", self.title, self.run_dir)
        return True

    def record(self, *procs: int) -> None:
        """Add processes this server started to its state, with their start times: `stop` ends them even
        when they left its group and their parent is gone."""
        state = self.state()
        self.write_state({**state, "processes": [*state.get("processes", []), *identities(*procs)]})

    # -- status and use as a context manager -------------------------------------------------------
    def status(self) -> dict:
        pid = self.pid()
        return {"running": pid is not None, "pid": pid, self.url_key: self.url if pid else None,
                "logs": str(self.run_dir)}

    def status_report(self) -> tuple[str, int]:
        """What `status` prints and its exit code."""
        return json.dumps(self.status(), indent=2), 0

    def started_message(self, seconds: float) -> str:
        return f"{self.title} running: {self.url} (pid {self.pid()}, ready after {seconds:.0f} s)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        # Stop only what this object started: a server that was already running stays up.
        if self._started_here:
            self.stop()


ACTIONS = ("start", "stop", "status")


def command(prog: str, doc: str, server: type[Server], *, actions: tuple[str, ...] = ACTIONS,
            actions_help: str | None = None, epilog: bool = False) -> argparse.ArgumentParser:
    """The parser of `agrilake <server> start|stop|status`; a server adds its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                                     epilog=doc.split("\n\n", 1)[1] if epilog else None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=actions, help=actions_help)
    timeout = server.start_timeout
    parser.add_argument("--timeout", type=float, default=timeout,
                        help=f"seconds to wait at start until it serves (default {timeout:.0f})")
    return parser


def run(server: Server, action: str, *, prog: str, timeout: float,
        errors: tuple[type[Exception], ...] = ()) -> int:
    """Do `action` (start, stop, status) and print the outcome; an error is one line on stderr and exit 1."""
    t0 = time.monotonic()
    try:
        if action == "start":
            server.start(timeout=timeout)
            print(server.started_message(time.monotonic() - t0))
        elif action == "stop":
            print(f"{server.title} stopped" if server.stop() else f"{server.title} was not running")
        else:
            text, code = server.status_report()
            print(text)
            return code
    except (LifecycleError, *errors) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0
