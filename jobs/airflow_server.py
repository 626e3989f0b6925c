"""A local Airflow with its UI: API server, scheduler and dag-processor on 127.0.0.1, SQLite, the project's DAGs.

    agrilake airflow start [--port 8080]   # returns once the API server says the scheduler and
                                           # dag-processor are healthy; prints the URL and the login
    agrilake airflow status
    agrilake airflow stop                  # stops every process of the group

The three components are the ones infra/compose.yaml runs as services, here under one small
supervisor process that is the leader of its own process group, so `stop` ends all of them (and
the task processes they started) at once. Everything lives in the Airflow home (AIRFLOW_HOME,
default `.airflow/`, git-ignored):

    server/server.pid         pid of the supervisor = the process group to stop
    server/server.json        port, URL, pids of the components (no secrets)
    server/<component>.log    output of the api-server, scheduler, dag-processor and supervisor
    simple_auth_manager_passwords.json.generated   0600, the UI password(s)

Login: Airflow 3's SimpleAuthManager with the users of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
(default `admin:admin`, user admin with role admin). The password is generated here from the OS
CSPRNG before the first start: Airflow would otherwise generate it and print it into the API
server's log. `start` shows it on the terminal only; it never goes to a log.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from jobs.processes import free_port, port_is_free
from jobs.processes import pid_alive as _alive
from jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

COMPONENTS = ("api-server", "scheduler", "dag-processor")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
DEFAULT_PORT = 8080


class AirflowServerError(RuntimeError):
    """The local Airflow cannot start or answer; the message says why and where the logs are."""


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is `pgid` (from /proc; empty where there is no /proc)."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def descendants(pid: int) -> set[int]:
    """Live pids below `pid` in the process tree (task processes run in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def http_json(url: str, *, data: dict | None = None, token: str | None = None, timeout: float = 5) -> dict:
    headers = {"Accept": "application/json"}
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own loopback server
        return json.loads(resp.read().decode())


class AirflowServer:
    """The local Airflow of one Airflow home: start, stop, status, health, login and a REST token."""

    def __init__(self, home: str | Path | None = None, *, port: int | None = None,
                 settings: Settings | None = None, env: dict[str, str] | None = None):
        self.settings = settings or get_settings()
        self.base_env = dict(os.environ if env is None else env)
        self.home = Path(home or self.base_env.get("AIRFLOW_HOME") or self.settings.airflow_home).resolve()
        # None: 8080, or a free port when that is taken; 0: any free port (tests).
        self.wanted_port = DEFAULT_PORT if port is None else port
        self.bin = Path(sys.executable).parent

    @property
    def airflow(self) -> str:
        """The `airflow` of this interpreter's environment (the venv), else the one on PATH."""
        beside = self.bin / "airflow"
        return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")

    # -- files -------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "server"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "server.pid"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "server.json"

    def log_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.log"

    @property
    def passwords_file(self) -> Path:
        configured = self.base_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        return Path(configured) if configured else self.home / PASSWORDS_FILE

    @property
    def users(self) -> list[str]:
        spec = self.base_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or "admin:admin"
        return [u.split(":", 1)[0].strip() for u in spec.split(",") if u.strip()]

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @property
    def url(self) -> str | None:
        return self.state().get("url")

    # -- process -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The supervisor's pid when it runs and is ours (a stale pid file may name another process)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if "jobs.airflow_server" not in args or str(self.home) not in args:
                return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    @contextlib.contextmanager
    def _lock(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def env(self, port: int) -> dict[str, str]:
        """The components' environment: loopback on `port`, this home, the project's DAGs, SQLite-sized."""
        env = dict(self.base_env)
        url = f"http://127.0.0.1:{port}"
        env.update(
            AIRFLOW_HOME=str(self.home),
            # `airflow` subprocesses (task runners, the components themselves) must be this venv's.
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__BASE_URL=url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
            AIRFLOW__CORE__AUTH_MANAGER=SIMPLE_AUTH_MANAGER,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            SPARK_LOCAL_IP=env.get("SPARK_LOCAL_IP", "127.0.0.1"),
        )
        env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(self.settings.home / "dags"))
        env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        # 2 cores: two task processes at a time, one API worker (each uvicorn worker is ~250 MB).
        env.setdefault("AIRFLOW__CORE__PARALLELISM", "2")
        env.setdefault("AIRFLOW__API__WORKERS", "1")
        env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
        return env

    def ensure_passwords(self) -> dict[str, str]:
        """A 0600 passwords file with one password per configured user, generated here, never logged."""
        path = self.passwords_file
        passwords: dict[str, str] = {}
        if path.is_file():
            passwords = json.loads(path.read_text(encoding="utf-8").strip() or "{}")
        missing = [u for u in self.users if u not in passwords]
        if missing:
            passwords.update({u: secrets.token_urlsafe(18) for u in missing})
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (json.dumps(passwords) + "\n").encode())
            finally:
                os.close(fd)
            os.replace(tmp, path)
        elif path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return passwords

    def _choose_port(self) -> int:
        if self.wanted_port == 0:
            return free_port()
        if port_is_free(self.wanted_port):
            return self.wanted_port
        port = free_port()
        log.warning("port %s is taken: the Airflow UI takes port %s instead", self.wanted_port, port)
        return port

    def _migrate(self, env: dict[str, str]) -> None:
        """`airflow db migrate`: idempotent, and it keeps the SQLite schema in step with the installed Airflow."""
        out = self.log_file("migrate")
        with open(out, "wb") as fh:
            rc = subprocess.run([self.airflow, "db", "migrate"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600).returncode
        if rc:
            raise AirflowServerError(f"`airflow db migrate` failed (exit {rc}); the end of {out}:\n{self._tail(out)}")

    def start(self, timeout: float = 180.0) -> AirflowServer:
        with self._lock():
            if self.is_running():
                log.info("Airflow already running at %s (pid %s)", self.url, self.pid())
                return self
            self.home.mkdir(parents=True, exist_ok=True)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            port = self._choose_port()
            env = self.env(port)
            self.ensure_passwords()
            self._migrate(env)
            with open(self.log_file("supervisor"), "ab") as out:
                # Its own session and process group: Ctrl+C in the shell that ran `start` must not stop
                # it, and `stop` can signal every process of the group at once.
                proc = subprocess.Popen(
                    [sys.executable, "-m", "jobs.airflow_server", "supervise", "--home", str(self.home)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.home, start_new_session=True,
                )
            self.pid_file.write_text(f"{proc.pid}\n")
            self._write_state({"pid": proc.pid, "port": port, "url": f"http://127.0.0.1:{port}",
                               "home": str(self.home), "dags_folder": env["AIRFLOW__CORE__DAGS_FOLDER"],
                               "started_at": datetime.now(UTC).isoformat()})
            try:
                self.wait_healthy(timeout, proc=proc)
            except BaseException:
                self.stop()
                raise
            return self

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_name("server.json.tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def health(self) -> dict | None:
        url = self.url
        if not url:
            return None
        try:
            return http_json(f"{url}/api/v2/monitor/health", timeout=3)
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float, proc: subprocess.Popen | None = None) -> dict:
        """Until the metadatabase, scheduler and dag-processor are healthy (the API server answers first)."""
        deadline = time.monotonic() + timeout
        health = None
        wanted = ("metadatabase", "scheduler", "dag_processor")
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AirflowServerError(f"Airflow stopped during start-up (exit {proc.returncode}):\n"
                                         f"{self.log_tails()}")
            health = self.health()
            if health and all((health.get(k) or {}).get("status") == "healthy" for k in wanted):
                return health
            time.sleep(1)
        raise AirflowServerError(f"Airflow at {self.url} was not healthy within {timeout:.0f} s "
                                 f"(last health: {health}):\n{self.log_tails()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the process group (and task processes that left it), SIGKILL what is left after `timeout`.

        Processes forked while the group shuts down (a dag-processor parsing a file, say) are
        signalled as they appear. False when it was not running.
        """
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        signalled: set[int] = set()

        def live() -> set[int]:
            return {p for p in {pid} | descendants(pid) | set(group_members(pid)) | signalled if _alive(p)}

        def signal_all(sig: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            for p in live():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, sig)
                signalled.add(p)

        signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (left := live()) and time.monotonic() < deadline:
            if left - signalled:
                signal_all(signal.SIGTERM)
            time.sleep(0.2)
        if left := live():
            log.warning("Airflow processes %s still running %.0f s after SIGTERM: killing them", sorted(left), timeout)
            while live():
                signal_all(signal.SIGKILL)
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("Airflow at %s stopped", self.home)
        return True

    def status(self) -> dict:
        pid = self.pid()
        state = self.state()
        health = self.health() if pid else None
        return {
            "home": str(self.home),
            "running": pid is not None,
            "pid": pid,
            "url": state.get("url") if pid else None,
            "components": state.get("components", {}) if pid else {},
            "health": {k: v.get("status") for k, v in (health or {}).items()} if health else None,
            "logs": str(self.run_dir),
        }

    # -- login -------------------------------------------------------------------------------
    def password(self, user: str = "admin") -> str | None:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(self.passwords_file.read_text(encoding="utf-8") or "{}").get(user)
        return None

    def token(self, user: str = "admin", password: str | None = None) -> str:
        """A JWT for the REST API: POST /auth/token with the user's SimpleAuthManager password."""
        body = {"username": user, "password": password or self.password(user) or ""}
        return http_json(f"{self.url}/auth/token", data=body)["access_token"]

    def dag_ids(self, token: str) -> set[str]:
        return {d["dag_id"] for d in http_json(f"{self.url}/api/v2/dags?limit=1000", token=token)["dags"]}

    # -- logs --------------------------------------------------------------------------------
    @staticmethod
    def _tail(path: Path, lines: int = 12) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def log_tails(self, lines: int = 12) -> str:
        parts = []
        for component in (*COMPONENTS, "supervisor"):
            path = self.log_file(component)
            if path.exists():
                parts.append(f"--- the end of {path}\n{self._tail(path, lines)}")
        return "\n".join(parts)


def supervise(home: Path) -> int:
    """Run the components until SIGTERM/SIGINT or until one of them exits; then stop the others.

    A half-running Airflow (say, a dead scheduler behind a live UI) would look fine and run nothing,
    so one component exiting brings the whole group down and `status` says so.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor: %(message)s")
    server = AirflowServer(home)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    procs: dict[str, subprocess.Popen] = {}
    for component in COMPONENTS:
        with open(server.log_file(component), "ab") as out:
            procs[component] = subprocess.Popen([server.airflow, component], stdout=out,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    state = server.state()
    state["components"] = {name: p.pid for name, p in procs.items()}
    server._write_state(state)
    log.info("started %s", ", ".join(f"{n} (pid {p.pid})" for n, p in procs.items()))
    rc = 0
    while not stopping:
        exited = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if exited:
            log.error("%s exited: stopping the others", ", ".join(f"{n} (exit {c})" for n, c in exited.items()))
            rc = 1
            break
        time.sleep(0.5)
    if stopping:
        log.info("%s received: stopping %s", stopping[0], ", ".join(procs))
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 25
    for p in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake airflow", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status", "supervise"),
                        help="supervise: internal, what `start` runs in the background")
    parser.add_argument("--home", help="Airflow home (default AIRFLOW_HOME, i.e. .airflow)")
    parser.add_argument("--port", type=int, help=f"UI/API port (default {DEFAULT_PORT}, a free one when taken; 0 = any)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a healthy start")
    args = parser.parse_args(argv)
    if args.action == "supervise":
        return supervise(Path(args.home))
    server = AirflowServer(args.home, port=args.port)
    try:
        if args.action == "start":
            t0 = time.monotonic()
            server.start(timeout=args.timeout)
            # The terminal of whoever ran `start` only: this output is not a log file.
            users = ", ".join(f"{u} / {server.password(u)}" for u in server.users)
            print(f"Airflow UI: {server.url}  (healthy after {time.monotonic() - t0:.0f} s, pid {server.pid()})\n"
                  f"login (user / password): {users}\n"
                  f"passwords file: {server.passwords_file} (0600); logs: {server.run_dir}/\n"
                  f"stop with: agrilake airflow stop")
        elif args.action == "stop":
            print("stopped" if server.stop() else "not running")
        else:
            print(json.dumps(server.status(), indent=2))
    except AirflowServerError as exc:
        print(f"agrilake airflow: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
