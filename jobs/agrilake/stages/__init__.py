"""The pipeline: bronze, silver, gold, export, maintenance. Each stage is pure DataFrame transforms
plus a thin shell that reads and writes tables, and a `main(argv)` for the CLI and spark-submit."""
