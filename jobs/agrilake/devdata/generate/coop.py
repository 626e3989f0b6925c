"""coop/cooperatives, coop/members, coop/sales: the cooperative platform's feeds.

Cooperatives sit in villages, were registered years ago (the 2007 cooperative law onwards), and
change status; members are residents of the county who join and leave; sales follow each product's
season, with a cooperative-specific share going through postal e-commerce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agrilake.devdata.generate import people as people_mod
from agrilake.devdata.generate.common import (
    CHANNELS,
    DAY,
    NULL_INT,
    PRICE,
    PRODUCTS,
    SEASON,
    FeedData,
    Params,
    business_seconds,
    delivery_of,
    hold_back,
    months_of,
    rng_for,
)
from agrilake.devdata.generate.defects import pre_mark_share
from agrilake.devdata.generate.divisions import Geography
from agrilake.devdata.generate.ids import make_usccs
from agrilake.devdata.generate.people import People

COOP_LAW_DAY = int(np.datetime64("2007-07-01", "D").astype(np.int64))
SALES_HISTORY_DAYS = 365
PRODUCT_WORDS = {"grain": "粮食种植", "vegetable": "蔬菜种植", "fruit": "果业", "tea": "茶叶", "livestock": "畜牧养殖",
                 "aquatic": "水产养殖", "dairy": "奶牛养殖", "mushroom": "食用菌", "herb": "中药材种植", "other": "农机服务"}
BRANDS = ("绿源", "金穗", "丰收", "富民", "兴农", "惠农", "山里红", "鑫达", "众诚", "green谷", "禾丰", "益民", "聚福", "康源")
PRODUCT_WEIGHTS = np.array([0.26, 0.2, 0.16, 0.05, 0.12, 0.06, 0.03, 0.05, 0.04, 0.03])
LAND_FACTOR = {"grain": 1.6, "vegetable": 0.8, "fruit": 1.0, "tea": 0.7, "livestock": 0.4, "aquatic": 0.5,
               "dairy": 0.5, "mushroom": 0.3, "herb": 0.9, "other": 1.0}


@dataclass
class CoopWorld:
    coops: pd.DataFrame  # one row per cooperative: static attributes and life events
    versions: pd.DataFrame  # coop_idx, ts, status, member_count_factor
    members: pd.DataFrame  # coop_idx, person_idx, joined, left, household_size, land
    member_versions: pd.DataFrame  # member_idx, ts, show_left, land_factor
    people: People


def _names(rng: np.random.Generator, county_names: np.ndarray, village_names: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Registered names, with the CSV hazards real registrations carry: ASCII quotes around a brand,
    ASCII commas, and a line break where a former name was typed into the same field."""
    n = len(products)
    county = np.array([c[:-1] if len(c) > 2 else c for c in county_names])
    village = np.array([v.removesuffix("村委会").removesuffix("社区居委会") for v in village_names])
    brand = np.array(BRANDS)[rng.integers(0, len(BRANDS), n)]
    word = np.array([PRODUCT_WORDS[p] for p in products])
    style = rng.random(n)
    out = []
    for i in range(n):
        if style[i] < 0.05:
            out.append(f'{county[i]}"{brand[i]}"{word[i]}专业合作社')
        elif style[i] < 0.08:
            out.append(f"{village[i]}村{word[i]},{brand[i]}专业合作社")
        elif style[i] < 0.095:
            out.append(f"{county[i]}{brand[i]}{word[i]}专业合作社\n（原{village[i]}{word[i]}合作社）")
        elif style[i] < 0.10:
            out.append(f'{county[i]}"{brand[i]}",{village[i]}{word[i]}专业合作社联合社')
        elif style[i] < 0.55:
            out.append(f"{county[i]}{village[i]}{brand[i]}{word[i]}专业合作社")
        else:
            out.append(f"{county[i]}{brand[i]}{word[i]}农民专业合作社")
    return np.array(out, dtype=object)


