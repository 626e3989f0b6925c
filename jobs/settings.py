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
