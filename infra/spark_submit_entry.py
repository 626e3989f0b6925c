"""spark-submit application of every agrilake stage: `spark-submit ... spark_submit_entry.py <command> [args]`.

The driver imports `agrilake` from the project's source root (jobs/, beside this folder) unless it is
installed; the executors import it from the zip shipped with --py-files. The exit code is the stage's,
so spark-submit (and the Airflow task around it) fails when the stage fails.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))

from agrilake.cli import main  # noqa: E402 - the path must be set first

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
