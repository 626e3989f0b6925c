"""Identifiers and personal attributes: USCC and RIC with real check characters (vectorised, and
proven against python-stdnum), names and phone numbers from Faker's zh_CN lists.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from faker import Faker
from stdnum import numdb
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from agrilake.devdata.generate.common import years_of

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)
_RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RIC_CHECK = np.array(list("10X98765432"))
_USCC_INDEX = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(USCC_ALPHABET):
    _USCC_INDEX[ord(_c)] = _i


def _char_matrix(values: np.ndarray, width: int) -> np.ndarray:
    return np.frombuffer(values.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(-1, width)


def ric_check_chars(bodies: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check character of 17-digit RIC bodies."""
    digits = _char_matrix(bodies, 17).astype(np.int64) - 48
    return _RIC_CHECK[(digits @ _RIC_WEIGHTS) % 11]


def uscc_check_chars(bodies: np.ndarray) -> np.ndarray:
    """GB 32100-2015 mod-31 check character of 17-character USCC bodies."""
    idx = _USCC_INDEX[_char_matrix(bodies, 17)]
    return np.array(list(USCC_ALPHABET))[(31 - (idx @ _USCC_WEIGHTS) % 31) % 31]


def wrong_check(value: str, alphabet: str) -> str:
    """The same identifier with a check character that cannot be right."""
    last = value[-1]
    return value[:-1] + alphabet[(alphabet.index(last) + 1) % len(alphabet)] if last in alphabet else value[:-1] + "0"


def bad_ric(value: str) -> str:
    return wrong_check(value, "0123456789X")


def bad_uscc(value: str) -> str:
    return wrong_check(value, USCC_ALPHABET)


def ric_ok(value: str) -> bool:
    """stdnum's verdict; it raises KeyError on some region codes it half-knows."""
    try:
        return stdnum_ric.is_valid(value)
    except KeyError:
        return False


def uscc_ok(value: str) -> bool:
    return value.startswith("93") and stdnum_uscc.is_valid(value)


def _probe(region: str, year: int) -> str:
    body = f"{region}{year:04d}0615123"
    return body + ric_check_chars(np.array([body]))[0]


@cache
def _loc_codes() -> tuple[tuple[str, str, int, int], ...]:
    """Every region code stdnum knows: (code, county name, first year, last year).

    Read from stdnum's own table, and with its own reading of `[start-end]name` entries, so the
    spans here are exactly the birth years `stdnum.cn.ric` accepts for the code.
    """
    out = []
    for length, low, high, _props, children in numdb.get("cn/loc").prefixes:
        if length != 2 or low != high:
            continue
        for c_len, c_low, c_high, c_props, _ in children:
            if c_len != 4 or c_low != c_high or "county" not in c_props:
                continue
            for entry in c_props["county"].split(","):
                start, end, name = 0, 9999, entry
                if entry.startswith("["):
                    span, name = entry[1:].split("]", 1)
                    a, b = span.split("-")
                    start, end = int(a) if a else 0, int(b) if b else 9999
                out.append((low + c_low, name, start, end))
    return tuple(sorted(out))


@cache
def _loc_index() -> dict[str, dict]:
    out: dict[str, dict] = {"code": {}, "name": {}, "pref": {}, "prov": {}}
    for t in _loc_codes():
        out["code"].setdefault(t[0], []).append(t)
        out["name"].setdefault((t[0][:2], t[1]), []).append(t)
        out["pref"].setdefault(t[0][:4], []).append(t)
        out["prov"].setdefault(t[0][:2], []).append(t)
    return out


def ric_regions_by_year(home: str, home_name: str, years: tuple[int, int]) -> np.ndarray:
    """Region code for a RIC of someone from `home`, per birth year (index 0 = years[0]).

    stdnum accepts a region code only for birth years when the code existed, so a person born
    before their county got today's code carries the county's earlier code (same name, same
    province: 惠东县 was 442528 before it became 441323), or failing that a code of the same
    prefecture, province, or country that existed then. Every code is proven with stdnum itself.
    """
    lo, hi = years
    idx = _loc_index()
    ranked = (idx["code"].get(home, []), idx["name"].get((home[:2], home_name), []), idx["pref"].get(home[:4], []),
              idx["prov"].get(home[:2], []), list(_loc_codes()))
    out = np.empty(hi - lo + 1, dtype="U6")
    for i, year in enumerate(range(lo, hi + 1)):
        out[i] = next((t[0] for group in ranked for t in group if t[2] <= year <= t[3] and not t[0].endswith("00")), "")
    years_arr = np.arange(lo, hi + 1)
    for code in np.unique(out):
        used = years_arr[out == code]
        for year in (used.min(), used.max()):  # spans are contiguous: the edges prove the rest
            if not code or not ric_ok(_probe(code, int(year))):
                raise RuntimeError(f"no region code stdnum accepts for someone from {home} born in {year}")
    return out


