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
from types import SimpleNamespace

import pytest

from agrilake.core import ops, tables
from agrilake.services.processes import answers, free_port, pid_alive

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


CLI = [sys.executable, "-m", "agrilake.cli"]


def _run(argv: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


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
    "a streaming query": f"SELECT * FROM STREAM(gold.{GOLD})",
    # a Java UDF the session registered (LOCAL_ANALYST loads its jar)
    "a registered Java UDF": "SELECT leak('PATH')",
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
# Secrets a pipeline or Airflow process carries; the last ones are unknown to agrilake: an analyst JVM
# keeps only the variables it needs (an allow-list), not everything a deny-list forgot.
SENTINELS = {"AGRILAKE_PSEUDO_KEY": "sentinel-hmac-key-7f3a", "AGRILAKE_S3_SECRET_KEY": "sentinel-s3-secret-9c1d",
             "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-55e0",
             "AIRFLOW__CORE__FERNET_KEY": "sentinel-fernet-0b6e", "AIRFLOW__API_AUTH__JWT_SECRET": "sentinel-jwt-4d2c",
             "AIRFLOW__API__SECRET_KEY": "sentinel-api-secret-8e1f", "AGRILAKE_LINEAGE_API_KEY": "sentinel-lineage-2a7b",
             "OPENLINEAGE__TRANSPORT": '{"type": "http", "auth": {"apiKey": "sentinel-openlineage-6c3d"}}',
             "POSTGRES_PASSWORD": "sentinel-postgres-1f9a", "ACME_BILLING_TOKEN": "sentinel-unknown-secret-7d4e"}

LOCAL_ANALYST = """
import json, sys
from agrilake.analyst import catalog, query
from agrilake.analyst.output import explain
from agrilake.core.settings import get_settings

statements = json.loads(sys.argv[1])
ctx = catalog.open_context(get_settings())
catalog.refresh(ctx)
# a local session is its user's own: it may load a jar and register a Java UDF (the guard refuses the call)
ctx.spark._jsparkSession.sessionState().resourceLoader().addJar(sys.argv[4])
ctx.spark.udf.registerJavaFunction("leak", "Leak", "string")
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


def test_analyst_sql_is_read_only_by_plan_and_runs_without_pipeline_secrets(ctx, tmp_path):
    """A local analyst session (no server) on the persistent catalog, in a process of its own: every
    hostile statement is refused by the engine's guard, queries run, no commit lands, and neither the
    process nor its JVM holds a pipeline secret."""
    lake = Path(ctx.settings.lakehouse)
    jar = _leak_jar(tmp_path)
    _gold(ctx)
    _personal(ctx)
    statements = {**{k: v.replace("{lake}", str(lake)) for k, v in HOSTILE.items()}, **ALLOWED,
                  **RESTRICTED_READS, "masked": MASKED}
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_SPARK_MASTER": "local[1]",
           "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_SHUFFLE_PARTITIONS": "1", **SENTINELS}
    run = _run([sys.executable, "-c", LOCAL_ANALYST, json.dumps(statements), json.dumps(RESTRICTED_READS), MASKED,
                str(jar)], env, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for name in HOSTILE:
        assert "read-only: refused" in out[name], (name, out[name])
    assert "refused a streaming query" in out["a streaming query"]
    assert "refused user code (the registered function leak)" in out["a registered Java UDF"]
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


# The server tests come last: the module's server then starts after the local session's test, not beside it.
@pytest.fixture(scope="module")
def server(session_ctx, tmp_path_factory):
    """`agrilake sql-server start` on a small lakehouse (two gold dates, a member in bronze and the
    quarantine), with sentinel secrets in its environment; stopped, and checked gone, after the module."""
    lake = tmp_path_factory.mktemp("sql-endpoint") / "lakehouse"
    ctx = session_ctx.with_settings(lakehouse=str(lake))
    _gold(ctx)
    _personal(ctx)
    port = free_port()
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_SPARK_MASTER": "local[1]",
           "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_SHUFFLE_PARTITIONS": "1", **SENTINELS}
    started = _run([*CLI, "sql-server", "start", "--port", str(port), "--timeout", "300"], env, timeout=420)
    run_dir = lake / "_catalog" / "sql-server"
    state = json.loads((run_dir / "server.json").read_text())
    handle = SimpleNamespace(ctx=ctx, lake=lake, port=port, env=env, run_dir=run_dir, pid=state["pid"],
                             started=started, stopped=None)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        handle.url = f"sc://localhost:{port}/;token={_secret(run_dir, 'token')}"
        yield handle
    finally:
        # the module's last test stops it in the middle of a query; else it is stopped here
        stopped = handle.stopped or _run([*CLI, "sql-server", "stop"], env)
    assert stopped.returncode == 0 and "SQL server stopped" in stopped.stdout
    assert not pid_alive(state["pid"])
    assert not answers(port)
    assert _run([*CLI, "sql-server", "status"], env).returncode == 1


def _secret(run_dir: Path, name: str) -> str:
    return (run_dir / name).read_text().strip()


def test_sql_endpoint_serves_gold_tables_to_a_separate_client(server):
    lake, port, env, run_dir = server.lake, server.port, server.env, server.run_dir
    gold = server.ctx.contracts.gold_table(GOLD)
    url = f"sc://127.0.0.1:{port}"
    assert url in server.started.stdout
    token = _secret(run_dir, "token")
    assert (run_dir / "token").stat().st_mode & 0o077 == 0 and token not in server.started.stdout + server.started.stderr

    client = _run([sys.executable, "-c", CLIENT, server.url], env)
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
    hostile = _run([sys.executable, "-c", CONNECT_HOSTILE, server.url, str(lake)], env)
    assert hostile.returncode == 0, hostile.stderr[-3000:]
    refused = json.loads(hostile.stdout.strip().splitlines()[-1])
    assert refused.pop("versions before") == refused.pop("versions after")
    assert refused and all("read-only: refused" in why or "runs no client code: refused" in why
                           or "operators only" in why for why in refused.values()), refused

    # an operator (who can read the operator token) reads the clear data
    operator = _run([sys.executable, "-c", OPERATOR_CLIENT, server.url, str(run_dir / "operator.token")], env)
    assert operator.returncode == 0, operator.stderr[-3000:]
    assert json.loads(operator.stdout.strip().splitlines()[-1]) == [RIC, NAME]
    with open(f"/proc/{server.pid}/environ", "rb") as fh:
        server_env = fh.read().decode(errors="replace")
    assert not [s for s in SENTINELS.values() if s in server_env]

    # the Derby catalog is the server's now: agrilake's own commands must go through it
    query = _run([*CLI, "sql", f"SELECT count(*) AS n FROM gold.{GOLD} VERSION AS OF 0", "--format", "json"], env)
    assert query.returncode == 0, query.stderr[-3000:]
    assert json.loads(query.stdout) == [{"n": 1}]

    status = _run([*CLI, "sql-server", "status"], env)
    assert status.returncode == 0 and url in status.stdout


# A Java UDF as a hostile client would upload it: its constructor leaves a mark (it ran in the server),
# its call returns any environment variable of the server's JVM.
LEAK_JAVA = """
public class Leak implements org.apache.spark.sql.api.java.UDF1<String, String> {
    public Leak() throws java.io.IOException {
        java.nio.file.Files.writeString(java.nio.file.Path.of(%s), "the constructor ran in the server");
    }
    public String call(String name) { return System.getenv(name); }
}
"""

# Issue 26: each attack of a hostile client holding the client token, in order; every step is recorded,
# what ran and what was refused (the first line of its error). Then the SQL an analyst runs.
ATTACKER = """
import json, os, re, sys, urllib.request, warnings
from pathlib import Path
from pyspark.sql import SparkSession

url, jar, work, server_pid = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
spark = SparkSession.builder.remote(url).getOrCreate()
table = "gold.coop_credit_profile"
out, leaked = {}, []


def attempt(name, fn):
    try:
        out[name] = {"ran": fn()}
    except Exception as exc:
        text = str(exc).strip()
        out[name] = {"refused": text.splitlines()[0] if text else type(exc).__name__}


# 1. a jar of the client's, and a Java UDF from it: its constructor and its call run in the server
attempt("upload a jar", lambda: spark.addArtifacts(jar))
attempt("register a Java UDF", lambda: spark.udf.registerJavaFunction("leak", "Leak", "string"))
attempt("call the Java UDF", lambda: spark.sql("SELECT leak('AGRILAKE_CATALOG_ADMIN_TOKEN')").first()[0])
if "ran" in out["call the Java UDF"] and out["call the Java UDF"]["ran"]:
    leaked.append(out["call the Java UDF"]["ran"])

# 2. Python code registered in the server: a UDF, and a data source whose schema() runs at planning
from pyspark.sql.datasource import DataSource


class Evil(DataSource):
    @classmethod
    def name(cls):
        return "evil"

    def schema(self):
        Path(MARK_DATASOURCE).write_text(os.environ.get("AGRILAKE_CATALOG_ADMIN_TOKEN", "?"))
        return "a string"


MARK_DATASOURCE = str(work / "python-data-source-ran")
attempt("register a Python UDF", lambda: spark.udf.register("pyleak", lambda s: os.environ.get(s), "string"))
attempt("register a Python data source", lambda: spark.dataSource.register(Evil))
attempt("read the Python data source", lambda: spark.read.format("evil").load().collect() and "read")


def compressed_udf():  # a plan the client compresses (zstd) is read decompressed, as the server runs it
    from pyspark.sql import functions as F

    client, sent = spark._client, []
    original = client._try_compress_and_set_plan

    def compress(plan, message, op_type):
        original(plan, message, op_type)
        sent.append(plan.WhichOneof("op_type"))

    client._plan_compression_threshold, client._plan_compression_algorithm = 0, "ZSTD"
    client._try_compress_and_set_plan = compress
    try:
        return spark.range(3).select(F.lit("x" * 2000), F.udf(lambda s: s)("id")).collect() and "ran"
    finally:
        out["plans sent"] = sent
        client._plan_compression_threshold, client._try_compress_and_set_plan = None, original


attempt("a Python UDF in a compressed plan", compressed_udf)

# 3. a streaming query writing files where the client says (a source that reads no table: no plan for the guard)
def rows():
    return spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 3).load()


