"""The platforms' side for real, on the project's SeaweedFS: a bank takes its deliveries with only its own key.

`agrilake fetch` lists the complete deliveries, downloads one, verifies every file against the manifest
and loads it into pandas and DuckDB; it refuses a tampered part and a delivery without a manifest,
keeping nothing of either, and a bucket full of hostile listings and manifests, dataset by dataset,
keeping the earlier local copy and fetching the good datasets beside them. Then `datacontract test`, run from a venv of its own as a consumer would
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
        assert f"'coop_credit_profile' as_of={D2} refused [MISMATCH]: s3://bank/{part} has" in err
        assert "tampered with or replaced" in err
        assert f"[NO_MANIFEST]: s3://bank/household_credit_profile/as_of={D2}/ has no _manifest.json" in err
        assert list(tmp_path.rglob("*.parquet")) == [] and list(tmp_path.glob(".*")) == []
        assert _fetch("--list") == 0
        listed = _listed(capsys.readouterr().out)
        assert D1 in listed["household_credit_profile"] and D2 not in listed["household_credit_profile"]
    finally:  # the sender re-exports: the delivery is whole again
        export.export_platform(delivered, "bank", D2, target=store.target())
    assert _fetch("--date", D2.isoformat(), "--out", str(tmp_path)) == 0


MIB = 1 << 20
UP = ".." + "/"  # spelt apart: tests/unit/test_docs.py flags every path leaving the repository


def _hostile_manifest(dataset: str, day: date, *files: dict, **fields) -> bytes:
    """A manifest of the exporter's shape (version 1), as a hostile sender could write it."""
    prefix = f"{dataset}/as_of={day}/"
    files = files or ({"key": prefix + "part-00000.parquet", "size": 10, "sha256": "ab" * 32, "rows": 1},)
    body = {"manifest_version": 1, "dataset": dataset, "as_of": day.isoformat(), "row_count": 1,
            "files": list(files), **fields}
    return json.dumps(body).encode()


def _part(dataset: str, day: date, name: str, **fields) -> dict:
    """A manifest's line for a part; a field given as None is left out."""
    part = {"key": f"{dataset}/as_of={day}/{name}", "size": 10, "sha256": "ab" * 32, "rows": 1, **fields}
    return {k: v for k, v in part.items() if v is not None}


