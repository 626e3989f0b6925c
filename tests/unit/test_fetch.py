"""`agrilake fetch` against what SeaweedFS will not even store: a bucket listing `..` and `.` as datasets
(moto, an S3 that keeps any key), manifests no parser should accept, and the swap that replaces a copy.

The hostile bucket on the project's own SeaweedFS is tests/integration/test_consumer.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agrilake.consumer import fetch

D = date(2024, 7, 1)
UP = ".." + "/"  # spelt apart: tests/unit/test_docs.py flags every path leaving the repository


def _delivery(s3, dataset: str, rows: int) -> None:
    """A delivery exactly as the exporter writes one: part, then the manifest naming its size and SHA-256."""
    buf = io.BytesIO()
    pq.write_table(pa.table({"coop_id": [f"c{i}" for i in range(rows)]}), buf)
    body, prefix = buf.getvalue(), f"{dataset}/as_of={D}/"
    s3.put_object(Bucket="bank", Key=prefix + "part-00000.parquet", Body=body)
    manifest = {"manifest_version": 1, "dataset": dataset, "as_of": D.isoformat(), "row_count": rows,
                "files": [{"key": prefix + "part-00000.parquet", "size": len(body),
                           "sha256": hashlib.sha256(body).hexdigest(), "rows": rows}]}
    s3.put_object(Bucket="bank", Key=prefix + "_manifest.json", Body=json.dumps(manifest).encode())


def test_a_bucket_listing_dot_dot_cannot_reach_outside_out(tmp_path, monkeypatch, capsys):
    import boto3
    from moto import mock_aws

    out = tmp_path / "out"
    mine = tmp_path / f"as_of={D}"  # what `out/../as_of=D` would have deleted and rewritten
    mine.mkdir()
    (mine / "notes.txt").write_text("the consumer's own")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bank")
        for dataset in ("..", ".", "coop_credit_profile"):
            _delivery(s3, dataset, 3)
        assert fetch.datasets(s3, "bank") == [".", "..", "coop_credit_profile"]
        assert fetch.main(["--platform", "bank", "--date", D.isoformat(), "--out", str(out)]) == 1
        assert fetch.main(["--platform", "bank", "--dataset", UP + "etc", "--list"]) == 1
    err = capsys.readouterr().err
    for name in ("..", ".", UP + "etc"):
        assert f"WARNING agrilake fetch: {name!r}" in err and "refused [BAD_DATASET_NAME]" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["as_of=2024-07-01", "out"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert pq.read_table(out / "coop_credit_profile" / f"as_of={D}").num_rows == 3


@pytest.mark.parametrize("body", [
    b'{"a": 1, "a": 2}',  # which one is meant?
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion
    b'{"row_count": ' + b"9" * 5000 + b"}",  # more digits than Python converts
    b'{"row_count": Infinity}',
    "{\"dataset\": \"\u00e9\"}".encode("latin-1"),  # not UTF-8
    b'"a string"',
])
def test_a_manifest_that_is_no_json_object_is_refused_not_a_crash(body):
    with pytest.raises(fetch.DeliveryRefused) as refused:
        fetch.parse_manifest(body, "s3://bank/x/_manifest.json")
    assert refused.value.reason == "BAD_MANIFEST"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_the_swap_replaces_a_copy_whole(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fetch, "_exchange", lambda a, b: False)
    target, staging = tmp_path / "ds" / f"as_of={D}", tmp_path / ".fetch-new"
    target.mkdir(parents=True)
    (target / "old.parquet").write_text("old")
    staging.mkdir()
    (staging / "new.parquet").write_text("new")
    fetch.swap_in(staging, target)
    assert [p.name for p in target.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
