"""The platforms' side for real, on the project's SeaweedFS: a bank takes its deliveries with only its own key.

`agrilake fetch` lists the complete deliveries, downloads one, verifies every file against the manifest
and loads it into pandas and DuckDB; it refuses a tampered part and a delivery without a manifest,
keeping nothing of either. Then `datacontract test`, run from a venv of its own as a consumer would
install it, checks a delivery against the data contract published beside its manifest, and fails
when a part no longer keeps the contract.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agrilake import cli
from agrilake.stages import export
from tests.integration.test_export import write_coops, write_households

pytestmark = pytest.mark.integration

D1, D2 = date(2024, 7, 1), date(2024, 7, 2)
ROOT = Path(__file__).resolve().parents[2]
DATACONTRACT = ROOT / ".venv-consumer" / "bin" / "datacontract"


@pytest.fixture(scope="module")
def delivered(session_ctx, tmp_path_factory, store):
    """Bank deliveries of D1 and D2 (coops 25 and 12 rows, households 40 and 8), exported for real."""
    ctx = session_ctx.with_settings(lakehouse=str(tmp_path_factory.mktemp("consumer-lake")), s3_endpoint=None,
                                    s3_access_key=None, s3_secret_key=None, s3_conn_id=None)
    for day, coops, households in ((D1, 25, 40), (D2, 12, 8)):
        write_coops(ctx, day, coops)
        write_households(ctx, day, households)
        export.export_platform(ctx, "bank", day, target=store.target())
    return ctx


@pytest.fixture
def bank_key(store, monkeypatch):
    """The bank's own identity, from the variables any S3 tool reads; nothing of the pipeline's."""
    creds = store.credentials()["bank"]
    env = {"AWS_ACCESS_KEY_ID": creds["access_key"], "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
           "AWS_ENDPOINT_URL": store.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    for name in [n for n in os.environ if n.startswith("AGRILAKE_S3") or n == "AWS_SESSION_TOKEN"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _listed(out: str) -> dict[str, set[date]]:
    """`--list`'s lines, dataset -> dates (the bucket may hold other tests' deliveries too)."""
    pairs = (line.split(": ", 1) for line in out.strip().splitlines())
    return {name: {date.fromisoformat(d) for d in dates.split(", ") if d[:1].isdigit()} for name, dates in pairs}


def _manifest(client, dataset: str, day: date) -> dict:
    return json.loads(client.get_object(Bucket="bank", Key=f"{dataset}/as_of={day}/_manifest.json")["Body"].read())


def _fetch(*args: str) -> int:
    return cli.main(["fetch", "--platform", "bank", *args])


def test_a_bank_lists_fetches_verifies_and_loads_its_deliveries(delivered, bank_key, tmp_path, capsys):
    import duckdb
    import pandas as pd

    assert _fetch("--list") == 0
    listed = _listed(capsys.readouterr().out)
    assert {D1, D2} <= listed["coop_credit_profile"] and {D1, D2} <= listed["household_credit_profile"]

    assert _fetch("--date", D1.isoformat(), "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "coop_credit_profile as_of=2024-07-01: 25 rows" in out and "sizes and SHA-256 verified" in out
    coops = pd.read_parquet(tmp_path / "coop_credit_profile" / f"as_of={D1}")
    assert len(coops) == 25 and coops["coop_id"].tolist() == sorted(coops["coop_id"])
    households = duckdb.sql(
        f"SELECT count(*) FROM '{tmp_path}/household_credit_profile/as_of={D1}/*.parquet'").fetchall()[0][0]
    assert households == 40
    kept = sorted(p.name for p in (tmp_path / "coop_credit_profile" / f"as_of={D1}").iterdir())
    manifest = json.loads((tmp_path / "coop_credit_profile" / f"as_of={D1}" / "_manifest.json").read_text())
    assert kept == sorted([f["key"].rsplit("/", 1)[1] for f in manifest["files"]]
                          + [manifest["contract"]["key"].rsplit("/", 1)[1], "_manifest.json"])
    assert len(kept) == 3


def test_a_tampered_or_incomplete_delivery_is_refused_and_nothing_of_it_kept(delivered, store, bank_key, tmp_path,
                                                                            capsys):
    pipeline = store.client("pipeline")  # the sender's side changes the bucket under the consumer
    part = _manifest(pipeline, "coop_credit_profile", D2)["files"][0]["key"]
    original = pipeline.get_object(Bucket="bank", Key=part)["Body"].read()
    table = pq.read_table(io.BytesIO(original))
    buf = io.BytesIO()
    pq.write_table(table.slice(0, 3), buf)  # a valid Parquet file, just not the one the manifest lists
    pipeline.put_object(Bucket="bank", Key=part, Body=buf.getvalue())
    pipeline.delete_object(Bucket="bank", Key=f"household_credit_profile/as_of={D2}/_manifest.json")
    try:
        assert _fetch("--date", D2.isoformat(), "--out", str(tmp_path)) == 1
        err = capsys.readouterr().err
        assert f"s3://bank/{part} has" in err and "tampered with or replaced; refusing the delivery" in err
        assert f"s3://bank/household_credit_profile/as_of={D2}/ has no _manifest.json" in err
        assert list(tmp_path.rglob("*.parquet")) == [] and list(tmp_path.glob(".*")) == []
        assert _fetch("--list") == 0
        listed = _listed(capsys.readouterr().out)
        assert D1 in listed["household_credit_profile"] and D2 not in listed["household_credit_profile"]
    finally:  # the sender re-exports: the delivery is whole again
        export.export_platform(delivered, "bank", D2, target=store.target())
    assert _fetch("--date", D2.isoformat(), "--out", str(tmp_path)) == 0


def _datacontract(contract: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`datacontract test` as the bank runs it: its own venv, its own key, nothing of agrilake's environment."""
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(contract.parent)), **env}
    # DuckDB's httpfs/aws from their wheels (infra/install_duckdb_extensions.py: no download at test time)
    installed = subprocess.run([str(DATACONTRACT.parent / "python"), str(ROOT / "infra" / "install_duckdb_extensions.py")],
                               env=clean, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return subprocess.run([str(DATACONTRACT), "test", "--server", "bank", str(contract)], cwd=contract.parent,
                          env=clean, capture_output=True, text=True, timeout=300)


def test_datacontract_cli_passes_a_delivery_and_fails_one_that_breaks_its_contract(delivered, store, bank_key, tmp_path,
                                                                                    capsys):
    if not DATACONTRACT.exists():
        pytest.skip(f"datacontract-cli is not installed at {DATACONTRACT}: `make consumer` (part of `make test`)")
    assert _fetch("--date", D1.isoformat(), "--dataset", "coop_credit_profile", "--out", str(tmp_path)) == 0
    contract = next((tmp_path / "coop_credit_profile" / f"as_of={D1}").glob("_contract-*.yaml"))
    good = _datacontract(contract, bank_key)
    assert good.returncode == 0, good.stdout[-4000:] + good.stderr[-2000:]
    assert "failed" not in good.stdout.split("Result")[-1].lower() and "passed" in good.stdout

    # The sender's side breaks the contract in place: a tier that does not exist, a duplicate key.
    pipeline = store.client("pipeline")
    part = _manifest(pipeline, "coop_credit_profile", D1)["files"][0]["key"]
    table = pq.read_table(io.BytesIO(pipeline.get_object(Bucket="bank", Key=part)["Body"].read()))
    tiers = table.column("credit_tier").to_pylist()
    table = table.set_column(table.column_names.index("credit_tier"), "credit_tier", pa.array(["Z", *tiers[1:]]))
    buf = io.BytesIO()
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), buf)
    pipeline.put_object(Bucket="bank", Key=part, Body=buf.getvalue())
    try:
        bad = _datacontract(contract, bank_key)
        assert bad.returncode == 1, bad.stdout[-4000:]
        assert "credit_tier has invalid_count = 0" in " ".join(bad.stdout.split())
        assert "duplicate" in bad.stdout.lower()
    finally:
        export.export_platform(delivered, "bank", D1, target=store.target())
