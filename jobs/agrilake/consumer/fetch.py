"""`agrilake fetch`: take a platform's delivery the way a consumer must, verified part by part.

    agrilake fetch --platform bank --list                       # the dates each dataset has, complete ones only
    agrilake fetch --platform bank --date D --out DIR [--dataset NAME ...] [--max-file-mb N] [--max-delivery-mb N]

With only the platform's own key (boto3's usual sources: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
a profile...; the store's URL in AWS_ENDPOINT_URL or --endpoint): for each dataset, read
`<dataset>/as_of=D/_manifest.json`, download every file it lists (the Parquet parts and the data
contract), and accept the delivery only when each has the listed size and SHA-256 and the parts hold
the listed row count. Anything else under the prefix is ignored. An accepted delivery lands in
`DIR/<dataset>/as_of=D/` (one flat folder, whatever sub-prefixes the bucket uses), swapped in by a
rename once every file is verified, ready for pandas or DuckDB:

    pandas.read_parquet("DIR/coop_credit_profile/as_of=D")
    duckdb.sql("SELECT credit_tier, count(*) FROM 'DIR/coop_credit_profile/as_of=D/*.parquet' GROUP BY 1")

Nothing in the bucket is trusted. A delivery is refused, with a WARNING naming the dataset and a
reason code, when: it has no manifest (NO_MANIFEST); the manifest is not a JSON object of the
expected shape, or is too big to be one (BAD_MANIFEST); a dataset or file name could write outside
DIR/<dataset>/as_of=D/ or hide from a Parquet reader (BAD_DATASET_NAME, UNSAFE_NAME); it claims rows
without parts, or no rows (NO_PARTS, EMPTY); a file or the whole delivery is bigger than the caps
(TOO_LARGE: AGRILAKE_FETCH_MAX_FILE_MB, AGRILAKE_FETCH_MAX_DELIVERY_MB, or the flags); a file cannot
be read, is not the listed one or not Parquet (UNREADABLE, MISMATCH, NOT_PARQUET); the parts hold
another row count (ROW_COUNT). A refused delivery leaves nothing behind and the previous local copy
as it was; the other datasets are still fetched, and the command exits 1.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace

MANIFEST = "_manifest.json"
MANIFEST_VERSIONS = (1, 2)  # what this reader understands: each version's files are listed as below
DATE_PREFIX = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})/$")
# A dataset name becomes a folder under --out: lowercase words only, never `..`, `.`, a slash or empty.
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
MIB = 1 << 20
# A manifest lists a schema and one line per part: a few kB, a MB for thousands of parts.
MAX_MANIFEST_BYTES = 8 * MIB


class DeliveryRefused(RuntimeError):
    """A delivery is incomplete, malformed, too big or does not match its manifest: nothing of it was kept.
    `reason` is a code (NO_MANIFEST, BAD_MANIFEST, UNSAFE_NAME, ...: the module's docstring)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What fetch downloads at most: per file and per delivery, in bytes."""

    max_file_bytes: int
    max_delivery_bytes: int

    @classmethod
    def mib(cls, file_mb: int, delivery_mb: int) -> Limits:
        return cls(file_mb * MIB, delivery_mb * MIB)


@dataclass(frozen=True)
class Listed:
    """One file a manifest lists: its object key, where it lands, and what it must be."""

    key: str
    local: str
    size: int
    sha256: str
    rows: int | None = None


@dataclass
class Delivery:
    dataset: str
    as_of: date
    path: Path
    rows: int
    files: int
    manifest: dict

    def load(self):
        """The delivery as a pandas DataFrame."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path).to_pandas()


def client(endpoint: str | None = None):
    """An S3 client from boto3's usual credential sources (the platform's own key)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL"),
                        config=Config(retries={"mode": "standard", "max_attempts": 5},
                                      s3={"addressing_style": "path"}))


# -- what a name may be ------------------------------------------------------------------------
def check_dataset(name: object) -> str:
    """`name` when it is a dataset name fetch may make a folder of, else DeliveryRefused(BAD_DATASET_NAME)."""
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise DeliveryRefused("BAD_DATASET_NAME", f"dataset name {name!r} is not lowercase letters, digits and "
                                                  f"underscores ({DATASET_NAME.pattern}): it could name a folder "
                                                  "outside --out; not fetched")
    return name


