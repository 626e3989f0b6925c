"""The cooperative credit scorecard of docs/metrics.md, once, as Spark column expressions.

Everything is integer or exact decimal arithmetic: thresholds such as "share >= 0.3" or
"round_half_up(100 * rate)" are evaluated on the counts and amounts behind the rate, so a double
that lands one ulp below a boundary can never move a cooperative to another tier.
"""

from __future__ import annotations

from decimal import Decimal

from pyspark.sql import Column
from pyspark.sql import functions as F

BASE_SCORE = 600

YEARS_CAP = 10
POINTS_PER_YEAR = 5

MEMBERS_CAP = 200
MEMBERS_PER_POINT = 4

SALES_HIGH_CNY = Decimal("1000000")
SALES_HIGH_POINTS = 40
SALES_MID_CNY = Decimal("200000")
SALES_MID_POINTS = 25
SALES_SOME_POINTS = 10

# postal_sales_share_12m >= 3/10
POSTAL_SHARE_NUM, POSTAL_SHARE_DEN = 3, 10
POSTAL_SHARE_POINTS = 20

UPSTREAM_PARCELS_MIN = 100
UPSTREAM_POINTS = 15

ON_TIME_PIVOT = 80  # round_half_up(100 * on_time_rate) - 80

DPD_SEVERE_OVER = 90
DPD_SEVERE_POINTS = -150
DPD_SERIOUS_OVER = 30
DPD_SERIOUS_POINTS = -60
DPD_ANY_OVER = 0
DPD_ANY_POINTS = -20

# arrears > 1/10 of the active principal
ARREARS_SHARE_NUM, ARREARS_SHARE_DEN = 1, 10
ARREARS_POINTS = -100

INACTIVE_POINTS = -200
ACTIVE_STATUS = "active"

TIER_A_MIN = 700
TIER_B_MIN = 640
TIER_C_MIN = 580

SALES_NONE = "SALES_NONE"
NO_REPAYMENT_HISTORY = "NO_REPAYMENT_HISTORY"
DPD_90 = "DPD_90"
DPD_30 = "DPD_30"
DPD_1 = "DPD_1"
ARREARS_HIGH = "ARREARS_HIGH"
STATUS_INACTIVE = "STATUS_INACTIVE"
REASON_CODES = (SALES_NONE, NO_REPAYMENT_HISTORY, DPD_90, DPD_30, DPD_1, ARREARS_HIGH, STATUS_INACTIVE)


def _c(x: Column | str) -> Column:
    return F.col(x) if isinstance(x, str) else x


def round_half_up_percent(numerator: Column, denominator: Column) -> Column:
    """round_half_up(100 * n / d) for integers n >= 0, d > 0, exactly: floor((200n + d) / 2d)."""
    n, d = numerator.cast("bigint"), denominator.cast("bigint")
    return F.floor((n * 200 + d) / (d * 2)).cast("int")


def scorecard(
    *,
    years_established: Column | str,
    active_members: Column | str,
    sales_12m_cny: Column | str,
    postal_sales_12m_cny: Column | str,
    upstream_parcels_12m: Column | str,
    installments_due_12m: Column | str,
    installments_on_time_12m: Column | str,
    max_dpd_12m: Column | str,
    arrears_cny: Column | str,
    principal_active_cny: Column | str,
    status: Column | str,
) -> dict[str, Column]:
    """{"score", "credit_tier", "reason_codes"} from the profile's measures.

    The postal share and on-time rate come in as their exact parts (postal amount, installment
    counts); a null rate is a zero denominator.
    """
    years, members = _c(years_established), _c(active_members)
    sales, postal = _c(sales_12m_cny), _c(postal_sales_12m_cny)
    upstream = _c(upstream_parcels_12m)
    due, on_time = _c(installments_due_12m), _c(installments_on_time_12m)
    dpd, arrears, principal = _c(max_dpd_12m), _c(arrears_cny), _c(principal_active_cny)
    status = _c(status)

    no_sales = sales == 0
    no_history = due == 0
    dpd_90 = dpd > DPD_SEVERE_OVER
    dpd_30 = (dpd > DPD_SERIOUS_OVER) & ~dpd_90
    dpd_1 = (dpd > DPD_ANY_OVER) & (dpd <= DPD_SERIOUS_OVER)
    arrears_high = (arrears > 0) & (
        (principal == 0) | (arrears * ARREARS_SHARE_DEN > principal * ARREARS_SHARE_NUM)
    )
    # null status is not `active`: an unknown status must not earn an active cooperative's score
    inactive = F.coalesce(status != ACTIVE_STATUS, F.lit(True))

    points = [
        F.least(years, F.lit(YEARS_CAP)) * POINTS_PER_YEAR,
        F.floor(F.least(members, F.lit(MEMBERS_CAP)) / MEMBERS_PER_POINT),
        F.when(sales >= F.lit(SALES_HIGH_CNY), SALES_HIGH_POINTS)
        .when(sales >= F.lit(SALES_MID_CNY), SALES_MID_POINTS)
        .when(sales > 0, SALES_SOME_POINTS)
        .otherwise(0),
        # share >= 3/10 <=> postal * 10 >= sales * 3, and a zero total has a null share (no points)
        F.when(~no_sales & (postal * POSTAL_SHARE_DEN >= sales * POSTAL_SHARE_NUM), POSTAL_SHARE_POINTS)
        .otherwise(0),
        F.when(upstream >= UPSTREAM_PARCELS_MIN, UPSTREAM_POINTS).otherwise(0),
        F.when(no_history, 0).otherwise(round_half_up_percent(on_time, due) - ON_TIME_PIVOT),
        F.when(dpd_90, DPD_SEVERE_POINTS).when(dpd_30, DPD_SERIOUS_POINTS).when(dpd_1, DPD_ANY_POINTS)
        .otherwise(0),
        F.when(arrears_high, ARREARS_POINTS).otherwise(0),
        F.when(inactive, INACTIVE_POINTS).otherwise(0),
    ]
    score = F.lit(BASE_SCORE)
    for p in points:
        score = score + p
    score = score.cast("int")

    fired = [
        (no_sales, SALES_NONE),
        (no_history, NO_REPAYMENT_HISTORY),
        (dpd_90, DPD_90),
        (dpd_30, DPD_30),
        (dpd_1, DPD_1),
        (arrears_high, ARREARS_HIGH),
        (inactive, STATUS_INACTIVE),
    ]
    codes = F.array(*[F.when(cond, F.lit(code)) for cond, code in fired])
    reason_codes = F.array_sort(F.filter(codes, lambda x: x.isNotNull()))
    return {"score": score, "credit_tier": credit_tier(score), "reason_codes": reason_codes}


def credit_tier(score: Column | str) -> Column:
    s = _c(score)
    return (
        F.when(s >= TIER_A_MIN, "A")
        .when(s >= TIER_B_MIN, "B")
        .when(s >= TIER_C_MIN, "C")
        .when(s.isNotNull(), "D")
    )
