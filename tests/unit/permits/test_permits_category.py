"""Category A/B/C boundaries (docs/domain.md §4.2) with the rules from policy.toml."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.errors import FailedPrecondition
from services.permits import domain as d

AVERAGE = 100_000  # a round synthetic local average for the boundary tests
A, B, C = d.Category.A, d.Category.B, d.Category.C


def plain(make_request, **overrides) -> d.WorkPermitRequest:
    """No B criterion of its own: no degree, no experience, low salary."""
    base = {"education": d.Education.OTHER, "experience_years": 0, "annual_salary": 50_000}
    return make_request(**(base | overrides))


def classify(policy, req, points: int = 0, age: int = 30) -> d.CategoryDecision:
    return d.classify(req, points, age, AVERAGE, policy.category_rules)


@pytest.mark.parametrize(
    ("points", "category"), [(0, C), (59, C), (60, B), (61, B), (84, B), (85, A), (86, A), (120, A)]
)
def test_points_boundaries(policy, make_request, points: int, category: d.Category) -> None:
    assert classify(policy, plain(make_request), points).category is category


@pytest.mark.parametrize(
    ("salary", "category", "ground"),
    [
        (6 * AVERAGE, A, "SALARY_AT_LEAST_6X_LOCAL_AVERAGE"),
        (6 * AVERAGE - 1, B, "SALARY_AT_LEAST_4X_LOCAL_AVERAGE"),
        (4 * AVERAGE, B, "SALARY_AT_LEAST_4X_LOCAL_AVERAGE"),
        (4 * AVERAGE - 1, C, None),
    ],
)
def test_salary_multiples_at_and_just_below(policy, make_request, salary, category, ground) -> None:
    decision = classify(policy, plain(make_request, annual_salary=salary))
    assert decision.category is category
    assert (ground in decision.grounds) if ground else decision.grounds == ()


@pytest.mark.parametrize(("age", "category"), [(18, B), (60, B), (61, C), (70, C)])
def test_b_age_limit(policy, make_request, age: int, category: d.Category) -> None:
    assert classify(policy, plain(make_request), points=60, age=age).category is category


def test_b_age_limit_can_be_relaxed(policy, make_request) -> None:
    decision = classify(policy, plain(make_request, age_limit_relaxed=True), points=60, age=61)
    assert decision.category is B
    assert "AGE_LIMIT_RELAXED" in decision.grounds


@pytest.mark.parametrize("age", [61, 75])
def test_a_has_no_age_limit(policy, make_request, age: int) -> None:
    assert classify(policy, plain(make_request), points=85, age=age).category is A


@pytest.mark.parametrize("criterion", list(d.SpecialCriterion))
def test_any_special_criterion_is_a_whatever_else(policy, make_request, criterion) -> None:
    decision = classify(
        policy, plain(make_request, special_criteria=frozenset({criterion})), points=0, age=70
    )
    assert decision.category is A
    assert decision.grounds == ("SPECIAL_CRITERIA",)


@pytest.mark.parametrize(
    ("education", "years", "category"),
    [
        (d.Education.BACHELOR, 2, B),
        (d.Education.BACHELOR, 1, C),
        (d.Education.MASTER, 2, B),
        (d.Education.DOCTORATE, 3, B),
        (d.Education.OTHER, 10, C),
    ],
)
def test_degree_and_two_years(policy, make_request, education, years, category) -> None:
    req = plain(make_request, education=education, experience_years=years)
    assert classify(policy, req).category is category


def test_international_skills_certificate_is_b(policy, make_request) -> None:
    req = plain(make_request, international_skills_certificate=True)
    assert classify(policy, req).grounds == ("INTERNATIONAL_SKILLS_CERTIFICATE",)


# ---- through submit_work_permit, with Shanghai's local average from policy.toml ----


def test_local_average_is_the_most_specific_region_in_force(policy) -> None:
    assert policy.local_average_salary("310115", dt.date(2017, 4, 1)) == 78_045
    assert policy.local_average_salary("310115", dt.date(2017, 3, 31)) == 71_268
    assert policy.local_average_salary("110105", dt.date(2017, 7, 1)) == 92_477


def test_unknown_local_average_is_refused(policy) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        policy.local_average_salary("440300", dt.date(2017, 4, 1))
    assert exc.value.reason == "LOCAL_AVERAGE_SALARY_UNKNOWN"


@pytest.mark.parametrize(("salary", "category"), [(6 * 78_045, A), (6 * 78_045 - 1, B), (4 * 78_045 - 1, C)])
def test_submitted_category_uses_shanghai_average(make_work_permit, salary: int, category) -> None:
    # 20 salary points + 15 age points: far from 60, so only the salary decides.
    app = make_work_permit(education=d.Education.OTHER, experience_years=0, annual_salary=salary)
    assert app.category is category
