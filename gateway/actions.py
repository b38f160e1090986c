"""What each step's department action sends and how the department's answers move the step.

An action knows its department, how to build the request from the case's data, what the answer
means (the department's resource id, sub-status and statutory deadline), how to undo it
(compensation), and which department events move the step on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.catalogue import get_value
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2
from govhub.residence.v1 import residence_pb2

# Step states, in the order a step moves forward.
PENDING = "PENDING"
RUNNING = "RUNNING"
ACCEPTED = "ACCEPTED"
APPROVED = "APPROVED"
READY = "READY"
DONE = "DONE"
REFUSED = "REFUSED"
NEEDS_ATTENTION = "NEEDS_ATTENTION"
COMPENSATING = "COMPENSATING"
COMPENSATED = "COMPENSATED"
CANCELLED = "CANCELLED"
SKIPPED = "SKIPPED"  # an optional step the applicant did not ask for

SATISFIED = frozenset({APPROVED, READY, DONE, SKIPPED})  # a dependent step may start
STARTED = frozenset(
    {ACCEPTED, APPROVED, READY, DONE, SKIPPED}
)  # ... if it only needs the department to hold it
HELD_BY_DEPARTMENT = frozenset({ACCEPTED, APPROVED, READY, DONE})  # undone by compensation, where it can be
FINAL = frozenset({DONE, REFUSED, COMPENSATED, CANCELLED, SKIPPED})
RANK = {PENDING: 0, RUNNING: 1, ACCEPTED: 2, APPROVED: 3, READY: 4, DONE: 5}


@dataclass(frozen=True)
class StepInput:
    """What a step's request is built from."""

    data: dict[str, Any]  # the validated submission
    materials: list[common_pb2.MaterialReference]  # references to this step's materials only
    results: dict[str, dict[str, Any]]  # earlier steps' results, by step key
    request_id: str


@dataclass(frozen=True)
class Outcome:
    resource_id: str
    state: str  # ACCEPTED, APPROVED, READY or DONE
    department_state: str
    statutory_deadline: dt.date | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    name: str
    department: str
    method: str
    build: Callable[[StepInput], Any]
    outcome: Callable[[Any], Outcome]
    compensate_method: str | None = None
    # (resource_id, request_id, reason, the step's result) -> the undo request
    compensate_build: Callable[[str, str, str, dict[str, Any]], Any] | None = None
    # department event type -> (new step state, department sub-status)
    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    # refusal reasons that mean "nothing to do here": the step is DONE, the case goes on
    nothing_to_do: frozenset[str] = frozenset()


def _date(msg: common_pb2.Date) -> dt.date | None:
    if not msg.year:
        return None
    return dt.date(msg.year, msg.month, msg.day)


def _proto_date(value: str) -> common_pb2.Date:
    d = dt.date.fromisoformat(value)
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


_CARD_STATE = identity_pb2.CardApplicationState


def _card_outcome(response: Any) -> Outcome:
    app = response.card_application
    state_name = _CARD_STATE.Name(app.state).removeprefix("CARD_APPLICATION_STATE_")
    step_state = {
        "APPROVED": APPROVED,
        "CARD_PRODUCED": APPROVED,
        "READY_FOR_PICKUP": READY,
        "ISSUED": DONE,
    }.get(state_name, ACCEPTED)
    return Outcome(
        resource_id=app.id,
        state=step_state,
        department_state=state_name,
        statutory_deadline=_date(app.statutory_deadline),
        result={"fee_fen": app.fee_fen, "required_materials": list(app.required_materials)},
    )


def _residence_permit(data: dict[str, Any]) -> identity_pb2.ResidencePermit | None:
    number = get_value(data, "residence_permit.number")
    if not number:
        return None
    return identity_pb2.ResidencePermit(
        number=number, valid_until=_proto_date(get_value(data, "residence_permit.valid_until"))
    )


def _card_application(kind: int, region_field: str) -> Callable[[StepInput], Any]:
    def build(step: StepInput) -> Any:
        data = step.data
        reason = get_value(data, "renewal_reason")
        return identity_pb2.CreateCardApplicationRequest(
            request_id=step.request_id,
            id_number=get_value(data, "applicant.id_number"),
            name=get_value(data, "applicant.name"),
            kind=kind,
            renewal_reason=identity_pb2.RenewalReason.Value(f"RENEWAL_REASON_{reason}") if reason else 0,
            accepting_region_code=get_value(data, region_field),
            residence_permit=_residence_permit(data),
            fee_reduction=identity_pb2.FeeReduction.Value(
                f"FEE_REDUCTION_{get_value(data, 'fee_reduction') or 'NONE'}"
            ),
        )

    return build


def _loss_report_request(step: StepInput) -> Any:
    return identity_pb2.ReportCardLostRequest(
        request_id=step.request_id,
        id_number=get_value(step.data, "applicant.id_number"),
        name=get_value(step.data, "applicant.name"),
        station_region_code=get_value(step.data, "station_region_code"),
    )


def _loss_report_outcome(response: Any) -> Outcome:
    report = response.loss_report
    return Outcome(
        resource_id=report.id,
        state=DONE,
        department_state="REPORTED_LOST",
        result={"inside_hukou_area": report.inside_hukou_area},
    )


def _temporary_card_request(step: StepInput) -> Any:
    return identity_pb2.IssueTemporaryCardRequest(
        request_id=step.request_id,
        id_number=get_value(step.data, "applicant.id_number"),
        name=get_value(step.data, "applicant.name"),
        station_region_code=get_value(step.data, "station_region_code"),
        urgent_need=True,
    )


def _temporary_card_outcome(response: Any) -> Outcome:
    card = response.temporary_card
    issued = bool(card.issued_on.year)
    return Outcome(
        resource_id=card.id,
        state=DONE if issued else ACCEPTED,
        department_state="ISSUED" if issued else "APPLIED",
        statutory_deadline=_date(card.issue_by),
        result={"fee_fen": card.fee_fen},
    )


def _cancel_card(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return identity_pb2.CancelCardApplicationRequest(request_id=request_id, id=resource_id, reason=reason)


CARD_EVENTS = {
    "CardApplicationApproved": (APPROVED, "APPROVED"),
    "CardApplicationRejected": (REFUSED, "REJECTED"),
    "CardProduced": (APPROVED, "CARD_PRODUCED"),
    "CardReadyForPickup": (READY, "READY_FOR_PICKUP"),
    "CardIssued": (DONE, "ISSUED"),
    "CardApplicationCancelled": (CANCELLED, "CANCELLED"),
}


def _permit_state(state: int) -> tuple[str, str]:
    name = permits_pb2.PermitState.Name(state).removeprefix("PERMIT_STATE_")
    step_state = {"APPROVED": APPROVED, "ISSUED": READY}.get(name, ACCEPTED)
    return step_state, name


def _applicant(data: dict[str, Any]) -> permits_pb2.Applicant:
    return permits_pb2.Applicant(
        passport_number=get_value(data, "applicant.passport_number"),
        nationality=get_value(data, "applicant.nationality"),
        surname=get_value(data, "applicant.surname"),
        given_names=get_value(data, "applicant.given_names"),
        birth_date=_proto_date(get_value(data, "applicant.birth_date")),
        sex=common_pb2.Sex.Value(f"SEX_{get_value(data, 'applicant.sex')}"),
    )


def _work_permit_request(step: StepInput) -> Any:
    data = step.data
    return permits_pb2.CreateWorkPermitApplicationRequest(
        request_id=step.request_id,
        applicant=_applicant(data),
        employer_uscc=get_value(data, "employer_uscc"),
        position=get_value(data, "position"),
        work_region=get_value(data, "work_region"),
        contract=permits_pb2.Contract(
            start_date=_proto_date(get_value(data, "contract.start_date")),
            end_date=_proto_date(get_value(data, "contract.end_date")),
        ),
        annual_salary_fen=int(get_value(data, "annual_salary_yuan")) * 100,
        education=permits_pb2.Education.Value(f"EDUCATION_{get_value(data, 'education')}"),
        experience_years=int(get_value(data, "experience_years") or 0),
        chinese=permits_pb2.Chinese(hsk_level=int(get_value(data, "chinese_hsk_level") or 0)),
        months_per_year_in_china=int(get_value(data, "months_per_year_in_china") or 0),
        materials=step.materials,
    )


def _work_permit_outcome(response: Any) -> Outcome:
    app = response.work_permit_application
    state, name = _permit_state(app.state)
    return Outcome(
        resource_id=app.id,
        state=state,
        department_state=name,
        statutory_deadline=_date(app.decision_due_date),
        result={"id": app.id, "category": permits_pb2.Category.Name(app.category).removeprefix("CATEGORY_")},
    )


def _residence_permit_request(step: StepInput) -> Any:
    data = step.data
    requested = get_value(data, "requested_valid_until")
    return permits_pb2.CreateResidencePermitApplicationRequest(
        request_id=step.request_id,
        passport_number=get_value(data, "applicant.passport_number"),
        nationality=get_value(data, "applicant.nationality"),
        work_permit_id=step.results["work_permit"]["id"],
        entry_date=_proto_date(get_value(data, "entry_date")),
        requested_valid_until=_proto_date(requested) if requested else None,
        materials=step.materials,
    )


def _residence_permit_outcome(response: Any) -> Outcome:
    app = response.residence_permit_application
    state, name = _permit_state(app.state)
    return Outcome(
        resource_id=app.id,
        state=state,
        department_state=name,
        statutory_deadline=_date(app.decision_due_date),
        result={"id": app.id, **({"fee_fen": app.fee_fen} if app.fee_fen else {})},
    )


def _cancel_work_permit(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return permits_pb2.CancelWorkPermitApplicationRequest(
        request_id=request_id, id=resource_id, reason=reason
    )


def _cancel_residence_permit(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return permits_pb2.CancelResidencePermitApplicationRequest(
        request_id=request_id, id=resource_id, reason=reason
    )


def _permit_events(prefix: str) -> dict[str, tuple[str, str]]:
    return {
        f"{prefix}AwaitingMaterials": (ACCEPTED, "AWAITING_MATERIALS"),
        f"{prefix}UnderReview": (ACCEPTED, "UNDER_REVIEW"),
        f"{prefix}ReviewExtended": (ACCEPTED, "UNDER_REVIEW"),
        f"{prefix}Approved": (APPROVED, "APPROVED"),
        f"{prefix}Rejected": (REFUSED, "REJECTED"),
        f"{prefix}Issued": (READY, "ISSUED"),
        f"{prefix}Cancelled": (CANCELLED, "CANCELLED"),
    }


def _timestamp(value: str) -> Any:
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.datetime.fromisoformat(value))
    return ts


def _accommodation_request(step: StepInput) -> Any:
    data = step.data
    return residence_pb2.RegisterAccommodationRequest(
        request_id=step.request_id,
        passport_number=get_value(data, "applicant.passport_number"),
        nationality=get_value(data, "applicant.nationality"),
        name=f"{get_value(data, 'applicant.surname')} {get_value(data, 'applicant.given_names')}",
        address=get_value(data, "accommodation.address"),
        police_station_code=get_value(data, "accommodation.police_station_code"),
        host=residence_pb2.AccommodationHost(
            kind=residence_pb2.HostKind.Value(f"HOST_KIND_{get_value(data, 'accommodation.host_kind')}"),
            name=get_value(data, "accommodation.host_name"),
            identifier=get_value(data, "accommodation.host_identifier"),
        ),
        arrive_time=_timestamp(get_value(data, "accommodation.arrived_at")),
        from_date=_proto_date(get_value(data, "accommodation.from_date")),
        to_date=_proto_date(get_value(data, "accommodation.to_date")),
    )


def _accommodation_outcome(response: Any) -> Outcome:
    reg = response.accommodation_registration
    return Outcome(
        resource_id=reg.id,
        state=DONE,
        department_state="REGISTERED",
        result={"registration_number": reg.registration_number, "late": reg.late},
    )


def _cancel_accommodation(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return residence_pb2.CancelAccommodationRegistrationRequest(
        request_id=request_id, id=resource_id, reason=reason
    )


def _move_out_request(step: StepInput) -> Any:
    data = step.data
    return residence_pb2.MoveOutRequest(
        request_id=step.request_id,
        id_number=get_value(data, "applicant.id_number"),
        destination_region_code=get_value(data, "destination.region_code"),
        destination_address=get_value(data, "destination.address"),
        new_head_id_number=get_value(data, "new_head_id_number") or "",
    )


def _move_out_outcome(response: Any) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=DONE,
        department_state="MOVED_OUT",
        result={
            "id_number": response.person.id_number,
            "certificate_number": response.certificate.number,
            "same_city_transfer": response.same_city_transfer,
        },
    )


def _cancel_move_out(resource_id: str, request_id: str, reason: str, result: dict[str, Any]) -> Any:
    return residence_pb2.CancelMoveOutRequest(
        request_id=request_id, id_number=result["id_number"], reason=reason
    )


def _move_in_request(step: StepInput) -> Any:
    data = step.data
    moved = step.results.get("move_out", {})
    return residence_pb2.MoveInRequest(
        request_id=step.request_id,
        id_number=get_value(data, "applicant.id_number"),
        arrived_on=_proto_date(get_value(data, "arrived_on")),
        certificate_number=moved.get("certificate_number") or get_value(data, "certificate_number") or "",
        household_number=get_value(data, "destination.household_number"),
        relationship_code=get_value(data, "relationship_code"),
    )


def _move_in_outcome(response: Any) -> Outcome:
    person = response.person
    return Outcome(
        resource_id=person.id,
        state=DONE,
        department_state="MOVED_IN",
        result={
            "id_number": person.id_number,
            "region_code": person.hukou_region_code,
            "address": person.hukou_address,
            "household_number": person.household_number,
            "late": response.late,
        },
    )


def _card_address_request(step: StepInput) -> Any:
    moved = step.results["move_in"]
    return identity_pb2.UpdateCardAddressRequest(
        request_id=step.request_id,
        id_number=moved["id_number"],
        region_code=moved["region_code"],
        address=moved["address"],
    )


def _card_address_outcome(response: Any) -> Outcome:
    return Outcome(resource_id=response.card.card_number, state=DONE, department_state="ADDRESS_RECORDED")


def _birth_request(step: StepInput) -> Any:
    data = step.data
    return residence_pb2.RegisterBirthRequest(
        request_id=step.request_id,
        household_number=get_value(data, "household_number"),
        person=residence_pb2.Newborn(
            name=get_value(data, "newborn.name"),
            sex=common_pb2.Sex.Value(f"SEX_{get_value(data, 'newborn.sex')}"),
            birth_date=_proto_date(get_value(data, "newborn.birth_date")),
            birth_place=get_value(data, "newborn.birth_place"),
            ethnicity=get_value(data, "newborn.ethnicity"),
            native_place=get_value(data, "newborn.native_place") or "",
        ),
        relationship_code=get_value(data, "relationship_code"),
        declarant_id_number=get_value(data, "guardian.id_number"),  # who registers the birth
    )


def _birth_outcome(response: Any) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=DONE,
        department_state="REGISTERED",
        result={
            "id_number": response.id_number,
            "name": response.person.name,
            "region_code": response.person.hukou_region_code,
            "late": response.late,
        },
    )


def _first_card_request(step: StepInput) -> Any:
    born = step.results["birth"]
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=born["id_number"],
        name=born["name"],
        kind=identity_pb2.CARD_APPLICATION_KIND_FIRST_ISSUE,
        accepting_region_code=born["region_code"],
    )