def stream_to_path():
    query = (rows().writeStream.format("parquet").option("path", str(work / "stream-out"))
             .option("checkpointLocation", str(work / "stream-checkpoint")).trigger(availableNow=True).start())
    query.awaitTermination(120)
    return "started"


attempt("stream to a path", stream_to_path)

# 4. foreachBatch: the client's Python function runs in the server on each batch
MARK_BATCH = str(work / "foreach-batch-ran")


def batch(df, epoch):
    Path(MARK_BATCH).write_text(os.environ.get("AGRILAKE_CATALOG_ADMIN_TOKEN", "?"))


def foreach_batch():
    query = (rows().writeStream.foreachBatch(batch)
             .option("checkpointLocation", str(work / "batch-checkpoint")).trigger(availableNow=True).start())
    query.awaitTermination(120)
    return "started"


attempt("foreachBatch", foreach_batch)

# 5. a new catalog plugin by a runtime setting: a JDBC catalog on a Derby database it creates on disk
attempt("set a catalog plugin", lambda: spark.conf.set(
    "spark.sql.catalog.evil", "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog"))
attempt("set the plugin's database", lambda: spark.conf.set(
    "spark.sql.catalog.evil.url", f"jdbc:derby:{work / 'evil-derby'};create=true"))
attempt("use the catalog plugin", lambda: spark.sql("SELECT * FROM evil.app.t").collect())  # connects: creates it
attempt("unset the guard's extension", lambda: spark.conf.unset("spark.sql.extensions"))
attempt("create a table by the catalog API", lambda: spark.catalog.createTable("gold.attacker", path=str(work / "t")))

