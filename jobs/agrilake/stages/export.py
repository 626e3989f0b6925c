"""Curated exports to the platforms' buckets: privacy guard, Parquet parts, verified upload, manifest last.

    agrilake export --platform bank|gov --date D [--dataset NAME ...] [--link] [--links-only] [--expires S]

For each dataset the platform gets (docs/metrics.md, Exports), the gold partition of D becomes

    s3://<platform bucket>/<dataset>/as_of=D/part-00000.parquet ...   (a new part every N rows)
    s3://<platform bucket>/<dataset>/as_of=D/_contract.yaml           (its ODCS data contract)
    s3://<platform bucket>/<dataset>/as_of=D/_manifest.json           (written last)

**Consumers trust only a manifest-complete prefix**: `_manifest.json` exists, and every file it lists
exists with the listed size and SHA-256. Anything else under the prefix is ignored. `--link` prints
a presigned, expiring GET link per manifest (signed with the exporting identity; default 1 day,
at most 7, SigV4's limit); `--links-only` does just that for an earlier export.

Refused before anything is uploaded: a gold partition that is missing or empty, one whose latest
validation in ops.dq_results failed a critical expectation, and one the privacy guard rejects.

Replacing a prefix, in this order, so that no reader ever sees a half-replaced prefix as complete:
1. delete the old manifest; 2. abort multipart uploads left under the prefix (a killed export leaves
them, and their parts cost storage forever); 3. upload the new parts (one PUT up to the multipart
size, explicit multipart above it, aborted on any error); 4. delete objects that are not new parts
(stale parts of a bigger earlier export); 5. verify every part: HEAD size, then re-read it and
compare its SHA-256 (chosen over server checksums or ETag=MD5: those depend on the store and the
upload mode, a re-read works for both single and multipart on any S3); 6. write the manifest and
verify it the same way; 7. record every attempt (complete, failed, refused) in ops.export_manifests.
Transient S3 errors are retried by botocore (standard mode, exponential backoff, 5 attempts).

Privacy guard (refuses the whole dataset, naming the columns; never prints the offending values):
- a platform gets only its own datasets; gov never gets a column identifying one person or one
  cooperative (`person_key`, `coop_id`, `coop_ids`, `uscc`, `coop_name`);
- no column a contract flags `pii` (`member_name`, `legal_rep_ric`, `phone`, ...), and no column
  whose name looks personal (`*name*`, `*ric*`, `*phone*`, `*mobile*`, `*tel*`, `*address*`,
  `*id_card*`, `*email*`, `*contact*`) unless allow-listed for that dataset: `coop_name` and
  `county_name` (coop profile), `county_name` (county summary), `name` (division names);
- in every string, array-of-string and integer column, anywhere in a value (but not glued to Latin
  letters or digits, as inside a hex digest): no clear RIC (18 characters, a plausible birth date,
  a valid GB 11643 check character) and no mainland mobile number (1[3-9] and 9 digits, optionally
  +86). In a `uscc`/`*_uscc` column a valid USCC is exempt: an all-digit one can look like either;
- in every string column not allow-listed: no value of 2-4 CJK characters (or CJK around a middle
  dot), since that is what a person's name looks like. Division and cooperative names look the
  same, which is why they pass only through the allow-list;
- nested types other than arrays of strings are refused: the guard cannot look inside them;
- small cells (gov): a county summary row over fewer than AGRILAKE_GOV_MIN_CELL (3) cooperatives
  would be a row about one or two cooperatives' loans, so its tier counts and loan figures are
  exported as null; the manifest's `disclosure_control` says how many rows. 1 disables it.

Credentials: AGRILAKE_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY, else the Airflow connection
AGRILAKE_S3_CONN_ID (type aws; endpoint_url in extra), else the local object store's generated file.
Only the access key id is ever logged, masked.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agrilake.core import faults, lineage
from agrilake.core.s3 import LocalStoreMissing, S3Target, local_store_target, mask, s3_client
from agrilake.core.settings import Settings
from agrilake.stages import datacontract

log = logging.getLogger(__name__)

PLATFORMS: dict[str, tuple[str, ...]] = {
    "bank": ("coop_credit_profile", "household_credit_profile"),
    "gov": ("logistics_division_daily", "credit_county_summary"),
}


def sort_keys(contracts, dataset: str) -> list[str]:
    """Rows are written in key order (the contract's key within a date), so re-exporting unchanged data
    gives byte-identical parts."""
    return [k for k in contracts.gold_table(dataset).key if k != "as_of_date"]

MANIFEST = "_manifest.json"


def person_key_fingerprint(ctx) -> str | None:
    """The fingerprint of the key behind the lakehouse's person keys (silver's, which gold's come from)."""
    from agrilake.core import tables
    from agrilake.core.pseudonymise import FINGERPRINT_PROPERTY

    if not tables.exists(ctx, "silver", "members"):
        return None
    return tables.properties(ctx, "silver", "members").get(FINGERPRINT_PROPERTY)
MANIFEST_VERSION = 1
PARQUET_TYPE = "application/vnd.apache.parquet"
MIB = 1024 * 1024
MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer

# -- privacy rules ---------------------------------------------------------------------------
NAME_ALLOWED = {
    "coop_credit_profile": {"coop_name", "county_name"},
    "credit_county_summary": {"county_name"},
    "logistics_division_daily": {"name"},
}
GOV_FORBIDDEN = ("person_key", "coop_id", "coop_ids", "uscc", "coop_name")
PERSONAL_COLUMN = re.compile(
    r"(^|_)(name|names|ric|idcard|id_card|id_no|idno|phone|mobile|tel|telephone|contact|address|addr|email)(_|$)"
)
# Unanchored, so a RIC or phone inside a text is found too ("电话13812345678"). The ends must not
# touch a Latin letter or digit: longer digit runs (village codes) and hex digests (person_key, an
# HMAC-SHA256 in hex: one in ~300 holds an 11-digit run starting 1[3-9]) are not phone numbers.
# RE2 (Arrow, vectorised) finds the candidate rows; Python then checks only those.
_EDGE_L, _EDGE_R = r"(?:^|[^0-9A-Za-z])", r"(?:$|[^0-9A-Za-z])"
_BIRTH = r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
RIC_RE2 = rf"{_EDGE_L}[1-9][0-9]{{5}}{_BIRTH}[0-9]{{3}}[0-9Xx]{_EDGE_R}"
RIC_PY = re.compile(rf"(?<![0-9A-Za-z])[1-9][0-9]{{5}}{_BIRTH}[0-9]{{3}}[0-9Xx](?![0-9A-Za-z])")
PHONE_RE2 = rf"{_EDGE_L}(?:\+?86[- ]?)?1[3-9][0-9]{{9}}{_EDGE_R}"
_CJK = r"[\x{4e00}-\x{9fff}]"
PERSON_NAME_RE2 = rf"^(?:{_CJK}{{2,4}}|{_CJK}{{1,8}}[\x{{00b7}}\x{{2022}}]{_CJK}{{1,8}})$"
# Loan-derived columns nulled in gov rows that aggregate too few cooperatives (count column first).
SMALL_CELLS = {
    "credit_county_summary": ("coops", ("coops_tier_a", "coops_tier_b", "coops_tier_c", "coops_tier_d",
                                        "principal_active_cny", "arrears_cny", "mean_on_time_rate_12m")),
}


class ExportError(RuntimeError):
    """The export cannot proceed; the message says why. Nothing partial is ever manifest-complete."""


class PrivacyViolation(ExportError):
    """The privacy guard refused a dataset; the message names the columns (never their values)."""


class CredentialsMissing(ExportError):
    """No usable S3 credentials were configured."""


# -- credentials -----------------------------------------------------------------------------
def resolve_target(s: Settings) -> S3Target:
    """The pipeline's S3 identity: environment, else Airflow connection, else the local object store."""
    if s.s3_access_key or s.s3_secret_key:
        if not (s.s3_access_key and s.s3_secret_key):
            missing = "AGRILAKE_S3_SECRET_KEY" if s.s3_access_key else "AGRILAKE_S3_ACCESS_KEY"
            raise CredentialsMissing(f"{missing} is not set while its pair is: set both, or neither")
        return S3Target(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_region, source="environment")
    if s.s3_conn_id:
        return _from_airflow(s.s3_conn_id, s)
    try:
        target = local_store_target(s.exports_dir, "pipeline", s.s3_region)
    except LocalStoreMissing as exc:
        raise CredentialsMissing(
            "no S3 credentials: set AGRILAKE_S3_ENDPOINT, AGRILAKE_S3_ACCESS_KEY and AGRILAKE_S3_SECRET_KEY, "
            "or AGRILAKE_S3_CONN_ID (an Airflow aws connection), or run `agrilake objectstore start` "
            f"for the local store ({exc})"
        ) from None
    if s.s3_endpoint:
        target = S3Target(s.s3_endpoint, target.access_key, target.secret_key, target.region, target.source)
    return target


def _from_airflow(conn_id: str, s: Settings) -> S3Target:
    # Imported only here: Airflow costs seconds to import and the CLI must not need it otherwise.
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        from airflow.hooks.base import BaseHook
    conn = BaseHook.get_connection(conn_id)  # never log `conn`: its repr shows the password
    extra = conn.extra_dejson or {}
    access = conn.login or extra.get("aws_access_key_id")
    secret = conn.password or extra.get("aws_secret_access_key")
    if not (access and secret):
        raise CredentialsMissing(f"Airflow connection {conn_id!r} has no access key and secret "
                                 "(login/password, or aws_access_key_id/aws_secret_access_key in extra)")
    endpoint = (s.s3_endpoint or extra.get("endpoint_url")
                or extra.get("service_config", {}).get("s3", {}).get("endpoint_url"))
    region = extra.get("region_name") or s.s3_region
    return S3Target(endpoint, access, secret, region, source=f"Airflow connection {conn_id!r}")


def bucket_for(platform: str, s: Settings) -> str:
    return {"bank": s.bank_bucket, "gov": s.gov_bucket}[platform]


def prefix_for(dataset: str, as_of: date) -> str:
    return f"{dataset}/as_of={as_of.isoformat()}/"


# -- privacy guard ---------------------------------------------------------------------------
def contract_pii_columns(contracts=None) -> set[str]:
    """Every column a source or silver contract marks as personal data (shipped contracts by default)."""
    from agrilake.core.contracts import packaged

    contracts = contracts or packaged()
    cols = [c for f in contracts.feeds().values() for c in f.columns]
    cols += [c for t in contracts.silver_tables().values() for c in t.columns]
    return {c.name for c in cols if c.pii}


def is_clear_ric(text: str) -> bool:
    """Does `text` contain an 18-character RIC with a plausible birth date and a valid GB 11643 check?

    Deliberately not `stdnum.cn.ric.is_valid`: it also rejects unknown or younger county codes, and a
    real RIC with such a code is still a RIC."""
    from stdnum.cn import ric

    return any(ric.calc_check_digit(m.group()) == m.group()[-1].upper() for m in RIC_PY.finditer(text))


def is_uscc(text: str) -> bool:
    """A cooperative's USCC (GB 32100) is public, and an all-digit one can pass the RIC and phone patterns."""
    from stdnum.cn import uscc

    return len(text) == 18 and uscc.is_valid(text)


def _count(values, pattern: str, confirm=None, *, uscc_column: bool = False) -> int:
    """Values matching `pattern` (vectorised), confirmed one by one in Python where `confirm` is given."""
    import pyarrow.compute as pc

    hits = pc.match_substring_regex(values, pattern)
    if confirm is None:
        return int(pc.sum(hits).as_py() or 0)
    candidates = values.filter(pc.fill_null(hits, False)).to_pylist()
    # One RIC in 31 is also a valid USCC: the exemption holds only where USCCs belong.
    return sum(1 for v in candidates if not (uscc_column and is_uscc(v)) and confirm(v))


def find_violations(table, *, platform: str, dataset: str) -> list[str]:
    """Every reason the guard refuses an Arrow `table` for `platform`; empty when it is clean."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if dataset not in PLATFORMS.get(platform, ()):
        return [f"dataset {dataset!r} is not one the {platform} platform gets (docs/metrics.md Exports: "
                f"{', '.join(PLATFORMS.get(platform, ())) or 'unknown platform'})"]
    problems: list[str] = []
    if platform == "gov":
        problems += [f"column {c!r} identifies one person or cooperative, which gov never gets"
                     for c in table.column_names if c in GOV_FORBIDDEN]
    pii = contract_pii_columns()
    allowed = NAME_ALLOWED.get(dataset, set())
    for c in table.column_names:
        if c in pii:
            problems.append(f"column {c!r} is flagged pii in the contracts")
        elif c not in allowed and PERSONAL_COLUMN.search(c.lower()):
            problems.append(f"column {c!r} has a personal-data name (name/RIC/phone/address) and is not "
                            f"allow-listed for {dataset}")

    for f in table.schema:
        values, dtype = table.column(f.name), f.type
        if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
            values = pc.list_flatten(values)
        elif pa.types.is_integer(dtype):
            values = values.cast(pa.string())
        elif pa.types.is_large_string(dtype):
            values = values.cast(pa.string())
        elif pa.types.is_nested(dtype) or pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
            problems.append(f"column {f.name!r} has type {dtype}, which the guard cannot check")
            continue
        elif not pa.types.is_string(dtype):
            continue  # dates, decimals, floats, booleans cannot hold a RIC, phone or name
        uscc_column = f.name == "uscc" or f.name.endswith("_uscc")
        rules = [("a clear RIC (resident identity card number)",
                  _count(values, RIC_RE2, is_clear_ric, uscc_column=uscc_column)),
                 ("a mainland mobile phone number", _count(values, PHONE_RE2, bool, uscc_column=uscc_column))]
        if f.name not in allowed and not pa.types.is_integer(dtype):
            rules.append(("a person's name (2-4 CJK characters)", _count(values, PERSON_NAME_RE2)))
        problems += [f"column {f.name!r} has {n} value(s) that look like {rule}" for rule, n in rules if n]
    return problems


def guard(table, *, platform: str, dataset: str) -> None:
    """Refuse (PrivacyViolation) a dataset that could put personal data on `platform`."""
    problems = find_violations(table, platform=platform, dataset=dataset)
    if problems:
        raise PrivacyViolation(f"refusing to export {dataset} to {platform}: " + "; ".join(problems))


def suppress_small_cells(table, *, platform: str, dataset: str, min_cell: int):
    """Null the loan figures of gov rows over fewer than `min_cell` cooperatives; returns (table, info)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if platform != "gov" or dataset not in SMALL_CELLS or min_cell <= 1:
        return table, None
    count_col, columns = SMALL_CELLS[dataset]
    small = pc.fill_null(pc.less(table.column(count_col), min_cell), False)
    present = [c for c in columns if c in table.column_names]
    for c in present:
        i = table.column_names.index(c)
        table = table.set_column(i, table.field(i), pc.if_else(small, pa.scalar(None, table.field(i).type),
                                                               table.column(i)))
    info = {"rule": f"{count_col} < {min_cell}: loan figures null", "count_column": count_col,
            "min_cell": min_cell, "columns": present, "rows_suppressed": int(pc.sum(small).as_py() or 0)}
    return table, info


# -- objects ---------------------------------------------------------------------------------
@dataclass
class LocalPart:
    name: str
    path: Path
    rows: int
    size: int
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_parts(table, directory: Path, part_rows: int) -> list[LocalPart]:
    """Slice an Arrow table into Parquet files of at most `part_rows` rows each."""
    import pyarrow.parquet as pq

    part_rows = max(1, part_rows)
    parts = []
    for number, offset in enumerate(range(0, max(table.num_rows, 1), part_rows)):
        piece = table.slice(offset, part_rows)
        path = directory / f"part-{number:05d}.parquet"
        pq.write_table(piece, path, compression="snappy")
        parts.append(LocalPart(path.name, path, piece.num_rows, path.stat().st_size, sha256_file(path)))
    return parts


def list_keys(client, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def abort_uploads(client, bucket: str, prefix: str) -> int:
    """Abort every unfinished multipart upload under `prefix` (a killed export leaves them behind)."""
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted += 1
    if aborted:
        log.warning("aborted %d unfinished multipart upload(s) under s3://%s/%s", aborted, bucket, prefix)
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


def verify_object(client, bucket: str, key: str, size: int, sha256: str) -> None:
    """HEAD for the size, then re-read the object and compare its SHA-256 with the local file's."""
    head = client.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != size:
        raise ExportError(f"s3://{bucket}/{key} has {head['ContentLength']} bytes after upload, expected {size}")
    digest = hashlib.sha256()
    for chunk in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ExportError(f"s3://{bucket}/{key} does not read back with the SHA-256 that was uploaded")


# -- one dataset -----------------------------------------------------------------------------
@dataclass
class ExportResult:
    platform: str
    dataset: str
    as_of: date
    bucket: str
    prefix: str
    rows: int
    files: int
    bytes: int
    seconds: float
    manifest_sha256: str
    quality_success: bool | None
    suppressed_rows: int = 0
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST

    def summary(self) -> str:
        extra = f", {self.suppressed_rows} small-cell row(s) suppressed" if self.suppressed_rows else ""
        return (f"exported gold.{self.dataset} as_of={self.as_of}: {self.rows} rows, {self.files} file(s), "
                f"{self.bytes:,} bytes in {self.seconds:.1f} s{extra} -> s3://{self.bucket}/{self.manifest_key}")


def _read_gold(ctx, dataset: str, as_of: date):
    """The gold partition of D as D's latest complete publication (ops.gold_publications) left it: the
    four tables of a date are four commits, and an export must never mix a publish killed between
    them with the one before.

    Read at the newest version whose D partition still holds exactly the published data (the latest,
    unless a later commit rewrote D): the published version's own files may be gone, since OPTIMIZE
    compacts them (same data, new files) and VACUUM deletes the old ones after its retention.
    Returns (DataFrame, version read, version published)."""
    from pyspark.sql import functions as F

    from agrilake.core import ops, tables

    if not tables.exists(ctx, "gold", dataset):
        raise ExportError(f"gold.{dataset} does not exist at {tables.path(ctx, 'gold', dataset)}: build gold first")
    published = ops.gold_publication(ctx, as_of)
    if published is None or dataset not in published["versions"]:
        raise ExportError(f"gold for {as_of} has no complete publication of {dataset} (ops.gold_publications): "
                          f"build it, or rerun a publish that was interrupted: agrilake gold --date {as_of}")
    version = published["versions"][dataset]
    same = tables.last_version_with_partition_of(ctx, "gold", dataset, version, "as_of_date", as_of.isoformat())
    try:
        df = tables.read(ctx, "gold", dataset, version=version if same is None else same)
    except Exception as exc:
        if (gone := _gone(exc, dataset, as_of, version)) is None:
            raise
        raise gone from exc
    return df.where(F.col("as_of_date") == F.lit(as_of)), version if same is None else same, version


_GONE_MARKERS = ("FILE_NOT_EXIST", "FileNotFoundException", "VERSION_NOT_FOUND", "VersionNotFound",
                 "DELTA_FILE_NOT_FOUND", "DELTA_CANNOT_TIME_TRAVEL")


def _gone(exc: Exception, dataset: str, as_of: date, version: int) -> ExportError | None:
    """A clear error for a published version that VACUUM (or log cleanup) has removed; None for others."""
    if not any(m in str(exc) for m in _GONE_MARKERS):
        return None
    return ExportError(
        f"gold.{dataset} for {as_of} was last published completely at version {version}, a later commit "
        f"rewrote the date without completing its publication, and VACUUM has since removed the files of "
        f"that version: rerun `agrilake gold --date {as_of}`, then export again")


def export_dataset(ctx, client, *, platform: str, dataset: str, as_of: date) -> ExportResult:
    """Export one gold partition to its platform's bucket (see the module docstring for the protocol)."""
    from agrilake import __version__
    from agrilake.core import ops

    s = ctx.settings
    started = time.monotonic()
    bucket, prefix = bucket_for(platform, s), prefix_for(dataset, as_of)
    df, version, published_version = _read_gold(ctx, dataset, as_of)
    # Every stage records its DQ partition as the ISO date; gold of releases before 0.2 as `as_of_date=D`.
    quality = (ops.latest_dq(ctx, f"gold.{dataset}", as_of.isoformat())
               or ops.latest_dq(ctx, f"gold.{dataset}", f"as_of_date={as_of.isoformat()}"))
    if quality is not None and not quality["success"]:
        raise ExportError(f"the latest validation of gold.{dataset} for {as_of} failed critical checks "
                          f"(run {quality['run_id']}): fix and rebuild it before exporting")
    keys = sort_keys(ctx.contracts, dataset)
    if any(k not in df.columns for k in keys):
        guard(df.limit(0).toArrow(), platform=platform, dataset=dataset)  # names the forbidden columns
        raise ExportError(f"gold.{dataset} lacks its key column(s) {keys}")
    # Gold datasets are one row per cooperative, person or division: they fit the driver, and Arrow
    # checks and slices them without a Python loop per row.
    try:
        table = df.orderBy(*keys).toArrow()
    except Exception as exc:  # the files are read only now: a vacuumed version fails here
        if (gone := _gone(exc, dataset, as_of, published_version)) is None:
            raise
        raise gone from exc
    if table.num_rows == 0:
        raise ExportError(f"gold.{dataset} has no rows for {as_of}: build gold for that date first")
    table, suppression = suppress_small_cells(table, platform=platform, dataset=dataset, min_cell=s.gov_min_cell)
    guard(table, platform=platform, dataset=dataset)
    chunk_bytes = max(s.export_multipart_mb, 5) * MIB  # S3's smallest multipart part is 5 MiB
    # the endpoint the platform reads from (inside a deployment the exporter may use an internal name)
    endpoint = s.export_public_endpoint or getattr(client.meta, "endpoint_url", None)
    contract = datacontract.generate(ctx.contracts, s.expectations_dir, platform, dataset,
                                     server=datacontract.server_for(platform, bucket, prefix, endpoint))
    datacontract.validate(contract)
    with tempfile.TemporaryDirectory(prefix="agrilake-export-") as tmp:
        parts = write_parts(table, Path(tmp), s.export_part_rows)
        contract_body = datacontract.dump(contract).encode("utf-8")
        contract_path = Path(tmp) / datacontract.CONTRACT_FILE
        contract_path.write_bytes(contract_body)
        contract_key, contract_sha = prefix + datacontract.CONTRACT_FILE, hashlib.sha256(contract_body).hexdigest()
        manifest_key = prefix + MANIFEST
        client.delete_object(Bucket=bucket, Key=manifest_key)  # first: the prefix stops being complete
        abort_uploads(client, bucket, prefix)
        for part in parts:
            upload_file(client, bucket, prefix + part.name, part.path, chunk_bytes=chunk_bytes)
        upload_file(client, bucket, contract_key, contract_path, chunk_bytes=chunk_bytes, content_type="application/yaml")
        new_keys = {prefix + p.name for p in parts} | {contract_key}
        stale = [k for k in list_keys(client, bucket, prefix) if k not in new_keys]
        if stale:
            log.info("removing %d stale object(s) under s3://%s/%s", len(stale), bucket, prefix)
            delete_keys(client, bucket, stale)
        for part in parts:
            verify_object(client, bucket, prefix + part.name, part.size, part.sha256)
        verify_object(client, bucket, contract_key, len(contract_body), contract_sha)
        faults.crash_point("after_export_parts")  # parts in place, no manifest: the prefix is incomplete

        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "dataset": dataset,
            "platform": platform,
            "as_of": as_of.isoformat(),
            "bucket": bucket,
            "prefix": prefix,
            "format": "parquet",
            "schema": [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable}
                       for f in df.schema.fields],
            "row_count": table.num_rows,
            "files": [{"key": prefix + p.name, "size": p.size, "sha256": p.sha256, "rows": p.rows} for p in parts],
            "quality": quality,
            "disclosure_control": suppression,
            # the ODCS contract this delivery keeps (agrilake.stages.datacontract), beside this manifest
            "contract": {"key": contract_key, "version": contract["version"], "api_version": contract["apiVersion"],
                         "size": len(contract_body), "sha256": contract_sha},
            # the version read: D's partition there is exactly what its publication wrote
            "source": {"table": f"gold.{dataset}", "delta_version": version,
                       "published_version": published_version},
            # which secret made the person keys (agrilake.core.pseudonymise): a new value is a key rotation
            "person_key_fingerprint": person_key_fingerprint(ctx) if "person_key" in df.columns else None,
            "pipeline_version": __version__,
            "produced_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
        manifest_path = Path(tmp) / MANIFEST
        manifest_path.write_bytes(body)
        upload_file(client, bucket, manifest_key, manifest_path, chunk_bytes=chunk_bytes,
                    content_type="application/json")
        manifest_sha = hashlib.sha256(body).hexdigest()
        verify_object(client, bucket, manifest_key, len(body), manifest_sha)
    if (run := lineage.recorder(ctx)) is not None:
        for part in parts:
            run.object_written(f"s3://{bucket}/{prefix}{part.name}", part.sha256, part.size, part.rows)
        run.object_written(f"s3://{bucket}/{contract_key}", contract_sha, len(contract_body))
        run.object_written(f"s3://{bucket}/{manifest_key}", manifest_sha, len(body))

    return ExportResult(platform, dataset, as_of, bucket, prefix, table.num_rows, len(parts),
                        sum(p.size for p in parts), time.monotonic() - started, manifest_sha,
                        None if quality is None else quality["success"],
                        (suppression or {}).get("rows_suppressed", 0), manifest)


def _record(ctx, rows: list[dict]) -> None:
    from agrilake.core import ops

    try:
        ops.record_exports(ctx, rows)
    except Exception as exc:  # the export itself stands; a missing ops row must not undo it
        log.warning("could not record the export in ops.export_manifests: %s", exc)


def export_platform(ctx, platform: str, as_of: date, *, target: S3Target | None = None, client=None,
                    datasets: list[str] | None = None) -> list[ExportResult]:
    """Export every dataset `platform` gets for `as_of`; stops at the first failure (a rerun redoes all)."""
    s = ctx.settings
    if platform not in PLATFORMS:
        raise ExportError(f"unknown platform {platform!r}; one of {sorted(PLATFORMS)}")
    if client is None:
        target = target or resolve_target(s)
        log.info("exporting to %s", target.describe())
        client = s3_client(target)
    with lineage.stage_run(ctx, f"export.{platform}", dates=[as_of]):
        return _export_platform(ctx, client, platform, as_of, datasets)


def _export_platform(ctx, client, platform: str, as_of: date, datasets: list[str] | None) -> list[ExportResult]:
    from agrilake import __version__
    from agrilake.core import ops

    s = ctx.settings
    results, records = [], []
    try:
        for dataset in datasets or PLATFORMS[platform]:
            started = time.monotonic()
            row = {"export_id": ops.new_run_id(), "platform": platform, "dataset": dataset, "as_of_date": as_of,
                   "bucket": bucket_for(platform, s), "prefix": prefix_for(dataset, as_of),
                   "pipeline_version": __version__}
            try:
                result = export_dataset(ctx, client, platform=platform, dataset=dataset, as_of=as_of)
            except Exception as exc:
                status = "refused" if isinstance(exc, PrivacyViolation) else "failed"
                records.append({**row, "status": status, "message": str(exc)[:2000],
                                "seconds": time.monotonic() - started})
                raise
            records.append({**row, "status": "complete", "row_count": result.rows, "files": result.files,
                            "bytes": result.bytes, "manifest_sha256": result.manifest_sha256,
                            "quality_success": result.quality_success, "seconds": result.seconds,
                            "source_version": result.manifest["source"]["delta_version"]})
            log.info(result.summary())
            results.append(result)
    finally:
        faults.crash_point("before_export_record")  # manifests written, the run not yet recorded
        _record(ctx, records)  # one Delta commit for the whole run
    return results


# -- links -----------------------------------------------------------------------------------
def manifest_links(client, platform: str, as_of: date, *, expires: int, settings: Settings,
                   datasets: list[str] | None = None) -> list[tuple[str, str, datetime]]:
    """A presigned GET link per exported manifest: (dataset, url, expiry). Refuses unexported datasets."""
    from botocore.exceptions import ClientError

    if not 1 <= expires <= MAX_LINK_SECONDS:
        raise ExportError(f"link expiry must be 1..{MAX_LINK_SECONDS} seconds (SigV4's limit), got {expires}")
    bucket = bucket_for(platform, settings)
    links = []
    for dataset in datasets or PLATFORMS[platform]:
        key = prefix_for(dataset, as_of) + MANIFEST
        try:
            client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise ExportError(f"{dataset} for {as_of} is not exported (no s3://{bucket}/{key})") from None
            raise
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)
        links.append((dataset, url, datetime.now(UTC) + timedelta(seconds=expires)))
    return links


