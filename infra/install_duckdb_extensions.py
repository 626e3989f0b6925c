"""Install DuckDB's httpfs and aws extensions from their PyPI wheels into DuckDB's own extension folder.

Run with the consumer venv's Python (`make consumer`, and the consumer tests before `datacontract test`).
datacontract-cli 1.2.8 loads a bundled extension only as `<name>.duckdb_extension.gz`, while the
duckdb-extension-* 1.5 wheels ship it uncompressed; it then falls back to `INSTALL <name>`, which
downloads from extensions.duckdb.org unless the extension is installed already. Installing the
wheel's file once makes that fallback work without network, as a consumer's air-gapped machine needs.
"""

from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path

import duckdb


def main() -> None:
    con = duckdb.connect()
    version = con.sql("PRAGMA version").fetchall()[0][0]
    for name in ("httpfs", "aws"):
        folder = Path(str(importlib.resources.files(importlib.import_module(f"duckdb_extension_{name}"))))
        bundled = folder / "extensions" / version / f"{name}.duckdb_extension"
        if not bundled.is_file():
            raise SystemExit(f"no {bundled}: the duckdb-extension-{name} wheel does not match duckdb {version}")
        con.sql(f"INSTALL '{bundled}'")
    print(f"DuckDB {version}: httpfs and aws installed from their wheels")


if __name__ == "__main__":
    main()
