"""The SQL endpoint for real: `agrilake sql-server` on a small lakehouse, queried by separate processes.

A Spark Connect client in its own process (as a BI tool or another program would be) finds the gold
table in the persistent catalog with its comments, reads it now and by timestamp, and agrilake's own
`sql` command, run meanwhile, becomes a client of the server instead of opening the Derby catalog
the server holds. Stopping the server ends its process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil
import pytest

from agrilake.core import ops, tables
from agrilake.services.processes import answers, descendants, free_port, pid_alive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
GOLD = "coop_credit_profile"
D1, D2 = date(2026, 10, 1), date(2026, 10, 2)

CLIENT = """
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
table = "gold.coop_credit_profile"
rows = spark.sql(f"SELECT coop_id, score, credit_tier FROM {table} WHERE as_of_date = '2026-10-02' ORDER BY coop_id")
first = (spark.sql(f"DESCRIBE HISTORY {table}").where("version = 0")
         .selectExpr("date_format(timestamp, 'yyyy-MM-dd HH:mm:ss.SSS')").first()[0])
print(json.dumps({
    "rows": [r.asDict() for r in rows.collect()],
    "rows_at_first_commit": spark.sql(f"SELECT count(*) FROM {table} TIMESTAMP AS OF '{first}'").first()[0],
    "tables": {t.name: t.description for t in spark.catalog.listTables("gold")},
    "comment": spark.table(table).schema["credit_tier"].metadata.get("comment"),
}))
"""


def _run(argv: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_sql_endpoint_serves_gold_tables_to_a_separate_client(ctx):
    lake = Path(ctx.settings.lakehouse)
    _gold(ctx)
    _personal(ctx)
    gold = ctx.contracts.gold_table(GOLD)

    port = free_port()
    url = f"sc://127.0.0.1:{port}"
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_SPARK_MASTER": "local[1]",
           "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_SHUFFLE_PARTITIONS": "1", **SENTINELS}
    cli = [sys.executable, "-m", "agrilake.cli"]
    started = _run([*cli, "sql-server", "start", "--port", str(port), "--timeout", "300"], env, timeout=420)
    run_dir = lake / "_catalog" / "sql-server"
    state = json.loads((run_dir / "server.json").read_text())
    stopped, tree = None, []
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        assert url in started.stdout
        token = (run_dir / "token").read_text().strip()
        assert (run_dir / "token").stat().st_mode & 0o077 == 0 and token not in started.stdout + started.stderr

        client = _run([sys.executable, "-c", CLIENT, f"sc://localhost:{port}/;token={token}"], env)
        assert client.returncode == 0, client.stderr[-3000:]
        result = json.loads(client.stdout.strip().splitlines()[-1])
        assert result["rows"] == [{"coop_id": "c1", "score": 700, "credit_tier": "A"},
                                  {"coop_id": "c2", "score": 720, "credit_tier": "A"}]
        assert result["rows_at_first_commit"] == 1  # TIMESTAMP AS OF, in the session zone the history shows
        assert result["tables"] == {GOLD: gold.description}
        assert result["comment"] == "A >= 700, B 640..699, C 580..639, D < 580"

        # no token, or a wrong one: not even a query
        for bad in (url, f"sc://localhost:{port}/;token=not-{token}"):
            anonymous = _run([sys.executable, "-c", "import sys; from pyspark.sql import SparkSession; "
                              "SparkSession.builder.remote(sys.argv[1]).getOrCreate().sql('SELECT 1').collect()", bad], env)
            assert anonymous.returncode != 0 and "UNAUTHENTICATED" in anonymous.stderr, anonymous.stderr[-2000:]

        # a client with the token still cannot write, read files, reflect or run its own code
        hostile = _run([sys.executable, "-c", CONNECT_HOSTILE, f"sc://localhost:{port}/;token={token}", str(lake)], env)
        assert hostile.returncode == 0, hostile.stderr[-3000:]
        refused = json.loads(hostile.stdout.strip().splitlines()[-1])
        assert refused.pop("versions before") == refused.pop("versions after")
        assert refused and all("read-only: refused" in why or "operators only" in why for why in refused.values()), refused

        # an operator (who can read the operator token) reads the clear data
        operator = _run([sys.executable, "-c", OPERATOR_CLIENT, f"sc://localhost:{port}/;token={token}",
                         str(run_dir / "operator.token")], env)
        assert operator.returncode == 0, operator.stderr[-3000:]
        assert json.loads(operator.stdout.strip().splitlines()[-1]) == [RIC, NAME]
        with open(f"/proc/{state['pid']}/environ", "rb") as fh:
            server_env = fh.read().decode(errors="replace")
        assert not [s for s in SENTINELS.values() if s in server_env]

        # the Derby catalog is the server's now: agrilake's own commands must go through it
        query = _run([*cli, "sql", f"SELECT count(*) AS n FROM gold.{GOLD} VERSION AS OF 0", "--format", "json"], env)
        assert query.returncode == 0, query.stderr[-3000:]
        assert json.loads(query.stdout) == [{"n": 1}]

        status = _run([*cli, "sql-server", "status"], env)
        assert status.returncode == 0 and url in status.stdout

        # stopped in the middle of a query: the server and every process below it end, the client errs
        query = subprocess.Popen([sys.executable, "-c", LONG_QUERY, f"sc://localhost:{port}/;token={token}"], env=env,
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert query.stdout.readline().strip() == "querying", query.stderr.read()[-2000:]
            time.sleep(2)  # the query is planned and its tasks run (it would take hours)
            assert query.poll() is None
            tree = [psutil.Process(p) for p in {state["pid"], *descendants(state["pid"])}]
            stopped = _run([*cli, "sql-server", "stop"], env)
            assert query.wait(timeout=60) != 0
        finally:
            query.kill()
            query.wait()
    finally:
        if not stopped:
            stopped = _run([*cli, "sql-server", "stop"], env)
    assert stopped.returncode == 0 and "SQL server stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not pid_alive(state["pid"])
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not answers(port)
    assert _run([*cli, "sql-server", "status"], env).returncode == 1


LONG_QUERY = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
print("querying", flush=True)
spark.sql("SELECT sum(id * 2) FROM range(0, 10000000000000)").collect()
"""

