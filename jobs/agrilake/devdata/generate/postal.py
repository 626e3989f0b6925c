"""postal/outlets, postal/shipment_events, postal/cold_chain_readings: the county-township-village
network and the parcels that move through it.

Upstream parcels (farm products to town) start at the village outlet (or the township's when the
village has no open parcel outlet) and end at the county outlet; downstream parcels go the other
way. Lead times grow with the rural level and the distance to the county seat; cold-chain parcels
carry a sensor that reports every hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agrilake.devdata.generate.common import (
    COLD_BANDS,
    DAY,
    HOUR,
    NULL_INT,
    PRODUCTS,
    FeedData,
    Params,
    business_seconds,
    delivery_of,
    hold_back,
    rng_for,
)
from agrilake.devdata.generate.coop import CoopWorld
from agrilake.devdata.generate.defects import pre_mark_share
from agrilake.devdata.generate.divisions import Geography

SERVICES = ("parcel", "cold_storage", "yinong_station", "ule_store", "convenience_center", "smart_letterbox",
            "finance_agent")
EVENT_TYPES = ("accepted", "dispatched", "arrived", "delivered", "returned")
READING_EVERY = HOUR


def _services(flags: np.ndarray) -> list[str]:
    return ["|".join(SERVICES[j] for j in np.flatnonzero(row)) for row in flags]


@dataclass
class PostalWorld:
    outlets: pd.DataFrame  # outlet_id, name, level, division_code, lat, lon, opened, closed, parcel, county_idx
    versions: pd.DataFrame  # outlet_idx, ts, services, show_closed
    village_outlets: np.ndarray  # village -> up to two outlet indexes (-1: none)
    township_outlet: np.ndarray  # township -> outlet index
    county_outlet: np.ndarray  # county -> outlet index


def build(params: Params, geo: Geography) -> PostalWorld:
    rng = rng_for(params, "outlets")
    s, e = params.start_day, params.end_day
    cty, tws, vil = geo.counties, geo.townships, geo.villages
    rows = []  # level, code, name, lat, lon, opened, county_idx, village_idx, services flags
    for ci, c in cty.iterrows():
        rows.append(("county", f"{c.code6}000000", f"{c['name']}邮政分公司营业部", c.lat, c.lon,
                     s - int(rng.integers(5000, 12000)), ci, -1, [1, 1, 0, 1, 0, 0, 1]))
    for t in tws.itertuples():
        flags = [1, rng.random() < 0.35, rng.random() < 0.3, rng.random() < 0.3, rng.random() < 0.2, 0,
                 rng.random() < 0.7]
        rows.append(("township", f"{t.code9}000", f"{t.name}邮政支局", t.lat, t.lon, s - int(rng.integers(1500, 8000)),
                     t.county_idx, -1, flags))
    alive = ((vil["valid_to"] < 0) & (vil["valid_from"] <= s)).to_numpy()
    for vi, vrow in enumerate(vil.itertuples()):
        covered = rng.random() < (0.95 if vrow.urban_rural == "121" else 0.78)
        if not alive[vi] or not covered:
            continue
        flags = [rng.random() < 0.9, 0, rng.random() < 0.4, rng.random() < 0.3, rng.random() < 0.35,
                 rng.random() < 0.1, rng.random() < 0.25]
        if not any(flags):
            flags[2] = 1
        rows.append(("village", vrow.code12, _village_outlet_name(rng, vrow.name), vrow.lat, vrow.lon,
                     max(s - int(rng.integers(60, 3000)), int(vrow.valid_from)), vrow.county_idx, vi, flags))
    # New outlets in uncovered villages during the run.
    has_outlet = np.zeros(len(vil), dtype=bool)
    for r in rows:
        if r[7] >= 0:
            has_outlet[r[7]] = True
    for d in range(s + 1, e + 1):
        for vi in np.flatnonzero(alive & ~has_outlet & (rng.random(len(vil)) < 0.0015)):
            vrow = vil.iloc[vi]
            has_outlet[vi] = True
            rows.append(("village", vrow.code12, _village_outlet_name(rng, vrow["name"]), vrow.lat, vrow.lon, d,
                         int(vrow.county_idx), int(vi), [1, 0, 1, 0, 0, 0, 0]))
    n = len(rows)
    outlets = pd.DataFrame({
        "level": [r[0] for r in rows], "division_code": [r[1] for r in rows], "name": [r[2] for r in rows],
        "lat": np.array([r[3] for r in rows]) + rng.normal(0, 0.002, n),
        "lon": np.array([r[4] for r in rows]) + rng.normal(0, 0.002, n),
        "opened": np.array([r[5] for r in rows], dtype=np.int64), "county_idx": [int(r[6]) for r in rows],
        "village_idx": [int(r[7]) for r in rows],
    })
    flags = np.array([r[8] for r in rows], dtype=bool)
    seq = outlets.groupby("county_idx").cumcount().to_numpy() + 1
    outlets.insert(0, "outlet_id", [f"PO{cty['code6'].iat[c]}{q:04d}" for c, q in zip(outlets["county_idx"], seq,
                                                                                       strict=True)])
    outlets["parcel"] = flags[:, 0]

    closed = np.full(n, NULL_INT, dtype=np.int64)
    is_village = (outlets["level"] == "village").to_numpy()
    opened = outlets["opened"].to_numpy()
    past_close = is_village & (opened < s - 200) & (rng.random(n) < 0.04)
    closed[past_close] = opened[past_close] + ((s - 1 - opened[past_close] - 60) * rng.random(past_close.sum())).astype(
        np.int64) + 60
    versions = [pd.DataFrame({"outlet_idx": np.arange(n), "day": opened, "flags": list(flags), "show_closed": False})]
    cur = flags.copy()
    for d in range(s, e + 1):
        open_now = (opened < d) & (closed == NULL_INT)
        closing = open_now & is_village & (rng.random(n) < 0.0008)
        closed[closing] = d
        adding = open_now & ~closing & (rng.random(n) < 0.0008)
        for i in np.flatnonzero(adding):
            cur[i, int(rng.choice([1, 5, 6]))] = True
        if adding.any():
            versions.append(pd.DataFrame({"outlet_idx": np.flatnonzero(adding), "day": d,
                                          "flags": list(cur[adding]), "show_closed": False}))
    has_closed = closed != NULL_INT
    versions.append(pd.DataFrame({"outlet_idx": np.flatnonzero(has_closed), "day": closed[has_closed],
                                  "flags": list(cur[has_closed]), "show_closed": True}))
    outlets["closed"] = closed
    vers = pd.concat(versions, ignore_index=True)
    vers["ts"] = vers["day"] * DAY + business_seconds(rng, len(vers))
    vers["services"] = _services(np.array(vers["flags"].tolist(), dtype=bool))
    vers = vers.drop(columns=["flags"])

    village_outlets = np.full((len(vil), 2), -1, dtype=np.int64)
    for i in np.flatnonzero(is_village):
        vi = outlets["village_idx"].iat[i]
        slot = 0 if village_outlets[vi, 0] < 0 else 1
        village_outlets[vi, slot] = i
    lvl = outlets["level"].to_numpy()
    township_outlet = np.full(len(tws), -1, dtype=np.int64)
    codes = outlets["division_code"].to_numpy()
    for i in np.flatnonzero(lvl == "township"):
        township_outlet[tws.index[tws["code9"] == codes[i][:9]][0]] = i
    county_outlet = np.flatnonzero(lvl == "county")
    return PostalWorld(outlets, vers, village_outlets, township_outlet, county_outlet)


def _village_outlet_name(rng: np.random.Generator, village: str) -> str:
    root = village.removesuffix("村委会").removesuffix("社区居委会")
    u = rng.random()
    if u < 0.03:
        return f"{root}村邮站,助农取款点"
    if u < 0.04:
        return f'{root}"邮乐购"服务站'
    return [f"{root}村邮站", f"{root}邮政便民服务站", f"{root}益农信息社"][int(rng.integers(3))]


def outlets_feed(params: Params, pw: PostalWorld) -> FeedData:
    o, vv = pw.outlets, pw.versions
    idx = vv["outlet_idx"].to_numpy()
    frame = pd.DataFrame({
        "outlet_id": o["outlet_id"].to_numpy()[idx], "name": o["name"].to_numpy()[idx],
        "level": o["level"].to_numpy()[idx], "division_code": o["division_code"].to_numpy()[idx],
        "services": vv["services"].to_numpy(), "opened_date": o["opened"].to_numpy()[idx],
        "closed_date": np.where(vv["show_closed"].to_numpy(), o["closed"].to_numpy()[idx], NULL_INT),
        "latitude": o["lat"].to_numpy()[idx], "longitude": o["lon"].to_numpy()[idx], "updated_at": vv["ts"].to_numpy(),
    })
    frame["_delivery"], frame["_full"] = delivery_of(frame["updated_at"].to_numpy(), params, seconds=True)
    frame = frame[frame["_delivery"] <= params.end_day].reset_index(drop=True)
    return FeedData("postal_outlets", frame)


def _festival(days: np.ndarray) -> np.ndarray:
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    mmdd = (m.astype(np.int64) % 12 + 1) * 100 + (d - m.astype("datetime64[D]")).astype(np.int64) + 1
    f = np.ones(len(days))
    f[(mmdd >= 1111) & (mmdd <= 1120)] = 2.2  # Singles' Day orders reach the villages
    f[(mmdd >= 618) & (mmdd <= 625)] = 1.6
    f[(mmdd >= 1212) & (mmdd <= 1216)] = 1.4
    return f


def _open_parcel_outlet(pw: PostalWorld, village: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The village's parcel outlet open on that day, or -1."""
    o = pw.outlets
    opened, closed, parcel = o["opened"].to_numpy(), o["closed"].to_numpy(), o["parcel"].to_numpy()
    out = np.full(len(village), -1, dtype=np.int64)
    for slot in (1, 0):  # the first outlet wins when both are open
        cand = pw.village_outlets[village, slot]
        ok = cand >= 0
        c = np.where(ok, cand, 0)
        ok &= parcel[c] & (opened[c] <= day) & ((closed[c] == NULL_INT) | (closed[c] > day))
        out = np.where(ok, cand, out)
    return out


