"""One export at a time per platform and date: a lease object in the platform's own bucket.

Two exports of one platform and date (the DAG's, and one started by hand beside it) would abort each
other's multipart uploads, collect each other's new objects as garbage, and switch manifests in any
order. The lease lives where the delivery does, so it works whatever the lakehouse is (a local folder
or an object store) and from any machine: `_deliveries/as_of=D.lock`, created with a conditional
write (`If-None-Match: *`: exactly one of two creators succeeds), renewed while the export runs
(`If-Match` on its ETag) and deleted at the end.

A holder that died leaves its lease behind. Another export takes it over (again by `If-Match`, so
only one does) when the holder is a process of this machine that no longer exists (at once), or when
the lease has not been renewed for `ttl` seconds by the store's clock (a holder on another machine).
Until then it waits, saying for whom, up to `wait` seconds. The holder checks that the lease is
still its own before every step that changes what consumers see (`Lease.check`).

A store that ignores conditional writes cannot give this exclusion: the export then says so (a
WARNING) and runs unlocked, as exports did before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from agrilake.core import faults
from agrilake.delivery import ExportError

log = logging.getLogger(__name__)

_TAKEN = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_MISSING = ("404", "NoSuchKey", "NotFound")


class ExportLocked(ExportError):
    """Another export of the same platform and date held the lock for longer than the wait."""


class LockLost(ExportError):
    """The export's lock was taken over (it went unrenewed past its TTL): it must not switch anything."""


def _proc_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (None: no such process, or a zombie);
    with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


