"""The S3 delivery protocol: how a platform's datasets of one date D reach its bucket, given a boto3 client.

In the platform's bucket:

    <dataset>/as_of=D/part-<tag>-00000.parquet ...  Parquet parts; <tag> is 16 hex digits of the SHA-256
                                                      of the parts' own digests: same data, same names
    <dataset>/as_of=D/_contract-<digest>.yaml        the delivery's ODCS data contract, named by its digest
    <dataset>/as_of=D/_manifest.json                 the switch: lists the parts and the contract
    _deliveries/as_of=D.json                         the platform's delivery record of D (written last)
    _deliveries/as_of=D.lock                         the export lock (agrilake.delivery.lock)

**Consumers trust only a manifest-complete prefix**: `_manifest.json` exists, and every file it lists
exists with the listed size and SHA-256. Anything else under the prefix is ignored.

`deliver` runs, under the lock, for every dataset of the export at once:
1. abort the multipart uploads left under the prefixes (a dead exporter's: the lock keeps live ones out);
2. upload every object of the new delivery beside the old one: under names the old manifest does not
   list, or, when the data is unchanged, under the same names with the same bytes (an object already
   there with the right digest is kept, not rewritten); verify each: HEAD for the size, then a re-read
   compared by SHA-256 (chosen over server checksums or ETag=MD5: those depend on the store and the
   upload mode, a re-read works for single and multipart uploads on any S3);
3. switch: PUT each dataset's `_manifest.json` (one atomic PUT each) and verify it;
4. write the delivery record: the gold publication every dataset of D came from, each manifest's
   SHA-256, the suppressed cells;
5. collect the garbage: delete what each prefix holds that its new manifest does not list.

A failure or a kill before step 3 leaves the previous delivery of every dataset whole. Between the
switches of two datasets each is complete, one old and one new, while the record still names the
previous publication: a consumer that checks the manifests against the record sees D being
replaced. A rerun (the lock of a dead exporter is taken over) completes the delivery with the same
bytes. Transient S3 errors are retried by botocore (standard mode, exponential backoff, 5 attempts).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agrilake.core import faults
from agrilake.delivery import ExportError

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
# 2: parts and contract under content-addressed names, `source.publication`, the publication's own
# validation as `quality`, `disclosure_control` with cells per column, `delivery_record`.
MANIFEST_VERSION = 2
RECORD_VERSION = 1
RECORDS = "_deliveries/"
PARQUET_TYPE = "application/vnd.apache.parquet"
MIB = 1024 * 1024
MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer
_MISSING = ("404", "NoSuchKey", "NotFound")


def prefix_for(dataset: str, as_of: date) -> str:
    return f"{dataset}/as_of={as_of.isoformat()}/"


def record_key(as_of: date) -> str:
    return f"{RECORDS}as_of={as_of.isoformat()}.json"


def lock_key(as_of: date) -> str:
    return f"{RECORDS}as_of={as_of.isoformat()}.lock"


def data_tag(digests: list[str]) -> str:
    """What names a delivery's parts: the same data gives the same names, other data other names."""
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()[:16]


def parts_pattern(prefix: str, tag: str) -> str:
    """The key glob of exactly one delivery's parts (the data contract's server location)."""
    return f"{prefix}part-{tag}-*.parquet"


def contract_name(body: bytes) -> str:
    return f"_contract-{hashlib.sha256(body).hexdigest()[:16]}.yaml"


# -- local files -----------------------------------------------------------------------------
@dataclass
class LocalFile:
    """A file of the delivery as written locally, before upload; `name` is its name under the prefix."""

    name: str
    path: Path
    size: int
    sha256: str
    rows: int | None = None
    content_type: str = PARQUET_TYPE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_file(path: Path, *, content_type: str, rows: int | None = None) -> LocalFile:
    return LocalFile(path.name, path, path.stat().st_size, sha256_file(path), rows, content_type)


