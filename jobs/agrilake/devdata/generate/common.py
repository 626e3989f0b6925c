"""What every generator module shares: the run parameters, seeded random streams, dates and the
in-memory shape of a feed before it is written.

Dates are kept as int64 days since 1970-01-01 and timestamps as int64 seconds since 1970-01-01 of
the UTC+08:00 wall clock: plain integers sort, subtract and vectorise, and the writer turns them
into `YYYY-MM-DD` / `...+08:00` text at the very end.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

DAY = 86_400
HOUR = 3_600
NULL_INT = np.iinfo(np.int64).min  # null marker of int64 date, timestamp and integer columns

PRODUCTS = ("grain", "vegetable", "fruit", "tea", "livestock", "aquatic", "dairy", "mushroom", "herb", "other")
CHANNELS = ("postal_ecommerce", "wholesale", "retail", "contract")

# Relative sales volume per calendar month (Jan..Dec): harvests, Spring Festival demand, tea picking.
SEASON = {
    "grain": (0.5, 0.4, 0.4, 0.5, 0.8, 1.8, 1.2, 0.8, 1.6, 2.0, 1.4, 0.8),
    "vegetable": (0.9, 0.8, 0.9, 1.0, 1.1, 1.2, 1.2, 1.1, 1.1, 1.0, 0.9, 0.9),
    "fruit": (0.6, 0.5, 0.4, 0.4, 0.6, 0.9, 1.4, 1.7, 1.8, 1.6, 1.2, 0.9),
    "tea": (0.3, 0.3, 1.8, 2.4, 1.6, 0.8, 0.6, 0.6, 0.7, 0.8, 0.6, 0.5),
    "livestock": (1.8, 1.5, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 1.0, 1.1, 1.6),
    "aquatic": (1.2, 1.0, 0.7, 0.7, 0.8, 0.9, 0.9, 1.0, 1.3, 1.4, 1.2, 1.1),
    "dairy": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "mushroom": (1.4, 1.3, 1.1, 0.8, 0.6, 0.5, 0.5, 0.6, 0.9, 1.3, 1.5, 1.5),
    "herb": (0.6, 0.6, 0.7, 0.8, 0.8, 0.9, 0.9, 1.0, 1.5, 1.7, 1.4, 0.9),
    "other": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
}
# Farm-gate price, CNY per kg.
PRICE = {"grain": 2.9, "vegetable": 4.2, "fruit": 8.5, "tea": 160.0, "livestock": 32.0, "aquatic": 26.0,
         "dairy": 4.6, "mushroom": 16.0, "herb": 45.0, "other": 12.0}
# Products that travel chilled or frozen, with the allowed band (min, max) in degrees C.
COLD_BANDS = {"fruit": (0.0, 8.0), "livestock": (0.0, 4.0), "aquatic": (-18.0, -12.0), "dairy": (2.0, 6.0),
              "mushroom": (1.0, 5.0)}


@dataclass(frozen=True)
class Params:
    start: date
    days: int
    scale: float
    seed: int
    defect_rate: float = 0.01

    @property
    def start_day(self) -> int:
        return day_number(self.start)

    @property
    def end_day(self) -> int:
        """The last delivery day (inclusive)."""
        return self.start_day + self.days - 1


def day_number(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def to_date(day: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int(day))


def rng_for(params: Params, name: str) -> np.random.Generator:
    """An independent stream per component, so adding draws in one module never shifts another's data."""
    return np.random.default_rng([params.seed, zlib.crc32(name.encode())])


def months_of(days: np.ndarray) -> np.ndarray:
    """Calendar month (1..12) of int day numbers."""
    return (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1


def years_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Same day-of-month `months` later, clipped to the month's last day (how loan schedules fall due)."""
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    target = m + months.astype("timedelta64[M]")
    last = ((target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    return (target.astype("datetime64[D]").astype(np.int64) + np.minimum(dom, last - 1)).astype(np.int64)


def business_seconds(rng: np.random.Generator, n: int, lo_h: float = 8.0, hi_h: float = 18.0) -> np.ndarray:
    """Seconds into the day, within office hours: when a clerk or a system records a change."""
    return (rng.uniform(lo_h, hi_h, n) * HOUR).astype(np.int64)


@dataclass
class FeedData:
    """Rows of one feed before writing: contract columns in typed form plus `_delivery` (day number).

    `_full` says which file of the delivery folder a row goes to: the first day's initial load with
    history, or the day's increment. `_defect` pre-marks rows whose defect is decided by the
    generator itself (late_row, out_of_order_event) because it moves rows between deliveries.
    """

    name: str
    frame: pd.DataFrame
    notes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "_full" not in self.frame:
            self.frame["_full"] = False
        # compact bookkeeping: at scale 10 the event feed alone has millions of rows
        self.frame["_delivery"] = self.frame["_delivery"].astype(np.int32)
        self.frame["_defect"] = pd.Categorical(self.frame["_defect"] if "_defect" in self.frame else
                                               np.full(len(self.frame), None, dtype=object))


def delivery_of(ts_or_day: np.ndarray, params: Params, *, seconds: bool) -> tuple[np.ndarray, np.ndarray]:
    """Delivery day, and whether the row is history for the first day's initial load."""
    day = ts_or_day // DAY if seconds else ts_or_day
    delivery = np.maximum(day, params.start_day)
    return delivery.astype(np.int64), day < params.start_day


def hold_back(rng: np.random.Generator, delivery: np.ndarray, eligible: np.ndarray, share: float, last_day: int,
              max_lag: int = 5) -> np.ndarray:
    """Rows to deliver 1..max_lag days late (their business date then lies before the delivery date).

    Returns the new delivery days; rows moved are those where it differs. With share > 0 at least
    one row moves whenever any can, so a short run still shows the case.
    """
    delivery = delivery.copy()
    if share <= 0:
        return delivery
    lag = rng.integers(1, max_lag + 1, len(delivery))
    can = eligible & (delivery + 1 <= last_day)
    lag = np.minimum(lag, last_day - delivery)
    pick = can & (rng.random(len(delivery)) < share)
    if not pick.any() and can.any():
        pick[np.flatnonzero(can)[int(rng.integers(can.sum()))]] = True
    delivery[pick] += lag[pick]
    return delivery
