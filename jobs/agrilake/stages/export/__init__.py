"""The export stage: a platform's datasets of as-of date D, from D's gold publication to its bucket.

    agrilake export --platform bank|gov --date D [--dataset NAME ...] [--link] [--links-only] [--expires S]

(the command: agrilake.stages.export.cli). One export of a platform and date runs under that
platform's and date's lock (agrilake.delivery.lock), and:

1. takes D's latest complete gold publication (ops.gold_publications) once: every dataset of the run,
   and every count its small cells need, is read at that publication's versions. The platform's D is
   one publication: when only some datasets are asked for and the platform's others of D came from
   another publication, all are exported (a WARNING says which and why);
2. per dataset, before anything is uploaded: refuses a publication whose own validation (the rows of
   its gold run in ops.dq_results, not whatever ran last) failed a critical expectation; reads D's
   partition (`_read_gold`, which says what to run when the published version is gone); nulls gov
   small cells and runs the privacy guard (agrilake.delivery.policy); writes the Parquet parts and the
   data contract (agrilake.delivery.contract) locally;
3. hands every dataset at once to the delivery protocol (agrilake.delivery.protocol): uploaded beside
   the previous delivery and verified, the manifests switched last, then the platform's delivery
   record (`_deliveries/as_of=D.json`: the publication every dataset of D came from), then the
   previous delivery's objects collected. Until the switch the platform keeps its previous D whole;
4. records each dataset's attempt (complete, failed or refused) in ops.export_manifests.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agrilake.core import faults, lineage
from agrilake.core.credentials import CredentialsMissing, s3_target
from agrilake.core.s3 import S3Target, s3_client
from agrilake.core.settings import Settings
from agrilake.delivery import ExportError, contract, lock, policy, protocol
from agrilake.delivery.policy import PLATFORMS, PrivacyViolation

log = logging.getLogger(__name__)

__all__ = ["PLATFORMS", "CredentialsMissing", "ExportError", "ExportResult", "PrivacyViolation", "Publication",
           "export_platform", "main", "prepare", "publication_of"]


def bucket_for(platform: str, s: Settings) -> str:
    return {"bank": s.bank_bucket, "gov": s.gov_bucket}[platform]


def sort_keys(contracts, dataset: str) -> list[str]:
    """Rows are written in key order (the contract's key within a date), so re-exporting unchanged data
    gives byte-identical parts."""
    return [k for k in contracts.gold_table(dataset).key if k != "as_of_date"]


def person_key_fingerprint(ctx) -> str | None:
    """The fingerprint of the key behind the lakehouse's person keys (silver's, which gold's come from)."""
    from agrilake.core import tables
    from agrilake.core.pseudonymise import FINGERPRINT_PROPERTY

    if not tables.exists(ctx, "silver", "members"):
        return None
    return tables.properties(ctx, "silver", "members").get(FINGERPRINT_PROPERTY)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- D's publication ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Publication:
    """D's latest complete gold publication: the gold run and the Delta version of each table."""

    as_of: date
    run_id: str
    versions: dict[str, int]
    published_at: str | None = None

    def describe(self) -> dict:
        return {"run_id": self.run_id, "published_at": self.published_at}


def publication_of(ctx, as_of: date) -> Publication:
    from agrilake.core import ops

    found = ops.gold_publication(ctx, as_of)
    if found is None:
        raise ExportError(f"gold for {as_of} has no complete publication (ops.gold_publications): build it, or "
                          f"rerun a publish that was interrupted: agrilake gold --date {as_of}")
    return Publication(as_of, found["run_id"], found["versions"], found.get("published_at"))


def publication_quality(ctx, dataset: str, publication: Publication) -> dict | None:
    """The validation of `dataset`'s partition by the gold run that published it (a later run that
    validated D and never published it does not count); refuses one that failed a critical check."""
    from agrilake.core import ops

    d, run = publication.as_of.isoformat(), publication.run_id
    # Every stage records its DQ partition as the ISO date; gold of releases before 0.2 as `as_of_date=D`.
    quality = ops.dq_of_run(ctx, f"gold.{dataset}", [d, f"as_of_date={d}"], run)
    if quality is None:
        log.warning("gold.%s for %s: its publication (gold run %s) left no validation in ops.dq_results; "
                    "the manifest's quality is null", dataset, d, run)
    elif not quality["success"]:
        failed = sorted({f["expectation"] + (f"({f['column']})" if f["column"] else "")
                         for f in quality["failed"] if f["severity"] == "critical"})
        raise ExportError(f"the validation of gold.{dataset} for {d} by the gold run that published it ({run}) failed "
                          f"critical checks ({', '.join(failed)}): fix and rebuild it (`agrilake gold --date {d}`)")
    return quality


# Delta's errors for a version whose files (VACUUM) or log entries (log cleanup) are gone.
_GONE_MARKERS = ("FILE_NOT_EXIST", "FileNotFoundException", "VERSION_NOT_FOUND", "VersionNotFound",
                 "DELTA_FILE_NOT_FOUND", "DELTA_CANNOT_TIME_TRAVEL")


@dataclass
class GoldRead:
    """D's partition of one gold table as its publication left it, and what to say when it is gone."""

    dataset: str
    publication: Publication
    version: int  # the version read
    published: int  # the version the publication wrote
    log_kept: bool  # the Delta log still holds every commit since the publication
    rewritten: bool  # a later commit rewrote D without publishing it (a republish that did not finish)
    df: Any = field(default=None, repr=False)

    def gone(self, exc: Exception) -> ExportError | None:
        """A clear error for a published version that is no longer readable; None for other errors."""
        if not any(m in str(exc) for m in _GONE_MARKERS):
            return None
        d, table, run = self.publication.as_of, f"gold.{self.dataset}", self.publication.run_id
        rebuild = f"rebuild it: `agrilake gold --date {d}`, then export again"
        if not self.log_kept:
            return ExportError(
                f"{table} for {d} was published at version {self.published} by gold run {run}, which is older than "
                f"the table's Delta log keeps (delta.logRetentionDuration, 30 days by default): whether a later "
                f"commit changed {d} can no longer be told, and the published version itself is gone (its log "
                f"entries, or its files after VACUUM). Nothing is wrong with the data; {rebuild}")
        if self.rewritten:
            return ExportError(
                f"{table} for {d} was last published completely at version {self.published}, a later commit "
                f"rewrote the date without completing its publication (a republish that did not finish), and "
                f"VACUUM has since removed the files of the published version: {rebuild}")
        return ExportError(f"{table} for {d}: the files of version {self.version}, which holds the date as "
                           f"published, are missing (deleted outside Delta?): {rebuild}")


def _read_gold(ctx, dataset: str, publication: Publication) -> GoldRead:
    """The gold partition of D as its publication left it: the four tables of a date are four commits,
    and an export must never mix a publish killed between them with the one before.

    Read at the newest version whose D partition still holds exactly the published data (the latest,
    unless a later commit rewrote D): the published version's own files may be gone, since OPTIMIZE
    compacts them (same data, new files) and VACUUM deletes the old ones after its retention. When the
    Delta log no longer reaches back to the publication, the published version itself is read."""
    from pyspark.sql import functions as F

    from agrilake.core import tables

    as_of = publication.as_of
    if not tables.exists(ctx, "gold", dataset):
        raise ExportError(f"gold.{dataset} does not exist at {tables.path(ctx, 'gold', dataset)}: build gold first")
    if dataset not in publication.versions:
        raise ExportError(f"gold for {as_of} has no complete publication of {dataset} (ops.gold_publications): "
                          f"build it, or rerun a publish that was interrupted: agrilake gold --date {as_of}")
    version = publication.versions[dataset]
    latest = tables.latest_version(ctx, "gold", dataset)
    same = tables.last_version_with_partition_of(ctx, "gold", dataset, version, "as_of_date", as_of.isoformat())
    read = GoldRead(dataset, publication, version if same is None else same, version, same is not None,
                    same is not None and same < latest)
    try:
        df = tables.read(ctx, "gold", dataset, version=read.version)
    except Exception as exc:
        if (gone := read.gone(exc)) is None:
            raise
        raise gone from exc
    read.df = df.where(F.col("as_of_date") == F.lit(as_of))
    return read


def _arrow(read: GoldRead, build=lambda df: df):
    """`build(read.df)` as an Arrow table: the files are read only now, so a vacuumed version fails here."""
    try:
        return build(read.df).toArrow()
    except Exception as exc:
        if (gone := read.gone(exc)) is None:
            raise
        raise gone from exc


# -- one dataset -------------------------------------------------------------------------------
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
    suppressed_cells: int = 0
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def manifest_key(self) -> str:
        return self.prefix + protocol.MANIFEST

    def summary(self) -> str:
        extra = f", {self.suppressed_cells} small cell(s) suppressed" if self.suppressed_cells else ""
        return (f"exported gold.{self.dataset} as_of={self.as_of}: {self.rows} rows, {self.files} file(s), "
                f"{self.bytes:,} bytes in {self.seconds:.1f} s{extra} -> s3://{self.bucket}/{self.manifest_key}")


def prepare_dataset(ctx, platform: str, dataset: str, publication: Publication, workdir: Path, *, bucket: str,
                    endpoint: str | None) -> protocol.Staged:
    """Read, check and write one dataset's delivery locally (nothing is uploaded here)."""
    from pyspark.sql import functions as F

    from agrilake import __version__

    s, as_of = ctx.settings, publication.as_of
    quality = publication_quality(ctx, dataset, publication)
    read = _read_gold(ctx, dataset, publication)
    keys = sort_keys(ctx.contracts, dataset)
    if any(k not in read.df.columns for k in keys):
        policy.guard(read.df.limit(0).toArrow(), platform=platform, dataset=dataset)  # names forbidden columns
        raise ExportError(f"gold.{dataset} lacks its key column(s) {keys}")
    # Gold datasets are one row per cooperative, person or division: they fit the driver, and Arrow
    # checks and slices them without a Python loop per row.
    table = _arrow(read, lambda df: df.orderBy(*keys))
    if table.num_rows == 0:
        raise ExportError(f"gold.{dataset} has no rows for {as_of}: build gold for that date first")
    rules = policy.small_cell_rules(platform, dataset, s.gov_min_cell)
    for party in policy.counted_in_gold(rules):
        counts = _arrow(_read_gold(ctx, party.table, publication),
                        lambda df, p=party: df.where(p.where).groupBy(*p.on).agg(F.count(F.lit(1)).alias(p.column)))
        table = policy.attach_counts(table, counts, party)
    table, disclosure = policy.suppress_small_cells(table, rules, min_cell=s.gov_min_cell)
    policy.guard(table, platform=platform, dataset=dataset)

    folder = workdir / dataset
    folder.mkdir(parents=True)
    prefix = protocol.prefix_for(dataset, as_of)
    tag, parts = protocol.write_parts(table, folder, s.export_part_rows)
    doc = contract.generate(ctx.contracts, s.expectations_dir, platform, dataset, min_cell=s.gov_min_cell,
                            server=contract.server_for(platform, bucket, protocol.parts_pattern(prefix, tag), endpoint))
    contract.validate(doc)
    body = contract.dump(doc).encode("utf-8")
    path = folder / protocol.contract_name(body)
    path.write_bytes(body)
    contract_file = protocol.local_file(path, content_type="application/yaml")
    manifest = {
        "manifest_version": protocol.MANIFEST_VERSION,
        "dataset": dataset,
        "platform": platform,
        "as_of": as_of.isoformat(),
        "bucket": bucket,
        "prefix": prefix,
        "format": "parquet",
        "schema": [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable}
                   for f in read.df.schema.fields],
        "row_count": table.num_rows,
        "files": [{"key": prefix + p.name, "size": p.size, "sha256": p.sha256, "rows": p.rows} for p in parts],
        "quality": quality,
        "disclosure_control": disclosure,
        # the ODCS contract this delivery keeps (agrilake.delivery.contract), beside this manifest
        "contract": {"key": prefix + contract_file.name, "version": doc["version"], "api_version": doc["apiVersion"],
                     "size": contract_file.size, "sha256": contract_file.sha256},
        # the version read: D's partition there is exactly what the publication wrote
        "source": {"table": f"gold.{dataset}", "delta_version": read.version, "published_version": read.published,
                   "publication": publication.describe()},
        # which publication every dataset of this platform's D came from
        "delivery_record": protocol.record_key(as_of),
        # which secret made the person keys (agrilake.core.pseudonymise): a new value is a key rotation
        "person_key_fingerprint": person_key_fingerprint(ctx) if "person_key" in table.column_names else None,
        "pipeline_version": __version__,
        "produced_at": _utc_now(),
    }
    return protocol.Staged(dataset, prefix, [*parts, contract_file], manifest)


