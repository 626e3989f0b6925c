"""`agrilake fetch`: take a platform's delivery the way a consumer must, verified part by part.

    agrilake fetch --platform bank --list                       # the dates each dataset has, complete ones only
    agrilake fetch --platform bank --date D --out DIR [--dataset NAME ...]

With only the platform's own key (boto3's usual sources: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
a profile...; the store's URL in AWS_ENDPOINT_URL or --endpoint): for each dataset, read
`<dataset>/as_of=D/_manifest.json`, download every file it lists (the Parquet parts and the data
contract), and accept the delivery only when each has the listed size and SHA-256 and the parts hold
the listed row count. Anything else under the prefix is ignored. A delivery without a manifest
(still being written, or interrupted) or with a file that does not match it is refused, nothing of
it is kept, and the command exits 1 naming the file. An accepted delivery lands in
`DIR/<dataset>/as_of=D/` (replacing an earlier copy whole), ready for pandas or DuckDB:

    pandas.read_parquet("DIR/coop_credit_profile/as_of=D")
    duckdb.sql("SELECT credit_tier, count(*) FROM 'DIR/coop_credit_profile/as_of=D/*.parquet' GROUP BY 1")
"""

from __future__ import annotations

import argparse
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

MANIFEST = "_manifest.json"
DATE_PREFIX = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})/$")
CHUNK = 1 << 20


class DeliveryRefused(RuntimeError):
    """A delivery is incomplete or does not match its manifest: nothing of it was kept."""


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


def datasets(s3, bucket: str) -> list[str]:
    """The datasets in the platform's bucket (its top-level prefixes; `_deliveries/` and any other
    name starting with `_` are the sender's records, not datasets)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/")
    return sorted(p["Prefix"].rstrip("/") for page in pages for p in page.get("CommonPrefixes", [])
                  if not p["Prefix"].startswith("_"))


def available(s3, bucket: str, dataset: str) -> list[date]:
    """The as-of dates of `dataset` whose delivery is complete (its manifest exists)."""
    from botocore.exceptions import ClientError

    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{dataset}/", Delimiter="/")
    for page in pages:
        for p in page.get("CommonPrefixes", []):
            m = DATE_PREFIX.match(p["Prefix"].removeprefix(f"{dataset}/"))
            if not m:
                continue
            try:
                s3.head_object(Bucket=bucket, Key=p["Prefix"] + MANIFEST)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    continue  # being written, or interrupted: not a delivery yet
                raise
            found.append(date.fromisoformat(m.group(1)))
    return sorted(found)


def _download(s3, bucket: str, key: str, dest: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(dest, "wb") as fh:
        for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
    return size, digest.hexdigest()


def fetch(s3, bucket: str, dataset: str, as_of: date, out: Path) -> Delivery:
    """Download and verify one delivery into `out/<dataset>/as_of=D/`; DeliveryRefused when it is not
    complete and intact (and then nothing of it is left in `out`)."""
    import pyarrow.parquet as pq
    from botocore.exceptions import ClientError

    prefix = f"{dataset}/as_of={as_of.isoformat()}/"
    where = f"s3://{bucket}/{prefix}"
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            raise DeliveryRefused(f"{where} has no {MANIFEST}: not a complete delivery (still being written, or "
                                  "interrupted); list the complete ones with --list, or try again later") from None
        raise
    except json.JSONDecodeError as exc:
        raise DeliveryRefused(f"{where}{MANIFEST} is not JSON ({exc}): refusing the delivery") from None
    if (manifest.get("dataset"), manifest.get("as_of")) != (dataset, as_of.isoformat()):
        raise DeliveryRefused(f"{where}{MANIFEST} describes {manifest.get('dataset')} as_of={manifest.get('as_of')}, "
                              "not this prefix: refusing the delivery")
    listed = list(manifest.get("files", []))
    if manifest.get("contract"):
        listed.append(manifest["contract"])
    target = out / dataset / f"as_of={as_of.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset}-{as_of}-", dir=out))
    try:
        for f in listed:
            key = f["key"]
            if not key.startswith(prefix) or "/" in key.removeprefix(prefix):
                raise DeliveryRefused(f"{where}{MANIFEST} lists {key!r}, outside its own prefix: refusing the delivery")
            try:
                size, sha = _download(s3, bucket, key, staging / key.removeprefix(prefix))
            except ClientError as exc:
                raise DeliveryRefused(f"s3://{bucket}/{key}, listed in the manifest, cannot be read "
                                      f"({exc.response['Error']['Code']}): refusing the delivery") from None
            if size != f["size"] or sha != f["sha256"]:
                raise DeliveryRefused(f"s3://{bucket}/{key} has {size} bytes and SHA-256 {sha[:12]}..., the manifest "
                                      f"says {f['size']} bytes and {f['sha256'][:12]}...: tampered with or replaced; "
                                      "refusing the delivery (ask the sender to export it again)")
        parts = [staging / f["key"].removeprefix(prefix) for f in manifest.get("files", [])]
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        if rows != manifest.get("row_count"):
            raise DeliveryRefused(f"{where}: the parts hold {rows} rows, the manifest says {manifest.get('row_count')}")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Delivery(dataset, as_of, target, rows, len(parts), manifest)


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

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
    args = parser.parse_args(argv)
    if args.date and not args.out:
        parser.error("--date needs --out DIR")
    bucket = args.bucket or args.platform
    try:
        s3 = client(args.endpoint)
        names = args.dataset or datasets(s3, bucket)
        if args.list:
            for name in names:
                dates = available(s3, bucket, name)
                print(f"{name}: {', '.join(d.isoformat() for d in dates) or 'no complete delivery'}")
            return 0
        refused = []
        for name in names:
            try:
                d = fetch(s3, bucket, name, args.date, args.out)
            except DeliveryRefused as exc:
                refused.append(str(exc))
                print(f"agrilake fetch: {exc}", file=sys.stderr)
                continue
            print(f"{name} as_of={d.as_of}: {d.rows} rows in {d.files} part(s), sizes and SHA-256 verified "
                  f"against the manifest -> {d.path}")
        return 1 if refused else 0
    except (BotoCoreError, ClientError) as exc:  # botocore's messages name bucket and key, never the secret
        print(f"agrilake fetch: S3 error: {exc}", file=sys.stderr)
        return 1
