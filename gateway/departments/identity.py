"""Identity (ID cards): the card applications of five matters, the loss report, the temporary card and
the card's new address; their events, the back office's approve/reject and the hand-over (IssueCard)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.departments.base import (
    Action,
    Decision,
    FollowUp,
    Outcome,
    Service,
    StepInput,
    cancel_request,
    date_of,
    proto_date,
    record_request,
    whole,
)
from gateway.saga.model import StepState as S
from govhub.identity.v1 import identity_pb2

rpc = Service(identity_pb2.DESCRIPTOR, "IdentityService").rpc
CREATE = rpc(identity_pb2.CreateCardApplicationRequest, identity_pb2.CreateCardApplicationResponse)
CANCEL = rpc(identity_pb2.CancelCardApplicationRequest, identity_pb2.CancelCardApplicationResponse)
APPROVE = rpc(identity_pb2.ApproveCardApplicationRequest, identity_pb2.ApproveCardApplicationResponse)
REJECT = rpc(identity_pb2.RejectCardApplicationRequest, identity_pb2.RejectCardApplicationResponse)
ISSUE = rpc(identity_pb2.IssueCardRequest, identity_pb2.IssueCardResponse)
PRODUCED = rpc(identity_pb2.MarkCardProducedRequest, identity_pb2.MarkCardProducedResponse)
READY = rpc(identity_pb2.MarkCardReadyForPickupRequest, identity_pb2.MarkCardReadyForPickupResponse)
TEMPORARY = rpc(identity_pb2.IssueTemporaryCardRequest, identity_pb2.IssueTemporaryCardResponse)
UPDATE_ADDRESS = rpc(identity_pb2.UpdateCardAddressRequest, identity_pb2.UpdateCardAddressResponse)
# asked on a citizen's behalf (gateway/api/citizen.py)
GET_CURRENT_CARD = rpc(identity_pb2.GetCurrentCardRequest, identity_pb2.GetCurrentCardResponse)
SEARCH_FOUND_CARDS = rpc(identity_pb2.SearchFoundCardsRequest, identity_pb2.SearchFoundCardsResponse)
REPORT_LOST = rpc(identity_pb2.ReportCardLostRequest, identity_pb2.ReportCardLostResponse)

_CARD_STATE = identity_pb2.CardApplicationState


def _card_state(response: Any) -> str:
    return str(_CARD_STATE.Name(response.card_application.state)).removeprefix("CARD_APPLICATION_STATE_")


def _card_outcome(response: identity_pb2.CreateCardApplicationResponse) -> Outcome:
    app = response.card_application
    state_name = _card_state(response)
    step_state = {
        "APPROVED": S.APPROVED,
        "CARD_PRODUCED": S.APPROVED,
        "READY_FOR_PICKUP": S.READY,
        "ISSUED": S.DONE,
    }.get(state_name, S.ACCEPTED)
    result: dict[str, Any] = {"fee_fen": app.fee_fen, "required_materials": list(app.required_materials)}
    if app.HasField("loss_report") and app.loss_report.id:
        reported_on = date_of(app.loss_report.reported_on)
        result["loss_report"] = {
            "already_reported": app.loss_already_reported,  # reported earlier, taken into this application
            "reported_on": reported_on.isoformat() if reported_on else None,
        }
    if app.card_number:
        result["card_number"] = app.card_number
    ready_on = date_of(app.ready_on)
    if ready_on:
        result["ready_on"] = ready_on.isoformat()
    if app.rejection_code:
        result["rejection_code"] = app.rejection_code
    return Outcome(
        resource_id=app.id,
        state=step_state,
        department_state=state_name,
        statutory_deadline=date_of(app.statutory_deadline),
        result=result,
    )


def card_event_result(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a card application's event adds to the step's result: the fee (on every event), the card's
    number, and where and from when it can be collected."""
    result: dict[str, Any] = {}
    if (fee := whole(data.get("fee_fen"))) is not None:
        result["fee_fen"] = fee
    for key in (
        "card_number",
        "ready_on",
        "collect_at_region_code",
        "valid_until",
        "rejection_code",
        "cancellation_reason",  # identity cancelled it on its own (e.g. the holder's hukou deregistered)
    ):
        if data.get(key):
            result[key] = data[key]
    if data.get("loss_report_withdrawn"):  # a refused or cancelled replacement leaves no loss report
        result["loss_report"] = {"withdrawn": True}
    if event_type == "CardApplicationSubmitted" and data.get("loss_report_id"):
        result["loss_report"] = {
            "already_reported": bool(data.get("loss_already_reported")),
            "reported_on": data.get("loss_reported_on"),
        }
    return result