def record_entry(manifest: dict, body: bytes) -> dict:
    """A dataset's line in the platform's delivery record: its manifest and where its data came from."""
    quality = manifest.get("quality")
    return {"manifest": {"key": manifest["prefix"] + protocol.MANIFEST, "size": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()},
            "row_count": manifest["row_count"], "source": manifest["source"],
            "quality": None if quality is None else {"run_id": quality["run_id"], "success": quality["success"]},
            "cells_suppressed": (manifest.get("disclosure_control") or {}).get("cells_suppressed")}


def _scope(client, bucket: str, platform: str, publication: Publication, wanted: list[str] | None
           ) -> tuple[list[str], dict[str, dict]]:
    """The datasets to export, and the record entries of the platform's other datasets of D, kept as they
    are because they came from the same publication."""
    everything = list(PLATFORMS[platform])
    if not wanted or set(wanted) >= set(everything):
        return everything, {}
    kept, mixed = {}, []
    for dataset in everything:
        if dataset in wanted:
            continue
        found = protocol.read_json(client, bucket, protocol.prefix_for(dataset, publication.as_of) + protocol.MANIFEST)
        if found is None:
            continue  # not delivered: nothing to mix with
        manifest, body = found
        run = ((manifest.get("source") or {}).get("publication") or {}).get("run_id")
        if run == publication.run_id:
            kept[dataset] = record_entry(manifest, body)
        else:
            mixed.append(f"{dataset} (from gold run {run})" if run else f"{dataset} (a manifest naming no publication)")
    if mixed:
        log.warning("export %s %s: the platform's %s came from another gold publication than %s's latest (gold run "
                    "%s): exporting every %s dataset, so that the platform's %s is one publication", platform,
                    publication.as_of, ", ".join(mixed), publication.as_of, publication.run_id, platform,
                    publication.as_of)
        return everything, {}
    return [d for d in everything if d in wanted], kept


