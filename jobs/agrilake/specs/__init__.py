"""The table contracts (schemas/) and quality suites (expectations/), shipped as package data.

setup.py maps `agrilake.specs.schemas` and `agrilake.specs.expectations` onto the repository's
top-level folders; an editable install resolves them to the checkout, a wheel carries copies.
"""