# 6. the tokens: session settings, SET, the Spark UI (every HTTP port the server listens on), getenv
attempt("settings (getAll)", lambda: spark.conf.getAll)
attempt("SET -v", lambda: [tuple(r) for r in spark.sql("SET -v").collect()])
attempt("getenv", lambda: spark.sql("SELECT reflect('java.lang.System', 'getenv', 'AGRILAKE_CATALOG_ADMIN_TOKEN')").first()[0])


def listening_ports(pid):
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            sockets.add(link[8:-1])
    ports = set()
    for kind in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{kind}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in sockets:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as response:  # a busy machine
        return response.read().decode(errors="replace")


def ui_pages():
    pages = {}
    for port in listening_ports(server_pid):
        try:
            apps = json.loads(get(port, "/api/v1/applications"))
        except Exception:
            continue  # not HTTP: gRPC, Spark's RPC, the block manager
        ids = [e["id"] for app in apps for e in json.loads(get(port, f"/api/v1/applications/{app['id']}/sql?length=500"))]
        for path in ["/environment/", "/connect/"] + [f"/SQL/execution/?id={i}" for i in ids]:
            try:
                pages[f"{port}{path}"] = get(port, path)
            except Exception:
                pass
    return pages


attempt("the Spark UI", ui_pages)
pages = out["the Spark UI"].get("ran") or {}
for text in pages.values():
    leaked += re.findall(r"spark\\.agrilake\\.catalog\\.admin</td>\\s*<td>([^<]+)</td>", text)