def delivery_record(platform: str, bucket: str, publication: Publication, entries: dict[str, dict],
                    export_id: str) -> dict:
    from agrilake import __version__

    return {"record_version": protocol.RECORD_VERSION, "platform": platform, "bucket": bucket,
            "as_of": publication.as_of.isoformat(),
            "publication": {**publication.describe(),
                            "versions": {d: publication.versions.get(d) for d in sorted(entries)}},
            "datasets": {d: entries[d] for d in sorted(entries)},
            "export_id": export_id, "pipeline_version": __version__, "produced_at": _utc_now()}


def prepare(ctx, client, platform: str, as_of: date, workdir: Path, *, datasets: list[str] | None = None,
            export_id: str = "", on_dataset=lambda dataset: None) -> protocol.Plan:
    """The platform's delivery of D, read from D's publication and written under `workdir`, ready for
    agrilake.delivery.protocol.deliver. `on_dataset` is told each dataset before it is read."""
    s = ctx.settings
    bucket = bucket_for(platform, s)
    publication = publication_of(ctx, as_of)
    names, kept = _scope(client, bucket, platform, publication, datasets)
    # the endpoint the platform reads from (inside a deployment the exporter may use an internal name)
    endpoint = s.export_public_endpoint or getattr(client.meta, "endpoint_url", None)
    staged = []
    for dataset in names:
        on_dataset(dataset)
        staged.append(prepare_dataset(ctx, platform, dataset, publication, workdir, bucket=bucket, endpoint=endpoint))
    entries = {**kept, **{x.dataset: record_entry(x.manifest, x.manifest_body) for x in staged}}
    return protocol.Plan(platform, bucket, as_of, staged, delivery_record(platform, bucket, publication, entries,
                                                                          export_id))