def safe_relative(name: object, where: str) -> list[str]:
    """The segments of `name`, a relative path inside the delivery, or DeliveryRefused(UNSAFE_NAME): no
    absolute path, no backslash or control character, no `..`, `.` or empty segment."""
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty or not a string"
    elif name.startswith("/"):
        problem = "is absolute"
    elif "\\" in name:
        problem = "has a backslash"
    elif any(ord(c) < 0x20 or c == "\x7f" for c in name):
        problem = "has a control character"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has an empty, `.` or `..` segment"
    if problem:
        raise DeliveryRefused("UNSAFE_NAME", f"{where} lists the file {name!r}, which {problem}: it could write "
                                             "outside the delivery's folder; refusing the delivery")
    return name.split("/")


# -- the manifest ------------------------------------------------------------------------------
def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"a key given twice in one object: {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_manifest(body: bytes, where: str) -> dict:
    """The manifest's JSON object, or DeliveryRefused(BAD_MANIFEST): not UTF-8, not JSON, NaN, a key twice,
    nested past Python's recursion limit, a number of thousands of digits, not an object."""
    try:
        manifest = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                              parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DeliveryRefused("BAD_MANIFEST", f"{where} is not a valid JSON manifest "
                                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(manifest, dict):
        raise DeliveryRefused("BAD_MANIFEST", f"{where} is a JSON {type(manifest).__name__}, not an object")
    return manifest


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _listed(entry: object, what: str, prefix: str, where: str) -> Listed:
    if not isinstance(entry, dict):
        raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} is a {type(entry).__name__}, not an object")
    key, name = entry.get("key"), entry.get("name")
    if key is None and name is None:
        raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} has neither `key` nor `name`")
    if key is not None:
        if not isinstance(key, str) or not key.startswith(prefix):
            raise DeliveryRefused("UNSAFE_NAME", f"{where} lists {key!r}, outside its own prefix {prefix!r}: "
                                                 "refusing the delivery")
        relative = key.removeprefix(prefix)
        if name is not None and name != relative:
            raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} has key {key!r} and name {name!r}, which disagree")
    else:
        relative = name
    segments = safe_relative(relative, where)
    size, sha, rows = entry.get("size"), entry.get("sha256"), entry.get("rows")
    if not _count(size):
        raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} {relative!r} has no size in bytes (got {size!r})")
    if not isinstance(sha, str) or not SHA256.match(sha.lower()):
        raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} {relative!r} has no SHA-256 (64 hex digits)")
    if rows is not None and not _count(rows):
        raise DeliveryRefused("BAD_MANIFEST", f"{where}: {what} {relative!r} has rows {rows!r}, not a count")
    return Listed(prefix + relative, segments[-1], size, sha.lower(), rows)


