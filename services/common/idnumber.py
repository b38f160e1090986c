"""The citizen ID number (公民身份号码, GB 11643-1999), shared by every service (docs/domain.md §1).

Pure functions, no I/O besides reading the county code table that ships with `python-stdnum`
(``stdnum/cn/loc.dat`` through ``stdnum.numdb``; its source is Wikipedia's list of GB/T 2260 codes
with the years each code was in use). No code table is copied here.

Rules worth knowing before changing anything:

* **Address code in use.** The number is lifelong, so abolished codes stay valid, but a code must have
  been in use when the number was *assigned*. For people born since citizen numbers were first assigned
  (the first resident ID cards, 1984: `FIRST_ASSIGNMENT_YEAR`) that is the birth year, as python-stdnum
  and id-validator check it. People born earlier got their number in 1984 at the earliest, so for them a
  code in use at any time from the birth year to 1984 is accepted (`address_check_years`). This is what
  makes the GB 11643 annex example ``440524188001010014`` (潮阳县, code in use 1983-1993) and
  ``610104620927690`` (莲湖区, code from 1983) valid, while ``110111198012010078`` (房山区, code from
  1986) stays invalid.
* **Not mainland codes.** 71 (台湾), 81 (香港) and 82 (澳门) carry no mainland household register, and
  83/81/82 numbers are the 2018 residence permits, after our 2016 scope: reported as
  ``UNKNOWN_ADDRESS_CODE``.
* **Centenarian sequence codes.** The 1989 standard reserved sequence codes for people over 100 (996-999,
  unverified, docs/domain.md §1.2 and §7.8): such 15-digit numbers are reported ``CENTENARIAN_SEQUENCE``
  and are not upgraded, because their century is unknown.
* Birth years before `EARLIEST_BIRTH_YEAR` (1800) are ``IMPOSSIBLE_DATE``.
"""

from __future__ import annotations

import enum
import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from services.common.errors import FieldViolation, InvalidArgument

FIRST_ASSIGNMENT_YEAR = 1984
EARLIEST_BIRTH_YEAR = 1800
NON_MAINLAND_PROVINCES = frozenset({"71", "81", "82", "83"})
CENTENARIAN_SEQUENCES = range(996, 1000)

# Problem codes (stable, machine-readable; also the FieldViolation reasons).
BAD_LENGTH = "BAD_LENGTH"
BAD_CHARACTERS = "BAD_CHARACTERS"
IMPOSSIBLE_DATE = "IMPOSSIBLE_DATE"
FUTURE_BIRTH_DATE = "FUTURE_BIRTH_DATE"
UNKNOWN_ADDRESS_CODE = "UNKNOWN_ADDRESS_CODE"
ADDRESS_CODE_NOT_IN_USE = "ADDRESS_CODE_NOT_IN_USE"
BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"
CENTENARIAN_SEQUENCE = "CENTENARIAN_SEQUENCE"

PROBLEM_DESCRIPTIONS: dict[str, str] = {
    BAD_LENGTH: "An ID number has 18 characters (or 15 digits for the old numbers).",
    BAD_CHARACTERS: "An ID number has only digits, and an X as its last character.",
    IMPOSSIBLE_DATE: "The birth date in the ID number is not a real date.",
    FUTURE_BIRTH_DATE: "The birth date in the ID number is in the future.",
    UNKNOWN_ADDRESS_CODE: "The first six digits are not a known mainland county code.",
    ADDRESS_CODE_NOT_IN_USE: "The county code was not in use when this number would have been assigned.",
    BAD_CHECK_DIGIT: "The last character does not match the check digit of the first 17 digits.",
    CENTENARIAN_SEQUENCE: "An old 15-digit number with a centenarian sequence code needs a manual check.",
}

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"  # index = sum mod 11
_DIGITS = frozenset("0123456789")
_FILLER_NAMES = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划", "省直辖行政单位"})


class Sex(enum.Enum):
    MALE = "MALE"
    FEMALE = "FEMALE"


@dataclass(frozen=True, slots=True)
class IdNumberCheck:
    """The answer of `check_id_number`: every field that could be derived, and every problem found."""

    valid: bool
    normalised: str
    birth_date: date | None
    sex: Sex | None
    region_code: str
    region_name: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdNumber:
    """A valid, normalised 18-digit citizen ID number."""

    value: str
    birth_date: date
    sex: Sex
    region_code: str

    @property
    def province_code(self) -> str:
        """The 2-digit province of the address code. It is where the number was *assigned*, not the
        current household register: never use it as the hukou province."""
        return self.value[:2]

    def masked(self) -> str:
        """For logs and receipts: ``110105********002X`` (region, then the last four)."""
        return self.value[:6] + "*" * 8 + self.value[14:]

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"IdNumber({self.masked()!r})"