def test_a_hostile_bucket_is_refused_dataset_by_dataset_and_the_local_copy_kept(delivered, store, bank_key,
                                                                                 tmp_path, capsys):
    """Issue 26: an empty manifest replaced a good copy with nothing, `..` escaped --out, a malformed manifest
    crashed the command and skipped every dataset after it, and nothing capped sizes."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the consumer's own file")
    assert _fetch("--date", D1.isoformat(), "--out", str(out)) == 0
    capsys.readouterr()
    coop = out / "coop_credit_profile" / f"as_of={D1}"
    before = {p.name: p.read_bytes() for p in coop.iterdir()}

    pipeline = store.client("pipeline")  # the sender's side, turned hostile
    coop_manifest = f"coop_credit_profile/as_of={D1}/_manifest.json"
    original = pipeline.get_object(Bucket="bank", Key=coop_manifest)["Body"].read()
    D = D1
    planted: dict[str, tuple[bytes, str]] = {
        # what each dataset's manifest says, and the reason code fetch must refuse it with
        "coop_credit_profile": (_hostile_manifest("coop_credit_profile", D, row_count=0, files=[]), "EMPTY"),
        "Bad Name!": (_hostile_manifest("Bad Name!", D), "BAD_DATASET_NAME"),
        "hostile_escape": (_hostile_manifest("hostile_escape", D, _part("hostile_escape", D, UP * 4 + "outside/x.parquet")),
                           "UNSAFE_NAME"),
        "hostile_dot": (_hostile_manifest("hostile_dot", D, _part("hostile_dot", D, ".")), "UNSAFE_NAME"),
        "hostile_dotdot": (_hostile_manifest("hostile_dotdot", D, {"name": "..", "size": 1, "sha256": "ab" * 32}),
                           "UNSAFE_NAME"),
        "hostile_empty_name": (_hostile_manifest("hostile_empty_name", D, {"name": "", "size": 1, "sha256": "ab" * 32}),
                               "UNSAFE_NAME"),
        "hostile_absolute": (_hostile_manifest("hostile_absolute", D, {"name": str(outside / "x.parquet"), "size": 1,
                                                               "sha256": "ab" * 32}), "UNSAFE_NAME"),
        "hostile_backslash": (_hostile_manifest("hostile_backslash", D, _part("hostile_backslash", D, "..\\x.parquet")),
                              "UNSAFE_NAME"),
        "hostile_hidden_part": (_hostile_manifest("hostile_hidden_part", D, _part("hostile_hidden_part", D, "_x.parquet")),
                                "UNSAFE_NAME"),
        "hostile_list": (b"[1, 2, 3]", "BAD_MANIFEST"),
        "hostile_not_json": (b"\xff{not json", "BAD_MANIFEST"),
        "hostile_nan": (b'{"manifest_version": 1, "row_count": NaN}', "BAD_MANIFEST"),
        "hostile_no_size": (_hostile_manifest("hostile_no_size", D, _part("hostile_no_size", D, "p.parquet", size=None)),
                            "BAD_MANIFEST"),
        "hostile_version": (_hostile_manifest("hostile_version", D, manifest_version=99), "BAD_MANIFEST"),
        "hostile_rows_no_parts": (_hostile_manifest("hostile_rows_no_parts", D, row_count=25, files=[]), "NO_PARTS"),
        "hostile_huge_file": (_hostile_manifest("hostile_huge_file", D, _part("hostile_huge_file", D, "p.parquet",
                                                                       size=5 * MIB)), "TOO_LARGE"),
        "hostile_huge_total": (_hostile_manifest("hostile_huge_total", D, *[
            _part("hostile_huge_total", D, f"p{i}.parquet", size=900 * 1024) for i in range(3)], row_count=3),
            "TOO_LARGE"),
        "hostile_longer": (_hostile_manifest("hostile_longer", D, _part("hostile_longer", D, "p.parquet", size=100)),
                           "MISMATCH"),
    }
    # the one object behind a manifest: 3 MiB where the manifest says 100 bytes (never downloaded whole)
    pipeline.put_object(Bucket="bank", Key=f"hostile_longer/as_of={D}/p.parquet", Body=b"x" * (3 * MIB))
    for dataset, (body, _) in planted.items():
        pipeline.put_object(Bucket="bank", Key=f"{dataset}/as_of={D}/_manifest.json", Body=body)
    try:
        code = _fetch("--date", D.isoformat(), "--out", str(out), "--max-file-mb", "1", "--max-delivery-mb", "2")
        captured = capsys.readouterr()
    finally:
        pipeline.put_object(Bucket="bank", Key=coop_manifest, Body=original)
        for key in [f"{d}/as_of={D}/_manifest.json" for d in planted if d != "coop_credit_profile"] + [
                f"hostile_longer/as_of={D}/p.parquet"]:
            pipeline.delete_object(Bucket="bank", Key=key)
    assert code == 1
    warnings = {line.split("'")[1]: line for line in captured.err.splitlines() if " refused [" in line}
    for dataset, (_, reason) in planted.items():
        assert f"refused [{reason}]" in warnings.get(dataset, ""), (dataset, reason, captured.err)
        assert warnings[dataset].startswith("WARNING agrilake fetch: ")
    assert f"{len(planted)} of {len(planted) + 1} dataset(s) refused" in captured.err
    # the good dataset beside them was fetched in the same run, the earlier copy of the refused one is whole
    assert f"household_credit_profile as_of={D}: 40 rows" in captured.out
    assert {p.name: p.read_bytes() for p in coop.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "outside"]
    assert [p.name for p in outside.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["coop_credit_profile", "household_credit_profile"]
    assert sorted(p.name for p in coop.parent.iterdir()) == [f"as_of={D}"]


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
