"""Settings, the Spark factory, the contracts loader and the GX wrapper."""

from __future__ import annotations

import pytest

from agrilake.core import quality
from agrilake.core.contracts import packaged
from agrilake.core.settings import Settings
from agrilake.core.spark import RuntimeMissing, check_jars, spark_conf


def test_settings_defaults_and_overrides(monkeypatch, tmp_path):
    for var in ("AGRILAKE_LANDING", "AGRILAKE_LAKEHOUSE", "AGRILAKE_SPARK_MASTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGRILAKE_HOME", str(tmp_path))
    s = Settings.from_env()
    assert s.landing == str(tmp_path / "data" / "landing")
    assert s.lakehouse == str(tmp_path / "data" / "lakehouse")
    assert s.spark_master == "local[*]" and s.is_local
    monkeypatch.setenv("AGRILAKE_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", "s3a://lake/agrilake")
    s = Settings.from_env()
    assert not s.is_local
    assert s.table_path("gold", "coop_credit_profile") == "s3a://lake/agrilake/gold/coop_credit_profile"


def test_secret_is_not_in_repr(monkeypatch):
    monkeypatch.setenv("AGRILAKE_PSEUDO_KEY", "s3cret-value")
    assert "s3cret-value" not in repr(Settings.from_env())


def test_missing_jars_say_how_to_fix(tmp_path):
    with pytest.raises(RuntimeMissing, match="make setup"):
        check_jars(Settings.from_env(jars_dir=tmp_path / "none"))


def test_spark_conf_has_delta_and_loopback():
    conf = spark_conf(Settings.from_env(jvm_options=""), test=True)
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert "delta-spark" in conf["spark.jars"] and "delta-storage" in conf["spark.jars"]
    assert conf["spark.sql.shuffle.partitions"] == "1" and conf["spark.ui.enabled"] == "false"
    assert conf["spark.driver.host"] == "127.0.0.1"
    assert "spark.driver.extraJavaOptions" not in conf


def test_jvm_options_reach_driver_and_executors_and_keep_the_catalog_options(tmp_path):
    settings = Settings.from_env(jvm_options="-XX:+UseG1GC")
    conf = spark_conf(settings, test=True)
    assert conf["spark.driver.extraJavaOptions"] == conf["spark.executor.extraJavaOptions"] == "-XX:+UseG1GC"
    with_catalog = spark_conf(settings, catalog_dir=str(tmp_path))["spark.driver.extraJavaOptions"]
    assert with_catalog.startswith("-XX:+UseG1GC ") and f"-Dderby.system.home={tmp_path}" in with_catalog


def test_only_analyst_sessions_load_the_read_only_guard(tmp_path):
    settings = Settings.from_env()
    pipeline, analyst = spark_conf(settings), spark_conf(settings, catalog_dir=str(tmp_path))
    assert "ReadOnlyCatalog" not in pipeline["spark.sql.extensions"] and "guard" not in pipeline["spark.jars"]
    assert analyst["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension,org.agrilake.spark.ReadOnlyCatalog"
    assert analyst["spark.jars"].endswith("," + str(settings.guard_jar)) and settings.guard_jar.is_file()
    delta_only = tmp_path / "jars"
    delta_only.mkdir()
    for jar in settings.delta_jars():
        (delta_only / jar.name).symlink_to(jar)
    assert spark_conf(settings.replace(jars_dir=delta_only))  # the pipeline needs no guard
    with pytest.raises(RuntimeMissing, match="read-only guard .* run `make setup`"):
        spark_conf(settings.replace(jars_dir=delta_only), catalog_dir=str(tmp_path))


def test_session_is_delta_enabled(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "Asia/Shanghai"
    assert spark.sparkContext.master == "local[1]"


def test_contracts_cover_the_ten_feeds():
    names = set(packaged().feeds())
    assert names == {
        "ref_divisions", "coop_cooperatives", "coop_members", "coop_sales", "postal_outlets",
        "postal_shipment_events", "postal_cold_chain_readings", "bank_loans", "bank_repayments", "bank_subsidies",
    }
    loans = packaged().feed("bank_loans")
    assert loans.key == ("loan_id",) and loans.version_by == "updated_at"
    assert loans.column("borrower_ric").pii == "ric"
    assert packaged().feed("coop_members").pii_columns == ["member_ric", "member_name"]


def test_silver_contracts_carry_no_clear_pii():
    for name, table in packaged().silver_tables().items():
        cols = {c.name for c in table.columns}
        assert not cols & {"legal_rep_name", "legal_rep_ric", "phone", "member_ric", "member_name", "borrower_ric",
                           "beneficiary_ric"}, name
        assert {"_delivery_date", "_file_sha256", "_line"} <= cols, name


def test_gx_wrapper_passes_fails_and_gates(spark):
    df = spark.createDataFrame([(1, "a"), (2, None)], "id int, name string")
    result = quality.validate(df, "unit", [
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "severity": "critical"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}, "severity": "warning"},
    ])
    assert result.success and len(result.warnings) == 1 and result.warnings[0].column == "name"
    quality.gate(result)
    failing = quality.validate(df, "unit", [
        {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "id", "max_value": 1},
         "severity": "critical"},
    ])
    assert not failing.success
    with pytest.raises(quality.QualityGateFailed, match="expect_column_values_to_be_between"):
        quality.gate(failing)


def test_gx_wrapper_names_failures_in_the_order_of_the_suite(spark):
    """Validated cheaply first (no samples), then the failed expectations again with counts and a
    sample: each outcome must land on its own expectation, however GX orders its results."""
    df = spark.createDataFrame([(1, "a"), (2, None), (30, None)], "id int, name string")
    specs = [
        {"expectation": "expect_table_row_count_to_equal", "kwargs": {"value": 3}, "severity": "critical"},
        {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "id", "max_value": 9},
         "severity": "critical"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "severity": "critical"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}, "severity": "warning"},
        {"expectation": "expect_column_values_to_be_in_set", "kwargs": {"column": "name", "value_set": ["a"]},
         "severity": "critical"},
    ]
    result = quality.validate(df, "unit", specs)
    assert [(o.expectation, o.column, o.success) for o in result.outcomes] == [
        ("expect_table_row_count_to_equal", None, True),
        ("expect_column_values_to_be_between", "id", False),
        ("expect_column_values_to_not_be_null", "id", True),
        ("expect_column_values_to_not_be_null", "name", False),
        ("expect_column_values_to_be_in_set", "name", True),
    ]
    between, name_null = result.outcomes[1], result.outcomes[3]
    assert "unexpected_count=1" in between.observed and "[30]" in between.observed
    assert "unexpected_count=2" in name_null.observed
    assert "unexpected_count=0" in result.outcomes[2].observed  # a pass says how clean, as BASIC did
    assert [o.column for o in result.critical_failures] == ["id"] and len(result.warnings) == 1


def test_gx_wrapper_caches_nothing(spark):
    """GX would persist() each validated frame and never release it (a second copy of every batch for
    the life of the process): the stages cache what they validate themselves."""
    persisted = spark.sparkContext._jsc.sc().getPersistentRDDs  # of the whole session, other tests' too
    df = spark.createDataFrame([(1, "a"), (2, None)], "id int, name string").where("id > 0")
    before = persisted().size()
    quality.validate(df, "unit", [
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}, "severity": "warning"},
    ])
    assert not df.is_cached and df.storageLevel.useMemory is False
    assert persisted().size() == before
