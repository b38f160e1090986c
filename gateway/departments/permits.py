"""Permits (foreign employees): the work permit and the residence permit applications, their events,
the back office's approve/reject, and the hand-over (the permit was issued by the department; the counter
records that it was handed over)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.departments.base import (
    Action,
    Decision,
    Outcome,
    StepInput,
    date_of,
    proto_date,
    service,
    whole,
)
from gateway.saga.model import StepState as S
from govhub.common.v1 import common_pb2
from govhub.permits.v1 import permits_pb2

rpc = service(permits_pb2.DESCRIPTOR, "PermitsService")
CREATE_WORK = rpc("CreateWorkPermitApplication")
CANCEL_WORK = rpc("CancelWorkPermitApplication")
APPROVE_WORK = rpc("ApproveWorkPermitApplication")
REJECT_WORK = rpc("RejectWorkPermitApplication")
CREATE_RESIDENCE = rpc("CreateResidencePermitApplication")
CANCEL_RESIDENCE = rpc("CancelResidencePermitApplication")
APPROVE_RESIDENCE = rpc("ApproveResidencePermitApplication")
REJECT_RESIDENCE = rpc("RejectResidencePermitApplication")


def _permit_state(state: int) -> tuple[S, str]:
    name = str(permits_pb2.PermitState.Name(state)).removeprefix("PERMIT_STATE_")
    step_state = {"APPROVED": S.APPROVED, "ISSUED": S.READY}.get(name, S.ACCEPTED)
    return step_state, name


def _state_of(field: str) -> Callable[[Any], str]:
    def state(response: Any) -> str:
        return _permit_state(getattr(response, field).state)[1]

    return state


# The eight inputs that decide a foreigner's category (§4.2), passed through as the applicant declared them.
CATEGORY_INPUTS = (
    "category.special_criteria",
    "category.top_university_or_fortune500",
    "category.special_region",
    "category.provincial_bonus",
    "category.degree_taught_in_chinese",
    "category.international_skills_certificate",
    "category.age_limit_relaxed",
    "category.short_stay",
    "category.patent",
)

_APPLICANT_READS = frozenset(
    {
        "applicant.passport_number",
        "applicant.nationality",
        "applicant.surname",
        "applicant.given_names",
        "applicant.birth_date",
        "applicant.sex",
    }
)


def _applicant(step: StepInput) -> permits_pb2.Applicant:
    return permits_pb2.Applicant(
        passport_number=step.get("applicant.passport_number"),
        nationality=step.get("applicant.nationality"),
        surname=step.get("applicant.surname"),
        given_names=step.get("applicant.given_names"),
        birth_date=proto_date(step.get("applicant.birth_date")),
        sex=common_pb2.Sex.Value(f"SEX_{step.get('applicant.sex')}"),
    )


def _work_permit_request(step: StepInput) -> Any:
    return permits_pb2.CreateWorkPermitApplicationRequest(
        request_id=step.request_id,
        applicant=_applicant(step),
        employer_uscc=step.get("employer_uscc"),
        position=step.get("position"),
        work_region=step.get("work_region"),
        contract=permits_pb2.Contract(
            start_date=proto_date(step.get("contract.start_date")),
            end_date=proto_date(step.get("contract.end_date")),
        ),
        annual_salary_fen=int(step.get("annual_salary_yuan")) * 100,
        education=permits_pb2.Education.Value(f"EDUCATION_{step.get('education')}"),
        experience_years=int(step.get("experience_years") or 0),
        chinese=permits_pb2.Chinese(
            hsk_level=int(step.get("chinese_hsk_level") or 0),
            degree_taught_in_chinese=bool(step.get("category.degree_taught_in_chinese")),
        ),
        months_per_year_in_china=int(step.get("months_per_year_in_china") or 0),
        special_region=bool(step.get("category.special_region")),
        top_university_or_fortune500=bool(step.get("category.top_university_or_fortune500")),
        provincial_bonus=int(step.get("category.provincial_bonus") or 0),
        special_criteria=[
            permits_pb2.SpecialCriterion.Value(f"SPECIAL_CRITERION_{code}")
            for code in step.get("category.special_criteria") or ()
        ],
        international_skills_certificate=bool(step.get("category.international_skills_certificate")),
        age_limit_relaxed=bool(step.get("category.age_limit_relaxed")),
        short_stay=bool(step.get("category.short_stay")),
        patent=bool(step.get("category.patent")),
        materials=step.materials,
    )


def _work_permit_outcome(response: Any) -> Outcome:
    app = response.work_permit_application
    state, name = _permit_state(app.state)
    return Outcome(
        resource_id=app.id,
        state=state,
        department_state=name,
        statutory_deadline=date_of(app.decision_due_date),
        result={
            "id": app.id,
            "category": str(permits_pb2.Category.Name(app.category)).removeprefix("CATEGORY_"),
        },
    )


def _residence_permit_request(step: StepInput) -> Any:
    """Lodged when the case is submitted, right after the work permit (still pending: permits decides it
    after the work permit, counting the 30 days from entry to this application's date). A job change
    inside China names the residence permit held instead of an entry date."""
    requested = step.get("requested_valid_until")
    entry = step.get("entry_date")
    return permits_pb2.CreateResidencePermitApplicationRequest(
        request_id=step.request_id,
        passport_number=step.get("applicant.passport_number"),
        nationality=step.get("applicant.nationality"),
        work_permit_id=step.resources["work_permit"],
        entry_date=proto_date(entry) if entry else None,
        requested_valid_until=proto_date(requested) if requested else None,
        materials=step.materials,
        held_residence_permit_number=step.get("held_residence_permit_number") or "",
    )


def _residence_permit_outcome(response: Any) -> Outcome:
    app = response.residence_permit_application
    state, name = _permit_state(app.state)
    return Outcome(
        resource_id=app.id,
        state=state,
        department_state=name,
        statutory_deadline=date_of(app.decision_due_date),
        result={"id": app.id, **({"fee_fen": app.fee_fen} if app.fee_fen else {})},
    )


def permit_event_result(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a permit's event adds to the step's result: the fee fixed on approval, the permit's number
    and validity once issued, the category."""
    result: dict[str, Any] = {}
    if fee := whole(data.get("fee_fen")):
        result["fee_fen"] = fee
    for key in ("permit_number", "valid_from", "valid_until", "category"):
        if data.get(key):
            result[key] = data[key]
    if event_type.endswith("Cancelled") and data.get("cause"):
        result["cancellation_cause"] = data["cause"]
    return result


def _cancel_work_permit(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return permits_pb2.CancelWorkPermitApplicationRequest(
        request_id=request_id, id=resource_id, reason=reason
    )


def _cancel_residence_permit(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return permits_pb2.CancelResidencePermitApplicationRequest(
        request_id=request_id, id=resource_id, reason=reason
    )


def _permit_events(prefix: str) -> dict[str, tuple[S, str]]:
    return {
        f"{prefix}AwaitingMaterials": (S.ACCEPTED, "AWAITING_MATERIALS"),
        f"{prefix}UnderReview": (S.ACCEPTED, "UNDER_REVIEW"),
        f"{prefix}ReviewExtended": (S.ACCEPTED, "UNDER_REVIEW"),
        f"{prefix}Approved": (S.APPROVED, "APPROVED"),
        f"{prefix}Rejected": (S.REFUSED, "REJECTED"),
        f"{prefix}Issued": (S.READY, "ISSUED"),
        f"{prefix}Cancelled": (S.CANCELLED, "CANCELLED"),
    }


ACTIONS = [
    Action(
        name="permits.work_permit",
        department="permits",
        rpc=CREATE_WORK,
        build=_work_permit_request,
        outcome=_work_permit_outcome,
        reads=_APPLICANT_READS
        | {
            "employer_uscc",
            "position",
            "work_region",
            "contract.start_date",
            "contract.end_date",
            "annual_salary_yuan",
            "education",
            "experience_years",
            "chinese_hsk_level",
            "months_per_year_in_china",
            *CATEGORY_INPUTS,
        },
        compensate_rpc=CANCEL_WORK,
        compensate_build=_cancel_work_permit,
        events=_permit_events("WorkPermit"),
        event_result=permit_event_result,
        shown=("category", "permit_number", "valid_from", "valid_until"),
        decision=Decision(
            APPROVE_WORK,
            lambda rid, req: permits_pb2.ApproveWorkPermitApplicationRequest(request_id=req, id=rid),
            REJECT_WORK,
            lambda rid, req, reasons, codes: permits_pb2.RejectWorkPermitApplicationRequest(
                request_id=req, id=rid, reasons=reasons, reason_codes=codes
            ),
            _state_of("work_permit_application"),
        ),
    ),
    Action(
        name="permits.residence_permit",
        department="permits",
        rpc=CREATE_RESIDENCE,
        build=_residence_permit_request,
        outcome=_residence_permit_outcome,
        reads=frozenset(
            {
                "applicant.passport_number",
                "applicant.nationality",
                "entry_date",
                "requested_valid_until",
                "held_residence_permit_number",
            }
        ),
        compensate_rpc=CANCEL_RESIDENCE,
        compensate_build=_cancel_residence_permit,
        events=_permit_events("ResidencePermit"),
        event_result=permit_event_result,
        shown=("fee_fen", "permit_number", "valid_from", "valid_until", "cancellation_cause"),
        decision=Decision(
            APPROVE_RESIDENCE,
            lambda rid, req: permits_pb2.ApproveResidencePermitApplicationRequest(request_id=req, id=rid),
            REJECT_RESIDENCE,
            lambda rid, req, reasons, codes: permits_pb2.RejectResidencePermitApplicationRequest(
                request_id=req, id=rid, reasons=reasons, reason_codes=codes
            ),
            _state_of("residence_permit_application"),
        ),
    ),
]
