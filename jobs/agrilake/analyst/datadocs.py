"""`agrilake datadocs`: the Great Expectations data docs site of the latest validation of each suite.

The pipeline keeps every GX result it computes (jobs/agrilake/core/quality.py); this renders them, without
validating anything again, and prints the site's index.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agrilake.core import quality


def main(argv: list[str] | None = None) -> int:
    from agrilake.core.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="agrilake datadocs", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=quality.results_dir(settings),
                        help="kept GX results (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=quality.data_docs_dir(settings),
                        help="site folder (default: %(default)s)")
    args = parser.parse_args(argv)
    index = quality.build_data_docs(args.results, args.out)
    print(index)
    return 0
