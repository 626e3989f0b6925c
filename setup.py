"""Package layout that pyproject.toml alone cannot say.

The code's source root is jobs/ (the layout the project was asked for); the table contracts
(schemas/) and the quality suites (expectations/) stay at the repository's top level, where people
edit them, and ship inside the package as `agrilake.specs.schemas` / `agrilake.specs.expectations`,
so an installed wheel finds them without a checkout (agrilake.core.settings).
"""

from setuptools import find_packages, setup

SPEC_DIRS = {"agrilake.specs.schemas": "schemas", "agrilake.specs.expectations": "expectations"}

setup(
    packages=find_packages("jobs", include=["agrilake", "agrilake.*"]) + list(SPEC_DIRS),
    package_dir={"": "jobs", **SPEC_DIRS},
    package_data={name: ["*.yaml", "*/*.yaml"] for name in SPEC_DIRS},
)