OPERATOR_CLIENT = """
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
spark.conf.set("spark.agrilake.catalog.operator", open(sys.argv[2]).read().strip())
row = spark.sql("SELECT member_ric, member_name FROM bronze.coop_members").first()
print(json.dumps([row.member_ric, row.member_name]))
"""

CONNECT_HOSTILE = """
import json, sys
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
lake, table = sys.argv[2], "gold.coop_credit_profile"
versions = lambda: spark.sql(f"DESCRIBE HISTORY {table}").count()
out = {"versions before": versions()}


def guessed_admin():
    spark.conf.set("spark.agrilake.catalog.admin", "a-guess")
    try:
        spark.sql(f"INSERT INTO {table} SELECT * FROM {table}").collect()
    finally:
        spark.conf.unset("spark.agrilake.catalog.admin")


def guessed_operator():
    spark.conf.set("spark.agrilake.catalog.operator", "a-guess")
    try:
        spark.sql("SELECT * FROM bronze.coop_members").collect()
    finally:
        spark.conf.unset("spark.agrilake.catalog.operator")


attempts = {
    "sql insert": lambda: spark.sql(f"INSERT INTO {table} SELECT * FROM {table}").collect(),
    "dataframe append": lambda: spark.table(table).write.mode("append").saveAsTable(table),
    "dataframe save by path": lambda: spark.table(table).write.format("delta").mode("append").save(f"{lake}/gold/coop_credit_profile"),
    "read a file": lambda: spark.read.text("/etc/hostname").collect(),
    "read delta by path": lambda: spark.read.format("delta").load(f"{lake}/gold/coop_credit_profile").collect(),
    "reflect": lambda: spark.sql("SELECT reflect('java.lang.System', 'getenv', 'AGRILAKE_PSEUDO_KEY')").collect(),
    "python udf": lambda: spark.table(table).select(F.udf(lambda s: str(s))("score")).collect(),
    "guessed admin token": guessed_admin,
    "read bronze": lambda: spark.table("bronze.coop_members").collect(),
    "temp view over clear lines": lambda: spark.table("ops.quarantine_raw").createOrReplaceTempView("q"),
    "guessed operator token": guessed_operator,
}
for name, attempt in attempts.items():
    try:
        attempt()
        out[name] = "ran"
    except Exception as exc:
        out[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
out["versions after"] = versions()
print(json.dumps(out))
"""


