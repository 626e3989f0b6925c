"""A local Airflow with its UI: API server, scheduler and dag-processor on 127.0.0.1, SQLite, the project's DAGs.

    agrilake airflow start [--port 8080]   # returns once the API server says the scheduler and
                                           # dag-processor are healthy; prints the URL and the login
    agrilake airflow status
    agrilake airflow stop                  # stops every process it started, tasks included

The three components are the ones infra/compose.yaml runs as services, here under one small
supervisor process that is the leader of its own process group and a child subreaper: a process
orphaned below it (the LocalExecutor's workers when the scheduler exits, a task whose worker died)
becomes its child rather than init's, so `stop` (lifecycle: every process of the tree, SIGKILL
after a timeout) and the supervisor's own shutdown end all of them, however they exit meanwhile.
Everything lives in the Airflow home (AIRFLOW_HOME, default `.airflow/`, git-ignored):

    server/server.json        pid of the supervisor (= the process group to stop), port, URL, pids and
                              start times of the components (no secrets)
    server/<component>.log    output of the api-server, scheduler, dag-processor and supervisor
    simple_auth_manager_passwords.json.generated   0600, the UI password(s)

Login: Airflow 3's SimpleAuthManager with the users of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
(default `admin:admin`, user admin with role admin). The password is generated here from the OS
CSPRNG before the first start: Airflow would otherwise generate it and print it into the API
server's log. `start` shows it on the terminal only; it never goes to a log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psutil

from agrilake.core import lineage
from agrilake.core.settings import Settings, get_settings
from agrilake.services import lifecycle
from agrilake.services.lifecycle import LifecycleError, NotReady, log_tail, write_atomic
from agrilake.services.processes import ProcessTree, free_port, port_is_free

log = logging.getLogger(__name__)

COMPONENTS = ("api-server", "scheduler", "dag-processor")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
DEFAULT_PORT = 8080
SUPERVISOR = "agrilake.services.airflow_server"  # `python -m` this module: the supervisor `start` runs


class AirflowServerError(LifecycleError):
    """The local Airflow cannot start or answer; the message says why and where the logs are."""


def http_json(url: str, *, data: dict | None = None, token: str | None = None, timeout: float = 5,
              method: str | None = None) -> dict:
    headers = {"Accept": "application/json"}
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method=method or ("POST" if body else "GET"))
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own loopback server
        return json.loads(resp.read().decode())


class AirflowServer(lifecycle.Server):
    """The local Airflow of one Airflow home: start, stop, status, health, login and a REST token."""

    title = "Airflow"
    error = AirflowServerError
    poll_interval = 1.0
    start_timeout = 180.0
    tail_lines = 12

    def __init__(self, settings: Settings, home: str | Path | None = None, *, port: int | None = None,
                 env: Mapping[str, str] | None = None):
        self.settings = settings
        # The components' environment starts from this one (the caller's process environment by default).
        self.base_env = dict(os.environ if env is None else env)
        self.home = Path(home or self.base_env.get("AIRFLOW_HOME") or settings.airflow_home).resolve()
        super().__init__(self.home / "server")
        # None: 8080, or a free port when that is taken; 0: any free port (tests).
        self.wanted_port = DEFAULT_PORT if port is None else port
        self.bin = Path(sys.executable).parent

    @property
    def airflow(self) -> str:
        """The `airflow` of this interpreter's environment (the venv), else the one on PATH."""
        beside = self.bin / "airflow"
        return str(beside) if beside.exists() else (shutil.which("airflow") or "airflow")

    # -- files -------------------------------------------------------------------------------
    def component_log(self, component: str) -> Path:
        return self.run_dir / f"{component}.log"

    @property
    def log_file(self) -> Path:
        return self.component_log("supervisor")

    def log_files(self) -> list[Path]:
        return [self.component_log(c) for c in (*COMPONENTS, "supervisor")]

    @property
    def passwords_file(self) -> Path:
        configured = self.base_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        return Path(configured) if configured else self.home / PASSWORDS_FILE

    @property
    def users(self) -> list[str]:
        spec = self.base_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or "admin:admin"
        return [u.split(":", 1)[0].strip() for u in spec.split(",") if u.strip()]

    # -- process -----------------------------------------------------------------------------
    def owns(self, args: list[str], state: dict) -> bool:
        return SUPERVISOR in args and str(self.home) in args

    def ports(self, state: dict) -> list[int]:
        return [state["port"]] if state.get("port") else []

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
        for name, value in lineage.airflow_env(self.settings).items():
            env.setdefault(name, value)
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
            write_atomic(path, json.dumps(passwords) + "\n", private=True)
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
        out = self.component_log("migrate")
        with open(out, "wb") as fh:
            rc = subprocess.run([self.airflow, "db", "migrate"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600).returncode
        if rc:
            raise AirflowServerError(f"`airflow db migrate` failed (exit {rc}); the end of {out}:\n"
                                     f"{log_tail(out, self.tail_lines)}")

    def launch(self, timeout: float) -> None:
        """Migrate the metadatabase, start the supervisor of the components, wait until they are healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        env = self.env(port)
        self.ensure_passwords()
        self._migrate(env)
        # Its own process group: `stop` can signal every process of the group at once.
        supervisor = [sys.executable, "-m", SUPERVISOR, "supervise", "--home", str(self.home)]
        self.spawn(supervisor, {"port": port, "url": f"http://127.0.0.1:{port}", "home": str(self.home),
                                "dags_folder": env["AIRFLOW__CORE__DAGS_FOLDER"]}, env=env, cwd=self.home)
        with self.stop_on_failure():
            self.wait_ready(timeout)

    def health(self) -> dict | None:
        url = self.url
        if not url:
            return None
        try:
            return http_json(f"{url}/api/v2/monitor/health", timeout=3)
        except (OSError, ValueError):
            return None

    def ready(self) -> dict:
        """The metadatabase, scheduler and dag-processor are healthy (the API server answers first)."""
        health = self.health()
        if health and all((health.get(k) or {}).get("status") == "healthy"
                          for k in ("metadatabase", "scheduler", "dag_processor")):
            return health
        raise NotReady(f"last health: {health}")

    def status(self) -> dict:
        status = super().status()
        health = self.health() if status["running"] else None
        return {"home": str(self.home), **status,
                "components": self.state().get("components", {}) if status["running"] else {},
                "health": {k: v.get("status") for k, v in health.items()} if health else None}

    def started_message(self, seconds: float) -> str:
        # The terminal of whoever ran `start` only: this output is not a log file.
        users = ", ".join(f"{u} / {self.password(u)}" for u in self.users)
        return (f"Airflow UI: {self.url}  (healthy after {seconds:.0f} s, pid {self.pid()})\n"
                f"login (user / password): {users}\n"
                f"passwords file: {self.passwords_file} (0600); logs: {self.run_dir}/\n"
                f"stop with: agrilake airflow stop")

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


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make the processes orphaned below this one its children instead of init's (Linux prctl): when the
    scheduler exits, its LocalExecutor workers and their tasks stay in this process's tree, where
    `stop` and the supervisor's own shutdown find them."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (AttributeError, OSError):
        return False


def _reap_adopted(procs: dict[str, subprocess.Popen]) -> None:
    """Collect orphans that exited after this subreaper adopted them (the components' own exits are theirs)."""
    own = {p.pid for p in procs.values()}
    for child in psutil.Process().children():
        if child.pid not in own:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(child.pid, os.WNOHANG)


def supervise(server: AirflowServer) -> int:
    """Run the components until SIGTERM/SIGINT or until one of them exits; then stop the others, and then
    everything left below this process (task processes, executor workers orphaned by the scheduler).

    A half-running Airflow (say, a dead scheduler behind a live UI) would look fine and run nothing,
    so one component exiting brings the whole group down and `status` says so.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor: %(message)s")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    if not become_subreaper():
        log.warning("cannot become a child subreaper (not Linux?): processes orphaned by a component are "
                    "found only while they stay in this process group")
    procs: dict[str, subprocess.Popen] = {}
    for component in COMPONENTS:
        with open(server.component_log(component), "ab") as out:
            procs[component] = subprocess.Popen([server.airflow, component], stdout=out,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    # `start` records this process in the state right after spawning it: add the components to that.
    deadline = time.monotonic() + 30
    while server.state().get("pid") != os.getpid() and time.monotonic() < deadline:
        time.sleep(0.1)
    server.write_state({**server.state(), "components": {name: p.pid for name, p in procs.items()}})
    server.record(*(p.pid for p in procs.values()))
    log.info("started %s", ", ".join(f"{n} (pid {p.pid})" for n, p in procs.items()))
    rc = 0
    while not stopping:
        exited = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if exited:
            log.error("%s exited: stopping the others", ", ".join(f"{n} (exit {c})" for n, c in exited.items()))
            rc = 1
            break
        _reap_adopted(procs)
        time.sleep(0.5)
    if stopping:
        log.info("%s received: stopping %s", stopping[0], ", ".join(procs))
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 20
    for p in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    # What is left below: components that ignored SIGTERM, workers and tasks they orphaned.
    stubborn, left = ProcessTree(os.getpid()).end(timeout=max(1.0, deadline - time.monotonic()))
    if stubborn:
        log.warning("processes %s were still running after the components stopped: killed them", stubborn)
    if left:
        log.error("processes %s survived SIGKILL", left)
    for p in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=1)
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = lifecycle.command("agrilake airflow", __doc__, AirflowServer,
                               actions=(*lifecycle.ACTIONS, "supervise"),
                               actions_help="supervise: internal, what `start` runs in the background")
    parser.add_argument("--home", help="Airflow home (default AIRFLOW_HOME, i.e. .airflow)")
    parser.add_argument("--port", type=int, help=f"UI/API port (default {DEFAULT_PORT}, a free one when taken; 0 = any)")
    args = parser.parse_args(argv)
    server = AirflowServer(get_settings(), args.home, port=args.port)
    if args.action == "supervise":
        return supervise(server)
    return lifecycle.run(server, args.action, prog=parser.prog, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
