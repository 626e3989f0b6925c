"""The persistent catalog: databases bronze, silver, gold and ops, every Delta table registered by location.

Why a Hive metastore in embedded Derby, kept with the lakehouse (`<lakehouse>/_catalog`):
- It is the one persistent catalog that Spark 4.2 and Delta 4.4 support with nothing to install or
  run: pyspark's wheel ships the Hive 2.3 client and Derby, and Delta's catalog (spark_catalog =
  DeltaCatalog) stores Delta tables there as external tables whose schema stays in the Delta log.
  Unity Catalog OSS would need a server of its own; Delta has no file-system catalog.
- It travels with the data it describes: another lakehouse root gets its own catalog, and a moved
  or copied one is re-registered at the next refresh (the databases' locations no longer match).
- Derby admits one process at a time, so the pipeline never opens it: its sessions keep Spark's
  in-memory catalog and address tables by path (jobs/agrilake/core/tables.py), any number in parallel. The
  analyst commands take `catalog.lock` first and fail fast with a clear message when another
  process holds it; while the SQL server (agrilake.analyst.sql_server) runs, it holds the catalog
  and the commands become its Spark Connect clients instead.

Analyst sessions are read-only, whoever the client: the guard of infra/guard (a Spark session
extension) refuses every analysed plan that is not a query over the registered tables or a
read-only command, and the processes run with only the environment variables they need (an
allow-list: no secret of the pipeline, of Airflow or of anything else).
Registration below is the one writer: it presents the admin token the session's JVM was started
with (`catalog_admin`).

Who reads what (`RESTRICTED`): bronze keeps every landed value as delivered, RIC, names and phones in
clear, and so does ops.quarantine_raw, the clear line of each row quarantined while parsing (a line
that did not parse cannot be pseudonymised). Those are read by the pipeline's operators only: a
session presenting the operator token (`operator_access`, `agrilake sql --operator`). Analysts read
silver and gold (pseudonymised) and the other ops tables; ops.quarantine shows them the reason, file,
line and the line's shape (digits 9, Latin letters x, other characters 某; quotes and delimiters kept).
For a local session this guards against accidents, since whoever runs it can read the lakehouse's
files anyway; for the SQL server it is the boundary between its clients.

Column comments live where Delta keeps a table's schema, in its log. Silver tables are created with
theirs; gold, bronze and ops tables are not. Registration adds the missing ones from schemas/ (the
gold yaml carries METRICS.md's definitions) in one commit per table and only when they differ, so a
refresh of a registered table commits nothing. Like any metadata commit, it conflicts with a write
to the same table committing at the same instant: one of the two fails and can simply be rerun.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agrilake.core import tables
from agrilake.core.context import RunContext
from agrilake.core.contracts import GOLD_TABLES, Contracts
from agrilake.core.settings import Settings, analyst_variables, get_settings
from agrilake.core.tables import LAYERS
from agrilake.services.sql_endpoint import SqlEndpoint

log = logging.getLogger(__name__)

LAYER_COMMENTS = {
    "bronze": "Every landed row as text, with lineage (file SHA-256, line, delivery date, batch)",
    "silver": "Typed, validated, deduplicated, pseudonymised entities with point-in-time lineage",
    "gold": "Curated credit and logistics datasets of METRICS.md, partitioned by as_of_date",
    "ops": "Ingest log, quarantine, silver ledger, data-quality results and export manifests",
}

class CatalogBusy(RuntimeError):
    """Another process holds the catalog (Derby admits one); the message says what to do."""


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file:")


def local_path(uri: str) -> str:
    return os.path.abspath(uri.removeprefix("file://").removeprefix("file:"))


def catalog_dir(settings: Settings) -> str:
    """`<lakehouse>/_catalog`; for an object-store lakehouse a local folder per lakehouse (Derby needs a disk)."""
    if is_local(settings.lakehouse):
        return f"{local_path(settings.lakehouse)}/_catalog"
    digest = hashlib.sha256(settings.lakehouse.encode()).hexdigest()[:12]
    return str(settings.home / "data" / "catalog" / digest)


class CatalogLock:
    """An exclusive flock on `<catalog>/catalog.lock`, naming its holder for the next process's message."""

    def __init__(self, directory: str):
        self.path = Path(directory) / "catalog.lock"
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            return "another process"

    def acquire(self, owner: str) -> CatalogLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CatalogBusy(
                f"the catalog {self.path.parent} is in use by {self.holder()}, and its Derby metastore admits "
                "one process at a time. Wait for that command to end, or run `agrilake sql-server start`: "
                "while the SQL server runs, every agrilake command and SQL client shares it."
            ) from None
        self.fd = fd
        self.note(os.getpid(), owner)
        return self

    def note(self, pid: int, owner: str) -> None:
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {pid} ({owner})\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# The lock of this process's own catalog session: held until the process exits, like the session.
_held: list[CatalogLock] = []

