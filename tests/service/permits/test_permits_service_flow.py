"""The whole path over a real server: employer, work permit (materials missing, then supplied), approval,
issue, residence permit, approval, issue, verification, and the events published on the way."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from govhub.permits.v1 import permits_pb2 as pb
from tests.service.permits.conftest import (
    NOTICE_KINDS,
    TODAY,
    Permits,
    reason,
    refs,
    rid,
    work_permit_request,
)


async def test_employer_to_verified_permits(permits: Permits) -> None:
    stub = permits.stub
    employer = await permits.employer()
    assert employer.status == pb.EMPLOYER_STATUS_ACTIVE

    created = (
        await stub.CreateWorkPermitApplication(
            work_permit_request(materials=refs("passport", "photo", "contract"))
        )
    ).work_permit_application
    assert created.state == pb.PERMIT_STATE_AWAITING_MATERIALS
    assert created.category == pb.CATEGORY_B
    assert created.points.total == 40
    assert created.employer_id == employer.id
    assert [m.kind for m in created.missing_materials] == [
        "wp_application_form",
        "work_experience_proof",
        "degree_certificate",
        "no_criminal_record",
        "health_certificate",
    ]

    supplied = (
        await stub.SupplyWorkPermitMaterials(
            pb.SupplyWorkPermitMaterialsRequest(
                request_id=rid(), id=created.id, materials=refs(*NOTICE_KINDS)
            )
        )
    ).work_permit_application
    assert supplied.state == pb.PERMIT_STATE_UNDER_REVIEW
    assert list(supplied.missing_materials) == []
    assert supplied.decision_due_date.year == 2017  # 20 working days

    approved = (
        await stub.ApproveWorkPermitApplication(
            pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=created.id)
        )
    ).work_permit_application
    assert approved.state == pb.PERMIT_STATE_APPROVED
    assert [m.kind for m in approved.missing_materials] == ["z_or_r_visa_with_entry_stamp"]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=created.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refused.value) == "MATERIALS_INCOMPLETE"
    assert "z_or_r_visa_with_entry_stamp" in (refused.value.details() or "")

    await stub.SupplyWorkPermitMaterials(
        pb.SupplyWorkPermitMaterialsRequest(
            request_id=rid(), id=created.id, materials=refs("z_or_r_visa_with_entry_stamp")
        )
    )
    issued = (
        await stub.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=created.id))
    ).work_permit_application
    assert issued.state == pb.PERMIT_STATE_ISSUED
    assert len(issued.permit_number) == 18 and issued.permit_number.startswith("310115")
    assert (issued.valid_from.year, issued.valid_from.month, issued.valid_from.day) == (2017, 5, 1)
    assert (issued.valid_until.year, issued.valid_until.month, issued.valid_until.day) == (2019, 4, 30)

    residence = await permits.residence_permit()
    assert residence.state == pb.PERMIT_STATE_UNDER_REVIEW
    assert residence.work_permit_id == created.id
    assert residence.applicant.surname == "Testperson"
    residence = (
        await stub.ApproveResidencePermitApplication(
            pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=residence.id)
        )
    ).residence_permit_application
    assert residence.state == pb.PERMIT_STATE_APPROVED
    assert residence.fee_fen == 800_00  # about two years: the 1-3 year fee
    residence = (
        await stub.IssueResidencePermit(pb.IssueResidencePermitRequest(request_id=rid(), id=residence.id))
    ).residence_permit_application
    assert residence.state == pb.PERMIT_STATE_ISSUED
    assert residence.permit_number and residence.permit_number != issued.permit_number

    work_check = await stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number))
    # Valid from the contract start (1 May): not yet valid on 10 April.
    assert (work_check.kind, work_check.valid_now, work_check.state) == (
        pb.PERMIT_KIND_WORK_PERMIT,
        False,
        pb.PERMIT_STATE_ISSUED,
    )
    residence_check = await stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=residence.permit_number))
    assert residence_check.kind == pb.PERMIT_KIND_RESIDENCE_PERMIT
    assert residence_check.valid_now is True
    assert residence_check.category == pb.CATEGORY_B
    assert residence_check.valid_until == residence.valid_until

    events = await permits.events()
    wp_events = [e.type for e in events if e.aggregate_id == created.id]
    assert wp_events == [
        "WorkPermitSubmitted",
        "WorkPermitAwaitingMaterials",
        "WorkPermitUnderReview",
        "WorkPermitApproved",
        "WorkPermitIssued",
    ]
    rp_events = [e.type for e in events if e.aggregate_id == residence.id]
    assert rp_events == [
        "ResidencePermitSubmitted",
        "ResidencePermitUnderReview",
        "ResidencePermitApproved",
        "ResidencePermitIssued",
    ]
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert len({e.sequence for e in events}) == len(events)
    by_type = {e.type: e for e in events}
    assert by_type["WorkPermitSubmitted"].data["employer_id"] == employer.id
    assert by_type["WorkPermitAwaitingMaterials"].data["missing"].startswith("wp_application_form")
    assert by_type["WorkPermitApproved"].data["category"] == "B"
    assert by_type["ResidencePermitSubmitted"].data["work_permit_id"] == created.id
    assert dt.date.fromisoformat(
        by_type["ResidencePermitUnderReview"].data["decision_due"]
    ) == TODAY + dt.timedelta(days=15)
    # No personal data in any event.
    for event in events:
        text = str(event)
        assert "E1234567" not in text and "Testperson" not in text
