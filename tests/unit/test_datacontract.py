"""The ODCS contracts of the exports: valid by the standard's own schema and model, generated from the gold
contracts and suites, and versioned: a breaking change without a major bump fails here."""

from __future__ import annotations

import copy

import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from agrilake import cli
from agrilake.core.contracts import packaged
from agrilake.core.settings import get_settings
from agrilake.delivery import contract as datacontract
from agrilake.delivery.policy import PLATFORMS

CONTRACTS = packaged()
SUITES = get_settings().expectations_dir


def _generated(platform: str, dataset: str, **kw) -> dict:
    return datacontract.generate(CONTRACTS, SUITES, platform, dataset, **kw)


@pytest.mark.parametrize(("platform", "dataset"), [(p, d) for p, ds in PLATFORMS.items() for d in ds])
def test_every_export_has_a_valid_contract_of_its_gold_columns(platform, dataset):
    server = datacontract.server_for(platform, platform, f"{dataset}/as_of=2026-11-01/part-0123456789abcdef-*.parquet",
                                     "http://127.0.0.1:8333")
    doc = _generated(platform, dataset, server=server)
    datacontract.validate(doc)  # the standard's JSON schema
    OpenDataContractStandard.model_validate(doc)  # and its pydantic model, which datacontract-cli reads with
    gold = CONTRACTS.gold_table(dataset)
    props = doc["schema"][0]["properties"]
    assert [p["name"] for p in props] == [c.name for c in gold.columns]
    assert [p["description"] for p in props][:1] == [gold.columns[0].description]
    assert [p["name"] for p in props if p.get("primaryKey")] == list(gold.key)
    assert all(p.get("required") for p in props if p.get("primaryKey"))
    assert [p["name"] for p in props if p.get("partitioned")] == ["as_of_date"]
    assert doc["servers"] == [server] and doc["team"]["members"][0]["role"] == "owner"


def test_the_enforced_rules_become_rules_a_consumer_can_run():
    doc = _generated("bank", "coop_credit_profile")
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["score"]["required"] and props["credit_tier"]["required"]
    assert props["credit_tier"]["quality"] == [{"type": "library", "metric": "invalidValues", "mustBe": 0,
                                                "severity": "error", "arguments": {"validValues": ["A", "B", "C", "D"]}}]
    assert props["county_code"]["logicalTypeOptions"] == {"pattern": "^[0-9]{6}$"}
    assert props["on_time_rate_12m"]["logicalTypeOptions"] == {"minimum": 0, "maximum": 1}
    sql = {q["name"]: q["query"] for q in doc["schema"][0]["quality"] if q["type"] == "sql"}
    assert sql["score_range_when_credit_tier_a"] == (
        "SELECT COUNT(*) FROM {object} WHERE credit_tier = 'A' AND score IS NOT NULL AND NOT (score >= 700)")
    # a warning-level check stays a warning for the consumer too
    assert props["county_name"]["quality"] == [{"type": "library", "metric": "nullValues", "mustBe": 0,
                                                "severity": "warning"}]
    assert props["reason_codes"]["items"] == {"logicalType": "string", "physicalType": "varchar"}
    households = {p["name"]: p for p in _generated("bank", "household_credit_profile")["schema"][0]["properties"]}
    assert households["person_key"]["classification"] == "pseudonymous"


def test_the_released_contracts_are_what_the_code_generates_or_a_versioned_change(capsys):
    assert cli.main(["contract", "--check"]) == 0, capsys.readouterr().err
    for platform, datasets in PLATFORMS.items():
        for dataset in datasets:
            released = yaml.safe_load((CONTRACTS.dir / "contracts" / f"{dataset}.odcs.yaml").read_text(encoding="utf-8"))
            assert datacontract.changes(released, _generated(platform, dataset)) == ([], []), dataset


def test_a_breaking_change_needs_a_major_version_and_an_addition_a_minor_one():
    released = _generated("bank", "coop_credit_profile")

    def changed(version: str, edit) -> dict:
        doc = copy.deepcopy(released)
        doc["version"] = version
        edit(doc["schema"][0]["properties"])
        return doc

    def drop(props):
        del props[3]

    def retype(props):
        props[-2]["physicalType"] = "bigint"

    def add(props):
        props.append({"name": "new_metric", "logicalType": "number", "physicalType": "double"})

    assert "coop_name" in datacontract.release_problems(released, changed("1.1.0", drop))[0]
    assert "retyped" in datacontract.release_problems(released, changed("1.9.0", retype))[0]
    assert datacontract.release_problems(released, changed("2.0.0", drop)) == []
    assert "minor" in datacontract.release_problems(released, changed("1.0.1", add))[0]
    assert datacontract.release_problems(released, changed("1.1.0", add)) == []
    assert datacontract.release_problems(released, changed("1.0.0", lambda p: None)) == []


def test_a_gov_contract_says_which_figures_small_cells_null_and_by_whom():
    text = _generated("gov", "credit_county_summary", min_cell=5)["description"]["limitations"]
    assert "principal_active_cny, arrears_cny when the cooperatives with principal or arrears" in text
    assert "number 1..4" in text and "K = 5" in text
    assert "null" not in _generated("bank", "coop_credit_profile")["description"]["limitations"]
