"""`agrilake datadocs`: the Great Expectations data docs site of the latest validation of each suite.

The pipeline keeps every GX result it computes (jobs/quality.py); this renders them, without
validating anything again, and prints the site's index.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs import quality


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake datadocs", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help=f"kept GX results (default: {quality.results_dir()})")
    parser.add_argument("--out", type=Path, help=f"site folder (default: {quality.data_docs_dir()})")
    args = parser.parse_args(argv)
    index = quality.build_data_docs(args.results, args.out)
    print(index)
    return 0
