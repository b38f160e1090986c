"""Fake department answers for the gateway's self-service, back-office and pickup calls."""

from __future__ import annotations

from typing import Any

from gateway.clients import Refused
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2
from govhub.residence.v1 import residence_pb2
from tests.fakes import FakeDepartment

KNOWN_CARD_HOLDER = "11010519491231002X"


def deciding_identity(fake: FakeDepartment) -> FakeDepartment:
    """Identity that approves, rejects and issues, answers a card for KNOWN_CARD_HOLDER, and found cards."""

    def card_app(request: Any, state: int) -> Any:
        return identity_pb2.CardApplication(id=request.id, state=state)

    def approve(request: Any) -> Any:
        return identity_pb2.ApproveCardApplicationResponse(
            card_application=card_app(request, identity_pb2.CARD_APPLICATION_STATE_APPROVED)
        )

    def reject(request: Any) -> Any:
        return identity_pb2.RejectCardApplicationResponse(
            card_application=card_app(request, identity_pb2.CARD_APPLICATION_STATE_REJECTED)
        )

    def produced(request: Any) -> Any:
        return identity_pb2.MarkCardProducedResponse(
            card_application=card_app(request, identity_pb2.CARD_APPLICATION_STATE_CARD_PRODUCED)
        )

    def ready(request: Any) -> Any:
        return identity_pb2.MarkCardReadyForPickupResponse(
            card_application=card_app(request, identity_pb2.CARD_APPLICATION_STATE_READY_FOR_PICKUP)
        )

    def issue(request: Any) -> Any:
        if not request.old_card_surrendered:
            raise Refused(
                "identity", "OLD_CARD_NOT_SURRENDERED", "hand in the old card", "FAILED_PRECONDITION"
            )
        return identity_pb2.IssueCardResponse(
            card_application=card_app(request, identity_pb2.CARD_APPLICATION_STATE_ISSUED),
            card=identity_pb2.Card(card_number="C-0001", status=identity_pb2.CARD_STATUS_VALID),
        )

    def current(request: Any) -> Any:
        if request.id_number != KNOWN_CARD_HOLDER:
            raise Refused("identity", "NOT_FOUND", "no card", "NOT_FOUND")
        return identity_pb2.GetCurrentCardResponse(
            card=identity_pb2.Card(
                card_number="C-OLD",
                id_number=request.id_number,
                status=identity_pb2.CARD_STATUS_VALID,
                valid_until=common_pb2.Date(year=2016, month=10, day=1),
            )
        )

    def found(request: Any) -> Any:
        return identity_pb2.SearchFoundCardsResponse(
            found_cards=[
                identity_pb2.FoundCard(
                    id="f-1",
                    card_number="C-LOST",
                    id_number=request.id_number,
                    status=identity_pb2.FOUND_CARD_STATUS_AWAITING_OWNER,
                )
            ]
        )

    fake.handlers.update(
        ApproveCardApplication=approve,
        RejectCardApplication=reject,
        MarkCardProduced=produced,
        MarkCardReadyForPickup=ready,
        IssueCard=issue,
        GetCurrentCard=current,
        SearchFoundCards=found,
    )
    return fake


def household_residence(fake: FakeDepartment) -> FakeDepartment:
    def person(request: Any) -> Any:
        return residence_pb2.GetPersonResponse(
            person=residence_pb2.Person(id_number=request.id_number, name="陈沪明"),
            household=residence_pb2.Household(
                id="h-1", number="310104-0001", address="上海市徐汇区测试路1号"
            ),
        )

    def members(request: Any) -> Any:
        return residence_pb2.ListMembersResponse(
            members=[residence_pb2.Person(name="陈沪明", relationship_code="02")]
        )

    fake.handlers.update(GetPerson=person, ListMembers=members)
    return fake


def deciding_permits(fake: FakeDepartment) -> FakeDepartment:
    def approve_wp(request: Any) -> Any:
        return permits_pb2.ApproveWorkPermitApplicationResponse(
            work_permit_application=permits_pb2.WorkPermitApplication(
                id=request.id, state=permits_pb2.PERMIT_STATE_APPROVED
            )
        )

    def reject_wp(request: Any) -> Any:
        return permits_pb2.RejectWorkPermitApplicationResponse(
            work_permit_application=permits_pb2.WorkPermitApplication(
                id=request.id, state=permits_pb2.PERMIT_STATE_REJECTED
            )
        )

    def issue_wp(request: Any) -> Any:
        return permits_pb2.IssueWorkPermitResponse(
            work_permit_application=permits_pb2.WorkPermitApplication(
                id=request.id, state=permits_pb2.PERMIT_STATE_ISSUED
            )
        )

    fake.handlers.update(
        ApproveWorkPermitApplication=approve_wp,
        RejectWorkPermitApplication=reject_wp,
        IssueWorkPermit=issue_wp,
    )
    return fake
