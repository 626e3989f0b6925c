"""person_key in Spark SQL equals the Python HMAC-SHA256, and the key never shows in a plan."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from agrilake.core.pseudonymise import key_pads, person_key, person_key_column, with_key_pads

RICS = ["11010519491231002X", "11010519491231002x", " 110105194912310021 ", "110105194912310021\t",
        "４４", "", "ß", "中文", None]
KEYS = ["agrilake-demo-key-not-for-real-data", "k", "κλειδί-秘密", "x" * 64, "y" * 65, "z" * 200]


def test_key_pads_are_rfc_2104():
    for key in KEYS:
        ipad, opad = key_pads(key)
        inner = hashlib.sha256(ipad + b"message").digest()
        assert hashlib.sha256(opad + inner).hexdigest() == hmac.new(key.encode(), b"message", hashlib.sha256).hexdigest()


def test_sql_person_key_equals_python(spark):
    df = spark.createDataFrame([(r,) for r in RICS], "ric string")
    for key in KEYS:
        got = {r.ric: r.k for r in with_key_pads(df, key).select("ric", person_key_column(F.col("ric")).alias("k")).collect()}
        assert got == {r: person_key(r, key) for r in RICS}, key


def test_the_key_is_not_in_the_plan(spark):
    key = "s3cret-pseudonymisation-key-4242"
    ipad, opad = key_pads(key)
    df = with_key_pads(spark.createDataFrame([("110105194912310021",)], "ric string"), key)
    out = df.select(person_key_column(F.col("ric")).alias("k"))
    plans = out._jdf.queryExecution().toString() + out._jdf.queryExecution().executedPlan().toString()
    for secret in (key, ipad.hex(), opad.hex(), ipad.hex().upper(), opad.hex().upper()):
        assert secret not in plans
    assert out.first().k == person_key("110105194912310021", key)


def test_a_fingerprint_names_a_key_without_revealing_it():
    from agrilake.core.pseudonymise import fingerprint

    prints = {fingerprint(k) for k in KEYS}
    assert len(prints) == len(KEYS) and all(len(p) == 16 for p in prints)
    assert fingerprint("k") == fingerprint("k") and fingerprint("k") not in person_key("k", "k")


@pytest.mark.parametrize(("changes", "refused"), [
    ({"lakehouse": "s3a://lake/agrilake"}, "is not a local folder"),
    ({"s3_endpoint": "https://s3.example.com"}, "is not on this machine"),
    ({"s3_endpoint": "http://127.0.0.1:8333"}, None),
    ({}, None),
])
def test_the_demo_key_only_pseudonymises_the_local_demo(settings, changes, refused):
    from agrilake.core.pseudonymise import MissingSecret, resolve_key
    from agrilake.core.settings import DEMO_PSEUDO_KEY

    demo = settings.replace(demo_mode=True, pseudo_key=None, pseudo_key_conn_id=None, **changes)
    if refused is None:
        assert resolve_key(demo) == DEMO_PSEUDO_KEY
    else:
        with pytest.raises(MissingSecret, match=refused):
            resolve_key(demo)


def test_silver_refuses_person_keys_made_with_another_key(ctx):
    from agrilake.core import tables
    from agrilake.core.pseudonymise import FINGERPRINT_PROPERTY, KeyMismatch, fingerprint
    from agrilake.stages import silver

    ddl = ctx.contracts.silver_tables()["members"].ddl
    tables.create_if_missing(ctx, "silver", "members", ddl)  # a table from before fingerprints
    silver.same_key(ctx, "members", fingerprint("first"))  # the first run after the upgrade vouches
    assert tables.properties(ctx, "silver", "members")[FINGERPRINT_PROPERTY] == fingerprint("first")
    silver.same_key(ctx, "members", fingerprint("first"))
    with pytest.raises(KeyMismatch, match=f"fingerprint {fingerprint('first')}; this run's key has"):
        silver.same_key(ctx, "members", fingerprint("second"))
