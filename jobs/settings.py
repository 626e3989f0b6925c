"""The one Settings object: every AGRILAKE_* environment variable, with defaults that work on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The demo key is public by design (it is in this file): it only ever pseudonymises synthetic data.
DEMO_PSEUDO_KEY = "agrilake-demo-key-not-for-real-data"


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    home: Path
    landing: str
    lakehouse: str
    exports_dir: str
    jars_dir: Path
    airflow_home: Path
    spark_master: str
    shuffle_partitions: int
    driver_memory: str
    pseudo_key: str | None = field(repr=False)
    demo_mode: bool
    timezone: str = "Asia/Shanghai"
    # Export to the platforms' object store (jobs/export.py, jobs/objectstore.py). With none of the
    # three credentials set, the export falls back to an Airflow connection, then to the local store.
    s3_endpoint: str | None = None
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_conn_id: str | None = None
    s3_region: str = "us-east-1"
    bank_bucket: str = "bank"
    gov_bucket: str = "gov"
    # The local SeaweedFS: its S3 port (another free port is taken when busy) and binary.
    s3_port: int = 8333
    weed_bin: str | None = None
    export_part_rows: int = 1_000_000
    export_multipart_mb: int = 16
    export_link_expiry_s: int = 86_400
    # Gov rows aggregating fewer cooperatives than this have their loan figures suppressed.
    gov_min_cell: int = 3
    # Airflow retries per task (exponential backoff from 1 minute); 0 makes a failure final at once.
    task_retries: int = 2
    # VACUUM keeps files that versions younger than this still need (jobs/maintenance.py); below 168 h
    # (Delta's own default) readers of older snapshots and time travel can break.
    vacuum_retention_hours: int = 168
    # Extra options for the Spark JVMs (driver and executors): GC choice, GC logs, heap dumps.
    jvm_options: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("AGRILAKE_HOME", str(_project_root()))).resolve()
        data = home / "data"
        return cls(
            home=home,
            landing=_env("AGRILAKE_LANDING", str(data / "landing")),
            lakehouse=_env("AGRILAKE_LAKEHOUSE", str(data / "lakehouse")),
            exports_dir=_env("AGRILAKE_EXPORTS", str(data / "objectstore")),
            jars_dir=Path(_env("AGRILAKE_JARS", str(home / ".jars"))),
            airflow_home=Path(_env("AIRFLOW_HOME", str(home / ".airflow"))),
            spark_master=_env("AGRILAKE_SPARK_MASTER", "local[*]"),
            # 2 cores: a handful of shuffle partitions beats Spark's default 200 by far.
            shuffle_partitions=int(_env("AGRILAKE_SHUFFLE_PARTITIONS", "4")),
            driver_memory=_env("AGRILAKE_DRIVER_MEMORY", "3g"),
            pseudo_key=_env("AGRILAKE_PSEUDO_KEY"),
            demo_mode=_env("AGRILAKE_DEMO", "0") == "1",
            s3_endpoint=_env("AGRILAKE_S3_ENDPOINT"),
            s3_access_key=_env("AGRILAKE_S3_ACCESS_KEY"),
            s3_secret_key=_env("AGRILAKE_S3_SECRET_KEY"),
            s3_conn_id=_env("AGRILAKE_S3_CONN_ID"),
            s3_region=_env("AGRILAKE_S3_REGION", "us-east-1"),
            bank_bucket=_env("AGRILAKE_BANK_BUCKET", "bank"),
            gov_bucket=_env("AGRILAKE_GOV_BUCKET", "gov"),
            s3_port=int(_env("AGRILAKE_S3_PORT", "8333")),
            weed_bin=_env("AGRILAKE_WEED"),
            export_part_rows=int(_env("AGRILAKE_EXPORT_PART_ROWS", "1000000")),
            export_multipart_mb=int(_env("AGRILAKE_EXPORT_MULTIPART_MB", "16")),
            export_link_expiry_s=int(_env("AGRILAKE_EXPORT_LINK_EXPIRY", "86400")),
            gov_min_cell=int(_env("AGRILAKE_GOV_MIN_CELL", "3")),
            task_retries=int(_env("AGRILAKE_TASK_RETRIES", "2")),
            vacuum_retention_hours=int(_env("AGRILAKE_VACUUM_RETENTION_HOURS", "168")),
            jvm_options=_env("AGRILAKE_JVM_OPTIONS", ""),
        )

    @property
    def is_local(self) -> bool:
        return self.spark_master.startswith("local")

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.lakehouse.rstrip('/')}/{layer}/{name}"

    def delta_jars(self) -> list[Path]:
        if not self.jars_dir.is_dir():
            return []
        return sorted(p for p in self.jars_dir.glob("*.jar") if p.name.startswith("delta-"))


def get_settings() -> Settings:
    return Settings.from_env()
