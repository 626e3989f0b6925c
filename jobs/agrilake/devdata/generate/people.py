"""The rural residents behind members, legal representatives, household borrowers and subsidy
beneficiaries: one pool per county, so one person keeps one RIC, name and phone in every feed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agrilake.devdata.generate.common import Params, rng_for, years_of
from agrilake.devdata.generate.divisions import Geography
from agrilake.devdata.generate.ids import birth_years_range, make_names, make_phones, make_rics


@dataclass
class People:
    frame: pd.DataFrame  # ric, name, phone, male, birth_day, county_idx, village_idx, adult_day

    def __len__(self) -> int:
        return len(self.frame)


def build(params: Params, geo: Geography, per_county: np.ndarray) -> People:
    """`per_county[i]` people for county i, living in its (still existing) villages."""
    rng = rng_for(params, "people")
    lo, hi = birth_years_range(params.start_day)
    villages = geo.villages
    alive = (villages["valid_to"] < 0).to_numpy() & (villages["valid_from"] <= params.start_day).to_numpy()
    county_of_village = villages["county_idx"].to_numpy()
    parts = []
    for ci, n in enumerate(per_county):
        n = int(n)
        home = np.flatnonzero(alive & (county_of_village == ci))
        weights = villages["households"].to_numpy()[home].astype(float)
        village_idx = home[rng.choice(len(home), n, p=weights / weights.sum())]
        # Rural China is old: ages 20..75 skewed towards 50-65.
        age_days = ((20 + 55 * rng.beta(2.4, 1.7, n)) * 365.25).astype(np.int64)
        birth = params.start_day - age_days
        birth = np.clip(birth, _jan1(lo), _jan1(hi + 1) - 1)
        regions = geo.counties["ric_regions"].iat[ci][years_of(birth) - lo]
        parts.append(pd.DataFrame({"region": regions, "birth_day": birth, "county_idx": ci, "village_idx": village_idx}))
    frame = pd.concat(parts, ignore_index=True)
    n = len(frame)
    male = rng.random(n) < 0.52
    frame["male"] = male
    frame["ric"] = make_rics(rng, frame["region"].to_numpy(), frame["birth_day"].to_numpy(), male)
    frame["name"] = make_names(rng, male)
    frame["phone"] = make_phones(rng, n)
    frame["adult_day"] = frame["birth_day"] + int(18 * 365.25) + 1
    return People(frame.drop(columns=["region"]))


def _jan1(year: int) -> int:
    return int(np.datetime64(f"{year:04d}-01-01", "D").astype(np.int64))