# infra/guard/org/agrilake/spark/ReadOnlyCatalog.java reads these.
ADMIN_ENV = "AGRILAKE_CATALOG_ADMIN_TOKEN"
ADMIN_CONF = "spark.agrilake.catalog.admin"
OPERATOR_ENV = "AGRILAKE_CATALOG_OPERATOR_TOKEN"
OPERATOR_CONF = "spark.agrilake.catalog.operator"
RESTRICTED_ENV = "AGRILAKE_CATALOG_RESTRICTED"
RESTRICTED = ("bronze.*", "ops.quarantine_raw")


def analyst_environment(environ=None) -> dict[str, str]:
    """The environment of an analyst JVM: only the variables it needs (no secret of the pipeline, of
    Airflow or of anything else), fresh admin and operator tokens of its own, and the tables only
    operators read."""
    env = analyst_variables(os.environ if environ is None else environ)
    env[ADMIN_ENV] = secrets.token_urlsafe(32)
    env[OPERATOR_ENV] = secrets.token_urlsafe(32)
    env[RESTRICTED_ENV] = ",".join(RESTRICTED)
    return env


def _drop_pipeline_secrets() -> None:
    """This process becomes an analyst process: the JVM it starts inherits only the variables it
    needs, and the admin token of the catalog registration."""
    clean = analyst_environment()
    for key in set(os.environ) - set(clean):
        del os.environ[key]
    os.environ.update(clean)


@contextlib.contextmanager
def catalog_admin(ctx: RunContext):
    """Within: this session may write the catalog (registration only). The token is the one its JVM
    (local session) or the SQL server (Spark Connect) was started with; sessions without the guard
    (tests, notebooks) need none."""
    spark = ctx.spark
    remote = type(spark).__module__.startswith("pyspark.sql.connect")
    token = SqlEndpoint(catalog_dir(ctx.settings)).admin_token() if remote else os.environ.get(ADMIN_ENV)
    if not token:
        yield
        return
    spark.conf.set(ADMIN_CONF, token)
    try:
        yield
    finally:
        spark.conf.unset(ADMIN_CONF)


def operator_access(ctx: RunContext) -> None:
    """From now on this session reads the restricted tables too (an operator's session): it presents
    the operator token of its JVM (local session) or of the SQL server (Spark Connect, which needs
    read access to `<catalog>/sql-server/operator.token`)."""
    spark = ctx.spark
    remote = type(spark).__module__.startswith("pyspark.sql.connect")
    token = (SqlEndpoint(catalog_dir(ctx.settings)).operator_token() if remote
             else os.environ.get(OPERATOR_ENV))
    if remote and not token:
        raise PermissionError(f"no operator token readable in {SqlEndpoint(catalog_dir(ctx.settings)).run_dir}: "
                              "operator access to the SQL server needs that file (mode 0600, its owner's)")
    if token:
        spark.conf.set(OPERATOR_CONF, token)


def open_context(settings: Settings, app: str = "agrilake-sql", *, operator: bool = False) -> RunContext:
    """`open_session` with, for `operator`, read access to the restricted tables (`operator_access`)."""
    ctx = open_session(settings, app)
    if operator:
        operator_access(ctx)
    return ctx


