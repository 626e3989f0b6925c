"""Shared fixtures: one session-wide local Spark (local[1], one shuffle partition, UI off) and run contexts.

Code under test receives its settings in a RunContext, as the entry points hand them down; a test
points a run at its own lakehouse by building a context (`ctx`), never by editing the environment.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# py4j logs "Closing down clientserver connection" at exit, after pytest has closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)

# Tests run on synthetic data only: the public demo key is fine, and must never be needed elsewhere.
os.environ.setdefault("AGRILAKE_DEMO", "1")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Tests write landing files and ingest them at once; the settle rule has its own test (test_landing_survey).
os.environ.setdefault("AGRILAKE_LANDING_SETTLE_SECONDS", "0")
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """The test run's settings: the environment's, on a temporary lakehouse, synthetic data only."""
    from agrilake.core.settings import Settings

    return Settings.from_env(lakehouse=str(tmp_path_factory.mktemp("lakehouse")), demo_mode=True)


@pytest.fixture(scope="session")
def spark(settings):
    """The one SparkSession of the test run."""
    from agrilake.core.spark import get_spark

    session = get_spark("agrilake-tests", settings=settings, test=True)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def session_ctx(settings, spark):
    """A run context on the session's lakehouse (shared by every test that asks for it)."""
    from agrilake.core.context import RunContext

    return RunContext(settings, spark, "agrilake-tests")


@pytest.fixture
def lakehouse(tmp_path):
    """A fresh, empty lakehouse root for one test."""
    return tmp_path / "lakehouse"


@pytest.fixture
def ctx(session_ctx, lakehouse):
    """A run context on a fresh lakehouse for one test (the session's Spark is reused)."""
    return session_ctx.with_settings(lakehouse=str(lakehouse))


# The longest files first (figures: `--durations` of the suite). Workers take whole files in collection
# order (run_tests.sh: --no-loadscope-reorder), so a long file collected last would run alone at the
# end while the other worker idles.
LONGEST_FIRST = ("test_scheduler_catchup.py", "test_deliveries.py", "test_defects_end_to_end.py", "test_silver.py", "test_bronze.py",
                 "test_spark_cluster.py", "test_concurrent_runs.py",
                 "test_chain_dags.py", "test_wheel.py", "test_gold_credit.py", "test_gold_delta.py", "test_doctor_dag.py",
                 "test_export.py", "test_sql_endpoint.py", "test_catalog.py", "test_airflow_server.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept
