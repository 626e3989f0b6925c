"""SQL access for analysts and other programs: the persistent catalog, the query commands, the SQL server.

    catalog.py   databases bronze/silver/gold/ops, tables registered by location, column comments
    query.py     agrilake sql "SELECT ..." [--format table|csv|json] [--limit N]
    listing.py   agrilake tables
    describe.py  agrilake describe gold.coop_credit_profile [--version N | --timestamp T]

The SQL server, `agrilake sql-server start|stop|status [--port P]` (Spark Connect on 127.0.0.1), runs
the analysts' catalog with the local services' shared lifecycle (agrilake.services.sql_endpoint):
agrilake.analyst.sql_server.

Kept free of Spark imports: jobs/agrilake/cli.py reads COMMANDS on every invocation.
"""

from __future__ import annotations

# command -> (module with main(argv), one-line help), merged into agrilake.cli.COMMANDS
COMMANDS: dict[str, tuple[str, str]] = {
    "sql": ("agrilake.analyst.query", "run a SQL query on the catalog (table, CSV or JSON; time travel)"),
    "tables": ("agrilake.analyst.listing",
               "list the tables of every layer (registers new ones in the catalog)"),
    "describe": ("agrilake.analyst.describe",
                 "a table's columns, row counts per partition, history, latest DQ result"),
    "catalog": ("agrilake.analyst.catalog",
                "register every table and its column comments in the persistent catalog"),
    "sql-server": ("agrilake.analyst.sql_server",
                   "start/stop/status of the SQL endpoint (Spark Connect on 127.0.0.1)"),
}