def open_session(settings: Settings, app: str = "agrilake-sql") -> RunContext:
    """The run context the analyst commands query through: `settings` and the session to use.

    A process that already has a session (a test, a notebook) keeps it and its catalog; else the SQL
    server's, as a Spark Connect client, when it runs for this lakehouse; else a local session on
    the persistent catalog.
    """
    from pyspark.sql import SparkSession

    from agrilake.core.spark import connect_spark, get_spark

    active = SparkSession.getActiveSession()
    if active is not None:
        return RunContext(settings, active, app)
    directory = catalog_dir(settings)
    endpoint = SqlEndpoint(directory)
    url = endpoint.running_url()
    if url:
        log.info("querying through the SQL server at %s", url)
        return RunContext(settings, connect_spark(endpoint.running_client_url()), app)
    if not _held:
        _held.append(CatalogLock(directory).acquire(app))
    _drop_pipeline_secrets()
    return RunContext(settings, get_spark(app, settings=settings, catalog_dir=directory), app)


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def split_name(name: str) -> tuple[str, str]:
    """`layer.table` -> (layer, table); a clear error for anything else."""
    layer, _, table = name.partition(".")
    if layer not in LAYERS or not table or "." in table:
        raise ValueError(f"{name!r} is not a table name: use <layer>.<table> with a layer among "
                         f"{', '.join(LAYERS)} (e.g. gold.coop_credit_profile); `agrilake tables` lists them")
    return layer, table


def ops_tables(contracts: Contracts) -> list[str]:
    """The ops tables the contracts describe (schemas/ops/<name>.yaml)."""
    return sorted(p.stem for p in (contracts.dir / "ops").glob("[!_]*.yaml"))


def descriptions(contracts: Contracts, layer: str, name: str) -> tuple[str, dict[str, str]]:
    """(table description, column -> comment) from schemas/ (and METRICS.md via the gold yaml)."""

    def described(table) -> tuple[str, dict[str, str]]:
        return table.description, {c.name: c.description for c in table.columns if c.description}

    if layer == "bronze" and name in contracts.feeds():
        feed = contracts.feed(name)
        columns = {c.name: f"{c.description} (as delivered, text)" for c in feed.columns if c.description}
        grain = f"; {feed.grain}" if feed.grain else ""
        return f"Every landed row of {feed.system}/{feed.feed}, as text, with lineage{grain}", {
            **columns, **{c.name: c.description for c in contracts.bronze_lineage()}}
    if layer == "silver" and name in contracts.silver_tables():
        return described(contracts.silver_tables()[name])
    if layer == "gold" and name in GOLD_TABLES:
        return described(contracts.gold_table(name))
    if layer == "ops" and name in ops_tables(contracts):
        return described(contracts.ops_table(name))
    return "", {}


def known_tables(contracts: Contracts) -> dict[str, list[str]]:
    """Every table the code can create, per layer: what an object-store lakehouse is probed for."""
    return {"bronze": sorted(contracts.feeds()), "silver": sorted(contracts.silver_tables()),
            "gold": sorted(GOLD_TABLES), "ops": ops_tables(contracts)}


def discover(ctx: RunContext) -> dict[str, list[str]]:
    """The Delta tables of the lakehouse per layer (a folder with a `_delta_log`).

    A local lakehouse is listed, so a table the code does not know yet is found too; an object-store
    one is probed for the known tables through SQL, which a Spark Connect session can run as well.
    """
    lakehouse = ctx.settings.lakehouse
    if is_local(lakehouse):
        root = Path(local_path(lakehouse))
        found: dict[str, list[str]] = {}
        for layer in LAYERS:
            folder = root / layer
            names = [] if not folder.is_dir() else [
                p.name for p in folder.iterdir() if not p.name.startswith(("_", ".")) and (p / "_delta_log").is_dir()]
            found[layer] = sorted(names)
        return found
    found = {}
    for layer, names in known_tables(ctx.contracts).items():
        found[layer] = []
        for name in names:
            try:
                ctx.spark.sql(f"DESCRIBE DETAIL delta.{quote(tables.path(ctx, layer, name))}").collect()
            except Exception:  # absent or not Delta: either way not a table to register
                continue
            found[layer].append(name)
    return found


@dataclass
class Refresh:
    registered: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    commented: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tables: dict[str, list[str]] = field(default_factory=dict)


def _database_location(spark, layer: str) -> str | None:
    if not spark.catalog.databaseExists(layer):
        return None
    for row in spark.sql(f"DESCRIBE DATABASE {layer}").collect():
        if row[0] == "Location":
            return local_path(row[1])
    return ""


