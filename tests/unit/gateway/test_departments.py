"""The department adapters: each action reads only the fields it declares, the catalogue refuses at start
a matter whose steps read fields it does not declare, and each RPC is checked against its service."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.catalogue import CatalogueError, load_catalogue
from gateway.departments import ACTIONS, StepInput, UndeclaredField
from gateway.departments.base import Service
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2


def test_every_matter_reads_only_what_it_declares() -> None:
    catalogue = load_catalogue()
    for matter in catalogue.values():
        paths = {f.path for f in matter.fields}
        for step in matter.steps:
            assert ACTIONS[step.action].reads <= paths, (matter.id, step.key)


def test_a_refusal_about_a_field_names_one_the_action_reads() -> None:
    for action in ACTIONS.values():
        assert set(action.refused_fields.values()) <= action.reads, action.name
    renewal = ACTIONS["identity.card_renewal"]
    assert renewal.refused_fields["RESIDENCE_PERMIT_EXPIRED"] == "residence_permit.valid_until"
    # the replacement is taken at a station, not an accepting office: that refusal is not about its fields
    assert "CROSS_PROVINCE_NOT_OFFERED_HERE" not in ACTIONS["identity.card_replacement"].refused_fields


def test_a_matter_whose_step_reads_an_undeclared_field_is_refused_at_start() -> None:
    renewal = ACTIONS["identity.card_renewal"]
    typo = dataclasses.replace(renewal, reads=renewal.reads | {"applicant.id_numbr"})
    with pytest.raises(CatalogueError, match=r"card_renewal reads undeclared fields applicant\.id_numbr"):
        load_catalogue({**ACTIONS, typo.name: typo})


def test_a_builder_reading_a_field_it_did_not_declare_fails_loudly() -> None:
    step = StepInput(
        data={"applicant": {"id_number": "x"}}, reads=frozenset(), materials=[], results={}, request_id="r"
    )
    with pytest.raises(UndeclaredField):
        step.get("applicant.id_number")


def test_rpcs_are_checked_against_the_service_and_requests_against_their_type() -> None:
    rpc = Service(identity_pb2.DESCRIPTOR, "IdentityService").rpc
    with pytest.raises(ValueError, match="0 methods"):  # no method takes this and answers that
        rpc(identity_pb2.CreateCardApplicationRequest, identity_pb2.CancelCardApplicationResponse)
    create = rpc(identity_pb2.CreateCardApplicationRequest, identity_pb2.CreateCardApplicationResponse)
    assert create.name == "CreateCardApplication"
    assert create.check(identity_pb2.CreateCardApplicationRequest()) is not None
    with pytest.raises(TypeError):
        create.check(identity_pb2.CancelCardApplicationRequest())


def test_every_action_builds_its_own_rpc_request_type() -> None:
    for action in ACTIONS.values():
        assert action.rpc.descriptor.input_type.name.endswith("Request"), action.name
        if action.compensable:
            assert action.compensate_rpc is not None and action.compensate_build is not None


def _input(action: str, data: dict, **kwargs: object) -> StepInput:
    return StepInput(
        data=data,
        reads=ACTIONS[action].reads,
        materials=[],
        results=kwargs.get("results", {}),  # type: ignore[arg-type]
        request_id="r-1",
        resources=kwargs.get("resources", {}),  # type: ignore[arg-type]
    )


APPLICANT = {"applicant": {"id_number": "11010519491231002X", "name": "陈沪明"}}


def test_a_replacement_files_the_loss_with_it_and_a_cross_province_renewal_asks_for_it() -> None:
    replacement = ACTIONS["identity.card_replacement"]
    request = replacement.build(_input(replacement.name, {**APPLICANT, "station_region_code": "310104"}))
    assert request.report_loss and not request.require_cross_province
    renewal = ACTIONS["identity.card_renewal"]
    data = {**APPLICANT, "accepting_region_code": "310104", "renewal_reason": "EXPIRY"}
    request = renewal.build(_input(renewal.name, data))
    assert request.require_cross_province and not request.report_loss
    assert "identity.loss_report" not in ACTIONS  # the separate loss-report step is gone


def test_card_events_add_fee_pickup_date_and_place_and_the_rejection_code() -> None:
    result = ACTIONS["identity.card_renewal"].event_result
    assert result is not None
    ready = result(
        "CardReadyForPickup",
        {"fee_fen": 4000.0, "ready_on": "2016-10-20", "collect_at_region_code": "310104", "id_number": "x"},
    )
    assert ready == {"fee_fen": 4000, "ready_on": "2016-10-20", "collect_at_region_code": "310104"}
    submitted = result(
        "CardApplicationSubmitted",
        {"loss_report_id": "lr-1", "loss_already_reported": True, "loss_reported_on": "2016-09-01"},
    )
    assert submitted["loss_report"] == {"already_reported": True, "reported_on": "2016-09-01"}
    assert result("CardApplicationRejected", {"rejection_code": "PHOTO"})["rejection_code"] == "PHOTO"
    rejected = result("CardApplicationRejected", {"rejection_code": "PHOTO", "loss_report_withdrawn": True})
    assert rejected["loss_report"] == {"withdrawn": True}  # the card is valid again


def test_rejections_carry_their_codes() -> None:
    card = ACTIONS["identity.card_renewal"].decision
    assert card is not None
    request = card.reject("a-1", "r-1", ["照片不符合要求"], ["PHOTO_NOT_COMPLIANT"])
    assert (request.reason, request.reason_code) == ("照片不符合要求", "PHOTO_NOT_COMPLIANT")
    permit = ACTIONS["permits.work_permit"].decision
    assert permit is not None
    request = permit.reject("w-1", "r-1", ["degree", "salary"], ["DEGREE", "SALARY"])
    assert list(request.reason_codes) == ["DEGREE", "SALARY"]


FOREIGNER = {
    "applicant": {
        "passport_number": "E12345678",
        "nationality": "GBR",
        "surname": "Testperson",
        "given_names": "Alex",
        "birth_date": "1985-04-02",
        "sex": "MALE",
    },
    "employer_uscc": "91310000MA1FL0000X",
    "position": "Engineer",
    "work_region": "310115",
    "contract": {"start_date": "2016-10-01", "end_date": "2018-09-30"},
    "annual_salary_yuan": 400000,
    "education": "MASTER",
    "experience_years": 6,
}


def test_all_category_inputs_reach_permits() -> None:
    work = ACTIONS["permits.work_permit"]
    category = {
        "special_criteria": ["TALENT_PROGRAMME", "YOUNG_TALENT"],
        "top_university_or_fortune500": True,
        "special_region": True,
        "provincial_bonus": 7,
        "degree_taught_in_chinese": True,
        "international_skills_certificate": True,
        "age_limit_relaxed": True,
        "short_stay": True,
        "patent": True,
    }
    request = work.build(_input(work.name, {**FOREIGNER, "category": category}))
    assert list(request.special_criteria) == [
        permits_pb2.SPECIAL_CRITERION_TALENT_PROGRAMME,
        permits_pb2.SPECIAL_CRITERION_YOUNG_TALENT,
    ]
    assert request.top_university_or_fortune500 and request.special_region and request.patent
    assert request.provincial_bonus == 7 and request.chinese.degree_taught_in_chinese
    assert request.international_skills_certificate and request.age_limit_relaxed and request.short_stay
    plain = work.build(_input(work.name, FOREIGNER))
    assert not plain.special_criteria and not plain.short_stay and plain.provincial_bonus == 0


def test_a_job_change_names_the_held_residence_permit_instead_of_an_entry_date() -> None:
    residence = ACTIONS["permits.residence_permit"]
    data = {**FOREIGNER, "held_residence_permit_number": "RP-310000-1"}
    request = residence.build(_input(residence.name, data, resources={"work_permit": "w-1"}))
    assert request.held_residence_permit_number == "RP-310000-1"
    assert request.work_permit_id == "w-1" and not request.HasField("entry_date")


def test_permit_events_add_number_validity_and_fee() -> None:
    result = ACTIONS["permits.residence_permit"].event_result
    assert result is not None
    assert result("ResidencePermitApproved", {"fee_fen": 80000.0, "fee_yuan": 800.0}) == {"fee_fen": 80000}
    issued = result("ResidencePermitIssued", {"permit_number": "RP-1", "valid_until": "2018-09-30"})
    assert issued == {"permit_number": "RP-1", "valid_until": "2018-09-30"}
    cancelled = result("ResidencePermitCancelled", {"cause": "WORK_PERMIT_CANCELLED"})
    assert cancelled == {"cancellation_cause": "WORK_PERMIT_CANCELLED"}


def test_a_birth_names_the_declarant_and_the_parents() -> None:
    birth = ACTIONS["residence.birth"]
    data = {
        "household_number": "H-1",
        "newborn": {
            "name": "陈小",
            "sex": "FEMALE",
            "birth_date": "2016-09-01",
            "birth_place": "上海",
            "ethnicity": "汉",
        },
        "relationship_code": "31",
        "guardian": {"id_number": "11010519491231002X"},
        "mother_id_number": "110105194912310029",
    }
    request = birth.build(_input(birth.name, data))
    assert request.declarant_id_number == "11010519491231002X"
    assert request.mother_id_number == "110105194912310029" and request.father_id_number == ""