def build(params: Params, geo: Geography) -> CoopWorld:
    rng = rng_for(params, "coop")
    s, e = params.start_day, params.end_day
    v = geo.villages
    alive = ((v["valid_to"] < 0) & (v["valid_from"] <= s)).to_numpy()
    urban = (v["urban_rural"] == "121").to_numpy()
    lam = 0.95 * np.sqrt(v["households"].to_numpy() / 450.0) * np.where(urban, 0.3, 1.0) * alive
    per_village = rng.poisson(lam)
    village_idx = np.repeat(np.arange(len(v)), per_village)

    # New registrations during the run: a trickle, in the same kind of villages.
    new_days = []
    for d in range(s + 1, e + 1):
        k = rng.poisson(max(0.05, len(village_idx) * 0.0006))
        new_days += [d] * int(k)
    new_n = len(new_days)
    weights = lam / lam.sum()
    village_idx = np.concatenate([village_idx, rng.choice(len(v), new_n, p=weights)]).astype(np.int64)
    n = len(village_idx)
    county_idx = v["county_idx"].to_numpy()[village_idx]

    years_ago = 0.3 + 16.0 * rng.beta(2.0, 2.2, n)
    established = np.maximum(s - (years_ago * 365.25).astype(np.int64), COOP_LAW_DAY)
    established[n - new_n:] = np.array(new_days, dtype=np.int64)
    is_new = np.zeros(n, dtype=bool)
    is_new[n - new_n:] = True

    # Each county has its specialities; most cooperatives grow one of them.
    specialities = [rng.choice(len(PRODUCTS), 3, replace=False, p=PRODUCT_WEIGHTS) for _ in range(len(geo.counties))]
    spec = np.array(specialities)[county_idx, rng.integers(0, 3, n)]
    main = np.where(rng.random(n) < 0.65, spec, rng.choice(len(PRODUCTS), n, p=PRODUCT_WEIGHTS))
    extra1 = rng.choice(len(PRODUCTS), n, p=PRODUCT_WEIGHTS)
    extra2 = rng.choice(len(PRODUCTS), n, p=PRODUCT_WEIGHTS)
    k_products = rng.choice([1, 2, 3], n, p=[0.5, 0.35, 0.15])
    main_products = []
    for i in range(n):
        codes = [int(main[i])]
        for x in (extra1[i], extra2[i])[: k_products[i] - 1]:
            if int(x) not in codes:
                codes.append(int(x))
        main_products.append("|".join(PRODUCTS[c] for c in codes))
    second = np.array([int(PRODUCTS.index(m.split("|")[-1])) for m in main_products])

    shell = rng.random(n) < 0.15  # registered, but trading little or nothing (空壳社)
    age_years = (s - established) / 365.25
    activity = np.exp(rng.normal(np.log(0.3), 0.9, n)) * (0.6 + np.minimum(age_years, 10) / 12)
    activity = np.where(shell, 0.0, activity)
    activity[is_new] *= 0.3
    # Share of sales (by count) through postal e-commerce: most cooperatives sell little online,
    # a fifth are e-commerce cooperatives (电商合作社) selling mostly that way.
    online = rng.random(n) < 0.2
    postal_share = np.where(online, rng.beta(6.0, 2.0, n), rng.beta(1.2, 6.0, n))

    # Status history before the run, then day by day through it.
    dissolved = np.full(n, NULL_INT, dtype=np.int64)
    versions = [pd.DataFrame({"coop_idx": np.arange(n), "day": established, "status": "active"})]
    old = (s - established > 400) & ~is_new
    u = rng.random(n)
    p_bad = np.where(shell, 0.25, 0.04)
    past_dissolved = old & (u < p_bad)
    past_suspended = old & (u >= p_bad) & (u < 2 * p_bad)
    change_day = established + 365 + ((s - 1 - (established + 365)) * rng.random(n)).astype(np.int64)
    dissolved[past_dissolved] = change_day[past_dissolved]
    versions.append(pd.DataFrame({"coop_idx": np.flatnonzero(past_dissolved), "day": change_day[past_dissolved],
                                  "status": "dissolved"}))
    versions.append(pd.DataFrame({"coop_idx": np.flatnonzero(past_suspended), "day": change_day[past_suspended],
                                  "status": "suspended"}))
    # Annual reports re-declare member counts and land: an older version for part of the cooperatives.
    report = old & ~past_dissolved & (rng.random(n) < 0.35)
    report_day = s - rng.integers(20, 360, n)
    report_day = np.maximum(report_day, established + 1)
    versions.append(pd.DataFrame({"coop_idx": np.flatnonzero(report), "day": report_day[report],
                                  "status": np.where(past_suspended[report] & (report_day[report] > change_day[report]),
                                                     "suspended", "active")}))
    status = np.where(past_dissolved, "dissolved", np.where(past_suspended, "suspended", "active")).astype(object)
    for d in range(s, e + 1):
        exists = established < d
        r = rng.random(n)
        to_susp = exists & (status == "active") & (r < 0.0006)
        to_diss = exists & (((status == "active") & (r >= 0.0006) & (r < 0.0008)) | ((status == "suspended") & (r < 0.003)))
        to_act = exists & (status == "suspended") & (r >= 0.003) & (r < 0.013)
        update = exists & (status == "active") & ~to_susp & ~to_diss & (r > 0.997)
        for mask, st in ((to_susp, "suspended"), (to_diss, "dissolved"), (to_act, "active"), (update, "active")):
            if mask.any():
                versions.append(pd.DataFrame({"coop_idx": np.flatnonzero(mask), "day": d, "status": st}))
        status[to_susp], status[to_diss], status[to_act] = "suspended", "dissolved", "active"
        dissolved[to_diss] = d
    vers = pd.concat(versions, ignore_index=True)
    vers["ts"] = vers["day"] * DAY + business_seconds(rng, len(vers))
    vers = vers.sort_values(["coop_idx", "ts"], kind="stable").reset_index(drop=True)
    vers["member_count_factor"] = rng.uniform(0.85, 1.2, len(vers))

    # Members: sized per cooperative, drawn from the county's residents (a person can join several).
    size = 5 + np.minimum(np.exp(rng.normal(np.log(16), 0.85, n)), 400).astype(np.int64)
    size[is_new] = rng.integers(5, 11, new_n)
    per_county = np.bincount(county_idx, weights=size, minlength=len(geo.counties))
    pool_size = np.ceil(per_county * 0.9 + 200).astype(np.int64)
    people = people_mod.build(params, geo, pool_size)
    pf = people.frame
    by_village: dict[int, np.ndarray] = {k: g.to_numpy() for k, g in pf.groupby("village_idx").groups.items()}
    offsets = np.concatenate([[0], np.cumsum(pool_size)])
    coop_of, person_of = [], []
    for i in range(n):
        ci = int(county_idx[i])
        local = by_village.get(int(village_idx[i]), np.array([], dtype=np.int64))
        local = rng.permutation(local)[: int(size[i] * 0.6)]
        wider = offsets[ci] + rng.integers(0, int(pool_size[ci]), int(size[i]) * 2)  # repeats drop out below
        cand = np.concatenate([local, wider])
        _, first = np.unique(cand, return_index=True)
        chosen = cand[np.sort(first)][: int(size[i])]
        coop_of.append(np.full(len(chosen), i))
        person_of.append(chosen)
    size = np.array([len(x) for x in person_of], dtype=np.int64)  # a small county pool can run short
    m_coop = np.concatenate(coop_of)
    m_person = np.concatenate(person_of).astype(np.int64)
    m = len(m_coop)
    adult = pf["adult_day"].to_numpy()[m_person]
    est = established[m_coop]
    # Members join up to the run start (or the dissolution), the first five found the cooperative.
    end = np.where(dissolved[m_coop] != NULL_INT, np.minimum(dissolved[m_coop], s), s)
    founder = np.concatenate([np.arange(k) < 5 for k in size])
    joined = est + ((end - est) * rng.beta(1.2, 2.5, m)).astype(np.int64)
    joined = np.where(founder, est, joined)
    joined = np.maximum(joined, adult)
    joined = np.where(is_new[m_coop], est, np.minimum(joined, np.maximum(end - 1, est)))
    left = np.full(m, NULL_INT, dtype=np.int64)
    quits = ~founder & ~is_new[m_coop] & (rng.random(m) < 0.09) & (joined < s - 2)
    left[quits] = joined[quits] + ((s - 1 - joined[quits]) * rng.uniform(0.2, 1.0, quits.sum())).astype(np.int64) + 1
    was_dissolved = dissolved[m_coop] != NULL_INT
    left = np.where(was_dissolved & (left != NULL_INT), np.minimum(left, dissolved[m_coop]), left)
    gone_with_coop = was_dissolved & (left == NULL_INT) & (joined < dissolved[m_coop])
    left[gone_with_coop] = dissolved[m_coop][gone_with_coop]
    # Legal representative: the oldest founder.
    birth = pf["birth_day"].to_numpy()[m_person]
    rep = np.empty(n, dtype=np.int64)
    start_of = np.concatenate([[0], np.cumsum(size)])
    for i in range(n):
        block = slice(start_of[i], start_of[i] + min(5, size[i]))
        rep[i] = m_person[block][int(np.argmin(birth[block]))]

    # Run-time joins and leaves.
    extra_coop, extra_person, extra_join = [], [], []
    stride = len(pf) + 1
    member_set = set((m_coop.astype(np.int64) * stride + m_person).tolist())
    adult_all = pf["adult_day"].to_numpy()
    for d in range(s, e + 1):
        live = (established < d) & ((dissolved == NULL_INT) | (dissolved > d))
        joiners = np.flatnonzero(live & (rng.random(n) < 0.004))
        for i in joiners:
            ci = int(county_idx[i])
            for p in offsets[ci] + rng.integers(0, int(pool_size[ci]), int(rng.integers(1, 4))):
                if int(i) * stride + int(p) not in member_set and adult_all[p] < d:
                    member_set.add(int(i) * stride + int(p))
                    extra_coop.append(int(i))
                    extra_person.append(int(p))
                    extra_join.append(d)
    if extra_coop:
        m_coop = np.concatenate([m_coop, extra_coop])
        m_person = np.concatenate([m_person, extra_person])
        joined = np.concatenate([joined, extra_join])
        left = np.concatenate([left, np.full(len(extra_coop), NULL_INT)])
    m = len(m_coop)
    for d in range(s, e + 1):
        active_member = (joined < d) & (left == NULL_INT)
        quit_now = active_member & (rng.random(m) < 0.00025)
        quit_now |= active_member & (dissolved[m_coop] == d)
        left[quit_now] = d

    prod_of = main[m_coop]
    land_factor = np.array([LAND_FACTOR[p] for p in PRODUCTS])[prod_of]
    members = pd.DataFrame({
        "coop_idx": m_coop, "person_idx": m_person, "joined": joined, "left": left,
        "household_size": np.minimum(1 + rng.poisson(2.3, m), 12),
        "land": np.round(np.exp(rng.normal(np.log(6.0), 0.8, m)) * land_factor, 2),
    })
    # Versions: the joining row, a re-measured land row for a few, the leaving row.
    mv = [pd.DataFrame({"member_idx": np.arange(m), "day": joined, "show_left": False, "land_factor": 1.0})]
    remeasure = (rng.random(m) < 0.05) & (joined < s - 30)
    rday = joined + ((s - 1 - joined) * rng.random(m)).astype(np.int64)
    rday = np.where(left != NULL_INT, np.minimum(rday, left - 1), rday)
    remeasure &= rday > joined
    mv.append(pd.DataFrame({"member_idx": np.flatnonzero(remeasure), "day": rday[remeasure], "show_left": False,
                            "land_factor": rng.uniform(0.8, 1.25, remeasure.sum())}))
    has_left = left != NULL_INT
    mv.append(pd.DataFrame({"member_idx": np.flatnonzero(has_left), "day": left[has_left], "show_left": True,
                            "land_factor": 1.0}))
    member_versions = pd.concat(mv, ignore_index=True)
    member_versions["ts"] = member_versions["day"] * DAY + business_seconds(rng, len(member_versions))

    coops = pd.DataFrame({
        "village_idx": village_idx, "county_idx": county_idx, "established": established, "main": main,
        "second": second, "main_products": main_products, "activity": activity, "postal_share": postal_share,
        "dissolved": dissolved, "is_new": is_new, "rep_person": rep,
    })
    seq = (coops.groupby("county_idx").cumcount() + 1).to_numpy()
    code6 = geo.counties["code6"].to_numpy()[county_idx]
    coops.insert(0, "coop_id", [f"C{c}{q:05d}" for c, q in zip(code6, seq, strict=True)])
    vnames = v["name"].to_numpy()[village_idx]
    cnames = geo.counties["name"].to_numpy()[county_idx]
    coops["name"] = _names(rng, cnames, vnames, np.array(PRODUCTS)[main])
    coops["uscc"] = make_usccs(rng, code6)
    counts = np.bincount(m_coop, minlength=n)
    coops["true_members"] = counts
    coops["member_land"] = np.bincount(m_coop, weights=members["land"].to_numpy(), minlength=n)
    coops["land_factor"] = rng.uniform(1.0, 2.5, n)
    return CoopWorld(coops, vers, members, member_versions, people)