# -- command ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from agrilake.core import context, dates

    ctx = context.from_env("agrilake-export")
    s = ctx.settings
    parser = argparse.ArgumentParser(prog="agrilake export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True, choices=sorted(PLATFORMS))
    dates.add_date_options(parser, what="as-of date D", ranges=True)
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    parser.add_argument("--link", action="store_true", help="after exporting, print a presigned link per manifest")
    parser.add_argument("--links-only", action="store_true", help="print links for an existing export, no export")
    parser.add_argument("--expires", type=int, default=s.export_link_expiry_s,
                        help=f"link lifetime in seconds (default AGRILAKE_EXPORT_LINK_EXPIRY={s.export_link_expiry_s})")
    args = parser.parse_args(argv)
    wanted = dates.from_options(args)
    for d in args.dataset or ():
        if d not in PLATFORMS[args.platform]:
            parser.error(f"{d!r} is not a {args.platform} dataset: {', '.join(PLATFORMS[args.platform])}")
    try:
        target = resolve_target(s)
        log.info("S3 endpoint %s", target.describe())
        client = s3_client(target)
        for day in dates.resolve_all(ctx, wanted):  # `latest` needs the ingest log, so a session
            if not args.links_only:
                # Each result is logged; stdout is kept for the links, so scripts can read them.
                export_platform(ctx, args.platform, day, client=client, datasets=args.dataset)
            if args.link or args.links_only:
                log.info("signing links as %s", mask(target.access_key))
                for dataset, url, expiry in manifest_links(client, args.platform, day, expires=args.expires,
                                                           settings=s, datasets=args.dataset):
                    print(f"link {dataset} as_of={day} (expires {expiry:%Y-%m-%dT%H:%M:%SZ}): {url}")
    except ExportError as exc:
        print(f"agrilake export: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:  # their messages name bucket and key, never a secret
        print(f"agrilake export: S3 error: {exc}", file=sys.stderr)
        return 1
    return 0