def _residence_permit(step: StepInput) -> identity_pb2.ResidencePermit | None:
    number = step.get("residence_permit.number")
    if not number:
        return None
    return identity_pb2.ResidencePermit(
        number=number, valid_until=proto_date(step.get("residence_permit.valid_until"))
    )


def _card_application(
    kind: identity_pb2.CardApplicationKind,
    region_field: str,
    *,
    report_loss: bool = False,
    cross_province: bool = False,
) -> Callable[[StepInput], identity_pb2.CreateCardApplicationRequest]:
    """A card application; `report_loss`: a replacement that files the loss report in the same
    transaction (or takes the one the citizen filed earlier); `cross_province`: 异地受理 asked for, so
    identity refuses it (NOT_CROSS_PROVINCE) for a hukou in the accepting province."""

    def build(step: StepInput) -> identity_pb2.CreateCardApplicationRequest:
        reason = step.get("renewal_reason") if kind == identity_pb2.CARD_APPLICATION_KIND_RENEWAL else None
        return identity_pb2.CreateCardApplicationRequest(
            request_id=step.request_id,
            id_number=step.get("applicant.id_number"),
            name=step.get("applicant.name"),
            kind=kind,
            renewal_reason=f"RENEWAL_REASON_{reason}" if reason else None,
            accepting_region_code=step.get(region_field),
            residence_permit=_residence_permit(step),
            fee_reduction=f"FEE_REDUCTION_{step.get('fee_reduction') or 'NONE'}",
            report_loss=report_loss,
            require_cross_province=cross_province,
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


def _temporary_card_request(step: StepInput) -> identity_pb2.IssueTemporaryCardRequest:
    return identity_pb2.IssueTemporaryCardRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        name=step.get("applicant.name"),
        station_region_code=step.get("station_region_code"),
        urgent_need=True,
    )


def _temporary_card_outcome(response: identity_pb2.IssueTemporaryCardResponse) -> Outcome:
    card = response.temporary_card
    issued = bool(card.issued_on.year)
    return Outcome(
        resource_id=card.id,
        state=S.DONE if issued else S.ACCEPTED,
        department_state="ISSUED" if issued else "APPLIED",
        statutory_deadline=date_of(card.issue_by),
        result={"fee_fen": card.fee_fen},
    )


CARD_EVENTS = {
    "CardApplicationSubmitted": (S.ACCEPTED, "ACCEPTED"),  # identity accepts what it is sent at once
    "CardApplicationApproved": (S.APPROVED, "APPROVED"),
    "CardApplicationRejected": (S.REFUSED, "REJECTED"),
    "CardProduced": (S.APPROVED, "CARD_PRODUCED"),
    "CardReadyForPickup": (S.READY, "READY_FOR_PICKUP"),
    "CardIssued": (S.DONE, "ISSUED"),
    "CardApplicationCancelled": (S.CANCELLED, "CANCELLED"),
}

CARD_SHOWN = (
    "fee_fen",
    "loss_report",
    "card_number",
    "ready_on",
    "collect_at_region_code",
    "valid_until",
    "rejection_code",
    "cancellation_reason",
)

CARD_DECISION = Decision(
    APPROVE,
    record_request(APPROVE),
    REJECT,
    lambda rid, req, reasons, codes: identity_pb2.RejectCardApplicationRequest(
        request_id=req, id=rid, reason="; ".join(reasons), reason_code=codes[0] if codes else ""
    ),
    _card_state,
    {
        "produced": FollowUp(
            PRODUCED,
            record_request(PRODUCED),
            frozenset({"APPROVED"}),
            "Mark the approved card produced (the production centre made it; the card number is assigned)",
        ),
        "ready-for-pickup": FollowUp(
            READY,
            record_request(READY),
            frozenset({"CARD_PRODUCED"}),
            "Mark the produced card ready for pickup at the accepting office",
        ),
    },
)


