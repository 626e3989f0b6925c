"""bank/loans, bank/repayments, bank/subsidies: the postal bank's rural lending book.

Loans go to cooperatives and households, with amortisation schedules recorded at disbursement
(one repayment row per installment) and a later row per installment when it is paid. Most
borrowers pay on time; a tail pays late (some more than 90 days), pays in part, or stops paying
and is written off. Machinery and cold-chain loans bring the matching purchase subsidy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agrilake.devdata.generate.common import (
    COLD_BANDS,
    DAY,
    NULL_INT,
    PRODUCTS,
    FeedData,
    Params,
    add_months,
    business_seconds,
    delivery_of,
    hold_back,
    months_of,
    rng_for,
)
from agrilake.devdata.generate.coop import CoopWorld
from agrilake.devdata.generate.defects import pre_mark_share

BOOK_DAYS = 730  # the initial book: loans disbursed up to two years before the first delivery
LOAN_PRODUCTS = ("machinery_purchase", "working_capital", "agri_inputs", "cold_chain_facility")
MACHINERY = ("轮式拖拉机", "联合收割机", "水稻插秧机", "植保无人机", "粮食烘干机", "旋耕机", "青贮饲料收获机", "播种机")
GOOD, LATE, SEVERE, DEFAULT = 0, 1, 2, 3


@dataclass
class Book:
    loans: pd.DataFrame  # loan_id, coop_idx (-1), person_idx (-1), product, principal, rate, term, disbursed, ...
    installments: pd.DataFrame  # loan_idx, no, due, amount
    payments: pd.DataFrame  # inst_idx, paid_day, amount_paid, ts
    status_changes: pd.DataFrame  # loan_idx, ts, status


def build(params: Params, cw: CoopWorld) -> Book:
    rng = rng_for(params, "bank")
    s, e = params.start_day, params.end_day
    c = cw.coops
    pf = cw.people.frame
    n_c = len(c)
    eligible = ~c["is_new"].to_numpy() & (c["established"].to_numpy() < s - 90)
    eligible &= (c["activity"].to_numpy() > 0) | (rng.random(n_c) < 0.1)
    borrows = eligible & (rng.random(n_c) < 0.35)
    n_loans = np.where(borrows, 1 + rng.poisson(0.5, n_c), 0)
    coop_idx = np.repeat(np.arange(n_c), n_loans)
    est = c["established"].to_numpy()[coop_idx]
    dissolved = c["dissolved"].to_numpy()
    lo = np.maximum(est + 180, s - BOOK_DAYS)
    hi = np.where(dissolved[coop_idx] != NULL_INT, np.minimum(s - 1, dissolved[coop_idx] - 60), s - 1)
    coop_disb = lo + ((hi - lo) * rng.random(len(coop_idx))).astype(np.int64)
    keep = hi > lo
    coop_idx, coop_disb = coop_idx[keep], coop_disb[keep]
    # Households: members mostly, of working age.
    age = (s - pf["birth_day"].to_numpy()) / 365.25
    member_people = np.zeros(len(pf), dtype=bool)
    member_people[cw.members["person_idx"].to_numpy()] = True
    p_borrow = np.where(member_people, 0.045, 0.01) * (age < 66)
    person_idx = np.flatnonzero(rng.random(len(pf)) < p_borrow)
    person_disb = s - rng.integers(1, BOOK_DAYS, len(person_idx))
    # New loans during the run, at the book's pace.
    new_c, new_p, new_cd, new_pd = [], [], [], []
    can_borrow = np.flatnonzero(eligible)
    for d in range(s, e + 1):
        k = rng.poisson(len(coop_idx) / BOOK_DAYS) if len(can_borrow) else 0
        for i in rng.choice(can_borrow, k, replace=True) if k else []:
            if dissolved[i] != NULL_INT and dissolved[i] <= d:
                continue
            new_c.append(int(i))
            new_cd.append(d)
        for i in rng.integers(0, len(pf), rng.poisson(len(person_idx) / BOOK_DAYS)):
            if age[i] < 66:
                new_p.append(int(i))
                new_pd.append(d)
    coop_idx = np.concatenate([coop_idx, np.array(new_c, dtype=np.int64)])
    coop_disb = np.concatenate([coop_disb, np.array(new_cd, dtype=np.int64)])
    person_idx = np.concatenate([person_idx, np.array(new_p, dtype=np.int64)])
    person_disb = np.concatenate([person_disb, np.array(new_pd, dtype=np.int64)])

    nc, nh = len(coop_idx), len(person_idx)
    n = nc + nh
    is_coop = np.concatenate([np.ones(nc, bool), np.zeros(nh, bool)])
    disbursed = np.concatenate([coop_disb, person_disb])
    cold_coop = np.isin(c["main"].to_numpy()[coop_idx], [PRODUCTS.index(p) for p in COLD_BANDS])
    coop_prod = np.where(rng.random(nc) < np.where(cold_coop, 0.25, 0.05), 3,
                         rng.choice(3, nc, p=[0.35, 0.40, 0.25]))
    hh_prod = rng.choice(3, nh, p=[0.2, 0.3, 0.5])
    product = np.concatenate([coop_prod, hh_prod])
    median = np.where(is_coop, np.array([400e3, 300e3, 150e3, 1.2e6])[product], np.array([80e3, 50e3, 30e3, 0])[product])
    principal = np.maximum(np.round(np.exp(rng.normal(np.log(np.maximum(median, 1)), 0.55)), -3), 5000.0)
    rate = np.round(np.clip(np.where(is_coop, 3.9, 4.5) + rng.normal(0, np.where(is_coop, 0.4, 0.6)), 3.0, 9.0), 2)
    term = np.select(
        [product == 0, product == 1, product == 2],
        [np.where(is_coop & (rng.random(n) < 0.4), 60, 36), rng.choice([12, 24], n), rng.choice([6, 9, 12], n)],
        60,
    )
    bullet = product == 2  # input loans are repaid in one go after the harvest
    n_inst = np.where(bullet, 1, term)
    maturity = add_months(disbursed, term)

    coop_gone = np.concatenate([dissolved[coop_idx] != NULL_INT, np.zeros(nh, bool)])
    u = rng.random(n)
    behaviour = np.where(u < np.where(is_coop, 0.85, 0.80), GOOD,
                         np.where(u < np.where(is_coop, 0.94, 0.91), LATE,
                                  np.where(u < np.where(is_coop, 0.97, 0.955), SEVERE, DEFAULT)))
    behaviour = np.where(coop_gone & (rng.random(n) < 0.6), DEFAULT, behaviour)

    loans = pd.DataFrame({
        "coop_idx": np.concatenate([coop_idx, np.full(nh, -1)]),
        "person_idx": np.concatenate([np.full(nc, -1), person_idx]),
        "product": product, "principal": principal, "rate": rate, "term": term, "disbursed": disbursed,
        "maturity": maturity, "n_inst": n_inst, "behaviour": behaviour,
        "ts": disbursed * DAY + business_seconds(rng, n, 9, 16),
    })
    loans = loans.sort_values(["ts", "principal"], kind="stable").reset_index(drop=True)
    loans.insert(0, "loan_id", [f"LN{1_000_000_001 + i}" for i in range(len(loans))])

    # Schedules.
    li = np.repeat(np.arange(n), loans["n_inst"].to_numpy())
    no = np.arange(len(li)) - np.repeat(np.cumsum(loans["n_inst"].to_numpy()) - loans["n_inst"].to_numpy(),
                                        loans["n_inst"].to_numpy()) + 1
    L = loans
    is_bullet = L["product"].to_numpy()[li] == 2
    due = np.where(is_bullet, L["maturity"].to_numpy()[li], add_months(L["disbursed"].to_numpy()[li], no))
    r = L["rate"].to_numpy()[li] / 1200.0
    nn = L["n_inst"].to_numpy()[li]
    pr = L["principal"].to_numpy()[li]
    annuity = pr * r / (1 - (1 + r) ** (-nn.astype(float)))
    amount = np.round(annuity, 2)
    last = no == nn
    amount = np.where(last, np.round(annuity * nn - amount * (nn - 1), 2), amount)
    amount = np.where(is_bullet, np.round(pr * (1 + L["rate"].to_numpy()[li] / 100 * L["term"].to_numpy()[li] / 12), 2),
                      amount)
    inst = pd.DataFrame({"loan_idx": li, "no": no, "due": due, "amount": amount})

    # When each installment is paid.
    m = len(inst)
    beh = L["behaviour"].to_numpy()[li]
    u = rng.random(m)
    delay = np.zeros(m, dtype=np.int64)
    early = -rng.integers(0, 4, m)
    d_short, d_mid, d_long = rng.integers(1, 31, m), rng.integers(31, 91, m), rng.integers(91, 151, m)
    delay = np.where(beh == GOOD, np.where(u < 0.97, np.where(u < 0.5, early, 0), rng.integers(1, 8, m)), delay)
    delay = np.where((beh == LATE) | (beh == DEFAULT), np.where(u < 0.45, 0, np.where(u < 0.9, d_short, d_mid)), delay)
    delay = np.where(beh == SEVERE, np.where(u < 0.25, 0, np.where(u < 0.6, d_short, np.where(u < 0.85, d_mid, d_long))),
                     delay)
    paid_day = np.maximum(due + delay, L["disbursed"].to_numpy()[li] + 1)
    # Defaulters stop at one installment, sometimes paying part of it.
    k0 = 1 + (rng.random(n) * L["n_inst"].to_numpy()).astype(np.int64)
    stop = (beh == DEFAULT) & (no >= k0[li])
    first_stop = stop & (no == k0[li])
    partial = (((beh == LATE) | (beh == SEVERE)) & (rng.random(m) < 0.04)) | (first_stop & (rng.random(m) < 0.3))
    part_amount = np.round(inst["amount"].to_numpy() * rng.uniform(0.2, 0.8, m), 2)
    completes = partial & ~stop & (rng.random(m) < 0.6)
    complete_day = paid_day + rng.integers(10, 61, m)
    # Early settlement: a good borrower pays everything left on one day.
    settle_early = (L["behaviour"].to_numpy() == GOOD) & (rng.random(n) < 0.05) & (L["n_inst"].to_numpy() > 3)
    settle_day = L["disbursed"].to_numpy() + 90 + (
        (L["maturity"].to_numpy() - L["disbursed"].to_numpy() - 120) * rng.random(n)).astype(np.int64)
    early_paid = settle_early[li] & (due > settle_day[li])
    paid_day = np.where(early_paid, settle_day[li], paid_day)

    rec_lag = np.where(rng.random(m) < 0.1, DAY, 0)  # a posting that reaches the ledger the next day
    pay_rows = []
    full_paid = ~stop & ~partial
    pay_rows.append(pd.DataFrame({"inst_idx": np.flatnonzero(full_paid), "paid_day": paid_day[full_paid],
                                  "amount_paid": inst["amount"].to_numpy()[full_paid]}))
    pay_rows.append(pd.DataFrame({"inst_idx": np.flatnonzero(partial), "paid_day": paid_day[partial],
                                  "amount_paid": part_amount[partial]}))
    pay_rows.append(pd.DataFrame({"inst_idx": np.flatnonzero(completes), "paid_day": complete_day[completes],
                                  "amount_paid": inst["amount"].to_numpy()[completes]}))
    pays = pd.concat(pay_rows, ignore_index=True)
    pays["ts"] = (pays["paid_day"].to_numpy() * DAY + business_seconds(rng, len(pays), 8, 20)
                  + rec_lag[pays["inst_idx"].to_numpy()])
    pays = pays[pays["ts"] // DAY <= e].reset_index(drop=True)

    # Status: settled once the last installment is fully paid; written off 180+ days into default.
    fully = np.zeros(m, dtype=bool)
    fully_ts = np.full(m, NULL_INT, dtype=np.int64)
    final = pays[pays["amount_paid"].to_numpy() >= inst["amount"].to_numpy()[pays["inst_idx"].to_numpy()]]
    fully[final["inst_idx"].to_numpy()] = True
    fully_ts[final["inst_idx"].to_numpy()] = final["ts"].to_numpy()
    all_paid = np.bincount(li, weights=fully, minlength=n) == L["n_inst"].to_numpy()
    last_ts = np.full(n, NULL_INT, dtype=np.int64)
    np.maximum.at(last_ts, li, fully_ts)
    changes = [pd.DataFrame({"loan_idx": np.flatnonzero(all_paid), "ts": last_ts[all_paid] + 300, "status": "settled"})]
    default_due = np.full(n, NULL_INT, dtype=np.int64)
    default_due[li[first_stop]] = due[first_stop]
    wo_day = default_due + 180 + rng.integers(0, 31, n)
    written_off = (L["behaviour"].to_numpy() == DEFAULT) & (default_due != NULL_INT) & (wo_day <= e)
    changes.append(pd.DataFrame({"loan_idx": np.flatnonzero(written_off),
                                 "ts": wo_day[written_off] * DAY + business_seconds(rng, written_off.sum(), 9, 17),
                                 "status": "written_off"}))
    status_changes = pd.concat(changes, ignore_index=True)
    status_changes = status_changes[status_changes["ts"] // DAY <= e].reset_index(drop=True)
    return Book(L, inst, pays, status_changes)


def loans_feed(params: Params, cw: CoopWorld, book: Book) -> FeedData:
    L = book.loans
    first = pd.DataFrame({"loan_idx": np.arange(len(L)), "ts": L["ts"].to_numpy(), "status": "active"})
    versions = pd.concat([first, book.status_changes], ignore_index=True)
    idx = versions["loan_idx"].to_numpy()
    coop = L["coop_idx"].to_numpy()[idx]
    person = L["person_idx"].to_numpy()[idx]
    usccs = cw.coops["uscc"].to_numpy()
    rics = cw.people.frame["ric"].to_numpy()
    frame = pd.DataFrame({
        "loan_id": L["loan_id"].to_numpy()[idx],
        "borrower_type": np.where(coop >= 0, "cooperative", "household").astype(object),
        "borrower_uscc": np.where(coop >= 0, usccs[np.maximum(coop, 0)], None),
        "borrower_ric": np.where(person >= 0, rics[np.maximum(person, 0)], None),
        "product": np.array(LOAN_PRODUCTS, dtype=object)[L["product"].to_numpy()[idx]],
        "principal_cny": L["principal"].to_numpy()[idx],
        "annual_rate_pct": L["rate"].to_numpy()[idx],
        "term_months": L["term"].to_numpy()[idx],
        "disbursed_date": L["disbursed"].to_numpy()[idx],
        "maturity_date": L["maturity"].to_numpy()[idx],
        "status": versions["status"].to_numpy(),
        "updated_at": versions["ts"].to_numpy(),
    })
    frame["_delivery"], frame["_full"] = delivery_of(frame["updated_at"].to_numpy(), params, seconds=True)
    return FeedData("bank_loans", frame)


def repayments_feed(params: Params, book: Book) -> FeedData:
    L, inst, pays = book.loans, book.installments, book.payments
    li = inst["loan_idx"].to_numpy()
    sched = pd.DataFrame({
        "inst_idx": np.arange(len(inst)), "paid_day": NULL_INT, "amount_paid": np.nan,
        "ts": L["ts"].to_numpy()[li] + 60,  # the schedule is booked a minute after the disbursement
    })
    rows = pd.concat([sched, pays], ignore_index=True)
    ii = rows["inst_idx"].to_numpy()
    frame = pd.DataFrame({
        "loan_id": pd.Categorical.from_codes(li[ii], L["loan_id"].to_numpy()),
        "installment_no": inst["no"].to_numpy()[ii],
        "due_date": inst["due"].to_numpy()[ii],
        "amount_due_cny": inst["amount"].to_numpy()[ii],
        "paid_date": rows["paid_day"].to_numpy().astype(np.int64),
        "amount_paid_cny": rows["amount_paid"].to_numpy(),
        "recorded_at": rows["ts"].to_numpy(),
    })
    frame["_delivery"], frame["_full"] = delivery_of(frame["recorded_at"].to_numpy(), params, seconds=True)
    return FeedData("bank_repayments", frame)


def subsidies_feed(params: Params, cw: CoopWorld, book: Book) -> FeedData:
    rng = rng_for(params, "subsidies")
    s, e = params.start_day, params.end_day
    L = book.loans
    n = len(L)
    prod = L["product"].to_numpy()
    u = rng.random(n)
    machinery = (prod == 0) & (u < 0.7)
    cold = (prod == 3) & (u < 0.6)
    linked = machinery | cold
    day = L["disbursed"].to_numpy() + rng.integers(15, 121, n)
    share = np.where(prod == 0, rng.uniform(0.15, 0.35, n), rng.uniform(0.2, 0.3, n))
    parts = [pd.DataFrame({
        "program": np.where(prod == 0, "machinery_purchase", "cold_chain_facility")[linked],
        "coop": L["coop_idx"].to_numpy()[linked], "person": L["person_idx"].to_numpy()[linked],
        "amount": np.round(L["principal"].to_numpy()[linked] * share[linked], -2),
        "machinery": np.where(prod == 0, np.array(MACHINERY, dtype=object)[rng.integers(0, len(MACHINERY), n)],
                              None)[linked],
        "day": day[linked],
    })]
    # Seed subsidies to members in spring, small grants to cooperatives through the year.
    members = cw.members
    pf = cw.people.frame
    span = np.arange(s - 365, e + 1)
    spring = span[np.isin(months_of(span), [3, 4, 5])]
    seed_people = np.unique(members["person_idx"].to_numpy())
    seed_people = seed_people[rng.random(len(seed_people)) < 0.12]
    land = members.groupby("person_idx")["land"].sum()
    parts.append(pd.DataFrame({
        "program": "seed", "coop": -1, "person": seed_people,
        "amount": np.maximum(np.round(land.loc[seed_people].to_numpy() * rng.uniform(10, 15, len(seed_people)), 2), 50.0),
        "machinery": None, "day": spring[rng.integers(0, len(spring), len(seed_people))] if len(spring) else s,
    }))
    c = cw.coops
    other = np.flatnonzero((rng.random(len(c)) < 0.1) & ~c["is_new"].to_numpy())
    parts.append(pd.DataFrame({
        "program": "other", "coop": other, "person": -1,
        "amount": np.round(rng.uniform(5000, 50000, len(other)), -2), "machinery": None,
        "day": s - 365 + rng.integers(0, e - s + 366, len(other)),
    }))
    g = pd.concat(parts, ignore_index=True)
    g = g[(g["day"] <= e) & (g["day"] >= s - BOOK_DAYS - 200)]
    g = g.sort_values(["day", "amount"], kind="stable").reset_index(drop=True)
    coop, person = g["coop"].to_numpy(), g["person"].to_numpy()
    frame = pd.DataFrame({
        "subsidy_id": np.arange(100_000_001, 100_000_001 + len(g), dtype=np.int64),
        "program": g["program"].to_numpy().astype(object),
        "beneficiary_type": np.where(coop >= 0, "cooperative", "household").astype(object),
        "beneficiary_uscc": np.where(coop >= 0, c["uscc"].to_numpy()[np.maximum(coop, 0)], None),
        "beneficiary_ric": np.where(person >= 0, pf["ric"].to_numpy()[np.maximum(person, 0)], None),
        "amount_cny": g["amount"].to_numpy(),
        "machinery_type": g["machinery"].to_numpy(),
        "granted_date": g["day"].to_numpy().astype(np.int64),
    })
    delivery, full = delivery_of(frame["granted_date"].to_numpy(), params, seconds=False)
    late = hold_back(rng, delivery, ~full, pre_mark_share(params.defect_rate, "bank_subsidies"), e)
    frame["_delivery"], frame["_full"] = late, full
    frame["_defect"] = np.where(late != delivery, "late_row", None)
    return FeedData("bank_subsidies", frame)