def write_parts(table, directory: Path, part_rows: int) -> tuple[str, list[LocalFile]]:
    """Slice an Arrow table into Parquet files of at most `part_rows` rows each; returns (tag, parts)
    named `part-<tag>-NNNNN.parquet`."""
    import pyarrow.parquet as pq

    part_rows = max(1, part_rows)
    written = []
    for number, offset in enumerate(range(0, max(table.num_rows, 1), part_rows)):
        piece = table.slice(offset, part_rows)
        path = directory / f"part-{number:05d}.parquet"
        pq.write_table(piece, path, compression="snappy")
        written.append((path, piece.num_rows))
    parts = [local_file(path, content_type=PARQUET_TYPE, rows=rows) for path, rows in written]
    tag = data_tag([p.sha256 for p in parts])
    for number, part in enumerate(parts):
        part.name = f"part-{tag}-{number:05d}.parquet"
        part.path = part.path.rename(directory / part.name)
    return tag, parts


# -- one dataset's delivery, ready to upload -------------------------------------------------
def json_body(doc: dict) -> bytes:
    """A manifest or record as written: its bytes are what the SHA-256 in the record is of."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")


@dataclass
class Staged:
    """One dataset's new delivery: the objects to put under `prefix` (parts, then the contract) and the
    manifest that switches to them."""

    dataset: str
    prefix: str
    objects: list[LocalFile]
    manifest: dict
    manifest_body: bytes = field(init=False, repr=False)

    def __post_init__(self):
        self.manifest_body = json_body(self.manifest)

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_body).hexdigest()

    def keys(self) -> set[str]:
        return {self.prefix + o.name for o in self.objects} | {self.manifest_key}


@dataclass
class Plan:
    """A platform's delivery of one date: its datasets and the record written after their switch."""

    platform: str
    bucket: str
    as_of: date
    datasets: list[Staged]
    record: dict
    record_body: bytes = field(init=False, repr=False)

    def __post_init__(self):
        self.record_body = json_body(self.record)

    @property
    def record_key(self) -> str:
        return record_key(self.as_of)


# -- S3 helpers ------------------------------------------------------------------------------
def list_keys(client, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def abort_uploads(client, bucket: str, prefix: str) -> int:
    """Abort every unfinished multipart upload under `prefix` (a killed export leaves them behind, and
    their parts are kept, and billed, until aborted). Only ever called under the export lock."""
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted += 1
    if aborted:
        log.warning("aborted %d unfinished multipart upload(s) of a dead export under s3://%s/%s",
                    aborted, bucket, prefix)
    return aborted


def delete_keys(client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        result = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if result.get("Errors"):
            raise ExportError(f"could not delete {len(result['Errors'])} object(s) in s3://{bucket}: "
                              f"{result['Errors'][0].get('Code')} on {result['Errors'][0].get('Key')}")


def upload_file(client, bucket: str, key: str, path: Path, *, chunk_bytes: int,
                content_type: str = PARQUET_TYPE) -> None:
    """One PUT up to `chunk_bytes`, explicit multipart above; an upload that fails is aborted."""
    size = path.stat().st_size
    if size <= chunk_bytes:
        with open(path, "rb") as fh:
            client.put_object(Bucket=bucket, Key=key, Body=fh, ContentType=content_type)
        return
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)["UploadId"]
    try:
        parts = []
        with open(path, "rb") as fh:
            for number in itertools.count(1):
                chunk = fh.read(chunk_bytes)
                if not chunk:
                    break
                etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                          Body=chunk)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        # Uploaded parts of an unfinished upload are invisible but kept (and billed) until aborted.
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the next export's abort_uploads() sweeps it up
            log.warning("could not abort the multipart upload of s3://%s/%s: %s", bucket, key, exc)
        raise