def _change_name_request(step: StepInput) -> Any:
    data = step.data
    return residence_pb2.ChangeNameRequest(
        request_id=step.request_id,
        id_number=get_value(data, "applicant.id_number"),
        new_name=get_value(data, "new_name"),
        applicant_id_number=get_value(data, "applicant.id_number"),
    )


def _change_name_outcome(response: Any) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=DONE,
        department_state="NAME_CHANGED",
        result={"region_code": response.person.hukou_region_code},
    )


def _renewal_after_name_change(step: StepInput) -> Any:
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=get_value(step.data, "applicant.id_number"),
        name=get_value(step.data, "new_name"),
        kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=identity_pb2.RENEWAL_REASON_NAME_CHANGE,
        accepting_region_code=step.results["name_change"]["region_code"],
    )


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action(
            name="identity.card_renewal",
            department="identity",
            method="CreateCardApplication",
            build=_card_application(identity_pb2.CARD_APPLICATION_KIND_RENEWAL, "accepting_region_code"),
            outcome=_card_outcome,
            compensate_method="CancelCardApplication",
            compensate_build=_cancel_card,
            events=CARD_EVENTS,
        ),
        Action(
            name="identity.card_replacement",
            department="identity",
            method="CreateCardApplication",
            build=_card_application(identity_pb2.CARD_APPLICATION_KIND_REPLACEMENT, "station_region_code"),
            outcome=_card_outcome,
            compensate_method="CancelCardApplication",
            compensate_build=_cancel_card,
            events=CARD_EVENTS,
        ),
        Action(
            name="identity.loss_report",
            department="identity",
            method="ReportCardLost",
            build=_loss_report_request,
            outcome=_loss_report_outcome,
        ),
        Action(
            name="identity.temporary_card",
            department="identity",
            method="IssueTemporaryCard",
            build=_temporary_card_request,
            outcome=_temporary_card_outcome,
            events={"TemporaryCardIssued": (DONE, "ISSUED")},
        ),
        Action(
            name="identity.first_card_for_newborn",
            department="identity",
            method="CreateCardApplication",
            build=_first_card_request,
            outcome=_card_outcome,
            compensate_method="CancelCardApplication",
            compensate_build=_cancel_card,
            events=CARD_EVENTS,
        ),
        Action(
            name="identity.renewal_after_name_change",
            department="identity",
            method="CreateCardApplication",
            build=_renewal_after_name_change,
            outcome=_card_outcome,
            compensate_method="CancelCardApplication",
            compensate_build=_cancel_card,
            events=CARD_EVENTS,
        ),
        Action(
            name="residence.accommodation",
            department="residence",
            method="RegisterAccommodation",
            build=_accommodation_request,
            outcome=_accommodation_outcome,
            compensate_method="CancelAccommodationRegistration",
            compensate_build=_cancel_accommodation,
        ),
        Action(
            name="residence.move_out",
            department="residence",
            method="MoveOut",
            build=_move_out_request,
            outcome=_move_out_outcome,
            compensate_method="CancelMoveOut",
            compensate_build=_cancel_move_out,
        ),
        Action(
            name="residence.move_in",
            department="residence",
            method="MoveIn",
            build=_move_in_request,
            outcome=_move_in_outcome,
        ),
        Action(
            name="identity.card_address",
            department="identity",
            method="UpdateCardAddress",
            build=_card_address_request,
            outcome=_card_address_outcome,
            nothing_to_do=frozenset({"NO_CURRENT_CARD"}),  # e.g. a child who holds no card yet
        ),
        Action(
            name="residence.birth",
            department="residence",
            method="RegisterBirth",
            build=_birth_request,
            outcome=_birth_outcome,
        ),
        Action(
            name="residence.change_name",
            department="residence",
            method="ChangeName",
            build=_change_name_request,
            outcome=_change_name_outcome,
        ),
        Action(
            name="permits.work_permit",
            department="permits",
            method="CreateWorkPermitApplication",
            build=_work_permit_request,
            outcome=_work_permit_outcome,
            compensate_method="CancelWorkPermitApplication",
            compensate_build=_cancel_work_permit,
            events=_permit_events("WorkPermit"),
        ),
        Action(
            name="permits.residence_permit",
            department="permits",
            method="CreateResidencePermitApplication",
            build=_residence_permit_request,
            outcome=_residence_permit_outcome,
            compensate_method="CancelResidencePermitApplication",
            compensate_build=_cancel_residence_permit,
            events=_permit_events("ResidencePermit"),
        ),
    ]
}


def known_actions() -> dict[str, str]:
    return {name: action.department for name, action in ACTIONS.items()}
