"""SQL access for analysts and other programs: the persistent catalog, the query commands, the SQL server.

    catalog.py   databases bronze/silver/gold/ops, tables registered by location, column comments
    query.py     agrilake sql "SELECT ..." [--format table|csv|json] [--limit N]
    listing.py   agrilake tables
    describe.py  agrilake describe gold.coop_credit_profile [--version N | --timestamp T]
    server.py    agrilake sql-server start|stop|status [--port P]   (Spark Connect on 127.0.0.1)

Kept free of Spark imports: jobs/cli.py reads COMMANDS on every invocation.
"""

from __future__ import annotations

# command -> (module with main(argv), one-line help), merged into jobs.cli.COMMANDS
COMMANDS: dict[str, tuple[str, str]] = {
    "sql": ("jobs.sql.query", "run a SQL query on the catalog (table, CSV or JSON; time travel)"),
    "tables": ("jobs.sql.listing", "list the tables of every layer (registers new ones in the catalog)"),
    "describe": ("jobs.sql.describe", "a table's columns, row counts per partition, history, latest DQ result"),
    "catalog": ("jobs.sql.catalog", "register every table and its column comments in the persistent catalog"),
    "sql-server": ("jobs.sql.server", "start/stop/status of the SQL endpoint (Spark Connect on 127.0.0.1)"),
}