def issue_card_request(
    resource_id: str, request_id: str, old_card_surrendered: bool
) -> identity_pb2.IssueCardRequest:
    return identity_pb2.IssueCardRequest(
        request_id=request_id, id=resource_id, old_card_surrendered=old_card_surrendered
    )


def _card_address_request(step: StepInput) -> identity_pb2.UpdateCardAddressRequest:
    moved = step.results["move_in"]
    return identity_pb2.UpdateCardAddressRequest(
        request_id=step.request_id,
        id_number=moved["id_number"],
        region_code=moved["region_code"],
        address=moved["address"],
    )


def _card_address_outcome(response: identity_pb2.UpdateCardAddressResponse) -> Outcome:
    return Outcome(resource_id=response.card.card_number, state=S.DONE, department_state="ADDRESS_RECORDED")


def _first_card_request(step: StepInput) -> identity_pb2.CreateCardApplicationRequest:
    born = step.results["birth"]
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=born["id_number"],
        name=born["name"],
        kind=identity_pb2.CARD_APPLICATION_KIND_FIRST_ISSUE,
        accepting_region_code=born["region_code"],
    )


def _renewal_after_name_change(step: StepInput) -> identity_pb2.CreateCardApplicationRequest:
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        name=step.get("new_name"),
        kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=identity_pb2.RENEWAL_REASON_NAME_CHANGE,
        accepting_region_code=step.results["name_change"]["region_code"],
    )


# The refusals of a card application that are about one submitted field: the answer names it (an
# expired residence permit is about its `valid_until`), where the action reads that field.
_REFUSED_FIELDS = {
    "RESIDENCE_PERMIT_REQUIRED": "residence_permit.number",
    "RESIDENCE_PERMIT_EXPIRED": "residence_permit.valid_until",
    "RENEWAL_REASON_REQUIRED": "renewal_reason",
    "FEE_REDUCTION_NOT_APPLICABLE": "fee_reduction",
    "HUKOU_RECORD_NOT_FOUND": "applicant.id_number",
    "HUKOU_NAME_MISMATCH": "applicant.name",
    "CROSS_PROVINCE_NOT_OFFERED_HERE": "accepting_region_code",
}


def _card_action(
    name: str, build: Callable[[StepInput], identity_pb2.CreateCardApplicationRequest], reads: frozenset[str]
) -> Action[identity_pb2.CreateCardApplicationRequest, identity_pb2.CreateCardApplicationResponse]:
    return Action(
        name=name,
        department="identity",
        rpc=CREATE,
        build=build,
        outcome=_card_outcome,
        reads=reads,
        refused_fields={reason: f for reason, f in _REFUSED_FIELDS.items() if f in reads},
        compensate_rpc=CANCEL,
        compensate_build=cancel_request(CANCEL),
        undo_until=S.ACCEPTED,  # identity cancels an application only until it is approved
        events=CARD_EVENTS,
        event_result=card_event_result,
        shown=CARD_SHOWN,
        decision=CARD_DECISION,
        handover=issue_card_request,
        handover_rpc=ISSUE,
    )


ACTIONS: list[Action[Any, Any]] = [
    _card_action(
        "identity.card_renewal",
        _card_application(
            identity_pb2.CARD_APPLICATION_KIND_RENEWAL, "accepting_region_code", cross_province=True
        ),
        _CARD_READS | {"accepting_region_code", "renewal_reason"},
    ),
    _card_action(
        "identity.card_replacement",
        _card_application(
            identity_pb2.CARD_APPLICATION_KIND_REPLACEMENT, "station_region_code", report_loss=True
        ),
        _CARD_READS | {"station_region_code"},
    ),
    _card_action("identity.first_card_for_newborn", _first_card_request, frozenset()),
    _card_action(
        "identity.renewal_after_name_change",
        _renewal_after_name_change,
        frozenset({"applicant.id_number", "new_name"}),
    ),
    Action(
        name="identity.temporary_card",
        department="identity",
        rpc=TEMPORARY,
        build=_temporary_card_request,
        outcome=_temporary_card_outcome,
        reads=frozenset({"applicant.id_number", "applicant.name", "station_region_code"}),
        refused_fields={"NOT_AT_HUKOU_STATION": "station_region_code"},
        events={"TemporaryCardIssued": (S.DONE, "ISSUED")},
        shown=("fee_fen",),
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