def cooperatives_feed(params: Params, geo: Geography, w: CoopWorld) -> FeedData:
    c, vv = w.coops, w.versions
    idx = vv["coop_idx"].to_numpy()
    pf = w.people.frame
    rep = c["rep_person"].to_numpy()[idx]
    member_count = np.round(c["true_members"].to_numpy()[idx] * vv["member_count_factor"].to_numpy()).astype(np.int64)
    land = np.round(c["member_land"].to_numpy()[idx] * c["land_factor"].to_numpy()[idx], 2)
    frame = pd.DataFrame({
        "coop_id": c["coop_id"].to_numpy()[idx],
        "uscc": c["uscc"].to_numpy()[idx],
        "name": c["name"].to_numpy()[idx],
        "village_code": geo.villages["code12"].to_numpy()[c["village_idx"].to_numpy()[idx]],
        "legal_rep_name": pf["name"].to_numpy()[rep],
        "legal_rep_ric": pf["ric"].to_numpy()[rep],
        "phone": pf["phone"].to_numpy()[rep],
        "established_date": c["established"].to_numpy()[idx],
        "member_count": member_count,
        "land_area_mu": land,
        "main_products": c["main_products"].to_numpy()[idx],
        "status": vv["status"].to_numpy(),
        "updated_at": vv["ts"].to_numpy(),
    })
    frame["_delivery"], frame["_full"] = delivery_of(frame["updated_at"].to_numpy(), params, seconds=True)
    frame = frame[frame["_delivery"] <= params.end_day].reset_index(drop=True)
    return FeedData("coop_cooperatives", frame)