# -- one platform and date ---------------------------------------------------------------------
def _record(ctx, rows: list[dict]) -> None:
    from agrilake.core import ops

    try:
        ops.record_exports(ctx, rows)
    except Exception as exc:  # the export itself stands; a missing ops row must not undo it
        log.warning("could not record the export in ops.export_manifests: %s", exc)


def export_platform(ctx, platform: str, as_of: date, *, target: S3Target | None = None, client=None,
                    datasets: list[str] | None = None) -> list[ExportResult]:
    """Export the datasets `platform` gets for `as_of` (all by default) as one delivery; on any failure
    the platform keeps its previous delivery, and a rerun redoes it all."""
    from agrilake.core import ops

    s = ctx.settings
    if platform not in PLATFORMS:
        raise ExportError(f"unknown platform {platform!r}; one of {sorted(PLATFORMS)}")
    if client is None:
        target = target or s3_target(s)
        log.info("exporting to %s", target.describe())
        client = s3_client(target)
    export_id = ops.new_run_id()
    with lineage.stage_run(ctx, f"export.{platform}", dates=[as_of]), \
            lock.hold(client, bucket_for(platform, s), protocol.lock_key(as_of), ttl=s.export_lock_ttl_s,
                      wait=s.export_lock_wait_s, run_id=export_id, what=f"export {platform} {as_of}") as lease:
        return _export(ctx, client, platform, as_of, datasets, lease, export_id)


