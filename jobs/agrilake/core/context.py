"""The run context: what a stage needs to run, handed down from the entry point as one argument.

Settings are read once, at the entry point; the Spark session is the one factory's; the contracts
and suites are the ones the settings point at. Nothing below an entry point reads the environment,
so a test or a benchmark points a run at another lakehouse by building another context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from agrilake.core import contracts as _contracts
from agrilake.core.settings import Settings


@dataclass
class RunContext:
    settings: Settings
    # None: created on first use by agrilake.core.spark.get_spark with these settings.
    spark_session: object | None = field(default=None, repr=False)
    app_name: str = "agrilake"
    # The OpenLineage run a stage is in (agrilake.core.lineage.stage_run), noted by core.tables.
    lineage: object | None = field(default=None, repr=False)

    @property
    def spark(self):
        if self.spark_session is None:
            from agrilake.core.spark import get_spark

            self.spark_session = get_spark(self.app_name, settings=self.settings)
        return self.spark_session

    @cached_property
    def contracts(self) -> _contracts.Contracts:
        return _contracts.load(self.settings.schemas_dir)

    @property
    def suites_dir(self) -> Path:
        return self.settings.expectations_dir

    def table_path(self, layer: str, name: str) -> str:
        return self.settings.table_path(layer, name)

    def with_settings(self, **changes) -> RunContext:
        """The same session on other settings (e.g. another lakehouse root)."""
        return RunContext(self.settings.replace(**changes), self.spark_session, self.app_name)


def from_env(app_name: str = "agrilake", spark=None) -> RunContext:
    """The entry points' context: settings from the environment, Spark created when first needed."""
    from agrilake.core.settings import get_settings

    return RunContext(get_settings(), spark, app_name)