(work / "ui.json").write_text(json.dumps(pages))
out["the Spark UI"] = {"ran": sorted(pages)} if "ran" in out["the Spark UI"] else out["the Spark UI"]

# 7. CREATE TABLE with a token found on the way (or a guess)
def create_table():
    spark.conf.set("spark.agrilake.catalog.admin", leaked[0] if leaked else "nothing-leaked")
    spark.sql("CREATE TABLE gold.attacker (a INT) USING DELTA").collect()
    return "created"


attempt("CREATE TABLE with a token", create_table)
out["leaked"] = sorted(set(leaked))

# and the SQL of an analyst, with a setting of the safe list, and a BI tool's session options
spark.conf.unset("spark.agrilake.catalog.admin")
attempt("safe setting", lambda: spark.conf.set("spark.sql.session.timeZone", "UTC"))
attempt("query", lambda: spark.sql(f"SELECT count(*) FROM {table}").first()[0])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    attempt("BI session", lambda: SparkSession.builder.remote(url).appName("bi").config("spark.sql.ansi.enabled", "true")
            .create().sql("SELECT 1 AS one").first()[0])
out["BI session warnings"] = [str(w.message) for w in caught]
print(json.dumps(out, default=lambda value: f"a {type(value).__name__}"))
"""


def _leak_jar(work: Path) -> Path:
    """The hostile client's jar, compiled against the venv's Spark (a jar is a zip: no `jar` tool needed)."""
    import shutil
    import zipfile

    import pyspark

    if not shutil.which("javac"):
        pytest.skip("javac (a JDK 17) is needed to compile the attack's Java UDF (make setup needs it too)")
    source = work / "Leak.java"
    source.write_text(LEAK_JAVA % json.dumps(str(work / "java-udf-constructed")))
    classpath = str(next((Path(pyspark.__file__).parent / "jars").glob("spark-sql-api_*.jar")))  # UDF1
    compiled = subprocess.run(["javac", "-nowarn", "--release", "17", "-cp", classpath, "-d", str(work), str(source)],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    jar = work / "leak.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        zf.write(work / "Leak.class", "Leak.class")
    return jar


def test_sql_endpoint_runs_no_client_code_and_shows_no_token(server, tmp_path):
    """Issue 26: every attack of a client holding the client token fails with a clear refusal, nothing
    of the client's runs in the server or lands on disk, no token shows, and analyst SQL still works."""
    work = tmp_path / "attacker"
    work.mkdir()
    jar = _leak_jar(work)
    tokens = [_secret(server.run_dir, name) for name in ("admin.token", "operator.token")]
    before = _history(server)

    run = _run([sys.executable, "-c", ATTACKER, server.url, str(jar), str(work), str(server.pid)], server.env)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1)[:20000])  # shown when an assertion fails

    refusals = {"upload a jar": "artifact", "register a Java UDF": "Java UDF", "register a Python UDF": "Python UDF",
                "register a Python data source": "Python data source",
                "a Python UDF in a compressed plan": "runs no client code: refused a Python UDF",
                "stream to a path": "streaming",
                "foreachBatch": "streaming", "set a catalog plugin": "spark.sql.catalog.evil",
                "set the plugin's database": "spark.sql.catalog.evil.url",
                "unset the guard's extension": "spark.sql.extensions",
                "create a table by the catalog API": "create_table", "SET -v": "read-only",
                "getenv": "reflection", "CREATE TABLE with a token": "read-only"}
    for attack, what in refusals.items():
        assert "refused" in out[attack] and "refused" in out[attack]["refused"] and what in out[attack]["refused"], \
            (attack, out[attack])
    assert "compressed_operation" in out["plans sent"], out["plans sent"]
    for consequence in ("call the Java UDF", "read the Python data source", "use the catalog plugin"):
        assert "refused" in out[consequence], (consequence, out[consequence])  # nothing was registered
    # nothing of the client's ran in the server, nothing was written
    assert sorted(p.name for p in work.iterdir()) == ["Leak.class", "Leak.java", "leak.jar", "ui.json"]
    assert _history(server) == before and not (server.lake / "_catalog" / "warehouse" / "gold.db" / "attacker").exists()
    # no token in any setting, page or log a client or a local user can read; no UI at all
    assert out["the Spark UI"] == {"ran": []} and out["settings (getAll)"]["ran"]["spark.ui.enabled"] == "false"
    assert out["leaked"] == []
    shown = run.stdout + run.stderr + (work / "ui.json").read_text() + (server.run_dir / "server.log").read_text()
    assert not [t for t in tokens if t in shown]
    # what analysts do still works: a setting of the safe list, queries, a BI tool's session options
    assert out["safe setting"] == {"ran": None} and out["query"] == {"ran": 3}
    assert out["BI session"] == {"ran": 1}
    assert any("spark.app.name" in w and "ignored" in w for w in out["BI session warnings"]), out["BI session warnings"]


def _history(server) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(server.ctx.spark, str(server.lake / "gold" / GOLD)).history().count()


LONG_QUERY = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
print("querying", flush=True)
spark.sql("SELECT sum(id * 2) FROM range(0, 10000000000000)").collect()
"""


def test_sql_server_stops_whole_in_the_middle_of_a_query(server):
    """Last of the module (it stops the module's server): the server and every process below it end, the
    client errs."""
    import psutil

    from agrilake.services.processes import descendants

    query = subprocess.Popen([sys.executable, "-c", LONG_QUERY, server.url], env=server.env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert query.stdout.readline().strip() == "querying", query.stderr.read()[-2000:]
        time.sleep(2)  # the query is planned and its tasks run (it would take hours)
        assert query.poll() is None
        tree = [psutil.Process(p) for p in {server.pid, *descendants(server.pid)}]
        server.stopped = _run([*CLI, "sql-server", "stop"], server.env)
        assert query.wait(timeout=60) != 0
    finally:
        query.kill()
        query.wait()
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
