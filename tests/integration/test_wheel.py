"""A wheel built from the repository works outside the checkout, with only environment variables set.

The wheel is installed into a fresh virtual environment that reuses the pinned dependencies of the
project's venv (a .pth line, so nothing is downloaded), and every command runs from an empty
directory: the contracts (schemas/) and suites (expectations/) must come from the package data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-10-01"


def _run(cmd: list[str], env: dict, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(the wheel venv's bin, a clean environment, an empty working directory)."""
    tmp = tmp_path_factory.mktemp("wheel")
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.skip(f"uv (which builds the wheel) is missing from {uv.parent}: run `make setup`")
    dist = tmp / "dist"
    subprocess.run([str(uv), "build", "--wheel", "-q", "-o", str(dist), str(ROOT)], check=True, cwd=ROOT,
                   capture_output=True, timeout=600)
    [wheel] = dist.glob("agrilake-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The project venv's packages (pyspark, delta-spark, GX, Airflow...) without its editable agrilake:
    # a path line in a .pth adds the folder but does not run the .pth files inside it.
    (site / "_agrilake_pinned_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(uv), "pip", "install", "-q", "--no-deps", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    home, work = tmp / "home", tmp / "work"
    home.mkdir()
    work.mkdir()
    keep = ("HOME", "JAVA_HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE",
            "AGRILAKE_JVM_OPTIONS")  # the suite's JVM tuning (infra/run_tests.sh), not a path into the checkout
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
               AGRILAKE_HOME=str(home), AGRILAKE_JARS=str(ROOT / ".jars"), AIRFLOW_HOME=str(home / "airflow"),
               AGRILAKE_DEMO="1", AGRILAKE_SPARK_MASTER="local[2]", AGRILAKE_SHUFFLE_PARTITIONS="1",
               SPARK_LOCAL_IP="127.0.0.1",
               AIRFLOW__CORE__LOAD_EXAMPLES="False")
    return venv / "bin", env, work


def test_the_installed_package_is_the_wheel_with_its_specs(installed):
    bin_, env, work = installed
    out = _run([str(bin_ / "python"), "-c",
                "import agrilake; from agrilake.core.settings import Settings; s = Settings.from_env(); "
                "print(agrilake.__file__); print(s.schemas_dir); print(s.expectations_dir)"], env, work).stdout.split()
    package, schemas, suites = (Path(p) for p in out)
    venv = bin_.parent
    assert package.is_relative_to(venv) and schemas.is_relative_to(venv) and suites.is_relative_to(venv), out
    assert not package.is_relative_to(ROOT)
    assert (schemas / "source" / "coop_sales.yaml").is_file() and (schemas / "ops" / "ingest_log.yaml").is_file()
    assert (suites / "bronze.yaml").is_file()


def test_generate_and_one_pipeline_day_from_the_wheel(installed):
    """On Spark's own defaults (AQE, whole-stage code generation), which the rest of the suite turns off
    for speed (infra/run_tests.sh): the environment here is built from scratch."""
    bin_, env, work = installed
    assert "AGRILAKE_SPARK_CONF" not in env
    _run([str(bin_ / "agrilake"), "generate", "--start", DAY, "--days", "1", "--scale", "0.05", "--seed", "3"],
         env, work)
    home = Path(env["AGRILAKE_HOME"])
    assert any((home / "data" / "landing" / "coop" / "sales" / DAY).iterdir())
    out = _run([str(bin_ / "agrilake"), "pipeline", "--from", DAY], env, work, timeout=1800).stdout
    assert f"{DAY}: bronze" in out and "gold" in out
    for table in ("coop_credit_profile", "household_credit_profile", "logistics_division_daily",
                  "credit_county_summary"):
        assert (home / "data" / "lakehouse" / "gold" / table / "_delta_log").is_dir(), table
    assert not (work / "schemas").exists() and list(work.iterdir()) in ([], [work / "spark-warehouse"])