def members_feed(params: Params, w: CoopWorld) -> FeedData:
    mv, mm, pf = w.member_versions, w.members, w.people.frame
    idx = mv["member_idx"].to_numpy()
    person = mm["person_idx"].to_numpy()[idx]
    frame = pd.DataFrame({
        "coop_id": pd.Categorical.from_codes(mm["coop_idx"].to_numpy()[idx], w.coops["coop_id"].to_numpy()),
        "member_ric": pf["ric"].to_numpy()[person],
        "member_name": pf["name"].to_numpy()[person],
        "household_size": mm["household_size"].to_numpy()[idx],
        "land_area_mu": np.round(mm["land"].to_numpy()[idx] * mv["land_factor"].to_numpy(), 2),
        "joined_date": mm["joined"].to_numpy()[idx],
        "left_date": np.where(mv["show_left"].to_numpy(), mm["left"].to_numpy()[idx], NULL_INT),
        "updated_at": mv["ts"].to_numpy(),
    })
    frame["_delivery"], frame["_full"] = delivery_of(frame["updated_at"].to_numpy(), params, seconds=True)
    frame = frame[frame["_delivery"] <= params.end_day].reset_index(drop=True)
    return FeedData("coop_members", frame)


def sales(params: Params, geo: Geography, w: CoopWorld) -> pd.DataFrame:
    """Every sale from a year before the run to its end: coop_idx, day, product, channel, kg, cny, buyer."""
    rng = rng_for(params, "sales")
    c = w.coops
    s, e = params.start_day, params.end_day
    days = np.arange(s - SALES_HISTORY_DAYS, e + 1)
    n = len(c)
    season = np.array([SEASON[p] for p in PRODUCTS])  # product x month
    month = months_of(days) - 1
    weekday = np.where(((days + 3) % 7) == 6, 0.7, 1.0)  # 1970-01-01 was a Thursday; Sunday is quieter
    lam = c["activity"].to_numpy()[:, None] * season[c["main"].to_numpy()][:, month] * weekday[None, :]
    selling = (days[None, :] > c["established"].to_numpy()[:, None])
    diss = c["dissolved"].to_numpy()
    selling &= (diss[:, None] == NULL_INT) | (days[None, :] < diss[:, None])
    # Suspended spells: no trading from the suspension to the reactivation.
    vv = w.versions.sort_values(["coop_idx", "ts"], kind="stable")
    susp_from = np.full(n, NULL_INT, dtype=np.int64)
    for ci, day, st in zip(vv["coop_idx"].to_numpy(), vv["day"].to_numpy(), vv["status"].to_numpy(), strict=True):
        if st == "suspended" and susp_from[ci] == NULL_INT:
            susp_from[ci] = day
        elif st == "active" and susp_from[ci] != NULL_INT:
            selling[ci] &= ~((days >= susp_from[ci]) & (days < day))
            susp_from[ci] = NULL_INT
    open_spell = susp_from != NULL_INT
    selling[open_spell] &= days[None, :] < susp_from[open_spell][:, None]
    counts = rng.poisson(lam * selling)
    coop_idx = np.repeat(np.repeat(np.arange(n), len(days)), counts.ravel())
    day = np.repeat(np.tile(days, n), counts.ravel())
    k = len(day)
    product = np.where(rng.random(k) < 0.75, c["main"].to_numpy()[coop_idx], c["second"].to_numpy()[coop_idx])
    postal = rng.random(k) < c["postal_share"].to_numpy()[coop_idx]
    other = rng.choice([1, 2, 3], k, p=[0.45, 0.3, 0.25])
    channel = np.where(postal, 0, other)
    median_kg = np.array([80.0, 600.0, 40.0, 1500.0])[channel]  # a postal sale is a day's batch of orders
    kind_factor = np.array([1.0, 1.0, 1.0, 0.04, 0.4, 0.6, 1.0, 0.5, 0.15, 0.5])[product]
    kg = np.round(np.exp(rng.normal(np.log(median_kg), 0.8)) * kind_factor + 0.5, 2)
    kg = np.minimum(kg, 2_000_000)
    price = np.array([PRICE[p] for p in PRODUCTS])[product] * np.array([1.35, 0.9, 1.25, 1.0])[channel]
    cny = np.round(kg * price * rng.uniform(0.85, 1.15, k), 2)
    cny = np.maximum(cny, 1.0)
    # Buyers as indexes into every county code: e-commerce buyers anywhere, others often local.
    home = np.searchsorted(geo.all_county_codes, geo.counties["code6"].to_numpy())[c["county_idx"].to_numpy()[coop_idx]]
    anywhere = rng.integers(0, len(geo.all_county_codes), k)
    buyer = np.where(channel == 0, anywhere, np.where(rng.random(k) < 0.5, home, anywhere))
    buyer[channel == 2] = -1  # market-stall buyers are unknown
    order = np.lexsort((rng.random(k), day))
    return pd.DataFrame({"coop_idx": coop_idx[order], "day": day[order], "product": product[order],
                         "channel": channel[order], "kg": kg[order], "cny": cny[order], "buyer": buyer[order]})


