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