def _export(ctx, client, platform: str, as_of: date, datasets: list[str] | None, lease,
            export_id: str) -> list[ExportResult]:
    from agrilake import __version__

    s = ctx.settings
    bucket = bucket_for(platform, s)
    started = time.monotonic()
    names = list(datasets or PLATFORMS[platform])
    current: list[str] = []
    records: list[dict] = []

    def row(dataset: str, **fields) -> dict:
        return {"export_id": export_id, "platform": platform, "dataset": dataset, "as_of_date": as_of,
                "bucket": bucket, "prefix": protocol.prefix_for(dataset, as_of), "pipeline_version": __version__,
                "seconds": time.monotonic() - started, **fields}

    try:
        with tempfile.TemporaryDirectory(prefix="agrilake-export-") as tmp:
            plan = prepare(ctx, client, platform, as_of, Path(tmp), datasets=datasets, export_id=export_id,
                           on_dataset=current.append)
            names = [x.dataset for x in plan.datasets]
            current.append("")  # every dataset read and checked: what fails now is the delivery
            protocol.deliver(client, plan, lease=lease, chunk_bytes=max(s.export_multipart_mb, 5) * protocol.MIB)
    except Exception as exc:
        culprit = current[-1] if current else ""
        for dataset in names + ([culprit] if culprit and culprit not in names else []):
            status = "refused" if isinstance(exc, PrivacyViolation) and dataset == culprit else "failed"
            why = str(exc) if dataset == culprit or not culprit else f"not delivered: {culprit} failed: {exc}"
            records.append(row(dataset, status=status, message=why[:2000]))
        raise
    else:
        results = _results(ctx, plan, started)
        records += [row(r.dataset, status="complete", row_count=r.rows, files=r.files, bytes=r.bytes,
                        manifest_sha256=r.manifest_sha256, quality_success=r.quality_success,
                        source_version=r.manifest["source"]["delta_version"]) for r in results]
        return results
    finally:
        faults.crash_point("before_export_record")  # delivered, the run not yet recorded
        _record(ctx, records)  # one Delta commit for the whole run


def _results(ctx, plan: protocol.Plan, started: float) -> list[ExportResult]:
    run = lineage.recorder(ctx)
    results = []
    for x in plan.datasets:
        parts = [f for f in x.objects if f.rows is not None]
        cells = sum(((x.manifest["disclosure_control"] or {}).get("cells_suppressed") or {}).values())
        results.append(ExportResult(plan.platform, x.dataset, plan.as_of, plan.bucket, x.prefix,
                                    x.manifest["row_count"], len(parts), sum(p.size for p in parts),
                                    time.monotonic() - started, x.manifest_sha256,
                                    None if x.manifest["quality"] is None else x.manifest["quality"]["success"],
                                    cells, x.manifest))
        log.info(results[-1].summary())
        if run is not None:
            for f in x.objects:
                run.object_written(f"s3://{plan.bucket}/{x.prefix}{f.name}", f.sha256, f.size, f.rows)
            run.object_written(f"s3://{plan.bucket}/{x.manifest_key}", x.manifest_sha256, len(x.manifest_body))
    if run is not None:
        run.object_written(f"s3://{plan.bucket}/{plan.record_key}", hashlib.sha256(plan.record_body).hexdigest(),
                           len(plan.record_body))
    return results


def main(argv: list[str] | None = None) -> int:
    """`agrilake export`: agrilake.stages.export.cli (the command is kept apart from the stage)."""
    from agrilake.stages.export.cli import main as command

    return command(argv)
