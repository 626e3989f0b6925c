"""The export's privacy guard, small-cell suppression and credential resolution: fast, no Spark, no server."""

from __future__ import annotations

import random
import re
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
from stdnum.cn import ric, uscc

from agrilake.core.credentials import CredentialsMissing, s3_target
from agrilake.core.settings import Settings
from agrilake.delivery import ExportError, policy, protocol
from agrilake.delivery.policy import PrivacyViolation, find_violations, guard

D = date(2024, 6, 30)
COOP_SCHEMA = pa.schema([("as_of_date", pa.date32()), ("coop_id", pa.string()), ("uscc", pa.string()),
                         ("coop_name", pa.string()), ("county_name", pa.string()), ("status", pa.string()),
                         ("score", pa.int32()), ("reason_codes", pa.list_(pa.string()))])


def make_ric(seed: int, *, valid: bool = True) -> str:
    """A RIC stdnum accepts: an old Beijing county code, a birth date in the 1960s, a valid check digit."""
    rnd = random.Random(seed)
    body = f"110102{1960 + rnd.randrange(10)}{rnd.randrange(1, 13):02d}{rnd.randrange(1, 29):02d}{rnd.randrange(1000):03d}"
    check = ric.calc_check_digit(body + "?")  # stdnum expects a placeholder check character
    if not valid:
        return body + ("0" if check != "0" else "1")
    return body + check


