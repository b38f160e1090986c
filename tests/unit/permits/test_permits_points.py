"""The points table of docs/domain.md §4.2 (April 2017 trial version), row by row, as loaded from
policy.toml."""

from __future__ import annotations

import dataclasses

import pytest

from services.permits import domain as d


@pytest.fixture
def table(policy: d.PermitsPolicy) -> d.PointsTable:
    return policy.points_tables[0]


def item(table: d.PointsTable, make_request, age: int = 30, **overrides) -> dict[str, int]:
    return dict(d.score_points(make_request(**overrides), age, table).items)


def test_the_first_table_is_the_april_2017_trial(table: d.PointsTable) -> None:
    assert table.version == "2017-04-trial"
    assert table.max_total == 120


@pytest.mark.parametrize(
    ("salary", "points"),
    [
        (1_000_000, 20),
        (450_000, 20),  # ≥ 45万
        (449_999, 17),
        (350_000, 17),  # [35, 45)
        (349_999, 14),
        (250_000, 14),  # [25, 35)
        (249_999, 11),
        (150_000, 11),  # [15, 25)
        (149_999, 8),
        (70_000, 8),  # [7, 15)
        (69_999, 5),
        (50_000, 5),  # [5, 7)
        (49_999, 0),  # < 5
        (0, 0),
    ],
)
def test_salary_rows(table, make_request, salary: int, points: int) -> None:
    assert item(table, make_request, annual_salary=salary)["annual_salary"] == points


@pytest.mark.parametrize(
    ("education", "points"),
    [
        (d.Education.DOCTORATE, 20),
        (d.Education.MASTER, 15),
        (d.Education.BACHELOR, 10),
        (d.Education.OTHER, 0),
    ],
)
def test_education_rows(table, make_request, education: d.Education, points: int) -> None:
    assert item(table, make_request, education=education)["education"] == points


@pytest.mark.parametrize(
    ("years", "points"),
    [(0, 0), (1, 0), (2, 5), (3, 6), (4, 7), (11, 14), (12, 15), (13, 15), (40, 15)],
)
def test_work_experience_rows(table, make_request, years: int, points: int) -> None:
    assert item(table, make_request, experience_years=years)["experience"] == points


@pytest.mark.parametrize(
    ("months", "points"), [(12, 15), (9, 15), (8, 10), (6, 10), (5, 5), (3, 5), (2, 0), (0, 0)]
)
def test_months_per_year_in_china_rows(table, make_request, months: int, points: int) -> None:
    assert item(table, make_request, months_per_year_in_china=months)["months_in_china"] == points


@pytest.mark.parametrize(
    ("hsk", "degree_in_chinese", "points"),
    [
        (0, False, 0),
        (1, False, 2),
        (2, False, 4),
        (3, False, 6),
        (4, False, 8),
        (5, False, 10),
        (6, False, 10),
        (0, True, 10),  # a degree taught in Chinese counts like HSK5+
        (2, True, 10),  # the better of the two, never the sum
    ],
)
def test_chinese_rows(table, make_request, hsk: int, degree_in_chinese: bool, points: int) -> None:
    got = item(table, make_request, hsk_level=hsk, degree_taught_in_chinese=degree_in_chinese)
    assert got["chinese"] == points


# The published brackets "[18,25) · [26,45) · [46,55) · [56,60) · >60" leave 25, 45, 55 and 60 uncovered when
# read literally; policy.toml reads them as inclusive ranges of completed years (documented there).
@pytest.mark.parametrize(
    ("age", "points"),
    [
        (18, 10),
        (24, 10),
        (25, 10),  # gap: inside 18–25
        (26, 15),
        (44, 15),
        (45, 15),  # gap: inside 26–45
        (46, 10),
        (54, 10),
        (55, 10),  # gap: inside 46–55
        (56, 5),
        (59, 5),
        (60, 5),  # gap: inside 56–60
        (61, 0),
        (75, 0),
    ],
)
def test_age_rows_and_gaps(table, make_request, age: int, points: int) -> None:
    assert item(table, make_request, age=age)["age"] == points


def test_special_region_scores_10(table, make_request) -> None:
    assert item(table, make_request, special_region=True)["special_region"] == 10
    assert "special_region" not in item(table, make_request)


def test_top_university_or_fortune500_scores_5(table, make_request) -> None:
    assert item(table, make_request, top_university_or_fortune500=True)["top_university_or_fortune500"] == 5


def test_patent_is_not_an_item_of_the_trial_table(table, make_request) -> None:
    assert "patent" not in item(table, make_request, patent=True)


@pytest.mark.parametrize(("bonus", "points"), [(0, 0), (1, 1), (10, 10), (11, 10), (50, 10)])
def test_provincial_bonus_is_capped_at_10(table, make_request, bonus: int, points: int) -> None:
    assert item(table, make_request, provincial_bonus=bonus)["provincial_bonus"] == points


def test_a_plain_profile_adds_up(table, make_request) -> None:
    # salary 100k: 8 · bachelor: 10 · 4 years: 7 · no months in China · HSK3: 6 · age 30: 15
    breakdown = d.score_points(make_request(hsk_level=3), 30, table)
    assert breakdown.total == 8 + 10 + 7 + 6 + 15 == 46
    assert breakdown.table_version == "2017-04-trial"


def test_every_item_at_its_maximum_gives_exactly_120(table, make_request) -> None:
    best = make_request(
        annual_salary=450_000,
        education=d.Education.DOCTORATE,
        experience_years=12,
        months_per_year_in_china=9,
        hsk_level=5,
        special_region=True,
        top_university_or_fortune500=True,
        provincial_bonus=10,
    )
    breakdown = d.score_points(best, 30, table)
    assert sum(breakdown.items.values()) == 120
    assert breakdown.total == 120


def test_total_is_capped_at_the_table_maximum(table, make_request) -> None:
    small = dataclasses.replace(table, max_total=50)
    best = make_request(annual_salary=450_000, education=d.Education.DOCTORATE, experience_years=12)
    breakdown = d.score_points(best, 30, small)
    assert sum(breakdown.items.values()) > 50
    assert breakdown.total == 50