# -- check digit and construction ------------------------------------------------------------------


def calc_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (docs/domain.md §1.1)."""
    if len(first17) != 17 or not set(first17) <= _DIGITS:
        raise ValueError("calc_check_digit needs exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def build_id_number(region_code: str, birth_date: date, sequence: int) -> str:
    """Assign an 18-digit number: region code, birth date, 3-digit sequence (odd = male, even = female)
    and check digit. Checks the parts' shape only; validate the result with `check_id_number`."""
    if len(region_code) != 6 or not set(region_code) <= _DIGITS:
        raise ValueError("region_code must be 6 digits")
    if not 1 <= sequence <= 999:
        raise ValueError("sequence must be between 1 and 999")
    if not 1000 <= birth_date.year <= 9999:
        raise ValueError("birth year must have 4 digits")
    first17 = f"{region_code}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + calc_check_digit(first17)


def sequence_for(sex: Sex, ordinal: int) -> int:
    """The `ordinal`-th (0-based) sequence number for `sex`: 1, 3, 5 … for men, 2, 4, 6 … for women."""
    sequence = 2 * ordinal + (1 if sex is Sex.MALE else 2)
    if not 1 <= sequence <= 999:
        raise ValueError("no sequence number left for this region and birth date")
    return sequence


# -- county code table (python-stdnum) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Period:
    name: str
    first_year: int | None
    last_year: int | None

    def covers(self, year: int) -> bool:
        return (self.first_year is None or year >= self.first_year) and (
            self.last_year is None or year <= self.last_year
        )


@lru_cache(maxsize=1)
def _code_table() -> tuple[dict[str, str], dict[str, tuple[_Period, ...]]]:
    """Provinces by 2-digit code, and the periods of use of every 6-digit code, from stdnum's loc.dat."""
    from stdnum import numdb

    provinces: dict[str, str] = {}
    codes: dict[str, tuple[_Period, ...]] = {}
    for block in _province_blocks():
        for length, low, high, props, children in numdb.read(block).prefixes:
            if length != 2 or low != high:
                continue
            provinces[low] = props.get("province", "")
            for c_length, c_low, c_high, c_props, _ in children:
                if c_length != 4 or c_low != c_high or "county" not in c_props:
                    continue
                codes[low + c_low] = tuple(_parse_periods(c_props["county"]))
    return provinces, codes


def _province_blocks() -> Iterator[list[str]]:
    """loc.dat a province at a time (its line, then its indented counties). Parsed whole (``numdb.get``),
    the file is a tree of about 4 MB that stdnum keeps for the life of the process; a province's tree is
    small and freed before the next is read, so the process keeps only the table above."""
    block: list[str] = []
    with (importlib.resources.files("stdnum") / "cn" / "loc.dat").open(encoding="utf-8") as lines:
        for line in lines:
            if line[:1].isdigit() and block:
                yield block
                block = []
            block.append(line)
    yield block


def _parse_periods(spec: str) -> list[_Period]:
    periods = []
    for item in spec.split(","):
        if not item.startswith("["):
            periods.append(_Period(item, None, None))
            continue
        years, name = item[1:].split("]", 1)
        first, last = years.split("-")
        periods.append(_Period(name, int(first) if first else None, int(last) if last else None))
    return periods


def load_tables() -> None:
    """Build the address-code table now: a few hundred ms of parsing, once a process, that the first
    request checking an ID number would otherwise spend while every other request waits. Every process
    calls it at start (services/common/assemble.py, the gateway's app)."""
    _code_table()


def known_address_codes() -> tuple[str, ...]:
    """Every mainland 6-digit code of the table, in use at some time (sorted)."""
    return tuple(sorted(c for c in _code_table()[1] if c[:2] not in NON_MAINLAND_PROVINCES))


def address_code_periods(code: str) -> tuple[tuple[str, int | None, int | None], ...]:
    """``(name, first year, last year)`` of each use of `code` (None = open-ended); empty if unknown."""
    if code[:2] in NON_MAINLAND_PROVINCES:
        return ()
    return tuple((p.name, p.first_year, p.last_year) for p in _code_table()[1].get(code, ()))


def address_check_years(birth_date: date) -> range:
    """The years in one of which the address code must have been in use (see the module notes):
    the birth year, or for people born before 1984 every year from the birth year to 1984."""
    return range(birth_date.year, max(birth_date.year, FIRST_ASSIGNMENT_YEAR) + 1)


def address_in_use_year(code: str, birth_date: date) -> int | None:
    """The first year of `address_check_years` in which `code` was in use, or None."""
    periods = _code_table()[1].get(code, ()) if code[:2] not in NON_MAINLAND_PROVINCES else ()
    years = address_check_years(birth_date)
    for period in periods:
        first = max(years.start, period.first_year or years.start)
        last = min(years.stop - 1, period.last_year or years.stop - 1)
        if first <= last:
            return first
    return None