# The statements an analyst must not get through, whatever their spelling (issue: a keyword filter
# let most of them pass). `{lake}` is the lakehouse root.
HOSTILE = {
    "insert after FROM": f"FROM gold.{GOLD} INSERT INTO gold.{GOLD} SELECT *",
    "insert behind a '--' literal": f"WITH t AS (SELECT '--' AS c) INSERT INTO gold.{GOLD} SELECT * FROM gold.{GOLD}",
    "insert": f"INSERT INTO gold.{GOLD} SELECT * FROM gold.{GOLD}",
    "delete": f"DELETE FROM gold.{GOLD} WHERE score > 0",
    "update": f"UPDATE gold.{GOLD} SET score = 0",
    "merge": f"MERGE INTO gold.{GOLD} t USING gold.{GOLD} s ON t.coop_id = s.coop_id WHEN MATCHED THEN DELETE",
    "create": "CREATE TABLE gold.mine (a INT) USING DELTA",
    "drop": f"DROP TABLE gold.{GOLD}",
    "alter": f"ALTER TABLE gold.{GOLD} SET TBLPROPERTIES ('x' = '1')",
    "optimize": f"OPTIMIZE gold.{GOLD}",
    "vacuum": f"VACUUM gold.{GOLD}",
    "set": "SET spark.sql.ansi.enabled = true",
    "cache": f"CACHE TABLE gold.{GOLD}",
    "temp view over a file": "CREATE TEMPORARY VIEW v AS SELECT * FROM text.`/etc/hostname`",
    "reflect": "SELECT reflect('java.lang.System', 'getenv', 'AGRILAKE_PSEUDO_KEY')",
    "java_method": "SELECT java_method('java.lang.System', 'getenv')",
    "try_reflect": "SELECT try_reflect('java.lang.System', 'getenv', 'AWS_SECRET_ACCESS_KEY')",
    "text file": "SELECT * FROM text.`/etc/hostname`",
    "csv file": "SELECT * FROM csv.`/etc/hostname`",
    "delta by path": "SELECT * FROM delta.`{lake}/gold/" + GOLD + "`",
    "json in a subquery": f"SELECT * FROM gold.{GOLD} WHERE coop_id IN (SELECT value FROM json.`/etc/hostname`)",
}
ALLOWED = {
    "select": f"SELECT count(*) FROM gold.{GOLD}",
    "with": "WITH t AS (SELECT '--' AS c) SELECT c FROM t",
    "time travel": f"SELECT count(*) FROM gold.{GOLD} VERSION AS OF 0",
    "show": "SHOW TABLES IN gold",
    "describe": f"DESCRIBE gold.{GOLD}",
    "history": f"DESCRIBE HISTORY gold.{GOLD}",
    "explain": f"EXPLAIN SELECT * FROM gold.{GOLD}",
}
SENTINELS = {"AGRILAKE_PSEUDO_KEY": "sentinel-hmac-key-7f3a", "AGRILAKE_S3_SECRET_KEY": "sentinel-s3-secret-9c1d",
             "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-55e0"}

LOCAL_ANALYST = """
import json, sys
from agrilake.analyst import catalog, query
from agrilake.analyst.output import explain
from agrilake.core.settings import get_settings

statements = json.loads(sys.argv[1])
ctx = catalog.open_context(get_settings())
catalog.refresh(ctx)
versions = lambda: ctx.spark.sql("DESCRIBE HISTORY gold.coop_credit_profile").count()
out = {"versions before": versions()}
for name, statement in statements.items():
    try:
        query.run(ctx, statement, 5)
        out[name] = "ran"
    except Exception as exc:
        out[name] = explain(exc)
jvm = ctx.spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
with open(f"/proc/{jvm}/environ", "rb") as fh:
    out["jvm environment"] = fh.read().decode(errors="replace")
out["versions after"] = versions()
out["masked rows"] = query.run(ctx, sys.argv[3], 5)[1]
catalog.operator_access(ctx)
operator = json.loads(sys.argv[2])
out["operator"] = {name: len(query.run(ctx, statement, 5)[1]) for name, statement in operator.items()}
print(json.dumps(out))
"""


