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
from datetime import date
from pathlib import Path

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


def _run(argv: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_sql_endpoint_serves_gold_tables_to_a_separate_client(ctx):
    lake = Path(ctx.settings.lakehouse)
    gold = ctx.contracts.gold_table(GOLD)
    for as_of, scores in ((D1, {"c1": 650}), (D2, {"c1": 700, "c2": 720})):
        rows = [{"as_of_date": as_of, "coop_id": c, "score": s, "credit_tier": "A" if s >= 700 else "B"}
                for c, s in scores.items()]
        df = ops.rows_df(ctx, gold.ddl, rows)
        tables.replace_partition(ctx, df, "gold", GOLD, "as_of_date", as_of.isoformat())

    port = free_port()
    url = f"sc://127.0.0.1:{port}"
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_SPARK_MASTER": "local[1]",
           "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_SHUFFLE_PARTITIONS": "1"}
    cli = [sys.executable, "-m", "agrilake.cli"]
    started = _run([*cli, "sql-server", "start", "--port", str(port), "--timeout", "300"], env, timeout=420)
    state = json.loads((lake / "_catalog" / "sql-server" / "server.json").read_text())
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        assert url in started.stdout

        client = _run([sys.executable, "-c", CLIENT, url], env)
        assert client.returncode == 0, client.stderr[-3000:]
        result = json.loads(client.stdout.strip().splitlines()[-1])
        assert result["rows"] == [{"coop_id": "c1", "score": 700, "credit_tier": "A"},
                                  {"coop_id": "c2", "score": 720, "credit_tier": "A"}]
        assert result["rows_at_first_commit"] == 1  # TIMESTAMP AS OF, in the session zone the history shows
        assert result["tables"] == {GOLD: gold.description}
        assert result["comment"] == "A >= 700, B 640..699, C 580..639, D < 580"

        # the Derby catalog is the server's now: agrilake's own commands must go through it
        query = _run([*cli, "sql", f"SELECT count(*) AS n FROM gold.{GOLD} VERSION AS OF 0", "--format", "json"], env)
        assert query.returncode == 0, query.stderr[-3000:]
        assert json.loads(query.stdout) == [{"n": 1}]

        status = _run([*cli, "sql-server", "status"], env)
        assert status.returncode == 0 and url in status.stdout
    finally:
        stopped = _run([*cli, "sql-server", "stop"], env)
    assert stopped.returncode == 0 and "SQL server stopped" in stopped.stdout
    assert not pid_alive(state["pid"])
    assert not answers(port)
    assert _run([*cli, "sql-server", "status"], env).returncode == 1
