"""What a person reads of a case and of the catalogue: a refused step's own words (masked, never on the
public view), halls by their region's name, the matters' Chinese descriptions and choice titles."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.cases import case_view
from gateway.catalogue import CatalogueError, load_catalogue
from gateway.regions import region_name
from gateway.saga.model import StepState
from gateway.store import Case, CaseStep
from gateway.web import forms
from gateway.web.i18n import place
from services.common.clock import Clock

CATALOGUE = load_catalogue()
DAY = dt.date(2016, 12, 30)
CLOCK = Clock(DAY)
RENEWAL = "id-card-renewal-cross-province"


def refused_case(message: str, hall: str | None = "310104") -> tuple[Case, list[CaseStep]]:
    now = dt.datetime(2016, 12, 30, 1, tzinfo=dt.UTC)
    case = Case(
        case_no="GH20161230ABCDEF",
        matter=RENEWAL,
        state="REJECTED",
        data={"applicant": {"id_number": "120101198503120115"}},
        materials={},
        outcome={"rejected": True, "reason": "RESIDENCE_PERMIT_EXPIRED"},
        submitted_on=DAY,
        updated_at=now,
        hall=hall,
        checked_materials={},
    )
    step = CaseStep(
        step_key="card",
        department="identity",
        action="identity.card_renewal",
        state=StepState.REFUSED,
        department_state="",
        reason="RESIDENCE_PERMIT_EXPIRED",
        message=message,
        result={"violations": [], "code": "FAILED_PRECONDITION"},
    )
    return case, [step]


def test_a_refused_step_carries_the_departments_words_masked_to_its_applicant_only() -> None:
    case, steps = refused_case("The residence permit of 120101198503120115 has expired.")
    mine = case_view(case, steps, CATALOGUE, CLOCK, personal=True)
    [step] = mine["steps"]
    assert step["reason"] == "RESIDENCE_PERMIT_EXPIRED"
    assert step["department_message"] == "The residence permit of 120*************15 has expired."
    public = case_view(case, steps, CATALOGUE, CLOCK, personal=False)
    assert "department_message" not in public["steps"][0]


def test_a_step_not_refused_shows_no_department_message() -> None:
    case, [step] = refused_case("answer not understood: KeyError")  # a failure's words stay with staff
    step.state = StepState.NEEDS_ATTENTION
    view = case_view(case, [step], CATALOGUE, CLOCK, personal=True)
    assert "department_message" not in view["steps"][0]


def test_a_hall_is_named_beside_its_code_and_an_unknown_code_stands_for_itself() -> None:
    case, steps = refused_case("")
    view = case_view(case, steps, CATALOGUE, CLOCK, personal=True)
    assert (view["hall"], view["hall_name"], view["hall_name_zh"]) == (
        "310104",
        "Xuhui District, Shanghai",
        "上海市徐汇区",
    )
    assert "hall_name" not in case_view(case, steps, CATALOGUE, CLOCK, personal=False)
    assert region_name("999999", "zh") == region_name("999999", "en") == "999999"
    assert place("zh", "310104") == "上海市徐汇区（310104）"
    assert place("en", "999999") == "999999"


def test_every_hall_the_catalogue_and_the_demo_population_use_has_a_name() -> None:
    from services.residence.population import AREAS  # the demo population's districts

    for area in AREAS:
        assert region_name(area.code, "zh").endswith(area.name), area.code
        assert region_name(area.code, "en") != area.code, area.code
    for code in ("440106", "110000", "120000", "310000"):  # a station's district, the provinces
        assert region_name(code, "zh") != code, code


def test_every_matter_has_a_chinese_description_and_every_choice_its_titles() -> None:
    for matter in CATALOGUE.values():
        public = matter.public()
        assert public["description_zh"] and public["description_zh"] != public["description"]
        for field in public["fields"]:
            if "choices" in field:
                assert [c["code"] for c in field["choice_titles"]] == field["choices"]
                assert all(c["title"] and c["title_zh"] for c in field["choice_titles"])
    renewal = CATALOGUE[RENEWAL]
    fields, _, _ = forms.controls(renewal, "en", labels={"phone": "", "email": "", "notify_language": ""})
    reason = next(c for c in fields if c.name == "data.renewal_reason")
    assert ("EXPIRY", "Validity ended or ending") in reason.choices


def test_a_choice_without_its_titles_stops_the_catalogue() -> None:
    from gateway.catalogue import _matter

    raw = {
        "id": "x",
        "title": "X",
        "title_zh": "X",
        "applicant_field": "a",
        "available_from": DAY,
        "fields": [{"path": "a", "kind": "choice", "title": "A", "title_zh": "甲", "choices": ["ONE"]}],
        "steps": [],
        "time_limits": [],
    }
    with pytest.raises(CatalogueError, match=r"x\.toml: missing or malformed"):
        _matter(raw, "x.toml", {})