# Clear personal data as bronze and a parse-stage quarantine row hold it (a valid RIC, a name, a phone).
RIC, NAME, PHONE = "11010519491231002X", "张三丰", "13812345678"
RESTRICTED_READS = {
    "bronze": "SELECT * FROM bronze.coop_members",
    "clear quarantine lines": "SELECT raw FROM ops.quarantine_raw",
    "clear lines in a subquery": "SELECT count(*) FROM gold.coop_credit_profile WHERE coop_id IN "
                                 "(SELECT raw FROM ops.quarantine_raw)",
    "bronze time travel": "SELECT * FROM bronze.coop_members VERSION AS OF 1",
}
MASKED = "SELECT reason, raw, _line FROM ops.quarantine"


def _personal(ctx) -> None:
    """bronze.coop_members with one member; the member's malformed line quarantined as bronze does it."""
    from datetime import datetime

    from agrilake.stages.bronze import transform

    feed = ctx.contracts.feed("coop_members")
    lineage = {"_file_sha256": "f" * 64, "_file_name": "members.csv", "_line": 2, "_delivery_date": D1}
    member = {c: None for c in feed.column_names} | {"member_ric": RIC, "member_name": NAME, "phone": PHONE}
    tables.create_if_missing(ctx, "bronze", feed.name, ctx.contracts.bronze_ddl(feed))
    tables.append(ctx, ops.rows_df(ctx, ctx.contracts.bronze_ddl(feed), [{**member, **lineage,
                  "_ingested_at": datetime(2026, 10, 1, 8), "_batch_id": "b1"}]), "bronze", feed.name)
    parsed = ctx.spark.createDataFrame(
        [("WRONG_FIELD_COUNT", "9 fields, header has 8", f'C0001,{RIC},"{NAME}",{PHONE},x', *lineage.values())],
        "_reason string, _detail string, _raw string, _file_sha256 string, _file_name string, _line bigint, "
        "_delivery_date date")
    rejected = transform.rejected(parsed, feed, batch_id="b1", now=datetime(2026, 10, 1, 8))
    for name, rows in (("quarantine", transform.quarantine_rows(rejected)), ("quarantine_raw",
                                                                           transform.clear_lines(rejected))):
        ops.create(ctx, name)
        tables.append(ctx, rows, "ops", name)


def _gold(ctx) -> None:
    gold = ctx.contracts.gold_table(GOLD)
    for as_of, scores in ((D1, {"c1": 650}), (D2, {"c1": 700, "c2": 720})):
        rows = [{"as_of_date": as_of, "coop_id": c, "score": s, "credit_tier": "A" if s >= 700 else "B"}
                for c, s in scores.items()]
        tables.replace_partition(ctx, ops.rows_df(ctx, gold.ddl, rows), "gold", GOLD, "as_of_date", as_of.isoformat())


def test_analyst_sql_is_read_only_by_plan_and_runs_without_pipeline_secrets(ctx):
    """A local analyst session (no server) on the persistent catalog, in a process of its own: every
    hostile statement is refused by the engine's guard, queries run, no commit lands, and neither the
    process nor its JVM holds a pipeline secret."""
    lake = Path(ctx.settings.lakehouse)
    _gold(ctx)
    _personal(ctx)
    statements = {**{k: v.replace("{lake}", str(lake)) for k, v in HOSTILE.items()}, **ALLOWED,
                  **RESTRICTED_READS, "masked": MASKED}
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_SPARK_MASTER": "local[1]",
           "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_SHUFFLE_PARTITIONS": "1", **SENTINELS}
    run = _run([sys.executable, "-c", LOCAL_ANALYST, json.dumps(statements), json.dumps(RESTRICTED_READS), MASKED], env,
               timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for name in HOSTILE:
        assert "read-only: refused" in out[name], (name, out[name])
    for name in ALLOWED:
        assert out[name] == "ran", (name, out[name])
    # personal data in clear: operators only; analysts see the quarantine's reason, line and shape
    for name in RESTRICTED_READS:
        assert "readable by the pipeline's operators only" in out[name], (name, out[name])
    assert out["masked"] == "ran"
    assert out["masked rows"] == [["WRONG_FIELD_COUNT", 'x9999,' + "9" * 17 + 'x,"某某某",' + "9" * 11 + ",x", 2]]
    assert out["operator"] == {"bronze": 1, "clear quarantine lines": 1, "clear lines in a subquery": 1,
                               "bronze time travel": 1}
    assert out["versions after"] == out["versions before"]  # not one commit from the statements
    for secret in SENTINELS.values():
        assert secret not in out["jvm environment"] and secret not in run.stdout + run.stderr
