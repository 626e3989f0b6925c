"""SQL access on a small lakehouse, in-process through `agrilake` itself: catalog, tables, sql, describe.

The test session's Spark keeps its in-memory catalog (a Derby metastore admits one JVM, and the
tests share theirs); the registration logic is the same, and tests/integration/test_sql_endpoint.py
runs the persistent catalog for real, behind the SQL server.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from unittest import mock

import pytest

from agrilake.analyst import catalog, output
from agrilake.cli import main
from agrilake.core import ops, tables
from agrilake.core.context import RunContext
from agrilake.core.quality import ExpectationOutcome, SuiteResult

GOLD = "coop_credit_profile"
D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


def _build(ctx: RunContext) -> None:
    """gold: partition D1 (version 0), D2 (1), D2 rewritten with c1's new score (2); a bronze table as
    ingestion creates it (no comments); ops.dq_results with one passed validation that has a warning."""
    coop = {"county_code": "110101", "credit_tier": "B", "sales_12m_cny": Decimal("1234.50"), "reason_codes": []}
    ddl = ctx.contracts.gold_table(GOLD).ddl
    for as_of, scores in ((D1, {"c1": 650}), (D2, {"c1": 660, "c2": 720}), (D2, {"c1": 700, "c2": 720})):
        rows = [{**coop, "as_of_date": as_of, "coop_id": c, "score": s} for c, s in scores.items()]
        df = ops.rows_df(ctx, ddl, rows)
        tables.replace_partition(ctx, df, "gold", GOLD, "as_of_date", as_of.isoformat())
    feed = ctx.contracts.feed("coop_cooperatives")
    tables.create_if_missing(ctx, "bronze", feed.name, ctx.contracts.bronze_ddl(feed),
                             partition_by=["_delivery_date"])
    outcomes = [ExpectationOutcome("expect_column_values_to_not_be_null", "coop_id", "critical", True, "0 unexpected"),
                ExpectationOutcome("expect_column_values_to_be_between", "score", "warning", False, "1 unexpected")]
    # agrilake.core.ops.record_dq_results would also create the other ops tables: two more commits to wait for
    tables.create_if_missing(ctx, "ops", "dq_results", ops.ddl(ctx, "dq_results"))
    with mock.patch.object(ops, "ensure"):
        ops.record_dq_results(ctx, SuiteResult(f"gold_{GOLD}", True, outcomes), table=f"gold.{GOLD}",
                              partition=f"as_of_date={D2}")


@pytest.fixture(scope="module")
def lake(session_ctx, spark, tmp_path_factory) -> RunContext:
    """The run context of a small lakehouse; the commands (`main`) find it in AGRILAKE_LAKEHOUSE."""
    root = tmp_path_factory.mktemp("sql_lake")
    ctx = session_ctx.with_settings(lakehouse=str(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGRILAKE_LAKEHOUSE", str(root))
        _build(ctx)
        yield ctx
    for layer in tables.LAYERS:  # the session's catalog is shared with the other tests
        spark.sql(f"DROP DATABASE IF EXISTS {layer} CASCADE")


def _comments(spark, name: str) -> dict[str, str]:
    return {f.name: f.metadata.get("comment", "") for f in spark.table(name).schema.fields}


def _versions(spark, name: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY {name}").count()


def test_catalog_registers_every_layer_with_comments_idempotently(lake, spark, capsys):
    assert main(["catalog"]) == 0
    assert "gold 1" in capsys.readouterr().out
    assert [t.name for t in spark.catalog.listTables("gold")] == [GOLD]
    assert [t.name for t in spark.catalog.listTables("ops")] == ["dq_results"]
    assert [t.name for t in spark.catalog.listTables("bronze")] == ["coop_cooperatives"]

    # gold, bronze and ops tables are written without comments: registration adds them from the contracts
    gold = _comments(spark, f"gold.{GOLD}")
    assert gold["credit_tier"] == "A >= 700, B 640..699, C 580..639, D < 580"
    assert gold["as_of_date"] == "D"
    assert _comments(spark, "bronze.coop_cooperatives")["uscc"].startswith("Unified social credit code")
    assert _comments(spark, "bronze.coop_cooperatives")["_file_sha256"].startswith("SHA-256")
    assert _comments(spark, "ops.dq_results")["severity"].startswith("critical")
    assert spark.catalog.getTable(f"gold.{GOLD}").description == lake.contracts.gold_table(GOLD).description
    assert spark.catalog.getDatabase("gold").description == catalog.LAYER_COMMENTS["gold"]

    # a second run commits nothing: no new Delta version on any table
    before = {name: _versions(spark, name) for name in (f"gold.{GOLD}", "bronze.coop_cooperatives", "ops.dq_results")}
    assert main(["catalog"]) == 0
    assert "comments set on 0" in capsys.readouterr().out
    assert before == {name: _versions(spark, name) for name in before}


def test_tables_registers_a_new_table_and_lists_descriptions(lake, spark, capsys):
    catalog.refresh(lake)
    # created by the silver stage after the catalog was last refreshed, with its comments already
    table = lake.contracts.silver_tables()["cooperatives"]
    tables.create_if_missing(lake, "silver", "cooperatives", table.ddl, partition_by=["_delivery_date"],
                             comments={c.name: c.description for c in table.columns})
    assert main(["tables", "--format", "json"]) == 0
    captured = capsys.readouterr()
    listed = {r["table"]: r for r in json.loads(captured.out)}
    assert set(listed) == {f"gold.{GOLD}", "silver.cooperatives", "bronze.coop_cooperatives", "ops.dq_results"}
    assert listed["silver.cooperatives"]["description"] == table.description
    assert listed[f"gold.{GOLD}"]["kind"] == "delta"
    assert "registered 1 new table(s): silver.cooperatives" in captured.err
    assert _comments(spark, "silver.cooperatives")["_delivery_date"].startswith("Delivery date")
    assert spark.catalog.getTable("silver.cooperatives").description == table.description

    assert main(["tables", "--layer", "gold"]) == 0
    out = capsys.readouterr().out
    assert f"gold.{GOLD}" in out and "ops.dq_results" not in out and "(1 row)" in out


def test_sql_prints_table_csv_and_json(lake, capsys):
    statement = f"SELECT coop_id, score, as_of_date, sales_12m_cny FROM gold.{GOLD} ORDER BY as_of_date, coop_id"
    assert main(["sql", statement, "--format", "csv"]) == 0
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [
        ["coop_id", "score", "as_of_date", "sales_12m_cny"],
        ["c1", "650", "2026-10-01", "1234.50"], ["c1", "700", "2026-10-02", "1234.50"],
        ["c2", "720", "2026-10-02", "1234.50"]]

    assert main(["sql", statement, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {
        "coop_id": "c1", "score": 650, "as_of_date": "2026-10-01", "sales_12m_cny": 1234.5}

    assert main(["sql", statement + ";", "--limit", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split("|")[0].strip() == "coop_id" and lines[-1] == "(2 rows)"
    assert lines[2].split("|")[1] == "   650 "  # numbers right-aligned
    assert "showing the first 2 rows" in captured.err


def test_sql_time_travel_by_version(lake, capsys):
    def c1_on_d2(travel: str) -> int:
        assert main(["sql", f"SELECT score FROM gold.{GOLD} {travel} WHERE coop_id = 'c1' AND as_of_date = '{D2}'",
                     "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)[0]["score"]

    assert c1_on_d2("") == 700
    assert c1_on_d2("VERSION AS OF 1") == 660
    # TIMESTAMP AS OF needs the JVM in the session's zone (agrilake.core.spark.catalog_conf), which this
    # shared test JVM is not: tests/integration/test_sql_endpoint.py queries by timestamp through the
    # server.


def test_describe_shows_columns_partitions_history_and_quality(lake, capsys):
    assert main(["describe", f"gold.{GOLD}"]) == 0
    out = capsys.readouterr().out
    assert lake.contracts.gold_table(GOLD).description in out
    assert "credit_tier" in out and "A >= 700, B 640..699" in out
    assert "rows per partition: 3 in 2 partition(s)" in out and " 2026-10-02 |    2" in out
    assert "| WRITE" in out and "latest data-quality result: PASSED" in out
    assert "expect_column_values_to_be_between" in out  # the failed warning is listed

    assert main(["describe", f"gold.{GOLD}", "--version", "0", "--format", "json"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert old["as_of"] == {"version": 0} and old["partition_by"] == ["as_of_date"]
    assert old["partitions"] == [{"as_of_date": "2026-10-01", "rows": 1}]
    assert [h["operation"] for h in old["history"]][-3:] == ["WRITE", "WRITE", "WRITE"]
    assert old["quality"]["success"] is True and old["quality"]["partition"] == f"as_of_date={D2}"
    assert [f["severity"] for f in old["quality"]["failed"]] == ["warning"]


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["sql", "SELECT * FROM gold.nope"], 1, "`agrilake tables` lists the tables"),
    (["sql", f"SELECT coop_id FROM gold.{GOLD} WHERE score >"], 1, "PARSE_SYNTAX_ERROR"),
    (["sql", " ; "], 2, "no statement given"),
    (["sql", f"SELECT no_such_column FROM gold.{GOLD}"], 1, "`agrilake describe <layer>.<table>` lists"),
    (["sql", f"SELECT * FROM gold.{GOLD} VERSION AS OF 99"], 1, "shows the table's versions"),
    (["describe", "coop_credit_profile"], 2, "<layer>.<table>"),
    (["describe", "gold.nope"], 1, "`agrilake tables` lists the tables"),
])
def test_errors_say_what_to_do_without_a_stack_trace(lake, capsys, argv, code, says):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert says in err
    assert "JVM stacktrace" not in err and "\tat org." not in err and "Traceback" not in err


def test_catalog_follows_the_lakehouse_it_is_given(lake, spark, tmp_path):
    """Databases made for another lakehouse root (moved, copied) are re-pointed at the next refresh."""
    catalog.refresh(lake, all_comments=True)
    other = tmp_path / "other_lake"
    report = catalog.refresh(lake.with_settings(lakehouse=str(other)))
    assert report.tables == {layer: [] for layer in tables.LAYERS} and not report.registered
    assert spark.catalog.listTables("gold") == []
    assert spark.sql("DESCRIBE DATABASE gold").where("info_name = 'Location'").first()[1].endswith(
        f"{other}/_catalog/warehouse/gold.db")
    report = catalog.refresh(lake)
    assert f"gold.{GOLD}" in report.registered and not report.commented  # the comments are in the Delta logs
    assert spark.sql(f"SELECT count(*) FROM gold.{GOLD}").first()[0] == 3


def test_descriptions_come_from_the_contracts():
    """Every table the code can create is described, ops and bronze lineage columns from schemas/ too."""
    from agrilake.core.contracts import packaged

    contracts = packaged()
    for layer, names in catalog.known_tables(contracts).items():
        for name in names:
            text, columns = catalog.descriptions(contracts, layer, name)
            assert text and columns, f"{layer}.{name} has no description"
    assert set(catalog.known_tables(contracts)["ops"]) >= {"ingest_log", "quarantine", "dq_results",
                                                            "export_manifests", "silver_ledger"}
    _, bronze = catalog.descriptions(contracts, "bronze", "coop_cooperatives")
    assert bronze["_file_sha256"] == "SHA-256 of the landed file (a file seen before is not ingested again)"
    _, dq = catalog.descriptions(contracts, "ops", "dq_results")
    assert dq["severity"] == "critical (stops the publish) or warning"


def test_the_catalog_does_not_import_the_server_that_imports_it():
    """analyst.catalog reads the SQL server's state (services.sql_endpoint); only analyst.sql_server
    imports the catalog to start one, and nothing under services imports analyst; and no module under core or stages imports services or analyst."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import agrilake

    code = "import sys, agrilake.analyst.catalog; assert 'agrilake.analyst.sql_server' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    package = Path(agrilake.__file__).parent
    wrong = []
    for path in [*package.glob("core/**/*.py"), *package.glob("stages/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(package)}: {n}" for n in names
                      if n.startswith(("agrilake.services", "agrilake.analyst"))]
    assert not wrong


def test_json_values():
    assert output.jsonable(Decimal("12345678901.25")) == 12345678901.25
    assert output.jsonable(Decimal("1234567890123456.78")) == "1234567890123456.78"
    assert output.jsonable(float("nan")) == "nan"


def test_a_busy_catalog_fails_fast_naming_its_holder(tmp_path):
    held = catalog.CatalogLock(str(tmp_path)).acquire("agrilake sql-server")
    try:
        with pytest.raises(catalog.CatalogBusy, match=r"in use by pid \d+ \(agrilake sql-server\).*sql-server start"):
            catalog.CatalogLock(str(tmp_path)).acquire("agrilake sql")
    finally:
        held.release()
    catalog.CatalogLock(str(tmp_path)).acquire("agrilake sql").release()


def test_an_analyst_jvm_keeps_only_the_variables_it_needs():
    """An allow-list: the secrets no deny-list named (Airflow's, OpenLineage's, Postgres', anyone's) stay out."""
    needed = {"PATH": "/usr/bin", "HOME": "/home/ana", "LC_ALL": "C.UTF-8", "JAVA_HOME": "/usr/lib/jvm/17",
              "SPARK_LOCAL_IP": "127.0.0.1", "AGRILAKE_LAKEHOUSE": "/data/lake", "AGRILAKE_SPARK_CONF": "spark.x=1"}
    secrets = {"AGRILAKE_PSEUDO_KEY": "k", "AWS_SECRET_ACCESS_KEY": "s", "AIRFLOW__CORE__FERNET_KEY": "f",
               "AIRFLOW__API_AUTH__JWT_SECRET": "j", "AIRFLOW__API__SECRET_KEY": "a", "AGRILAKE_LINEAGE_API_KEY": "l",
               "OPENLINEAGE__TRANSPORT": '{"type": "http", "auth": {"apiKey": "o"}}', "OPENLINEAGE_API_KEY": "o",
               "POSTGRES_PASSWORD": "p", "PGPASSWORD": "p", "ACME_BILLING_TOKEN": "t", "PYSPARK_SUBMIT_ARGS": "--conf x",
               "SPARK_CONNECT_AUTHENTICATE_TOKEN": "inherited", catalog.ADMIN_ENV: "inherited"}
    env = catalog.analyst_environment({**needed, **secrets})
    assert {k: env[k] for k in needed} == needed
    assert set(env) == set(needed) | {catalog.ADMIN_ENV, catalog.OPERATOR_ENV, catalog.RESTRICTED_ENV}
    assert env[catalog.ADMIN_ENV] != "inherited"  # its own token, fresh


def test_the_settings_a_sql_client_may_change_are_the_documented_ones():
    """ConnectGuard.SETTABLE (infra/guard) and the table of docs/querying.md list the same keys."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    java = (root / "infra/guard/org/agrilake/spark/ConnectGuard.java").read_text(encoding="utf-8")
    listed = java[java.index("SETTABLE = Set.of("):]
    listed = listed[:listed.index(");")]
    code = set(re.findall(r'"(spark\.[\w.]+)"', listed))
    assert "ReadOnlyCatalog.ADMIN_CONF, ReadOnlyCatalog.OPERATOR_CONF" in listed
    code |= {catalog.ADMIN_CONF, catalog.OPERATOR_CONF}
    readonly = (root / "infra/guard/org/agrilake/spark/ReadOnlyCatalog.java").read_text(encoding="utf-8")
    assert f'ADMIN_CONF = "{catalog.ADMIN_CONF}"' in readonly and f'OPERATOR_CONF = "{catalog.OPERATOR_CONF}"' in readonly
    docs = (root / "docs/querying.md").read_text(encoding="utf-8")
    section = docs[docs.index("## What the SQL endpoint refuses"):]
    section = section[:section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(spark\.[\w.]+)` \|", section, re.MULTILINE))
    assert documented == code


def test_the_sql_server_has_the_connect_guard_no_ui_and_redacts_the_catalog_tokens(settings):
    """Whatever AGRILAKE_SPARK_CONF says: the guard's interceptor, no UI, the token settings redacted."""
    import re

    from agrilake.analyst import sql_server

    wishes = "spark.ui.enabled=true spark.connect.grpc.interceptor.classes=none spark.redaction.regex=nothing"
    argv = sql_server.command(settings.replace(spark_conf=wishes), 15002)
    conf = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--conf")
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.connect.grpc.interceptor.classes"] == "org.agrilake.spark.ConnectGuard"
    redacted = re.compile(conf["spark.redaction.regex"])
    assert all(redacted.search(key) for key in (catalog.ADMIN_CONF, catalog.OPERATOR_CONF, "spark.hadoop.fs.s3a.secret.key"))