def _name_in(code: str, year: int | None) -> str | None:
    for period in _code_table()[1].get(code, ()):
        if year is None or period.covers(year):
            return period.name
    return None


def region_name(code: str, year: int) -> str:
    """Province, prefecture and county names of `code` as they were in `year` (fillers such as 市辖区
    left out); "" if the code was not in use that year."""
    county = _name_in(code, year)
    if county is None or code[:2] in NON_MAINLAND_PROVINCES:
        return ""
    parts = [_code_table()[0].get(code[:2], "")]
    if code[2:4] != "00":
        prefecture = _name_in(code[:4] + "00", year)
        if prefecture and prefecture not in _FILLER_NAMES:
            parts.append(prefecture)
        if code[4:6] != "00" and county not in _FILLER_NAMES:
            parts.append(county)
    names: list[str] = []
    for part in parts:
        if part and part not in names:
            names.append(part)
    return "".join(names)


# -- validation --------------------------------------------------------------------------------------


def _parse_date(text: str) -> date | None:
    try:
        parsed = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return parsed if parsed.year >= EARLIEST_BIRTH_YEAR else None


def check_id_number(raw: str, today: date | None = None) -> IdNumberCheck:
    """Check an 18- or 15-digit ID number and report every problem found. Never raises.

    Surrounding whitespace is ignored and a lower-case ``x`` is read as ``X``. A valid 15-digit number is
    upgraded to 18 digits in `normalised`. `today`, when given, also flags a birth date after it.
    """
    text = (raw if isinstance(raw, str) else "").strip().upper()
    problems: list[str] = []
    if len(text) not in (15, 18):
        problems.append(BAD_LENGTH)
        if not set(text) <= _DIGITS | {"X"} or "X" in text[:-1]:
            problems.append(BAD_CHARACTERS)
        return IdNumberCheck(False, "", None, None, "", "", tuple(problems))

    long_form = len(text) == 18
    body = text[:17] if long_form else text
    if not set(body) <= _DIGITS or (long_form and text[17] not in _DIGITS | {"X"}):
        problems.append(BAD_CHARACTERS)

    region_code = text[:6] if set(text[:6]) <= _DIGITS else ""
    date_text = text[6:14] if long_form else "19" + text[6:12]
    sequence_text = text[14:17] if long_form else text[12:15]

    centenarian = (
        not long_form and set(sequence_text) <= _DIGITS and int(sequence_text) in CENTENARIAN_SEQUENCES
    )
    birth: date | None = None
    if set(date_text) <= _DIGITS:
        birth = _parse_date(date_text)
        if birth is None:
            problems.append(IMPOSSIBLE_DATE)
        elif today is not None and birth > today:
            problems.append(FUTURE_BIRTH_DATE)
    if centenarian:
        problems.append(CENTENARIAN_SEQUENCE)
        birth = None  # the century is not 19: unknown

    name = ""
    if region_code:
        periods = address_code_periods(region_code)
        if not periods:
            problems.append(UNKNOWN_ADDRESS_CODE)
        elif birth is not None:
            year = address_in_use_year(region_code, birth)
            if year is None:
                problems.append(ADDRESS_CODE_NOT_IN_USE)
            else:
                name = region_name(region_code, year)

    if long_form and BAD_CHARACTERS not in problems and calc_check_digit(body) != text[17]:
        problems.append(BAD_CHECK_DIGIT)

    sex = None
    if set(sequence_text) <= _DIGITS:
        sex = Sex.MALE if int(sequence_text) % 2 else Sex.FEMALE

    normalised = ""
    if BAD_CHARACTERS not in problems:
        if long_form:
            normalised = text
        elif birth is not None and not problems:
            first17 = text[:6] + date_text + sequence_text
            normalised = first17 + calc_check_digit(first17)

    ordered = tuple(p for p in PROBLEM_DESCRIPTIONS if p in problems)
    return IdNumberCheck(not ordered, normalised, birth, sex, region_code, name, ordered)


def require_id_number(raw: str, field: str, today: date | None = None) -> IdNumber:
    """The valid, normalised ID number, or `InvalidArgument` with one violation per problem."""
    check = check_id_number(raw, today)
    if not check.valid or check.birth_date is None or check.sex is None:
        raise InvalidArgument(
            [FieldViolation(field, problem, PROBLEM_DESCRIPTIONS[problem]) for problem in check.problems],
            message=f"{field}: invalid ID number",
        )
    return IdNumber(check.normalised, check.birth_date, check.sex, check.region_code)