def plan(manifest: dict, dataset: str, as_of: date, prefix: str, limits: Limits, where: str) -> tuple[list, Listed | None]:
    """Check the manifest's shape against the delivery and the caps: (parts, contract), or DeliveryRefused."""
    version = manifest.get("manifest_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in MANIFEST_VERSIONS:
        raise DeliveryRefused("BAD_MANIFEST", f"{where} has manifest_version {version!r}; this fetch reads "
                                              f"{', '.join(map(str, MANIFEST_VERSIONS))} (a newer one: upgrade agrilake)")
    if (manifest.get("dataset"), manifest.get("as_of")) != (dataset, as_of.isoformat()):
        raise DeliveryRefused("BAD_MANIFEST", f"{where} describes {manifest.get('dataset')!r} as_of="
                                              f"{manifest.get('as_of')!r}, not this prefix: refusing the delivery")
    rows, files, contract = manifest.get("row_count"), manifest.get("files"), manifest.get("contract")
    if not _count(rows):
        raise DeliveryRefused("BAD_MANIFEST", f"{where} has row_count {rows!r}, not a count of rows")
    if not isinstance(files, list):
        raise DeliveryRefused("BAD_MANIFEST", f"{where} has `files` {type(files).__name__}, not a list")
    if not files:
        if rows:
            raise DeliveryRefused("NO_PARTS", f"{where} claims {rows} rows and lists no parts: refusing the delivery")
        raise DeliveryRefused("EMPTY", f"{where} lists no parts and 0 rows: the exporter never publishes an "
                                       "empty delivery; refusing it")
    if rows == 0:
        raise DeliveryRefused("EMPTY", f"{where} claims 0 rows: the exporter never publishes an empty delivery; "
                                       "refusing it")
    parts = [_listed(f, "a part", prefix, where) for f in files]
    extra = None if contract is None else _listed(contract, "the contract", prefix, where)
    listed = [*parts, *([extra] if extra else [])]
    for f in parts:
        # pyarrow and DuckDB skip files whose name starts with `_` or `.`: such a part would vanish from a load.
        if not f.local.endswith(".parquet") or f.local.startswith(("_", ".")):
            raise DeliveryRefused("UNSAFE_NAME", f"{where} lists the part {f.key!r}: a part must be `<name>.parquet`, "
                                                 "not starting with `_` or `.` (readers would skip it)")
    if extra and extra.local.endswith(".parquet"):
        raise DeliveryRefused("UNSAFE_NAME", f"{where} lists the contract as {extra.key!r}: a Parquet reader "
                                             "would take it for a part")
    locals_ = [f.local for f in listed]
    if MANIFEST in locals_ or len(set(locals_)) != len(locals_):
        raise DeliveryRefused("UNSAFE_NAME", f"{where} lists two files that land on one local name, or one named "
                                             f"{MANIFEST}: refusing the delivery")
    if all(p.rows is not None for p in parts) and sum(p.rows for p in parts) != rows:
        raise DeliveryRefused("ROW_COUNT", f"{where}: its parts' rows add up to {sum(p.rows for p in parts)}, "
                                           f"its row_count says {rows}")
    for f in listed:
        if f.size > limits.max_file_bytes:
            raise DeliveryRefused("TOO_LARGE", f"{where} lists {f.key!r} of {f.size:,} bytes, over the cap of "
                                               f"{limits.max_file_bytes:,} per file (--max-file-mb, "
                                               "AGRILAKE_FETCH_MAX_FILE_MB): not downloaded")
    total = sum(f.size for f in listed)
    if total > limits.max_delivery_bytes:
        raise DeliveryRefused("TOO_LARGE", f"{where} lists {total:,} bytes in all, over the cap of "
                              f"{limits.max_delivery_bytes:,} per delivery (--max-delivery-mb, "
                              "AGRILAKE_FETCH_MAX_DELIVERY_MB): not downloaded")
    return parts, extra


# -- the bucket --------------------------------------------------------------------------------
def _missing(exc) -> bool:
    return exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")


def datasets(s3, bucket: str) -> list[str]:
    """The datasets in the platform's bucket, as listed (its top-level prefixes; `_deliveries/` and any other
    name starting with `_` are the sender's records, not datasets): check each with `check_dataset`."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/")
    return sorted(p["Prefix"].removesuffix("/") for page in pages for p in page.get("CommonPrefixes", [])
                  if not p["Prefix"].startswith("_"))


def available(s3, bucket: str, dataset: str) -> list[date]:
    """The as-of dates of `dataset` whose delivery is complete (its manifest exists)."""
    from botocore.exceptions import ClientError

    check_dataset(dataset)
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{dataset}/", Delimiter="/")
    for page in pages:
        for p in page.get("CommonPrefixes", []):
            m = DATE_PREFIX.match(p["Prefix"].removeprefix(f"{dataset}/"))
            if not m:
                continue
            try:
                s3.head_object(Bucket=bucket, Key=p["Prefix"] + MANIFEST)
                found.append(date.fromisoformat(m.group(1)))
            except ClientError as exc:
                if not _missing(exc):
                    raise
            except ValueError:
                continue  # as_of=2024-13-45: no date, no delivery
    return sorted(found)


def read_manifest(s3, bucket: str, prefix: str) -> dict:
    from botocore.exceptions import ClientError

    where = f"s3://{bucket}/{prefix}{MANIFEST}"
    try:
        obj = s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)
    except ClientError as exc:
        if _missing(exc):
            raise DeliveryRefused("NO_MANIFEST", f"s3://{bucket}/{prefix} has no {MANIFEST}: not a complete delivery "
                                                 "(still being written, or interrupted); list the complete ones "
                                                 "with --list, or try again later") from None
        raise
    if obj.get("ContentLength", 0) > MAX_MANIFEST_BYTES:
        obj["Body"].close()
        raise DeliveryRefused("BAD_MANIFEST", f"{where} has {obj['ContentLength']:,} bytes, more than a manifest "
                                              f"has ({MAX_MANIFEST_BYTES:,} at most): not read")
    body = obj["Body"].read(MAX_MANIFEST_BYTES + 1)
    if len(body) > MAX_MANIFEST_BYTES:
        raise DeliveryRefused("BAD_MANIFEST", f"{where} is longer than a manifest can be ({MAX_MANIFEST_BYTES:,} "
                                              "bytes): not read")
    return parse_manifest(body, where)


def _download(s3, bucket: str, f: Listed, dest: Path) -> None:
    """Stream `f` into `dest`, never more than its listed size plus one byte; DeliveryRefused unless it is
    exactly the listed file."""
    from botocore.exceptions import ClientError

    where = f"s3://{bucket}/{f.key}"
    try:
        obj = s3.get_object(Bucket=bucket, Key=f.key)
    except ClientError as exc:
        raise DeliveryRefused("UNREADABLE", f"{where}, listed in the manifest, cannot be read "
                                            f"({exc.response['Error']['Code']}): refusing the delivery") from None
    digest, size = hashlib.sha256(), 0
    try:
        if obj.get("ContentLength", 0) > f.size:
            raise DeliveryRefused("MISMATCH", f"{where} has {obj['ContentLength']:,} bytes, the manifest says "
                                              f"{f.size:,}: tampered with or replaced; not downloaded, refusing the "
                                              "delivery (ask the sender to export it again)")
        with open(dest, "xb") as fh:  # x: two listed files never share a local name (plan), so never overwrite
            for chunk in obj["Body"].iter_chunks(CHUNK):
                size += len(chunk)
                if size > f.size:
                    raise DeliveryRefused("MISMATCH", f"{where} has more than the {f.size:,} bytes the manifest "
                                                      "says: tampered with or replaced; refusing the delivery")
                digest.update(chunk)
                fh.write(chunk)
    finally:
        obj["Body"].close()
    sha = digest.hexdigest()
    if size != f.size or sha != f.sha256:
        raise DeliveryRefused("MISMATCH", f"{where} has {size} bytes and SHA-256 {sha[:12]}..., the manifest "
                                          f"says {f.size} bytes and {f.sha256[:12]}...: tampered with or replaced; "
                                          "refusing the delivery (ask the sender to export it again)")


def _parquet_rows(path: Path, where: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DeliveryRefused("NOT_PARQUET", f"{where} is not a readable Parquet file ({str(exc)[:200]}): "
                                             "refusing the delivery") from None


# -- the swap ----------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def swap_in(staging: Path, target: Path) -> None:
    """Put the verified `staging` folder at `target`. A reader sees the old copy or the new one, never a mix:
    one atomic exchange where the system has it, else two renames (the old copy moved aside first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(target):
        staging.rename(target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging)  # now the old copy
        return
    aside = staging.with_name(staging.name + ".old")
    target.rename(aside)
    try:
        staging.rename(target)
    except BaseException:
        aside.rename(target)
        raise
    shutil.rmtree(aside)


def fetch(s3, bucket: str, dataset: str, as_of: date, out: Path, limits: Limits) -> Delivery:
    """Download and verify one delivery into `out/<dataset>/as_of=D/`; DeliveryRefused when it is not complete,
    intact and within `limits` (and then nothing of it is in `out`, and an earlier copy is as it was)."""
    check_dataset(dataset)
    prefix = f"{dataset}/as_of={as_of.isoformat()}/"
    where = f"s3://{bucket}/{prefix}{MANIFEST}"
    manifest = read_manifest(s3, bucket, prefix)
    parts, contract = plan(manifest, dataset, as_of, prefix, limits, where)
    target = out / dataset / f"as_of={as_of.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".fetch-{dataset}-{as_of}-", dir=out))
    try:
        for f in [*parts, *([contract] if contract else [])]:
            _download(s3, bucket, f, staging / f.local)
        rows = 0
        for p in parts:
            n = _parquet_rows(staging / p.local, f"s3://{bucket}/{p.key}")
            if p.rows is not None and n != p.rows:
                raise DeliveryRefused("ROW_COUNT", f"s3://{bucket}/{p.key} holds {n} rows, the manifest says {p.rows}")
            rows += n
        if rows != manifest["row_count"]:
            raise DeliveryRefused("ROW_COUNT", f"s3://{bucket}/{prefix}: the parts hold {rows} rows, the manifest "
                                               f"says {manifest['row_count']}")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Delivery(dataset, as_of, target, rows, len(parts), manifest)


# -- command -----------------------------------------------------------------------------------
def warn(dataset: object, as_of: date | None, reason: str, message: str) -> None:
    when = f" as_of={as_of}" if as_of else ""
    print(f"WARNING agrilake fetch: {dataset!r}{when} refused [{reason}]: {message}; the previous local copy, "
          "if any, is kept", file=sys.stderr)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or ""
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    # A platform's client shares nothing with the pipeline (its bugs would be shared): its two settings are
    # read here, with the defaults the configuration reference documents (core/settings.py).
    s = SimpleNamespace(fetch_max_file_mb=_env_int("AGRILAKE_FETCH_MAX_FILE_MB", 2048),
                        fetch_max_delivery_mb=_env_int("AGRILAKE_FETCH_MAX_DELIVERY_MB", 20480))
    parser = argparse.ArgumentParser(prog="agrilake fetch", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", required=True, help="your platform (bank, gov): names your bucket by default")
    parser.add_argument("--bucket", help="the bucket (default: the platform's name)")
    parser.add_argument("--endpoint", help="the object store's URL (default: AWS_ENDPOINT_URL, else AWS S3)")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable; default: all)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="print the complete deliveries per dataset")
    action.add_argument("--date", type=date.fromisoformat, help="the as-of date D to fetch")
    parser.add_argument("--out", type=Path, help="where deliveries go (DIR/<dataset>/as_of=D/); with --date")
    parser.add_argument("--max-file-mb", type=int, default=s.fetch_max_file_mb,
                        help=f"refuse a delivery listing a file bigger than this (MiB; default "
                             f"AGRILAKE_FETCH_MAX_FILE_MB={s.fetch_max_file_mb})")
    parser.add_argument("--max-delivery-mb", type=int, default=s.fetch_max_delivery_mb,
                        help=f"refuse a delivery whose files add up to more (MiB; default "
                             f"AGRILAKE_FETCH_MAX_DELIVERY_MB={s.fetch_max_delivery_mb})")
    args = parser.parse_args(argv)
    if args.date and not args.out:
        parser.error("--date needs --out DIR")
    if args.max_file_mb < 1 or args.max_delivery_mb < 1:
        parser.error("--max-file-mb and --max-delivery-mb must be at least 1")
    limits = Limits.mib(args.max_file_mb, args.max_delivery_mb)
    bucket = args.bucket or args.platform
    try:
        s3 = client(args.endpoint)
        names = args.dataset or datasets(s3, bucket)
    except (BotoCoreError, ClientError) as exc:  # botocore's messages name bucket and key, never the secret
        print(f"agrilake fetch: S3 error: {exc}", file=sys.stderr)
        return 1
    refused = 0
    for name in names:
        try:
            if args.list:
                dates = available(s3, bucket, name)
                print(f"{name}: {', '.join(d.isoformat() for d in dates) or 'no complete delivery'}")
                continue
            d = fetch(s3, bucket, name, args.date, args.out, limits)
        except DeliveryRefused as exc:
            refused += 1
            warn(name, args.date, exc.reason, str(exc))
            continue
        except (BotoCoreError, ClientError) as exc:
            refused += 1
            warn(name, args.date, "S3_ERROR", str(exc))
            continue
        print(f"{name} as_of={d.as_of}: {d.rows} rows in {d.files} part(s), sizes and SHA-256 verified "
              f"against the manifest -> {d.path}")
    if refused:
        print(f"WARNING agrilake fetch: {refused} of {len(names)} dataset(s) refused (above); exit 1", file=sys.stderr)
    return 1 if refused else 0
