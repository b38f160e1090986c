"""The permits service's contract over a real server: idempotency, refusals with their reasons, field
violations, duplicates, pagination, verification and lifelong permit numbers."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from govhub.common.v1 import common_pb2
from govhub.permits.v1 import permits_pb2 as pb
from tests.service.permits.conftest import (
    OTHER_USCC,
    TODAY,
    Permits,
    date,
    reason,
    ref,
    refs,
    rid,
    violations,
    work_permit_request,
)


async def _fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


# -- idempotency ---------------------------------------------------------------------------------------------


async def test_same_request_id_answers_the_first_result_and_changes_nothing(permits: Permits) -> None:
    await permits.employer()
    request = work_permit_request(materials=refs("passport"))
    first = await permits.stub.CreateWorkPermitApplication(request)
    again = await permits.stub.CreateWorkPermitApplication(request)
    assert again == first

    approve = pb.CancelWorkPermitApplicationRequest(
        request_id=rid(), id=first.work_permit_application.id, reason="case withdrawn"
    )
    cancelled = await permits.stub.CancelWorkPermitApplication(approve)
    assert await permits.stub.CancelWorkPermitApplication(approve) == cancelled  # not ILLEGAL_TRANSITION

    listed = await permits.stub.ListWorkPermitApplications(pb.ListWorkPermitApplicationsRequest())
    assert [a.id for a in listed.work_permit_applications] == [first.work_permit_application.id]
    types = [e.type for e in await permits.events() if e.aggregate_id == first.work_permit_application.id]
    assert types == ["WorkPermitSubmitted", "WorkPermitAwaitingMaterials", "WorkPermitCancelled"]
    assert cancelled.work_permit_application.cancellation_reason == "case withdrawn"


async def test_same_request_id_with_another_body_is_refused(permits: Permits) -> None:
    await permits.employer()
    request = work_permit_request()
    await permits.stub.CreateWorkPermitApplication(request)
    other = pb.CreateWorkPermitApplicationRequest()
    other.CopyFrom(request)
    other.position = "Data engineer"
    exc = await _fails(permits.stub.CreateWorkPermitApplication(other))
    assert violations(exc) == {"request_id": "REUSED_WITH_DIFFERENT_REQUEST"}


async def test_request_id_is_required(permits: Permits) -> None:
    exc = await _fails(
        permits.stub.ApproveWorkPermitApplication(pb.ApproveWorkPermitApplicationRequest(id="x"))
    )
    assert violations(exc) == {"request_id": "REQUIRED"}


# -- field violations ----------------------------------------------------------------------------------------


async def test_every_bad_field_is_named_by_its_path(permits: Permits) -> None:
    await permits.employer()
    request = work_permit_request(
        passport="E12-34",
        contract=pb.Contract(start_date=date(dt.date(2017, 5, 1)), end_date=date(dt.date(2017, 4, 30))),
        annual_salary_fen=-1,
        materials=[ref("passport"), common_pb2.MaterialReference(kind="selfie", sha256="abc")],
    )
    request.applicant.nationality = "XXX"
    exc = await _fails(permits.stub.CreateWorkPermitApplication(request))
    assert violations(exc) == {
        "applicant.passport_number": "BAD_FORMAT",
        "applicant.nationality": "UNKNOWN_COUNTRY_CODE",
        "contract.end_date": "END_BEFORE_START",
        "annual_salary_fen": "NEGATIVE",
        "materials[1].kind": "UNKNOWN_MATERIAL",
        "materials[1].sha256": "BAD_FORMAT",
    }


async def test_missing_dates_and_enums_are_required(permits: Permits) -> None:
    request = work_permit_request(education=pb.EDUCATION_UNSPECIFIED, contract=pb.Contract())
    request.applicant.ClearField("birth_date")
    request.applicant.sex = common_pb2.SEX_UNSPECIFIED
    exc = await _fails(permits.stub.CreateWorkPermitApplication(request))
    assert violations(exc) == {
        "applicant.birth_date": "REQUIRED",
        "applicant.sex": "REQUIRED",
        "contract.start_date": "REQUIRED",
        "contract.end_date": "REQUIRED",
        "education": "REQUIRED",
    }


async def test_bad_employer_code(permits: Permits) -> None:
    exc = await _fails(
        permits.stub.RegisterEmployer(
            pb.RegisterEmployerRequest(
                request_id=rid(),
                unified_social_credit_code="91110000600037341X",
                name="",
                address="1 Example Rd",
            )
        )
    )
    assert violations(exc) == {"unified_social_credit_code": "BAD_CHECK_CHARACTER", "name": "REQUIRED"}


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("approve", "ILLEGAL_TRANSITION"),
        ("issue", "ILLEGAL_TRANSITION"),
        ("request_materials", "ILLEGAL_TRANSITION"),
        ("extend_review", "ILLEGAL_TRANSITION"),
    ],
)
async def test_wrong_state_is_a_failed_precondition(permits: Permits, step: str, expected: str) -> None:
    await permits.employer()
    app = (
        await permits.stub.CreateWorkPermitApplication(work_permit_request(materials=refs("passport")))
    ).work_permit_application
    assert app.state == pb.PERMIT_STATE_AWAITING_MATERIALS
    s = permits.stub
    call = {
        "approve": lambda: s.ApproveWorkPermitApplication(
            pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=app.id)
        ),
        "issue": lambda: s.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=app.id)),
        "request_materials": lambda: s.RequestWorkPermitMaterials(
            pb.RequestWorkPermitMaterialsRequest(request_id=rid(), id=app.id, kinds=["photo"])
        ),
        "extend_review": lambda: s.ExtendWorkPermitReview(
            pb.ExtendWorkPermitReviewRequest(request_id=rid(), id=app.id)
        ),
    }[step]
    exc = await _fails(call())
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(exc) == expected
    unchanged = await s.GetWorkPermitApplication(pb.GetWorkPermitApplicationRequest(id=app.id))
    assert unchanged.work_permit_application.state == pb.PERMIT_STATE_AWAITING_MATERIALS


async def test_reject_and_request_materials(permits: Permits) -> None:
    await permits.employer()
    app = await permits.work_permit("UNDER_REVIEW")
    s = permits.stub
    asked = (
        await s.RequestWorkPermitMaterials(
            pb.RequestWorkPermitMaterialsRequest(request_id=rid(), id=app.id, kinds=["no_criminal_record"])
        )
    ).work_permit_application
    assert asked.state == pb.PERMIT_STATE_AWAITING_MATERIALS
    assert [m.kind for m in asked.missing_materials] == ["no_criminal_record"]
    assert "no_criminal_record" not in [m.kind for m in asked.materials]
    back = (
        await s.SupplyWorkPermitMaterials(
            pb.SupplyWorkPermitMaterialsRequest(
                request_id=rid(), id=app.id, materials=refs("no_criminal_record")
            )
        )
    ).work_permit_application
    assert back.state == pb.PERMIT_STATE_UNDER_REVIEW
    exc = await _fails(
        s.RejectWorkPermitApplication(pb.RejectWorkPermitApplicationRequest(request_id=rid(), id=app.id))
    )
    assert violations(exc) == {"reasons": "REQUIRED"}
    rejected = (
        await s.RejectWorkPermitApplication(
            pb.RejectWorkPermitApplicationRequest(request_id=rid(), id=app.id, reasons=["synthetic reason"])
        )
    ).work_permit_application
    assert rejected.state == pb.PERMIT_STATE_REJECTED
    assert list(rejected.rejection_reasons) == ["synthetic reason"]
    exc = await _fails(
        s.CancelWorkPermitApplication(pb.CancelWorkPermitApplicationRequest(request_id=rid(), id=app.id))
    )
    assert reason(exc) == "ILLEGAL_TRANSITION"


async def test_residence_permit_needs_an_approved_work_permit(permits: Permits) -> None:
    exc = await _fails(permits.residence_permit())
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(exc) == "WORK_PERMIT_REQUIRED"

    await permits.employer()
    app = await permits.work_permit("UNDER_REVIEW")
    exc = await _fails(permits.residence_permit(passport="E7654321", work_permit_id=app.id))
    assert reason(exc) == "WORK_PERMIT_REQUIRED"  # someone else's work permit
    exc = await _fails(permits.residence_permit(entry_date=date(TODAY - dt.timedelta(days=31))))
    assert reason(exc) == "APPLICATION_TOO_LATE"

    # Lodged with the work permit still in review (the one-window case): it waits, with no decision clock.
    residence = await permits.residence_permit(work_permit_id=app.id)
    assert residence.state == pb.PERMIT_STATE_UNDER_REVIEW and residence.awaiting_work_permit
    assert not residence.HasField("decision_due_date")
    exc = await _fails(
        permits.stub.ApproveResidencePermitApplication(
            pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=residence.id)
        )
    )
    assert reason(exc) == "WORK_PERMIT_NOT_YET_APPROVED"
    exc = await _fails(permits.residence_permit())
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS

    await permits.stub.ApproveWorkPermitApplication(
        pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=app.id)
    )
    reply = await permits.stub.GetResidencePermitApplication(
        pb.GetResidencePermitApplicationRequest(id=residence.id)
    )
    waited = reply.residence_permit_application
    assert not waited.awaiting_work_permit and waited.HasField("decision_due_date")


async def test_residence_permit_fields(permits: Permits) -> None:
    exc = await _fails(
        permits.residence_permit(
            passport="", nationality="CHN", entry_date=common_pb2.Date(year=2017, month=2, day=30)
        )
    )
    assert violations(exc) == {
        "passport_number": "REQUIRED",
        "nationality": "NOT_A_FOREIGN_NATIONALITY",
        "entry_date": "IMPOSSIBLE_DATE",
    }


async def test_employer_refusals(permits: Permits) -> None:
    exc = await _fails(permits.stub.CreateWorkPermitApplication(work_permit_request()))
    assert reason(exc) == "EMPLOYER_NOT_REGISTERED"
    employer = await permits.employer()
    exc = await _fails(permits.employer())
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    changed = await permits.stub.SetEmployerStatus(
        pb.SetEmployerStatusRequest(
            request_id=rid(), id=employer.id, status=pb.EMPLOYER_STATUS_SERIOUS_BAD_RECORD, reason="synthetic"
        )
    )
    assert changed.employer.status == pb.EMPLOYER_STATUS_SERIOUS_BAD_RECORD
    assert changed.employer.status_reason == "synthetic"
    exc = await _fails(permits.stub.CreateWorkPermitApplication(work_permit_request()))
    assert reason(exc) == "EMPLOYER_NOT_ELIGIBLE"
    found = await permits.stub.GetEmployer(
        pb.GetEmployerRequest(unified_social_credit_code=employer.unified_social_credit_code)
    )
    assert found.employer == changed.employer
    types = [e.type for e in await permits.events() if e.aggregate_id == employer.id]
    assert types == ["EmployerRegistered", "EmployerStatusChanged"]


async def test_one_open_application_per_person_and_employer(permits: Permits) -> None:
    await permits.employer()
    await permits.employer(OTHER_USCC)
    first = (await permits.stub.CreateWorkPermitApplication(work_permit_request())).work_permit_application
    exc = await _fails(permits.stub.CreateWorkPermitApplication(work_permit_request(passport="e 1234567")))
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    await permits.stub.CreateWorkPermitApplication(work_permit_request(uscc=OTHER_USCC))  # another employer
    await permits.stub.CancelWorkPermitApplication(
        pb.CancelWorkPermitApplicationRequest(request_id=rid(), id=first.id)
    )
    again = (await permits.stub.CreateWorkPermitApplication(work_permit_request())).work_permit_application
    assert again.id != first.id


async def test_not_found(permits: Permits) -> None:
    exc = await _fails(
        permits.stub.GetWorkPermitApplication(pb.GetWorkPermitApplicationRequest(id="no-such-id"))
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    exc = await _fails(
        permits.stub.ApproveResidencePermitApplication(
            pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id="no-such-id")
        )
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND


# -- lists ---------------------------------------------------------------------------------------------------


async def test_pagination_walks_every_application_once(permits: Permits) -> None:
    await permits.employer()
    ids = set()
    for n in range(5):
        ids.add(
            (
                await permits.stub.CreateWorkPermitApplication(work_permit_request(passport=f"P{n:07d}"))
            ).work_permit_application.id
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await permits.stub.ListWorkPermitApplications(
            pb.ListWorkPermitApplicationsRequest(page_size=2, page_token=token)
        )
        pages += 1
        assert len(page.work_permit_applications) <= 2
        seen += [a.id for a in page.work_permit_applications]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    times = [
        (a.create_time.ToDatetime(), a.id)
        for a in (
            await permits.stub.ListWorkPermitApplications(pb.ListWorkPermitApplicationsRequest())
        ).work_permit_applications
    ]
    assert times == sorted(times, reverse=True)  # newest first

    one = await permits.stub.ListWorkPermitApplications(
        pb.ListWorkPermitApplicationsRequest(passport_number="p0000003", nationality="GBR")
    )
    assert [a.applicant.passport_number for a in one.work_permit_applications] == ["P0000003"]


async def test_bad_page_requests(permits: Permits) -> None:
    s = permits.stub
    exc = await _fails(
        s.ListWorkPermitApplications(pb.ListWorkPermitApplicationsRequest(page_token="not-a-token"))
    )
    assert violations(exc) == {"page_token": "BAD_PAGE_TOKEN"}
    exc = await _fails(
        s.ListResidencePermitApplications(pb.ListResidencePermitApplicationsRequest(page_size=-1))
    )
    assert violations(exc) == {"page_size": "OUT_OF_RANGE"}

    await permits.employer()
    for n in range(2):
        await s.CreateWorkPermitApplication(work_permit_request(passport=f"P{n:07d}"))
    page = await s.ListWorkPermitApplications(pb.ListWorkPermitApplicationsRequest(page_size=1))
    assert page.next_page_token
    exc = await _fails(
        s.ListWorkPermitApplications(
            pb.ListWorkPermitApplicationsRequest(
                page_size=1, page_token=page.next_page_token, state=pb.PERMIT_STATE_SUBMITTED
            )
        )
    )
    assert violations(exc) == {"page_token": "BAD_PAGE_TOKEN"}  # the filters changed


# -- verification and permit numbers -------------------------------------------------------------------------


async def test_verify_permit(permits: Permits) -> None:
    s = permits.stub
    exc = await _fails(s.VerifyPermit(pb.VerifyPermitRequest(permit_number="12345")))
    assert violations(exc) == {"permit_number": "BAD_FORMAT"}
    exc = await _fails(s.VerifyPermit(pb.VerifyPermitRequest(permit_number="31011500000000001X")))
    assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

    await permits.employer()
    issued = await permits.work_permit(
        "ISSUED",
        contract=pb.Contract(start_date=date(dt.date(2017, 4, 1)), end_date=date(dt.date(2018, 3, 31))),
    )
    check = await s.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number.lower()))
    assert check.valid_now is True
    assert (check.valid_from, check.valid_until) == (date(TODAY), date(dt.date(2018, 3, 31)))
    assert {f.name for f, _ in check.ListFields()} <= {
        "permit_number",
        "kind",
        "valid_now",
        "state",
        "category",
        "valid_from",
        "valid_until",
    }
    await s.CancelWorkPermitApplication(pb.CancelWorkPermitApplicationRequest(request_id=rid(), id=issued.id))
    check = await s.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number))
    assert (check.valid_now, check.state) == (False, pb.PERMIT_STATE_CANCELLED)


async def test_work_permit_number_is_kept_for_life(permits: Permits) -> None:
    await permits.employer()
    await permits.employer(OTHER_USCC)
    first = await permits.work_permit("ISSUED")
    second = await permits.work_permit("ISSUED", uscc=OTHER_USCC)
    other_person = await permits.work_permit("ISSUED", passport="E7654321")
    assert second.permit_number == first.permit_number
    assert other_person.permit_number != first.permit_number


async def test_residence_permit_extension_and_cancellation(permits: Permits) -> None:
    await permits.employer()
    work = await permits.work_permit("ISSUED")
    s = permits.stub
    residence = await permits.residence_permit(requested_valid_until=date(dt.date(2017, 12, 31)))
    residence = (
        await s.ApproveResidencePermitApplication(
            pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=residence.id)
        )
    ).residence_permit_application
    assert residence.fee_fen == 400_00  # under a year
    exc = await _fails(
        s.ExtendResidencePermit(pb.ExtendResidencePermitRequest(request_id=rid(), id=residence.id))
    )
    assert reason(exc) == "PERMIT_NOT_ISSUED"
    await s.IssueResidencePermit(pb.IssueResidencePermitRequest(request_id=rid(), id=residence.id))
    extended = (
        await s.ExtendResidencePermit(pb.ExtendResidencePermitRequest(request_id=rid(), id=residence.id))
    ).residence_permit_application
    assert extended.valid_until == work.valid_until
    cancelled = (
        await s.CancelResidencePermitApplication(
            pb.CancelResidencePermitApplicationRequest(request_id=rid(), id=residence.id, reason="left China")
        )
    ).residence_permit_application
    assert cancelled.state == pb.PERMIT_STATE_CANCELLED
    types = [e.type for e in await permits.events() if e.aggregate_id == residence.id]
    assert types[-2:] == ["ResidencePermitExtended", "ResidencePermitCancelled"]


# -- concurrency (on PostgreSQL the requests really overlap; SQLite serialises them) ------------------------


async def test_concurrent_issues_get_distinct_numbers_and_duplicates_lose(permits: Permits) -> None:
    await permits.employer()
    approved = [await permits.work_permit("APPROVED", passport=f"C{n:07d}") for n in range(4)]
    for app in approved:
        await permits.stub.SupplyWorkPermitMaterials(
            pb.SupplyWorkPermitMaterialsRequest(
                request_id=rid(), id=app.id, materials=refs("z_or_r_visa_with_entry_stamp")
            )
        )
    issued = await asyncio.gather(
        *(
            permits.stub.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=a.id))
            for a in approved
        )
    )
    numbers = {r.work_permit_application.permit_number for r in issued}
    assert len(numbers) == 4

    outcomes = await asyncio.gather(
        *(
            permits.stub.CreateWorkPermitApplication(work_permit_request(passport="D1234567"))
            for _ in range(4)
        ),
        return_exceptions=True,
    )
    created = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert [e.code() for e in refused] == [grpc.StatusCode.ALREADY_EXISTS] * 3
