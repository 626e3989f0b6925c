"""The `agrilake` command: thin dispatch to each stage's `main(argv)`."""

from __future__ import annotations

import importlib
import logging
import sys

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("agrilake.doctor", "print versions and prove Spark, Delta, GX and Airflow work"),
    "generate": ("agrilake.devdata.generate", "write synthetic landing feeds (docs/sources.md formats, with defects)"),
    "ingest": ("agrilake.stages.bronze", "ingest landed files into bronze Delta tables"),
    "silver": ("agrilake.stages.silver", "conform bronze into silver entities"),
    "gold": ("agrilake.stages.gold", "build the gold datasets for a date"),
    "export": ("agrilake.stages.export", "export curated datasets to the platforms' buckets"),
    "objectstore": ("agrilake.services.objectstore", "start/stop the local SeaweedFS object store"),
    "pipeline": ("agrilake.stages.pipeline", "run every stage for a date range, without a scheduler"),
    "status": ("agrilake.analyst.status", "each date's deliveries per system, its gold publication and exports"),
    "no-delivery": ("agrilake.stages.bronze.no_delivery", "mark a day as nothing to deliver for a daily system"),
    **importlib.import_module("agrilake.analyst").COMMANDS,  # sql, tables, describe, catalog, sql-server
    "dictionary": ("agrilake.analyst.dictionary", "write the data dictionary (docs/data_dictionary.md, .html) from the contracts"),
    "datadocs": ("agrilake.analyst.datadocs", "render the Great Expectations data docs of the latest validations"),
    "lineage": ("agrilake.analyst.lineage", "where a gold partition or column came from (silver tables and columns, landed files with SHA-256) and went (exports)"),
    "fetch": ("agrilake.consumer.fetch", "a platform's side: list, download and verify its deliveries (sizes, SHA-256)"),
    "contract": ("agrilake.delivery.contract", "the ODCS data contract of each exported dataset (print, --write, --check)"),
    "report": ("agrilake.analyst.report", "self-contained HTML report with charts of the gold tables for a date"),
    "demo": ("agrilake.devdata.demo", "the README's main job: demo data through Airflow, then a summary"),
    "maintenance": ("agrilake.stages.maintenance", "OPTIMIZE and VACUUM every Delta table, report sizes before/after"),
    "dags-test": ("agrilake.orchestration.dags_test", "run DAGs for one date in one process, as `airflow dags test` does"),
    "config": ("agrilake.analyst.configuration", "every AGRILAKE_* setting with its default (--current: values in effect)"),
    "airflow": ("agrilake.services.airflow_server", "start/stop/status of a local Airflow (UI, scheduler, dag-processor)"),
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
