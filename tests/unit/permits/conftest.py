"""Fixtures for the permits domain tests: the packaged policy and synthetic applicants (no real people)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from stdnum.cn import uscc

from services.permits import domain as d
from services.permits.domain import PermitsPolicy
from services.permits.policy import default_policy

# Synthetic codes: python-stdnum's documented example, and one built with its check character.
EMPLOYER_USCC = "91110000600037341L"
OTHER_USCC_BODY = "91310115MA1FL0000"
OTHER_USCC = OTHER_USCC_BODY + uscc.calc_check_digit(OTHER_USCC_BODY)

TODAY = dt.date(2017, 4, 10)  # a Monday, after the nationwide roll-out

NOTICE_ITEMS = (
    "wp_application_form",
    "work_experience_proof",
    "degree_certificate",
    "no_criminal_record",
    "health_certificate",
    "contract",
    "passport",
    "photo",
)
RESIDENCE_ITEMS = (
    "passport_and_visa",
    "rp_application_form",
    "photo",
    "health_certificate",
    "employer_letter",
    "employer_licence_copy",
    "work_permit",
)


@pytest.fixture(scope="session")
def policy() -> PermitsPolicy:
    return default_policy()


@pytest.fixture
def employer() -> d.Employer:
    return d.register_employer(EMPLOYER_USCC, "Synthetic Widgets Ltd", "1 Example Road, Pudong")


def applicant(**overrides: Any) -> d.Applicant:
    base = d.Applicant("E1234567", "GBR", "Testperson", "Alex", dt.date(1985, 6, 15), d.Sex.FEMALE)
    return dataclasses.replace(base, **overrides)


def request(**overrides: Any) -> d.WorkPermitRequest:
    """A plain request that scores 15 (age) + 10 (bachelor) + 8 (salary 100k) + 7 (4 years) = 40 points:
    category B by degree and experience."""
    base = d.WorkPermitRequest(
        applicant=applicant(),
        employer_uscc=EMPLOYER_USCC,
        position="Software engineer",
        work_region="310115",
        contract=d.Contract(dt.date(2017, 5, 1), dt.date(2019, 4, 30)),
        annual_salary=100_000,
        education=d.Education.BACHELOR,
        experience_years=4,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def notice_items() -> tuple[str, ...]:
    """Every item of the work permit notice checklist except the automatic employer registration."""
    return NOTICE_ITEMS


@pytest.fixture
def residence_items() -> tuple[str, ...]:
    return RESIDENCE_ITEMS


@pytest.fixture(name="make_applicant")
def make_applicant_fixture() -> Callable[..., d.Applicant]:
    return applicant


@pytest.fixture(name="make_request")
def make_request_fixture() -> Callable[..., d.WorkPermitRequest]:
    return request


@pytest.fixture
def make_work_permit(policy: PermitsPolicy, employer: d.Employer) -> Callable[..., d.WorkPermitApplication]:
    """A work permit application driven through the real transitions up to `state`."""

    def make(
        state: d.PermitState = d.PermitState.SUBMITTED, today: dt.date = TODAY, **overrides: Any
    ) -> d.WorkPermitApplication:
        """The application in `state`; the events of the way there are in `make.events`, in order."""
        events: list[Any] = []
        make.events = events  # type: ignore[attr-defined]

        def step(changed: Any) -> d.WorkPermitApplication:
            events.extend(changed.events)
            return changed.state  # type: ignore[no-any-return]

        app = step(d.submit_work_permit("wp-1", request(**overrides), employer, today, policy))
        S = d.PermitState
        if state is S.SUBMITTED:
            return app
        if state is S.AWAITING_MATERIALS:
            return step(app.supply_materials(["passport"], today, policy))
        app = step(app.supply_materials(NOTICE_ITEMS, today, policy))
        if state is S.UNDER_REVIEW:
            return app
        if state is S.REJECTED:
            return step(app.reject(["synthetic reason"], today))
        if state is S.CANCELLED:
            return step(app.cancel(today))
        app = step(app.approve(today))
        if state is S.APPROVED:
            return app
        app = step(app.supply_after_entry_materials(["z_or_r_visa_with_entry_stamp"], today, policy))
        app = step(app.issue(d.permit_number(1, "310000"), today, policy))
        assert state is S.ISSUED
        return app

    return make