def sales_feed(params: Params, geo: Geography, w: CoopWorld, sales_rows: pd.DataFrame) -> FeedData:
    county_codes = geo.all_county_codes
    rng = rng_for(params, "sales.delivery")
    k = len(sales_rows)
    day = sales_rows["day"].to_numpy()
    frame = pd.DataFrame({
        "sale_id": np.arange(1_000_000_001, 1_000_000_001 + k, dtype=np.int64),
        "coop_id": pd.Categorical.from_codes(sales_rows["coop_idx"].to_numpy(), w.coops["coop_id"].to_numpy()),
        "product_code": pd.Categorical.from_codes(sales_rows["product"].to_numpy(), PRODUCTS),
        "channel": pd.Categorical.from_codes(sales_rows["channel"].to_numpy(), CHANNELS),
        "quantity_kg": sales_rows["kg"].to_numpy(),
        "amount_cny": sales_rows["cny"].to_numpy(),
        "sale_date": day,
        "buyer_county_code": pd.Categorical.from_codes(sales_rows["buyer"].to_numpy(), county_codes),
    })
    delivery, full = delivery_of(day, params, seconds=False)
    late = hold_back(rng, delivery, ~full, pre_mark_share(params.defect_rate, "coop_sales"), params.end_day)
    frame["_delivery"], frame["_full"] = late, full
    frame["_defect"] = np.where(late != delivery, "late_row", None)
    return FeedData("coop_sales", frame)
