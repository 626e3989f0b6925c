"""Shared fixtures: one session-wide local Spark (local[1], one shuffle partition, UI off)."""

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
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The one SparkSession of the test run; its lakehouse lives in a temporary folder."""
    lake = tmp_path_factory.mktemp("lakehouse")
    os.environ["AGRILAKE_LAKEHOUSE"] = str(lake)
    from jobs.spark import get_spark

    session = get_spark("agrilake-tests", test=True)
    yield session
    session.stop()


@pytest.fixture
def lakehouse(spark, tmp_path, monkeypatch):
    """A fresh, empty lakehouse root for one test (the session's Spark is reused)."""
    root = tmp_path / "lakehouse"
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", str(root))
    return root


# The longest files first (figures: `--durations` of the suite). Workers take whole files in collection
# order (run_tests.sh: --no-loadscope-reorder), so a long file collected last would run alone at the
# end while the other worker idles.
LONGEST_FIRST = ("test_defects_end_to_end.py", "test_silver.py", "test_bronze.py", "test_spark_cluster.py",
                 "test_chain_dags.py", "test_gold_credit.py", "test_gold_delta.py", "test_doctor_dag.py",
                 "test_export.py", "test_sql_endpoint.py", "test_catalog.py", "test_airflow_server.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept
