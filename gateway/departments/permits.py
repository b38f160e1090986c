"""Permits (foreign employees): the work permit and the residence permit applications, their events,
the back office's approve/reject, and the hand-over (the permit was issued by the department; the counter
records that it was handed over)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.departments.base import (
    Action,
    Decision,
    FollowUp,
    Outcome,
    Req,
    Resp,
    Rpc,
    Service,
    StepInput,
    cancel_request,
    date_of,
    proto_date,
    record_request,
    whole,
)
from gateway.saga.model import StepState as S
from govhub.permits.v1 import permits_pb2

rpc = Service(permits_pb2.DESCRIPTOR, "PermitsService").rpc
CREATE_WORK = rpc(
    permits_pb2.CreateWorkPermitApplicationRequest, permits_pb2.CreateWorkPermitApplicationResponse
)
CANCEL_WORK = rpc(
    permits_pb2.CancelWorkPermitApplicationRequest, permits_pb2.CancelWorkPermitApplicationResponse
)
APPROVE_WORK = rpc(
    permits_pb2.ApproveWorkPermitApplicationRequest, permits_pb2.ApproveWorkPermitApplicationResponse
)
REJECT_WORK = rpc(
    permits_pb2.RejectWorkPermitApplicationRequest, permits_pb2.RejectWorkPermitApplicationResponse
)
ISSUE_WORK = rpc(permits_pb2.IssueWorkPermitRequest, permits_pb2.IssueWorkPermitResponse)
CREATE_RESIDENCE = rpc(
    permits_pb2.CreateResidencePermitApplicationRequest, permits_pb2.CreateResidencePermitApplicationResponse
)
CANCEL_RESIDENCE = rpc(
    permits_pb2.CancelResidencePermitApplicationRequest, permits_pb2.CancelResidencePermitApplicationResponse
)
APPROVE_RESIDENCE = rpc(
    permits_pb2.ApproveResidencePermitApplicationRequest,
    permits_pb2.ApproveResidencePermitApplicationResponse,
)
REJECT_RESIDENCE = rpc(
    permits_pb2.RejectResidencePermitApplicationRequest, permits_pb2.RejectResidencePermitApplicationResponse
)
ISSUE_RESIDENCE = rpc(permits_pb2.IssueResidencePermitRequest, permits_pb2.IssueResidencePermitResponse)


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
        sex=f"SEX_{step.get('applicant.sex')}",
    )


def _work_permit_request(step: StepInput) -> permits_pb2.CreateWorkPermitApplicationRequest:
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
        education=f"EDUCATION_{step.get('education')}",
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
            f"SPECIAL_CRITERION_{code}" for code in step.get("category.special_criteria") or ()
        ],
        international_skills_certificate=bool(step.get("category.international_skills_certificate")),
        age_limit_relaxed=bool(step.get("category.age_limit_relaxed")),
        short_stay=bool(step.get("category.short_stay")),
        patent=bool(step.get("category.patent")),
        materials=step.materials,
    )


def _work_permit_outcome(response: permits_pb2.CreateWorkPermitApplicationResponse) -> Outcome:
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


def _residence_permit_request(step: StepInput) -> permits_pb2.CreateResidencePermitApplicationRequest:
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


def _residence_permit_outcome(response: permits_pb2.CreateResidencePermitApplicationResponse) -> Outcome:
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


ISSUE_SUMMARY = "Issue the approved permit (the permit number and validity are set by the department)"


def _permit_action(
    key: str,
    create: Rpc[Req, Resp],
    build: Callable[[StepInput], Req],
    outcome: Callable[[Resp], Outcome],
    reads: frozenset[str],
    shown: tuple[str, ...],
    undo: Rpc[Any, Any],
    approve: Rpc[Any, Any],
    reject: Rpc[Any, Any],
    issue: Rpc[Any, Any],
) -> Action[Req, Resp]:
    """A permit application (``key``: work_permit or residence_permit): the same life for both — undone
    by its cancel, decided by the back office, then issued; its events are named ``WorkPermit…``."""
    return Action(
        name=f"permits.{key}",
        department="permits",
        rpc=create,
        build=build,
        outcome=outcome,
        reads=reads,
        compensate_rpc=undo,
        compensate_build=cancel_request(undo),
        events=_permit_events(key.title().replace("_", "")),
        event_result=permit_event_result,
        shown=shown,
        decision=Decision(
            approve,
            record_request(approve),
            reject,
            lambda rid, req, reasons, codes: reject.request(
                request_id=req, id=rid, reasons=reasons, reason_codes=codes
            ),
            _state_of(f"{key}_application"),
            {"issue": FollowUp(issue, record_request(issue), frozenset({"APPROVED"}), ISSUE_SUMMARY)},
        ),
    )


ACTIONS: list[Action[Any, Any]] = [
    _permit_action(
        "work_permit",
        CREATE_WORK,
        _work_permit_request,
        _work_permit_outcome,
        _APPLICANT_READS
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
        ("category", "permit_number", "valid_from", "valid_until"),
        CANCEL_WORK,
        APPROVE_WORK,
        REJECT_WORK,
        ISSUE_WORK,
    ),
    _permit_action(
        "residence_permit",
        CREATE_RESIDENCE,
        _residence_permit_request,
        _residence_permit_outcome,
        frozenset(
            {
                "applicant.passport_number",
                "applicant.nationality",
                "entry_date",
                "requested_valid_until",
                "held_residence_permit_number",
            }
        ),
        ("fee_fen", "permit_number", "valid_from", "valid_until", "cancellation_cause"),
        CANCEL_RESIDENCE,
        APPROVE_RESIDENCE,
        REJECT_RESIDENCE,
        ISSUE_RESIDENCE,
    ),
]
