"""The configuration: every AGRILAKE_* variable the code reads is a Settings field, the reference in
docs/configuration.md is the one the code generates, and Settings.from_env parses what it reads."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from agrilake.analyst import configuration
from agrilake.core.settings import Settings, variables

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
NAME = re.compile(r"AGRILAKE_[A-Z0-9_]+\*?")

# Names in the source that are not Settings variables, each with the reason it may be.
NOT_SETTINGS = {
    "AGRILAKE_CRASH_AT": "fault-injection hook of the exactly-once crash test (bronze kills itself there); "
                         "a test's switch, not a setting",
    "AGRILAKE_CATALOG_ADMIN_TOKEN": "set by agrilake itself for the analyst JVMs it starts (a fresh random token "
                                    "per process or SQL server), read by infra/guard; nobody configures it",
    "AGRILAKE_CATALOG_OPERATOR_TOKEN": "set by agrilake itself for the analyst JVMs it starts (random, like the "
                                       "admin token); operators present it, nobody configures it",
    "AGRILAKE_CATALOG_RESTRICTED": "set by agrilake itself for the analyst JVMs it starts, from "
                                   "agrilake.analyst.catalog.RESTRICTED; read by infra/guard",
    "AGRILAKE_S3_*": "prose: the family of S3 settings (AGRILAKE_S3_ENDPOINT, _ACCESS_KEY, ...), not a variable",
}


def source_files() -> list[Path]:
    return sorted(p for folder in ("jobs", "dags") for p in (ROOT / folder).rglob("*.py"))


def names_in_source() -> dict[str, list[str]]:
    """Every AGRILAKE_* name in the Python source of jobs/ and dags/ -> the files naming it."""
    found: dict[str, list[str]] = {}
    for path in source_files():
        for name in set(NAME.findall(path.read_text(encoding="utf-8"))):
            found.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    return found


def test_docs_configuration_is_the_generated_reference():
    assert REFERENCE.read_text(encoding="utf-8") == configuration.reference(), (
        "docs/configuration.md is stale: run `.venv/bin/agrilake config --write docs/configuration.md`")


def test_reference_names_every_variable_once():
    text = configuration.reference()
    envs = [v["env"] for v in variables()]
    assert len(envs) == len(set(envs))
    for env in envs:
        assert text.count(f"| `{env}` |") == 1, env


def test_every_agrilake_name_in_the_source_is_a_setting():
    settings_vars = {v["env"] for v in variables()}
    found = names_in_source()
    assert found, "the scan found no AGRILAKE_* name at all: it is broken"
    unknown = {name: files for name, files in found.items() if name not in settings_vars and name not in NOT_SETTINGS}
    assert not unknown, f"read from the environment but not a Settings field (add it to Settings): {unknown}"
    stale = sorted(set(NOT_SETTINGS) - set(found))
    assert not stale, f"allow-listed names no longer in the source: {stale}"
    for name in NOT_SETTINGS:
        if name.endswith("*"):  # a prefix in prose must still name real settings
            assert any(v.startswith(name[:-1]) for v in settings_vars), name


def test_the_scan_catches_an_undeclared_name():
    assert NAME.findall('os.environ.get("AGRILAKE_NEW_KNOB")  # AGRILAKE_S3_* ') == [
        "AGRILAKE_NEW_KNOB", "AGRILAKE_S3_*"]


# --- Settings.from_env -------------------------------------------------------------------------

def test_env_values_are_parsed_by_type(tmp_path):
    env = {
        "AGRILAKE_HOME": str(tmp_path),
        "AGRILAKE_SHUFFLE_PARTITIONS": "7",
        "AGRILAKE_DEMO": "1",
        "AGRILAKE_DAG_START": "2027-01-05",
        "AGRILAKE_JARS": "/opt/jars",
        "AGRILAKE_SCHEMAS": str(tmp_path / "schemas"),
        "AGRILAKE_EXPORT_LINK_EXPIRY": "60",
        "AGRILAKE_S3_ENDPOINT": "",  # empty is unset
    }
    s = Settings.from_env(env)
    assert s.shuffle_partitions == 7 and isinstance(s.shuffle_partitions, int)
    assert s.export_link_expiry_s == 60
    assert s.demo_mode is True
    assert s.dag_start == date(2027, 1, 5)
    assert s.jars_dir == Path("/opt/jars") and s.schemas_dir == tmp_path / "schemas"
    assert s.s3_endpoint is None
    # unset ones: the defaults, computed from the home where they depend on it
    assert s.home == tmp_path.resolve()
    assert s.landing == str(tmp_path.resolve() / "data" / "landing")
    assert s.airflow_home == tmp_path.resolve() / ".airflow"
    assert s.task_retries == 2 and s.spark_master == "local[*]"
    assert Settings.from_env({**env, "AGRILAKE_DEMO": "0"}).demo_mode is False


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("AGRILAKE_GOV_MIN_CELL", "9")
    assert Settings.from_env().gov_min_cell == 9
    assert Settings.from_env({}).gov_min_cell == 3  # an explicit environment replaces the process's


def test_overrides_win_over_the_environment(tmp_path):
    env = {"AGRILAKE_HOME": str(tmp_path), "AGRILAKE_LAKEHOUSE": "/from/env", "AGRILAKE_TASK_RETRIES": "oops"}
    s = Settings.from_env(env, lakehouse="/from/override", task_retries=0, home=tmp_path / "other")
    assert (s.lakehouse, s.task_retries, s.home) == ("/from/override", 0, (tmp_path / "other").resolve())
    assert s.landing == str((tmp_path / "other").resolve() / "data" / "landing")
    assert s.replace(task_retries=5).task_retries == 5 and s.task_retries == 0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("AGRILAKE_SHUFFLE_PARTITIONS", "four", "AGRILAKE_SHUFFLE_PARTITIONS='four' is not a whole number"),
    ("AGRILAKE_S3_PORT", "8333.0", "AGRILAKE_S3_PORT='8333.0' is not a whole number"),
    ("AGRILAKE_DAG_START", "2027-02-30", "AGRILAKE_DAG_START='2027-02-30' is not a date (YYYY-MM-DD)"),
])
def test_a_bad_value_is_a_clear_exit(name, value, message):
    with pytest.raises(SystemExit) as exc:
        Settings.from_env({name: value})
    assert str(exc.value) == message


def test_extra_spark_settings_win_and_a_malformed_one_is_refused(settings):
    import pytest

    from agrilake.core.spark import spark_conf

    conf = spark_conf(settings.replace(spark_conf="spark.sql.adaptive.enabled=false spark.sql.shuffle.partitions=9"))
    assert conf["spark.sql.adaptive.enabled"] == "false" and conf["spark.sql.shuffle.partitions"] == "9"
    for bad in ("adaptive=false", "spark.sql.adaptive.enabled"):
        with pytest.raises(SystemExit, match="AGRILAKE_SPARK_CONF"):
            spark_conf(settings.replace(spark_conf=bad))
