"""The `agrilake` command: thin dispatch to each stage's `main(argv)`."""

from __future__ import annotations

import importlib
import logging
import sys

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("jobs.doctor", "print versions and prove Spark, Delta, GX and Airflow work"),
    "generate": ("jobs.generate", "write synthetic landing feeds (SOURCES.md formats, with defects)"),
    "ingest": ("jobs.bronze", "ingest landed files into bronze Delta tables"),
    "silver": ("jobs.silver", "conform bronze into silver entities"),
    "gold": ("jobs.gold", "build the gold datasets for a date"),
    "export": ("jobs.export", "export curated datasets to the platforms' buckets"),
    "objectstore": ("jobs.objectstore", "start/stop the local SeaweedFS object store"),
    "pipeline": ("jobs.pipeline", "run every stage for a date range, without a scheduler"),
    **importlib.import_module("jobs.sql").COMMANDS,  # sql, tables, describe, catalog, sql-server
    "dictionary": ("jobs.dictionary", "write the data dictionary (docs/data_dictionary.md, .html) from the contracts"),
    "datadocs": ("jobs.datadocs", "render the Great Expectations data docs of the latest validations"),
    "report": ("jobs.report", "self-contained HTML report with charts of the gold tables for a date"),
    "demo": ("jobs.demo", "the README's main job: demo data through Airflow, then a summary"),
    "maintenance": ("jobs.maintenance", "OPTIMIZE and VACUUM every Delta table, report sizes before/after"),
    "dags-test": ("jobs.dag_runs", "run DAGs for one date in one process, as `airflow dags test` does"),
    "airflow": ("jobs.airflow_server", "start/stop/status of a local Airflow (UI, scheduler, dag-processor)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: agrilake <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"agrilake: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
