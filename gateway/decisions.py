"""Back-office decisions for department staff without a gRPC client: approve or reject a step of their
department through the department's own RPCs, with the staff member's identity forwarded. The department
then emits its event and the saga moves the case on as usual (nothing is changed here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.handover import CARD_ACTIONS
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2


@dataclass(frozen=True)
class Decision:
    approve_method: str
    approve: Callable[[str, str], Any]  # (resource id, request id) -> request
    reject_method: str
    reject: Callable[[str, str, list[str]], Any]  # (resource id, request id, reasons) -> request
    state_of: Callable[[Any], str]  # the department's state in the answer


def _card_state(response: Any) -> str:
    return identity_pb2.CardApplicationState.Name(response.card_application.state).removeprefix(
        "CARD_APPLICATION_STATE_"
    )


def _permit_state(field: str) -> Callable[[Any], str]:
    def state(response: Any) -> str:
        return permits_pb2.PermitState.Name(getattr(response, field).state).removeprefix("PERMIT_STATE_")

    return state


CARD = Decision(
    "ApproveCardApplication",
    lambda rid, req: identity_pb2.ApproveCardApplicationRequest(request_id=req, id=rid),
    "RejectCardApplication",
    lambda rid, req, reasons: identity_pb2.RejectCardApplicationRequest(
        request_id=req, id=rid, reason="; ".join(reasons)
    ),
    _card_state,
)

DECISIONS: dict[str, Decision] = {
    **{name: CARD for name in CARD_ACTIONS},
    "permits.work_permit": Decision(
        "ApproveWorkPermitApplication",
        lambda rid, req: permits_pb2.ApproveWorkPermitApplicationRequest(request_id=req, id=rid),
        "RejectWorkPermitApplication",
        lambda rid, req, reasons: permits_pb2.RejectWorkPermitApplicationRequest(
            request_id=req, id=rid, reasons=reasons
        ),
        _permit_state("work_permit_application"),
    ),
    "permits.residence_permit": Decision(
        "ApproveResidencePermitApplication",
        lambda rid, req: permits_pb2.ApproveResidencePermitApplicationRequest(request_id=req, id=rid),
        "RejectResidencePermitApplication",
        lambda rid, req, reasons: permits_pb2.RejectResidencePermitApplicationRequest(
            request_id=req, id=rid, reasons=reasons
        ),
        _permit_state("residence_permit_application"),
    ),
}