def _digest(client, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def verify_object(client, bucket: str, key: str, size: int, sha256: str) -> None:
    """HEAD for the size, then re-read the object and compare its SHA-256 with the local file's."""
    head = client.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != size:
        raise ExportError(f"s3://{bucket}/{key} has {head['ContentLength']} bytes after upload, expected {size}")
    if _digest(client, bucket, key) != sha256:
        raise ExportError(f"s3://{bucket}/{key} does not read back with the SHA-256 that was uploaded")


def _already_there(client, bucket: str, key: str, size: int, sha256: str) -> bool:
    """Whether `key` holds exactly these bytes (a rerun of the same data, or a killed run's upload)."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _MISSING:
            return False
        raise
    return head["ContentLength"] == size and _digest(client, bucket, key) == sha256


def put_verified(client, bucket: str, key: str, f: LocalFile, *, chunk_bytes: int) -> None:
    """Make `key` hold the bytes of `f`, verified; an object already holding them is kept as it is, so an
    old manifest listing the same key never sees it change."""
    if _already_there(client, bucket, key, f.size, f.sha256):
        return
    upload_file(client, bucket, key, f.path, chunk_bytes=chunk_bytes, content_type=f.content_type)
    verify_object(client, bucket, key, f.size, f.sha256)


def put_body(client, bucket: str, key: str, body: bytes, content_type: str = "application/json") -> None:
    """One PUT of a small document (a manifest, a record), then verified like any object."""
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    verify_object(client, bucket, key, len(body), hashlib.sha256(body).hexdigest())


def read_json(client, bucket: str, key: str) -> tuple[dict, bytes] | None:
    """(document, its bytes) of a JSON object; None when there is none or it is not JSON."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _MISSING:
            return None
        raise
    try:
        return json.loads(body), body
    except json.JSONDecodeError:
        log.warning("s3://%s/%s is not JSON: treated as absent", bucket, key)
        return None


# -- the protocol ----------------------------------------------------------------------------
def deliver(client, plan: Plan, *, lease, chunk_bytes: int) -> None:
    """Put `plan` in its bucket (see the module docstring); `lease` is the export lock, checked before
    every step that changes what consumers see."""
    bucket = plan.bucket
    for staged in plan.datasets:
        abort_uploads(client, bucket, staged.prefix)
    for staged in plan.datasets:
        for f in staged.objects:
            put_verified(client, bucket, staged.prefix + f.name, f, chunk_bytes=chunk_bytes)
    faults.crash_point("after_export_parts")  # new objects beside the old delivery, nothing switched

    for staged in plan.datasets:
        lease.check()
        put_body(client, bucket, staged.manifest_key, staged.manifest_body)
        faults.crash_point("after_export_manifest")  # this dataset switched, the next ones not yet
    faults.crash_point("after_export_manifests")  # every dataset new, the record still the previous one

    lease.check()
    put_body(client, bucket, plan.record_key, plan.record_body)
    faults.crash_point("after_export_delivery_record")  # complete; the old objects not yet collected

    lease.check()  # another export's new objects would be garbage to this one
    for staged in plan.datasets:
        keep = staged.keys()
        stale = [k for k in list_keys(client, bucket, staged.prefix) if k not in keep]
        if stale:
            log.info("removing %d object(s) of the previous delivery under s3://%s/%s", len(stale), bucket,
                     staged.prefix)
            delete_keys(client, bucket, stale)


# -- links -----------------------------------------------------------------------------------
def manifest_links(client, bucket: str, as_of: date, datasets: list[str], *, expires: int
                   ) -> list[tuple[str, str, datetime]]:
    """A presigned GET link per exported manifest: (dataset, url, expiry). Refuses unexported datasets."""
    from botocore.exceptions import ClientError

    if not 1 <= expires <= MAX_LINK_SECONDS:
        raise ExportError(f"link expiry must be 1..{MAX_LINK_SECONDS} seconds (SigV4's limit), got {expires}")
    links = []
    for dataset in datasets:
        key = prefix_for(dataset, as_of) + MANIFEST
        try:
            client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _MISSING:
                raise ExportError(f"{dataset} for {as_of} is not exported (no s3://{bucket}/{key})") from None
            raise
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)
        links.append((dataset, url, datetime.now(UTC) + timedelta(seconds=expires)))
    return links