def parcels(params: Params, geo: Geography, cw: CoopWorld, pw: PostalWorld, sales: pd.DataFrame) -> pd.DataFrame:
    """One row per parcel accepted during the run, with its route and event times."""
    rng = rng_for(params, "parcels")
    s, e = params.start_day, params.end_day
    vil = geo.villages
    coops = cw.coops
    # Upstream from cooperatives: each postal e-commerce sale ships as a few parcels.
    ps = sales[(sales["channel"] == 0) & (sales["day"] >= s)]
    per_sale = np.clip(np.round(ps["kg"].to_numpy() / rng.uniform(3, 12, len(ps))), 1, 40).astype(np.int64)
    up_coop = np.repeat(ps["coop_idx"].to_numpy(), per_sale)
    up_day = np.repeat(ps["day"].to_numpy(), per_sale)
    up_prod = np.repeat(ps["product"].to_numpy(), per_sale)
    up_kg = np.repeat(ps["kg"].to_numpy() / per_sale, per_sale) * rng.uniform(0.9, 1.1, len(up_coop))
    up_village = coops["village_idx"].to_numpy()[up_coop]
    days = np.arange(s, e + 1)
    alive = ((vil["valid_to"] < 0) & (vil["valid_from"] <= s)).to_numpy()
    hh = vil["households"].to_numpy() * alive
    # Farmers sending on their own (no cooperative), and goods bought online coming down.
    farm = rng.poisson(np.outer(hh * 0.0004, np.ones(len(days))))
    down = rng.poisson(np.outer(hh * 0.003, _festival(days)))
    f_village = np.repeat(np.repeat(np.arange(len(vil)), len(days)), farm.ravel())
    f_day = np.repeat(np.tile(days, len(vil)), farm.ravel())
    d_village = np.repeat(np.repeat(np.arange(len(vil)), len(days)), down.ravel())
    d_day = np.repeat(np.tile(days, len(vil)), down.ravel())
    f_prod = rng.choice(len(PRODUCTS), len(f_village))
    sender = np.concatenate([np.where(rng.random(len(up_coop)) < 0.9, up_coop, -1), np.full(len(f_village), -1)])
    p = pd.DataFrame({
        "upstream": np.concatenate([np.ones(len(up_coop) + len(f_village), bool), np.zeros(len(d_village), bool)]),
        "village": np.concatenate([up_village, f_village, d_village]),
        "day": np.concatenate([up_day, f_day, d_day]),
        "product": np.concatenate([up_prod, f_prod, np.full(len(d_village), -1)]),
        "kg": np.concatenate([up_kg, np.exp(rng.normal(np.log(6), 0.7, len(f_village))),
                              np.exp(rng.normal(np.log(1.5), 0.9, len(d_village)))]),
        "sender": np.concatenate([sender, np.full(len(d_village), -1)]),
    })
    n = len(p)
    village = p["village"].to_numpy()
    day = p["day"].to_numpy()
    up = p["upstream"].to_numpy()
    township = vil["township_idx"].to_numpy()[village]
    county = vil["county_idx"].to_numpy()[village]
    rural = _open_parcel_outlet(pw, village, day)
    at_village = rural >= 0
    rural = np.where(at_village, rural, pw.township_outlet[township])
    hub = pw.county_outlet[county]
    o = pw.outlets
    lat, lon = o["lat"].to_numpy(), o["lon"].to_numpy()
    km = 111.0 * np.hypot(lat[rural] - lat[hub], (lon[rural] - lon[hub]) * np.cos(np.radians(lat[hub])))

    product = p["product"].to_numpy()
    cold_p = np.zeros(n)
    band_lo = np.full(n, np.nan)
    band_hi = np.full(n, np.nan)
    for code, (lo, hi) in COLD_BANDS.items():
        k = product == PRODUCTS.index(code)
        cold_p[k] = 0.8 if code in ("dairy", "aquatic") else 0.45
        band_lo[k], band_hi[k] = lo, hi
    cold = up & (rng.random(n) < cold_p)
    down_cold = ~up & (rng.random(n) < 0.02)  # medicines and fresh food bought online
    cold |= down_cold
    band_lo[down_cold], band_hi[down_cold] = 2.0, 8.0

    # Times: acceptance in opening hours, a dispatch run per day, transit by distance and level.
    t_acc = day * DAY + np.where(up, business_seconds(rng, n, 8, 18), business_seconds(rng, n, 6, 20))
    t_disp = t_acc + (rng.uniform(0.5, 3.0, n) * HOUR).astype(np.int64)
    late_cut = (t_disp % DAY) > 17 * HOUR
    t_disp = np.where(late_cut, (t_disp // DAY + 1) * DAY + (rng.uniform(8, 9.5, n) * HOUR).astype(np.int64), t_disp)
    transit_h = km / 35.0 + np.where(at_village, rng.uniform(6, 14, n), rng.uniform(1, 5, n))
    transit_h += np.where(rng.random(n) < 0.05, rng.uniform(24, 96, n), 0.0)  # weather, missed connections
    transit_h *= np.where(cold, 0.8, 1.0)  # cold chain gets the direct van
    t_arr = t_disp + (transit_h * HOUR).astype(np.int64)
    last_h = np.where(up, rng.uniform(1, 6, n), np.where(at_village, rng.uniform(1, 30, n), rng.uniform(0.5, 10, n)))
    returned = rng.random(n) < np.where(up, 0.007, 0.02)
    t_end = t_arr + (np.where(returned, rng.uniform(24, 96, n), last_h) * HOUR).astype(np.int64)
    promised = np.where(up, np.where(at_village, 36.0, 24.0), np.where(at_village, 48.0, 36.0))
    promised = np.where(cold, promised - 6.0, promised)

    p["rural"], p["hub"], p["at_village"] = rural, hub, at_village
    p["cold"], p["tmin"], p["tmax"] = cold, np.where(cold, band_lo, np.nan), np.where(cold, band_hi, np.nan)
    p["t_acc"], p["t_disp"], p["t_arr"], p["t_end"], p["returned"] = t_acc, t_disp, t_arr, t_end, returned
    p["promised"] = promised
    p["kg"] = np.round(np.maximum(p["kg"].to_numpy(), 0.05), 2)
    p = p.take(np.lexsort((p["village"].to_numpy(), t_acc))).reset_index(drop=True)
    p["tracking_no"] = np.arange(10_000_000_001, 10_000_000_001 + len(p), dtype=np.int64)
    return p


def events_feed(params: Params, cw: CoopWorld, pw: PostalWorld, p: pd.DataFrame) -> FeedData:
    rng = rng_for(params, "events.delivery")
    n = len(p)
    up = p["upstream"].to_numpy()
    origin = np.where(up, p["rural"].to_numpy(), p["hub"].to_numpy())
    dest = np.where(up, p["hub"].to_numpy(), p["rural"].to_numpy())
    last_type = np.where(p["returned"].to_numpy(), 4, 3)
    times = np.stack([p["t_acc"], p["t_disp"], p["t_arr"], p["t_end"]], axis=1).ravel()
    types = np.stack([np.zeros(n, int), np.ones(n, int), np.full(n, 2), last_type], axis=1).ravel()
    outlet = np.stack([origin, origin, dest, dest], axis=1).ravel()
    parcel = np.repeat(np.arange(n), 4)
    seen = times // DAY <= params.end_day
    times, types, outlet, parcel = times[seen], types[seen], outlet[seen], parcel[seen]
    k = len(times)
    acc = types == 0
    sender = p["sender"].to_numpy()[parcel]
    coop_ids = cw.coops["coop_id"].to_numpy()
    prod = p["product"].to_numpy()[parcel]
    frame = pd.DataFrame({
        "event_id": np.arange(100_000_000_001, 100_000_000_001 + k, dtype=np.int64),
        "tracking_no": p["tracking_no"].to_numpy()[parcel],
        "event_type": pd.Categorical.from_codes(types, EVENT_TYPES),
        "event_time": times,
        "outlet_id": pd.Categorical.from_codes(outlet, pw.outlets["outlet_id"].to_numpy()),
        "direction": pd.Categorical.from_codes(np.where(acc, np.where(up[parcel], 0, 1), -1), ["upstream", "downstream"]),
        "sender_coop_id": pd.Categorical.from_codes(np.where(acc & (sender >= 0), sender, -1), coop_ids),
        "product_code": pd.Categorical.from_codes(np.where(acc & (prod >= 0), prod, -1), PRODUCTS),
        "weight_kg": np.where(acc, p["kg"].to_numpy()[parcel], np.nan),
        "cold_chain": np.where(acc, p["cold"].to_numpy()[parcel].astype(np.int8), -1).astype(np.int8),
        "temp_min_c": np.where(acc, p["tmin"].to_numpy()[parcel], np.nan).astype(np.float32),
        "temp_max_c": np.where(acc, p["tmax"].to_numpy()[parcel], np.nan).astype(np.float32),
        "promised_hours": np.where(acc, p["promised"].to_numpy()[parcel], np.nan).astype(np.float32),
    })
    delivery = (times // DAY).astype(np.int64)
    # Out of order: an event held back until after a later event of its parcel was delivered.
    share = pre_mark_share(params.defect_rate, "postal_shipment_events")
    nxt_same = np.zeros(k, dtype=bool)
    nxt_same[:-1] = parcel[1:] == parcel[:-1]
    nxt_day = np.full(k, np.iinfo(np.int64).max)
    nxt_day[:-1] = delivery[1:]
    can = nxt_same & (nxt_day < params.end_day)
    pick = can & (rng.random(k) < share)
    if share > 0 and not pick.any() and can.any():
        pick[np.flatnonzero(can)[int(rng.integers(can.sum()))]] = True
    delivery = np.where(pick, np.minimum(nxt_day + rng.integers(1, 3, k), params.end_day), delivery)
    frame["_delivery"] = delivery
    frame["_defect"] = np.where(pick, "out_of_order_event", None)
    return FeedData("postal_shipment_events", frame)


def readings_feed(params: Params, p: pd.DataFrame) -> FeedData:
    rng = rng_for(params, "readings")
    cold = p[p["cold"].to_numpy()]
    monitored = cold[rng.random(len(cold)) >= 0.03].reset_index(drop=True)  # some sensors never report
    m = len(monitored)
    first = monitored["t_acc"].to_numpy() + rng.integers(0, 1800, m)
    last = np.minimum(monitored["t_end"].to_numpy(), (params.end_day + 1) * DAY - 1)
    count = np.maximum((last - first) // READING_EVERY + 1, 0)
    idx = np.repeat(np.arange(m), count)
    step = np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
    t = first[idx] + step * READING_EVERY + rng.integers(-20, 21, len(idx))
    lo, hi = monitored["tmin"].to_numpy()[idx], monitored["tmax"].to_numpy()[idx]
    mid, width = (lo + hi) / 2, hi - lo
    temp = np.clip(mid + rng.normal(0, width / 6, len(idx)), lo + 0.1, hi - 0.1)
    # Excursions: a door left open, a compressor failing for a few hours.
    exc = rng.random(m) < 0.12
    exc_start = (rng.random(m) * np.maximum(count - 1, 1)).astype(np.int64)
    exc_len = rng.integers(2, 7, m)
    in_exc = exc[idx] & (step >= exc_start[idx]) & (step < exc_start[idx] + exc_len[idx])
    temp = np.where(in_exc, hi + rng.uniform(1.0, 6.0, len(idx)), temp)
    sensor = np.array([f"TS{i:07d}" for i in rng.choice(9_000_000, m, replace=False) + 1_000_000], dtype=object)
    frame = pd.DataFrame({
        "tracking_no": monitored["tracking_no"].to_numpy()[idx],
        "sensor_id": pd.Categorical.from_codes(idx, sensor) if m else np.array([], dtype=object),
        "reading_time": t,
        "temperature_c": np.round(temp, 1),
    })
    frame = frame.take(np.lexsort((frame["tracking_no"].to_numpy(), frame["reading_time"].to_numpy())))
    frame = frame.reset_index(drop=True)
    delivery, full = delivery_of(frame["reading_time"].to_numpy(), params, seconds=True)
    late = hold_back(rng, delivery, np.ones(len(frame), bool),
                     pre_mark_share(params.defect_rate, "postal_cold_chain_readings"), params.end_day, 3)
    frame["_delivery"], frame["_full"] = late, full
    frame["_defect"] = np.where(late != delivery, "late_row", None)
    return FeedData("postal_cold_chain_readings", frame)