def apply_comments(ctx: RunContext, layer: str, name: str) -> bool:
    """Set the table's description and column comments from the contracts where they differ; True if any changed."""
    spark = ctx.spark
    table_text, wanted = descriptions(ctx.contracts, layer, name)
    qualified = f"{layer}.{quote(name)}"
    current = {f.name: f.metadata.get("comment", "") for f in spark.table(qualified).schema.fields}
    changes = {c: text for c, text in wanted.items() if c in current and current[c] != text}
    if changes:
        spark.sql(f"ALTER TABLE {qualified} ALTER COLUMN "
                  + ", ".join(f"{quote(c)} COMMENT {sql_literal(text)}" for c, text in changes.items()))
    # the catalog's view of the table: unlike DESCRIBE DETAIL, no job to reconstruct the Delta state
    described = spark.catalog.getTable(f"{layer}.{name}").description
    if table_text and described != table_text:
        spark.sql(f"COMMENT ON TABLE {qualified} IS {sql_literal(table_text)}")
    return bool(changes) or bool(table_text and described != table_text)


def refresh(ctx: RunContext, *, all_comments: bool = False, rebuild: bool = False) -> Refresh:
    """Make the catalog mirror the lakehouse: databases per layer, every Delta table registered by location.

    Idempotent and cheap when nothing changed (a few catalog look-ups). Comments are set on newly
    registered tables, on all of them with `all_comments`. Entries whose table left the lakehouse are
    dropped (views and tables with data in the catalog's warehouse are left alone).
    """
    with catalog_admin(ctx):
        report = Refresh(tables=discover(ctx))
        _register(ctx, report, all_comments=all_comments, rebuild=rebuild)
    if report.registered or report.dropped:
        log.info("catalog %s: registered %s, dropped %s", catalog_dir(ctx.settings), report.registered, report.dropped)
    return report


def _register(ctx: RunContext, report: Refresh, *, all_comments: bool, rebuild: bool) -> None:
    spark = ctx.spark
    directory = catalog_dir(ctx.settings)
    for layer in LAYERS:
        expected = f"{directory}/warehouse/{layer}.db"
        location = _database_location(spark, layer)
        if location is not None and (rebuild or location != expected):
            # The database was made for another lakehouse root (moved, copied, a test's), or a
            # rebuild was asked: its tables are external, so dropping it only forgets the entries.
            spark.sql(f"DROP DATABASE {layer} CASCADE")
            location = None
        if location is None:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer} COMMENT {sql_literal(LAYER_COMMENTS[layer])} "
                      f"LOCATION {sql_literal(expected)}")
        listed = spark.sql(f"SHOW TABLES IN {layer}").collect()
        have = {r.tableName for r in listed if not r.isTemporary}
        views = {r.viewName for r in spark.sql(f"SHOW VIEWS IN {layer}").collect()}
        want = set(report.tables[layer])
        for name in sorted(have - want - views):
            if Path(expected, name).exists():
                continue  # a managed table someone created: its data lives here, not ours to drop
            spark.sql(f"DROP TABLE IF EXISTS {layer}.{quote(name)}")
            report.dropped.append(f"{layer}.{name}")
        for name in sorted(want - have):
            spark.sql(f"CREATE TABLE IF NOT EXISTS {layer}.{quote(name)} USING DELTA "
                      f"LOCATION {sql_literal(tables.path(ctx, layer, name))}")
            report.registered.append(f"{layer}.{name}")
        for name in sorted(want if all_comments else want - have):
            try:
                if apply_comments(ctx, layer, name):
                    report.commented.append(f"{layer}.{name}")
            except Exception as exc:  # e.g. a pipeline write committing at the same instant
                report.warnings.append(f"{layer}.{name}: comments not set ({first_line(exc)}); "
                                       "rerun `agrilake catalog`")


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def main(argv: list[str] | None = None) -> int:
    from agrilake.analyst.output import explain, quiet_pyspark

    parser = argparse.ArgumentParser(prog="agrilake catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true",
                        help="drop and re-create the four databases first (external tables: no data is touched)")
    args = parser.parse_args(argv)
    quiet_pyspark()
    settings = get_settings()
    try:
        report = refresh(open_context(settings, "agrilake-catalog"), all_comments=True, rebuild=args.rebuild)
    except Exception as exc:  # one clear line instead of a JVM stack trace
        print(f"agrilake catalog: {explain(exc)}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{layer} {len(names)}" for layer, names in report.tables.items())
    print(f"catalog {catalog_dir(settings)}: tables {counts}; newly registered {len(report.registered)}, "
          f"comments set on {len(report.commented)}, dropped {len(report.dropped)}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