def make_uscc(seed: int, *, digits_only: bool = False) -> str:
    rnd = random.Random(seed)
    alphabet = "0123456789" if digits_only else "0123456789ABCDEFGHJKLMNPQRTUWXY"
    body = "93" + "130123" + "".join(rnd.choice(alphabet) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def coop_row(**overrides) -> dict:
    row = {"as_of_date": D, "coop_id": "C0001", "uscc": make_uscc(1), "coop_name": "平山县绿源果蔬专业合作社",
           "county_name": "平山县", "status": "active", "score": 700, "reason_codes": ["SALES_NONE"]}
    return {**row, **overrides}


def coop_table(*rows: dict, schema: pa.Schema = COOP_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(list(rows) or [coop_row()], schema=schema)


def coop_problems(**overrides) -> list[str]:
    return find_violations(coop_table(coop_row(**overrides)), platform="bank", dataset="coop_credit_profile")


def test_generated_rics_are_valid_for_stdnum():
    assert all(ric.is_valid(make_ric(i)) for i in range(50))
    assert not any(ric.is_valid(make_ric(i, valid=False)) for i in range(50))


def test_clean_bank_dataset_passes():
    guard(coop_table(coop_row(), coop_row(coop_id="C0002", coop_name="城关镇", county_name="井陉县", reason_codes=None)),
          platform="bank", dataset="coop_credit_profile")


def test_all_digit_usccs_never_read_as_rics_or_phones():
    rows = [coop_row(coop_id=f"C{i:04d}", uscc=make_uscc(i, digits_only=True)) for i in range(2000)]
    guard(coop_table(*rows), platform="bank", dataset="coop_credit_profile")


def test_rics_in_the_uscc_column_are_still_caught():
    # A RIC is a valid USCC one time in 31: a column of them is refused all the same.
    rows = [coop_row(uscc=make_ric(i)) for i in range(100)]
    problems = find_violations(coop_table(*rows), platform="bank", dataset="coop_credit_profile")
    assert len(problems) == 1 and problems[0].startswith("column 'uscc' has ")


def test_refuses_a_clear_ric_column_naming_it_but_not_the_values():
    secret_ric = make_ric(7)
    with pytest.raises(PrivacyViolation, match=r"column 'status' has 1 value\(s\) that look like a clear RIC") as err:
        guard(coop_table(coop_row(status=secret_ric)), platform="bank", dataset="coop_credit_profile")
    assert secret_ric not in str(err.value)


def test_every_valid_ric_is_caught_and_no_invalid_one():
    rows = [coop_row(status=make_ric(i)) for i in range(100)]
    problems = find_violations(coop_table(*rows), platform="bank", dataset="coop_credit_profile")
    assert problems == ["column 'status' has 100 value(s) that look like a clear RIC (resident identity card number)"]
    rows = [coop_row(status=make_ric(i, valid=False)) for i in range(100)]
    assert find_violations(coop_table(*rows), platform="bank", dataset="coop_credit_profile") == []


def test_refuses_a_ric_inside_text_and_in_arrays():
    problems = coop_problems(status=f"持证人{make_ric(3).lower()}已核验", reason_codes=["OK", make_ric(4)])
    assert any("'status'" in p and "RIC" in p for p in problems)
    assert any("'reason_codes'" in p and "RIC" in p for p in problems)


@pytest.mark.parametrize("phone", ["13812345678", "+8613912345678", "86 15012345678", "call 18612345678 now",
                                   "电话:13812345678", "联系人电话13912345678"])
def test_refuses_mainland_phone_numbers(phone):
    with pytest.raises(PrivacyViolation, match=r"column 'status' .* mainland mobile phone number"):
        guard(coop_table(coop_row(status=phone)), platform="bank", dataset="coop_credit_profile")


def test_refuses_a_phone_number_stored_as_an_integer():
    schema = COOP_SCHEMA.set(COOP_SCHEMA.get_field_index("score"), pa.field("score", pa.int64()))
    with pytest.raises(PrivacyViolation, match="column 'score'"):
        guard(coop_table(coop_row(score=13812345678), schema=schema), platform="bank", dataset="coop_credit_profile")


@pytest.mark.parametrize("value", ["130123100001", "1381234567", "SF13812345678", "2024-06-30"])
def test_other_digit_runs_are_not_phones(value):
    assert coop_problems(status=value) == []


def test_hex_digests_are_not_phones_or_rics():
    import hashlib

    keys = [hashlib.sha256(f"p{i}".encode()).hexdigest() for i in range(20_000)]
    assert sum(bool(re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", k)) for k in keys) > 10  # the trap is real
    table = pa.table({"person_key": keys})
    assert find_violations(table, platform="bank", dataset="household_credit_profile") == []


def test_refuses_columns_the_contracts_flag_as_pii_whatever_their_values():
    table = pa.table({"person_key": ["p1"], "member_name": ["redacted"], "legal_rep_ric": ["x"]})
    problems = find_violations(table, platform="bank", dataset="household_credit_profile")
    assert "column 'member_name' is flagged pii in the contracts" in problems
    assert "column 'legal_rep_ric' is flagged pii in the contracts" in problems


def test_refuses_name_like_columns_unless_allow_listed_for_the_dataset():
    table = pa.table({"person_key": ["p1"], "contact_name": ["x"], "name": ["y"]})
    problems = " ".join(find_violations(table, platform="bank", dataset="household_credit_profile"))
    assert "'contact_name' has a personal-data name" in problems
    # `name` is allowed for division rows only: on a person-level dataset it is refused.
    assert "'name' has a personal-data name" in problems


@pytest.mark.parametrize("person", ["王秀英", "李娜", "欧阳建国", "阿依古丽·买买提"])
def test_refuses_person_names_in_columns_not_allow_listed(person):
    with pytest.raises(PrivacyViolation, match=r"column 'status' has 1 value\(s\) that look like a person's name"):
        guard(coop_table(coop_row(status=person)), platform="bank", dataset="coop_credit_profile")


def test_division_names_pass_in_the_logistics_dataset():
    table = pa.table({"as_of_date": [D], "division_code": ["130123100"], "level": ["township"], "name": ["城关镇"],
                      "parent_code": ["130123"]})
    guard(table, platform="gov", dataset="logistics_division_daily")


@pytest.mark.parametrize("column", ["person_key", "coop_id", "coop_ids", "uscc"])
def test_gov_never_gets_a_column_about_one_person_or_cooperative(column):
    table = pa.table({"as_of_date": [D], "county_code": ["130123"], column: ["x"]})
    with pytest.raises(PrivacyViolation, match=f"column '{column}' identifies one person or cooperative"):
        guard(table, platform="gov", dataset="credit_county_summary")


def test_each_platform_gets_only_its_own_datasets():
    with pytest.raises(PrivacyViolation, match="not one the gov platform gets"):
        guard(coop_table(), platform="gov", dataset="coop_credit_profile")
    with pytest.raises(PrivacyViolation, match="not one the bank platform gets"):
        guard(coop_table(), platform="bank", dataset="credit_county_summary")


def test_refuses_nested_columns_it_cannot_check():
    extra = pa.array([[("k", "v")]], type=pa.map_(pa.string(), pa.string()))
    table = pa.table({"person_key": ["p1"], "extra": extra})
    with pytest.raises(PrivacyViolation, match="column 'extra' has type map<string, string>"):
        guard(table, platform="bank", dataset="household_credit_profile")


# -- small cells (docs/metrics.md, Exports) ---------------------------------------------------
COUNTY_RULES = policy.small_cell_rules("gov", "credit_county_summary", 3)
WITH_LOANS, WITH_RATE = (p.column for p in policy.counted_in_gold(COUNTY_RULES))


def county_table(*rows: dict) -> pa.Table:
    """credit_county_summary rows, with the party counts the export takes from gold.coop_credit_profile."""
    money = pa.decimal128(18, 2)
    schema = pa.schema([("county_code", pa.string()), ("coops", pa.int64()), ("coops_tier_a", pa.int64()),
                        ("coops_tier_b", pa.int64()), ("coops_tier_c", pa.int64()), ("coops_tier_d", pa.int64()),
                        ("principal_active_cny", money), ("arrears_cny", money), ("mean_on_time_rate_12m", pa.float64()),
                        (WITH_LOANS, pa.int64()), (WITH_RATE, pa.int64())])
    return pa.Table.from_pylist(list(rows), schema=schema)


def county(code: str, coops: int, *, with_loans: int, with_rate: int, principal="0.00", arrears="0.00",
           rate=None) -> dict:
    return {"county_code": code, "coops": coops, "coops_tier_a": coops, "coops_tier_b": 0, "coops_tier_c": 0,
            "coops_tier_d": 0, "principal_active_cny": Decimal(principal), "arrears_cny": Decimal(arrears),
            "mean_on_time_rate_12m": rate, WITH_LOANS: with_loans, WITH_RATE: with_rate}


def test_a_county_of_three_cooperatives_and_one_borrower_keeps_that_borrowers_loans_back():
    """Issue 26: suppressing by cooperatives exported one borrower's principal and arrears; each figure is
    suppressed by the parties it describes."""
    table = county_table(
        county("130123", 3, with_loans=1, with_rate=3, principal="500000.00", arrears="1200.00", rate=0.9),
        county("130124", 12, with_loans=8, with_rate=2, principal="900000.00", rate=0.8),
        county("130125", 1, with_loans=0, with_rate=0),
    )
    out, info = policy.suppress_small_cells(table, COUNTY_RULES, min_cell=3)
    rows = {r["county_code"]: r for r in out.to_pylist()}
    # one borrower among three cooperatives: its loan figures go, the tier counts (of 3) stay
    assert rows["130123"]["principal_active_cny"] is None and rows["130123"]["arrears_cny"] is None
    assert rows["130123"]["coops_tier_a"] == 3 and rows["130123"]["mean_on_time_rate_12m"] == 0.9
    # a mean over two cooperatives' rates goes; loans of eight borrowers stay
    assert rows["130124"]["mean_on_time_rate_12m"] is None
    assert rows["130124"]["principal_active_cny"] == Decimal("900000.00")
    # one cooperative: its tier counts go; its loan figures describe nobody (none borrows) and stay 0
    assert [rows["130125"][f"coops_tier_{t}"] for t in "abcd"] == [None] * 4
    assert rows["130125"]["principal_active_cny"] == Decimal("0.00")
    assert out.column_names == table.column_names[:-2]  # the party counts are never exported
    assert out.schema == table.schema.remove(table.schema.get_field_index(WITH_RATE)).remove(
        table.schema.get_field_index(WITH_LOANS))
    assert info["cells_suppressed"] == {"coops_tier_a": 1, "coops_tier_b": 1, "coops_tier_c": 1, "coops_tier_d": 1,
                                        "principal_active_cny": 1, "arrears_cny": 1, "mean_on_time_rate_12m": 1}
    assert info["rows_suppressed"] == 3 and info["min_cell"] == 3
    assert [r["rows"] for r in info["rules"]] == [1, 1, 1]
    assert "principal_active_cny > 0 OR arrears_cny > 0" in info["rules"][1]["null_when"]


def test_no_rule_applies_to_the_bank_or_with_k_1_and_a_missing_count_is_refused():
    table = county_table(county("130123", 1, with_loans=1, with_rate=1, principal="5.00"))
    assert policy.small_cell_rules("bank", "credit_county_summary", 3) == ()
    assert policy.small_cell_rules("gov", "credit_county_summary", 1) == ()
    assert policy.small_cell_rules("gov", "logistics_division_daily", 3) == ()
    assert policy.suppress_small_cells(table, (), min_cell=3) == (table, None)
    with pytest.raises(ExportError, match=rf"need column\(s\) \['{WITH_LOANS}'\]"):
        policy.suppress_small_cells(table.drop_columns([WITH_LOANS]), COUNTY_RULES, min_cell=3)


def test_party_counts_join_the_rows_they_count_in_row_order():
    table = pa.table({"county_code": ["130125", "130123", "130124", None]})
    counts = pa.table({"county_code": ["130123", "130125"], WITH_LOANS: pa.array([2, 7], pa.int64())})
    party = policy.counted_in_gold(COUNTY_RULES)[0]
    out = policy.attach_counts(table, counts, party)
    assert out.column(WITH_LOANS).to_pylist() == [7, 2, 0, 0]  # none counted: 0, which suppresses nothing


def test_the_rules_are_described_for_the_contract_and_the_dictionary():
    text = policy.describe_small_cells("credit_county_summary", 3)
    assert "coops_tier_a, coops_tier_b, coops_tier_c, coops_tier_d when `coops` is 1..2" in text
    assert policy.describe_small_cells("logistics_division_daily", 3) is None


# -- credentials -----------------------------------------------------------------------------
@pytest.fixture
def no_s3_env(monkeypatch, tmp_path):
    for name in ("AGRILAKE_S3_ENDPOINT", "AGRILAKE_S3_ACCESS_KEY", "AGRILAKE_S3_SECRET_KEY", "AGRILAKE_S3_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGRILAKE_EXPORTS", str(tmp_path / "no-store"))


def test_credentials_from_the_environment_never_show_the_secret(no_s3_env, monkeypatch):
    monkeypatch.setenv("AGRILAKE_S3_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("AGRILAKE_S3_ACCESS_KEY", "AKIDEXAMPLE123456")
    monkeypatch.setenv("AGRILAKE_S3_SECRET_KEY", "s3cr3t-value-xyz")
    target = s3_target(Settings.from_env())
    assert (target.endpoint, target.access_key, target.source) == ("http://127.0.0.1:1", "AKIDEXAMPLE123456", "environment")
    for text in (repr(target), target.describe(), repr(Settings.from_env())):
        assert "s3cr3t-value-xyz" not in text
    assert "AKIDEXAMPLE123456" not in target.describe()


def test_half_configured_environment_credentials_are_an_error(no_s3_env, monkeypatch):
    monkeypatch.setenv("AGRILAKE_S3_ACCESS_KEY", "AKIDEXAMPLE123456")
    with pytest.raises(CredentialsMissing, match="AGRILAKE_S3_SECRET_KEY is not set"):
        s3_target(Settings.from_env())


def test_no_credentials_at_all_says_how_to_configure_them(no_s3_env):
    with pytest.raises(CredentialsMissing, match=r"AGRILAKE_S3_CONN_ID .*`agrilake objectstore start`"):
        s3_target(Settings.from_env())


def test_credentials_from_an_airflow_connection(no_s3_env, monkeypatch):
    monkeypatch.setenv("AGRILAKE_S3_CONN_ID", "agrilake_s3")
    monkeypatch.setenv("AIRFLOW_CONN_AGRILAKE_S3", '{"conn_type": "aws", "login": "AKIDCONN0001", '
                       '"password": "conn-secret", "extra": {"endpoint_url": "http://127.0.0.1:2", "region_name": "cn-north-1"}}')
    target = s3_target(Settings.from_env())
    assert (target.endpoint, target.access_key, target.secret_key, target.region) == (
        "http://127.0.0.1:2", "AKIDCONN0001", "conn-secret", "cn-north-1")
    assert target.source == "Airflow connection 'agrilake_s3'"


# -- one function against moto ---------------------------------------------------------------
def test_a_failed_multipart_upload_is_aborted(tmp_path):
    import boto3
    from moto import mock_aws

    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (11 * protocol.MIB))
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        client.create_bucket(Bucket="bank")
        calls = []

        def fail_second_part(params, **_):
            calls.append(params["PartNumber"])
            if len(calls) == 2:
                raise ConnectionError("injected: network gone after the first part")

        client.meta.events.register("before-parameter-build.s3.UploadPart", fail_second_part)
        with pytest.raises(ConnectionError):
            protocol.upload_file(client, "bank", "ds/as_of=2024-06-30/part-00000.parquet", path,
                               chunk_bytes=5 * protocol.MIB)
        assert calls == [1, 2]
        assert client.list_multipart_uploads(Bucket="bank").get("Uploads", []) == []
        assert client.list_objects_v2(Bucket="bank").get("KeyCount") == 0