def make_rics(rng: np.random.Generator, regions: np.ndarray, birth_days: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Unique RICs for people with the given region codes, birth days and sex (odd sequence = male)."""
    n = len(regions)
    ymd = np.char.replace(np.datetime_as_string(birth_days.astype("datetime64[D]")).astype("U10"), "-", "")
    prefix = np.char.add(regions.astype("U6"), ymd)
    seq = rng.integers(0, 500, n) * 2 + np.where(male, 1, 0)
    while True:
        # region + birth day + sequence must be unique: redraw the sequence of later twins
        key = np.char.add(prefix, np.char.zfill(seq.astype("U3"), 3))
        _, first = np.unique(key, return_index=True)
        twin = np.ones(n, dtype=bool)
        twin[first] = False
        if not twin.any():
            out = np.char.add(key, ric_check_chars(key))
            # the vectorised check digit is stdnum's: prove it on a sample (regions are proven above)
            if not all(stdnum_ric.calc_check_digit(x) == x[-1] for x in out[:200].tolist()):
                raise RuntimeError("RIC check digits disagree with stdnum")
            return out
        seq[twin] = rng.integers(0, 500, twin.sum()) * 2 + np.where(male[twin], 1, 0)


def make_usccs(rng: np.random.Generator, counties: np.ndarray) -> np.ndarray:
    """Unique cooperative USCCs: `93` + registering county + `MA` organisation code + check."""
    n = len(counties)
    letters = np.array(list(USCC_ALPHABET))
    out = np.empty(n, dtype="U18")
    todo = np.arange(n)
    taken: set[str] = set()
    while len(todo):
        org = letters[rng.integers(0, len(USCC_ALPHABET), (len(todo), 7))]
        org_s = np.array(["".join(r) for r in org])
        bodies = np.char.add(np.char.add(np.char.add("93", counties[todo].astype("U6")), "MA"), org_s)
        full = np.char.add(bodies, uscc_check_chars(bodies))
        retry = []
        for i, value in zip(todo, full.tolist(), strict=True):
            if value in taken:
                retry.append(i)
            else:
                taken.add(value)
                out[i] = value
        todo = np.array(retry, dtype=np.int64)
    if not all(uscc_ok(x) for x in out.tolist()):
        raise RuntimeError("generated USCCs that stdnum rejects")
    return out


@cache
def _faker_lists() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fake = Faker("zh_CN")
    person = next(p for p in fake.providers if type(p).__module__.endswith("person.zh_CN"))
    phone = next(p for p in fake.providers if type(p).__module__.endswith("phone_number.zh_CN"))
    last = np.array(list(person.last_names.keys()))
    weights = np.array(list(person.last_names.values()), dtype=float)
    prefixes = np.array([str(p) for p in phone.phonenumber_prefixes])
    return last, weights / weights.sum(), np.array(person.first_names_male), np.array(person.first_names_female), prefixes


def make_names(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    """Chinese names: a surname by Faker's frequency weights, a given name matching the sex."""
    last, weights, first_m, first_f = _faker_lists()[:4]
    n = len(male)
    surname = last[rng.choice(len(last), n, p=weights)]
    given = np.where(male, first_m[rng.integers(0, len(first_m), n)], first_f[rng.integers(0, len(first_f), n)])
    return np.char.add(surname, given).astype(object)


def make_phones(rng: np.random.Generator, n: int) -> np.ndarray:
    prefixes = _faker_lists()[4]
    head = prefixes[rng.integers(0, len(prefixes), n)]
    tail = np.char.zfill(rng.integers(0, 100_000_000, n).astype("U8"), 8)
    return np.char.add(head, tail).astype(object)


def birth_years_range(start_day: int) -> tuple[int, int]:
    """Birth years of people aged 20..75 on the first delivery day."""
    year = int(years_of(np.array([start_day]))[0])
    return year - 76, year - 20
