"""The scorecard of METRICS.md on hand-computed cases: every reason code and every tier boundary."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agrilake.stages.gold import scorecard

# A neutral cooperative: 600 + 10 (some sales) + round(100 * 8/10) - 80 = 610, tier C, no reason.
BASE = dict(years=0, members=0, sales="100.00", postal="0.00", upstream=0, due=10, on_time=8, dpd=0,
            arrears="0.00", principal="0.00", status="active")

# (case, changes to BASE, score, tier, reason codes)
CASES = [
    ("base", {}, 610, "C", []),
    ("years 4", {"years": 4}, 630, "C", []),
    ("years capped at 10", {"years": 15}, 660, "B", []),
    ("years 10", {"years": 10}, 660, "B", []),
    ("members 3 -> floor(3/4) = 0", {"members": 3}, 610, "C", []),
    ("members 4", {"members": 4}, 611, "C", []),
    ("members 199", {"members": 199}, 659, "B", []),
    ("members capped at 200", {"members": 1000}, 660, "B", []),
    ("no sales", {"sales": "0.00"}, 600, "C", ["SALES_NONE"]),
    ("sales 0.01", {"sales": "0.01"}, 610, "C", []),
    ("sales just under 200k", {"sales": "199999.99"}, 610, "C", []),
    ("sales 200k", {"sales": "200000.00"}, 625, "C", []),
    ("sales just under 1M", {"sales": "999999.99"}, 625, "C", []),
    ("sales 1M", {"sales": "1000000.00"}, 640, "B", []),
    ("postal share just under 0.3", {"sales": "1000.00", "postal": "299.99"}, 610, "C", []),
    ("postal share exactly 0.3", {"sales": "1000.00", "postal": "300.00"}, 630, "C", []),
    ("postal share 3.30 / 11.00 = 0.3 exactly", {"sales": "11.00", "postal": "3.30"}, 630, "C", []),
    ("upstream 99", {"upstream": 99}, 610, "C", []),
    ("upstream 100", {"upstream": 100}, 625, "C", []),
    ("no repayment history", {"due": 0, "on_time": 0}, 610, "C", ["NO_REPAYMENT_HISTORY"]),
    ("on time 1/8 = 12.5 -> 13", {"due": 8, "on_time": 1}, 543, "D", []),
    ("on time 169/200 = 84.5 -> 85", {"due": 200, "on_time": 169}, 615, "C", []),
    ("on time 161/200 = 80.5 -> 81", {"due": 200, "on_time": 161}, 611, "C", []),
    ("on time 2/3 = 66.67 -> 67", {"due": 3, "on_time": 2}, 597, "C", []),
    ("on time 1/1", {"due": 1, "on_time": 1}, 630, "C", []),
    ("on time 0/1", {"due": 1, "on_time": 0}, 530, "D", []),
    ("dpd 1", {"dpd": 1}, 590, "C", ["DPD_1"]),
    ("dpd 30", {"dpd": 30}, 590, "C", ["DPD_1"]),
    ("dpd 31", {"dpd": 31}, 550, "D", ["DPD_30"]),
    ("dpd 90", {"dpd": 90}, 550, "D", ["DPD_30"]),
    ("dpd 91", {"dpd": 91}, 460, "D", ["DPD_90"]),
    ("arrears without active principal", {"arrears": "0.01"}, 510, "D", ["ARREARS_HIGH"]),
    ("arrears exactly 10% of principal", {"arrears": "100.00", "principal": "1000.00"}, 610, "C", []),
    ("arrears over 10% of principal", {"arrears": "100.01", "principal": "1000.00"}, 510, "D", ["ARREARS_HIGH"]),
    ("suspended", {"status": "suspended"}, 410, "D", ["STATUS_INACTIVE"]),
    ("dissolved", {"status": "dissolved"}, 410, "D", ["STATUS_INACTIVE"]),
    # tier boundaries
    ("579 is D", {"due": 100, "on_time": 49}, 579, "D", []),
    ("580 is C", {"due": 10, "on_time": 5}, 580, "C", []),
    ("639 is C", {"members": 116}, 639, "C", []),
    ("640 is B", {"members": 120}, 640, "B", []),
    ("699 is B", {"years": 10, "members": 156}, 699, "B", []),
    ("700 is A", {"years": 10, "members": 160}, 700, "A", []),
    ("every reason at once, sorted",
     {"sales": "0.00", "due": 0, "on_time": 0, "dpd": 120, "arrears": "1.00", "status": "dissolved"},
     150, "D", ["ARREARS_HIGH", "DPD_90", "NO_REPAYMENT_HISTORY", "SALES_NONE", "STATUS_INACTIVE"]),
]

DDL = ("case string, years int, members bigint, sales decimal(18,2), postal decimal(18,2), upstream bigint, "
       "due bigint, on_time bigint, dpd int, arrears decimal(18,2), principal decimal(18,2), status string")


@pytest.fixture(scope="module")
def scored(spark):
    rows = []
    for case, changes, *_ in CASES:
        v = {**BASE, **changes}
        rows.append((case, v["years"], v["members"], Decimal(v["sales"]), Decimal(v["postal"]), v["upstream"],
                     v["due"], v["on_time"], v["dpd"], Decimal(v["arrears"]), Decimal(v["principal"]), v["status"]))
    card = scorecard.scorecard(
        years_established="years", active_members="members", sales_12m_cny="sales", postal_sales_12m_cny="postal",
        upstream_parcels_12m="upstream", installments_due_12m="due", installments_on_time_12m="on_time",
        max_dpd_12m="dpd", arrears_cny="arrears", principal_active_cny="principal", status="status",
    )
    df = spark.createDataFrame(rows, DDL).withColumns(card)
    return {r["case"]: r for r in df.collect()}


@pytest.mark.parametrize(("case", "changes", "score", "tier", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_scorecard_case(scored, case, changes, score, tier, reasons):
    row = scored[case]
    assert (row["score"], row["credit_tier"], row["reason_codes"]) == (score, tier, reasons)


def test_every_reason_code_and_tier_is_exercised():
    fired = {code for *_, reasons in CASES for code in reasons}
    assert fired == set(scorecard.REASON_CODES)
    assert {tier for *_, tier, _ in CASES} == {"A", "B", "C", "D"}


def test_score_columns_are_integers(scored):
    assert all(isinstance(r["score"], int) for r in scored.values())