def holder(run_id: str, what: str) -> dict:
    """Who holds a lease: enough to tell, on the same machine, whether that process still runs."""
    pid = os.getpid()
    return {"token": uuid.uuid4().hex, "run_id": run_id, "what": what, "host": socket.gethostname(),
            "boot_id": _read("/proc/sys/kernel/random/boot_id"), "pid_namespace": _pid_namespace(),
            "pid": pid, "pid_start": _proc_start(pid),
            "acquired_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}


def dead_here(other: dict) -> bool:
    """Whether `other` names a process of this machine (same host, boot and pid namespace) that is gone."""
    mine = holder("", "")
    same_machine = all(other.get(k) is not None and other.get(k) == mine[k]
                       for k in ("host", "boot_id", "pid_namespace"))
    if not same_machine or not isinstance(other.get("pid"), int):
        return False
    return _proc_start(other["pid"]) != other.get("pid_start")


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


@dataclass
class Lease:
    client: object = field(repr=False)
    bucket: str
    key: str
    body: dict
    etag: str
    ttl: float
    exclusive: bool = True
    lost: str | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _put(self, **condition) -> str:
        self.body["renewed_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(self.body).encode(),
                                      ContentType="application/json", **condition)["ETag"]

    def renew(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.etag = self._put(IfMatch=self.etag)
        except ClientError as exc:
            if _code(exc) in _TAKEN or _code(exc) in _MISSING:
                self.lost = f"{self.where} was taken over or removed ({_code(exc)})"
                log.warning("export lock lost: %s", self.lost)
                return
            raise

    def check(self) -> None:
        """Raise LockLost unless the lease is still this export's."""
        if not self.exclusive:
            return
        if self.lost is None:
            current = _get(self.client, self.bucket, self.key)
            if current is None or current[0].get("token") != self.body["token"]:
                self.lost = f"{self.where} now names another export" if current else f"{self.where} is gone"
        if self.lost is not None:
            raise LockLost(f"{self.lost}: this export stops before changing the delivery (it went unrenewed "
                           f"for more than its TTL, {self.ttl:g} s); rerun it")

    def release(self) -> None:
        from botocore.exceptions import ClientError

        if self.lost is not None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as exc:
            if _code(exc) in _TAKEN or _code(exc) in _MISSING:
                return
            # a store without conditional deletes: delete only what is still ours
            current = _get(self.client, self.bucket, self.key)
            if current is not None and current[0].get("token") == self.body["token"]:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)


def _get(client, bucket: str, key: str) -> tuple[dict, str, float] | None:
    """(holder, ETag, seconds since the lease was last written by the store's clock), or None."""
    from botocore.exceptions import ClientError

    try:
        got = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in _MISSING:
            return None
        raise
    try:
        body = json.loads(got["Body"].read())
    except json.JSONDecodeError:
        body = {}
    server_now = got["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
    now = parsedate_to_datetime(server_now) if server_now else datetime.now(UTC)
    return body, got["ETag"], (now - got["LastModified"]).total_seconds()


def _describe(other: dict, age: float) -> str:
    return (f"run {other.get('run_id', '?')} ({other.get('what', '?')}), pid {other.get('pid', '?')} on "
            f"{other.get('host', '?')}, since {other.get('acquired_at', '?')}, last renewed {age:.0f} s ago")


def acquire(client, bucket: str, key: str, *, ttl: float, wait: float, run_id: str, what: str) -> Lease:
    from botocore.exceptions import ClientError

    me = holder(run_id, what)
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            etag = client.put_object(Bucket=bucket, Key=key, Body=json.dumps(me).encode(),
                                     ContentType="application/json", IfNoneMatch="*")["ETag"]
            return _exclusive(Lease(client, bucket, key, me, etag, ttl))
        except ClientError as exc:
            if _code(exc) not in _TAKEN:
                raise
        current = _get(client, bucket, key)
        if current is None:
            continue  # released between the two calls
        other, etag, age = current
        reason = (f"its holder ({_describe(other, age)}) is a process of this machine that no longer runs"
                  if dead_here(other) else
                  f"it was not renewed for {age:.0f} s, longer than its TTL ({ttl:g} s): {_describe(other, age)}"
                  if age > ttl else None)
        if reason:
            try:
                lease = Lease(client, bucket, key, me, "", ttl)
                lease.etag = lease._put(IfMatch=etag)
            except ClientError as exc:
                if _code(exc) in _TAKEN or _code(exc) in _MISSING:
                    continue  # another waiter took it over first
                raise
            log.warning("%s: taking over the export lock s3://%s/%s: %s", what, bucket, key, reason)
            return lease
        if time.monotonic() >= deadline:
            raise ExportLocked(f"{what}: another export holds s3://{bucket}/{key} ({_describe(other, age)}); waited "
                               f"{wait:g} s (AGRILAKE_EXPORT_LOCK_WAIT). Let it finish, or, if it is stuck, stop it: "
                               f"its lock expires {ttl:g} s after its last renewal")
        if not waiting:
            log.warning("%s: another export holds s3://%s/%s (%s); waiting up to %g s for it to finish",
                        what, bucket, key, _describe(other, age), wait)
            waiting = True
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def _exclusive(lease: Lease) -> Lease:
    """A store that ignores `If-None-Match` would have let a second creator overwrite the lease: probe it
    once with the lease just made, which must be refused."""
    from botocore.exceptions import ClientError

    try:
        lease.etag = lease._put(IfNoneMatch="*")
    except ClientError as exc:
        if _code(exc) in _TAKEN:
            return lease
        raise
    lease.exclusive = False
    log.warning("the object store ignores conditional writes (If-None-Match): the export lock %s cannot keep "
                "another export of the same platform and date out; run one at a time", lease.where)
    return lease


@contextlib.contextmanager
def hold(client, bucket: str, key: str, *, ttl: float, wait: float, run_id: str, what: str) -> Iterator[Lease]:
    """Hold the lease `key` of `bucket` for the block, renewed every ttl/3 seconds; released at the end."""
    lease = acquire(client, bucket, key, ttl=ttl, wait=wait, run_id=run_id, what=what)
    faults.crash_point("after_export_lock")  # the lease taken, nothing else done
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lease.renew()
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; check() decides
                log.warning("could not renew the export lock %s: %s", lease.where, exc)
            if lease.lost:
                return

    beat = threading.Thread(target=renew, name=f"lease {key}", daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        stop.set()
        beat.join()
        lease.release()
