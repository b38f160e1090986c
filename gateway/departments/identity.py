"""Identity (ID cards): the card applications of five matters, the loss report, the temporary card and
the card's new address; their events, the back office's approve/reject and the hand-over (IssueCard)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.departments.base import Action, Decision, Outcome, StepInput, date_of, proto_date, service
from gateway.saga.model import StepState as S
from govhub.identity.v1 import identity_pb2

rpc = service(identity_pb2.DESCRIPTOR, "IdentityService")
CREATE = rpc("CreateCardApplication")
CANCEL = rpc("CancelCardApplication")
APPROVE = rpc("ApproveCardApplication")
REJECT = rpc("RejectCardApplication")
ISSUE = rpc("IssueCard")
REPORT_LOST = rpc("ReportCardLost")
TEMPORARY = rpc("IssueTemporaryCard")
UPDATE_ADDRESS = rpc("UpdateCardAddress")

_CARD_STATE = identity_pb2.CardApplicationState


def _card_state(response: Any) -> str:
    return str(_CARD_STATE.Name(response.card_application.state)).removeprefix("CARD_APPLICATION_STATE_")


def _card_outcome(response: Any) -> Outcome:
    app = response.card_application
    state_name = _card_state(response)
    step_state = {
        "APPROVED": S.APPROVED,
        "CARD_PRODUCED": S.APPROVED,
        "READY_FOR_PICKUP": S.READY,
        "ISSUED": S.DONE,
    }.get(state_name, S.ACCEPTED)
    return Outcome(
        resource_id=app.id,
        state=step_state,
        department_state=state_name,
        statutory_deadline=date_of(app.statutory_deadline),
        result={"fee_fen": app.fee_fen, "required_materials": list(app.required_materials)},
    )


def _residence_permit(step: StepInput) -> identity_pb2.ResidencePermit | None:
    number = step.get("residence_permit.number")
    if not number:
        return None
    return identity_pb2.ResidencePermit(
        number=number, valid_until=proto_date(step.get("residence_permit.valid_until"))
    )


def _card_application(kind: int, region_field: str) -> Callable[[StepInput], Any]:
    def build(step: StepInput) -> Any:
        reason = step.get("renewal_reason") if kind == identity_pb2.CARD_APPLICATION_KIND_RENEWAL else None
        return identity_pb2.CreateCardApplicationRequest(
            request_id=step.request_id,
            id_number=step.get("applicant.id_number"),
            name=step.get("applicant.name"),
            kind=kind,
            renewal_reason=identity_pb2.RenewalReason.Value(f"RENEWAL_REASON_{reason}") if reason else 0,
            accepting_region_code=step.get(region_field),
            residence_permit=_residence_permit(step),
            fee_reduction=identity_pb2.FeeReduction.Value(
                f"FEE_REDUCTION_{step.get('fee_reduction') or 'NONE'}"
            ),
        )

    return build


_CARD_READS = frozenset(
    {
        "applicant.id_number",
        "applicant.name",
        "residence_permit.number",
        "residence_permit.valid_until",
        "fee_reduction",
    }
)


def _loss_report_request(step: StepInput) -> Any:
    return identity_pb2.ReportCardLostRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        name=step.get("applicant.name"),
        station_region_code=step.get("station_region_code"),
    )


def _loss_report_outcome(response: Any) -> Outcome:
    report = response.loss_report
    return Outcome(
        resource_id=report.id,
        state=S.DONE,
        department_state="REPORTED_LOST",
        result={"inside_hukou_area": report.inside_hukou_area},
    )


def _temporary_card_request(step: StepInput) -> Any:
    return identity_pb2.IssueTemporaryCardRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        name=step.get("applicant.name"),
        station_region_code=step.get("station_region_code"),
        urgent_need=True,
    )


def _temporary_card_outcome(response: Any) -> Outcome:
    card = response.temporary_card
    issued = bool(card.issued_on.year)
    return Outcome(
        resource_id=card.id,
        state=S.DONE if issued else S.ACCEPTED,
        department_state="ISSUED" if issued else "APPLIED",
        statutory_deadline=date_of(card.issue_by),
        result={"fee_fen": card.fee_fen},
    )


def _cancel_card(resource_id: str, request_id: str, reason: str, _result: dict[str, Any]) -> Any:
    return identity_pb2.CancelCardApplicationRequest(request_id=request_id, id=resource_id, reason=reason)


CARD_EVENTS = {
    "CardApplicationApproved": (S.APPROVED, "APPROVED"),
    "CardApplicationRejected": (S.REFUSED, "REJECTED"),
    "CardProduced": (S.APPROVED, "CARD_PRODUCED"),
    "CardReadyForPickup": (S.READY, "READY_FOR_PICKUP"),
    "CardIssued": (S.DONE, "ISSUED"),
    "CardApplicationCancelled": (S.CANCELLED, "CANCELLED"),
}

CARD_DECISION = Decision(
    APPROVE,
    lambda rid, req: identity_pb2.ApproveCardApplicationRequest(request_id=req, id=rid),
    REJECT,
    lambda rid, req, reasons: identity_pb2.RejectCardApplicationRequest(
        request_id=req, id=rid, reason="; ".join(reasons)
    ),
    _card_state,
)


def issue_card_request(resource_id: str, request_id: str, old_card_surrendered: bool) -> Any:
    return identity_pb2.IssueCardRequest(
        request_id=request_id, id=resource_id, old_card_surrendered=old_card_surrendered
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
    return Outcome(resource_id=response.card.card_number, state=S.DONE, department_state="ADDRESS_RECORDED")


def _first_card_request(step: StepInput) -> Any:
    born = step.results["birth"]
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=born["id_number"],
        name=born["name"],
        kind=identity_pb2.CARD_APPLICATION_KIND_FIRST_ISSUE,
        accepting_region_code=born["region_code"],
    )


def _renewal_after_name_change(step: StepInput) -> Any:
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        name=step.get("new_name"),
        kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=identity_pb2.RENEWAL_REASON_NAME_CHANGE,
        accepting_region_code=step.results["name_change"]["region_code"],
    )


def _card_action(name: str, build: Callable[[StepInput], Any], reads: frozenset[str]) -> Action:
    return Action(
        name=name,
        department="identity",
        rpc=CREATE,
        build=build,
        outcome=_card_outcome,
        reads=reads,
        compensate_rpc=CANCEL,
        compensate_build=_cancel_card,
        undo_until=S.ACCEPTED,  # identity cancels an application only until it is approved
        events=CARD_EVENTS,
        decision=CARD_DECISION,
        handover=issue_card_request,
        handover_rpc=ISSUE,
    )


ACTIONS = [
    _card_action(
        "identity.card_renewal",
        _card_application(identity_pb2.CARD_APPLICATION_KIND_RENEWAL, "accepting_region_code"),
        _CARD_READS | {"accepting_region_code", "renewal_reason"},
    ),
    _card_action(
        "identity.card_replacement",
        _card_application(identity_pb2.CARD_APPLICATION_KIND_REPLACEMENT, "station_region_code"),
        _CARD_READS | {"station_region_code"},
    ),
    _card_action("identity.first_card_for_newborn", _first_card_request, frozenset()),
    _card_action(
        "identity.renewal_after_name_change",
        _renewal_after_name_change,
        frozenset({"applicant.id_number", "new_name"}),
    ),
    Action(
        name="identity.loss_report",
        department="identity",
        rpc=REPORT_LOST,
        build=_loss_report_request,
        outcome=_loss_report_outcome,
        reads=frozenset({"applicant.id_number", "applicant.name", "station_region_code"}),
    ),
    Action(
        name="identity.temporary_card",
        department="identity",
        rpc=TEMPORARY,
        build=_temporary_card_request,
        outcome=_temporary_card_outcome,
        reads=frozenset({"applicant.id_number", "applicant.name", "station_region_code"}),
        events={"TemporaryCardIssued": (S.DONE, "ISSUED")},
    ),
    Action(
        name="identity.card_address",
        department="identity",
        rpc=UPDATE_ADDRESS,
        build=_card_address_request,
        outcome=_card_address_outcome,
        nothing_to_do=frozenset({"NO_CURRENT_CARD"}),  # e.g. a child who holds no card yet
    ),
]
