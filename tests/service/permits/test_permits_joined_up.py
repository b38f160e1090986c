"""Issue 13 on the permits side, through real permits servers: the residence permit lodged with a pending
work permit and decided after it (the 30 days counted to the application date, even when the work permit
takes 43 days), a job change inside China, the residence permit following its work permit's end, rejection
codes, results in the events, and the department's quote."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from govhub.permits.v1 import permits_pb2 as pb
from govhub.permits.v1 import permits_pb2_grpc
from services.common.clock import Clock
from services.common.settings import ServiceSettings
from services.permits.server import build_server
from tests.service.permits.conftest import (
    OTHER_USCC,
    TODAY,
    Permits,
    date,
    reason,
    refs,
    rid,
    violations,
    work_permit_request,
)

ENTRY = TODAY - dt.timedelta(days=5)


@asynccontextmanager
async def permits_on(db_url: str, today: dt.date) -> AsyncIterator[Permits]:
    """A permits server over `db_url` whose clock says `today` (a later day: the same database, later)."""
    settings = ServiceSettings(service="permits", host="127.0.0.1", port=0, database_url=db_url)
    service = await build_server(settings, clock=Clock(today))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Permits(permits_pb2_grpc.PermitsServiceStub(channel), service)
    finally:
        await channel.close()
        await service.stop(0)


async def fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


def of_type(events: list, kind: str, aggregate_id: str) -> list:  # type: ignore[type-arg]
    return [e for e in events if e.type == kind and e.aggregate_id == aggregate_id]


async def test_lodged_on_submission_decided_on_day_43_then_ended_with_the_work_permit(db_url: str) -> None:
    async with permits_on(db_url, TODAY) as permits:
        await permits.employer()
        wp = await permits.work_permit("UNDER_REVIEW")
        rp = await permits.residence_permit(work_permit_id=wp.id, entry_date=date(ENTRY))
        assert rp.awaiting_work_permit and not rp.HasField("decision_due_date")
        [submitted] = of_type(await permits.events(), "ResidencePermitSubmitted", rp.id)
        assert submitted.data["awaiting_work_permit"] is True and submitted.data["work_permit_id"] == wp.id

    day_43 = ENTRY + dt.timedelta(days=43)
    async with permits_on(db_url, day_43) as permits:
        mark = (await permits.events())[-1].sequence
        await permits.stub.ApproveWorkPermitApplication(
            pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=wp.id)
        )
        got = await permits.stub.GetResidencePermitApplication(
            pb.GetResidencePermitApplicationRequest(id=rp.id)
        )
        assert got.residence_permit_application.decision_due_date == date(day_43 + dt.timedelta(days=15))
        approved = (
            await permits.stub.ApproveResidencePermitApplication(
                pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=rp.id)
            )
        ).residence_permit_application
        assert approved.state == pb.PERMIT_STATE_APPROVED and approved.fee_fen == 80000
        await permits.stub.SupplyWorkPermitMaterials(
            pb.SupplyWorkPermitMaterialsRequest(
                request_id=rid(), id=wp.id, materials=refs("z_or_r_visa_with_entry_stamp")
            )
        )
        await permits.stub.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=wp.id))
        issued = (
            await permits.stub.IssueResidencePermit(
                pb.IssueResidencePermitRequest(request_id=rid(), id=rp.id)
            )
        ).residence_permit_application
        events = await permits.events(after=mark)
        [review] = of_type(events, "ResidencePermitUnderReview", rp.id)
        assert review.data["decision_due"] == (day_43 + dt.timedelta(days=15)).isoformat()
        [fixed] = of_type(events, "ResidencePermitApproved", rp.id)
        assert fixed.data["fee_fen"] == 80000
        [handed] = of_type(events, "ResidencePermitIssued", rp.id)
        assert handed.data["permit_number"] == issued.permit_number
        [wp_issued] = of_type(events, "WorkPermitIssued", wp.id)
        assert wp_issued.data["permit_number"] and wp_issued.data["valid_from"]
        verified = await permits.stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number))
        assert verified.valid_now

        # The work permit is cancelled: the residence permit resting on it goes with it.
        mark = (await permits.events())[-1].sequence
        await permits.stub.CancelWorkPermitApplication(
            pb.CancelWorkPermitApplicationRequest(request_id=rid(), id=wp.id, reason="employment ended")
        )
        verified = await permits.stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number))
        assert not verified.valid_now and verified.state == pb.PERMIT_STATE_CANCELLED
        [cancelled] = of_type(await permits.events(after=mark), "ResidencePermitCancelled", rp.id)
        assert cancelled.data["cause"] == "WORK_PERMIT_CANCELLED"


async def test_a_job_change_inside_china(db_url: str) -> None:
    async with permits_on(db_url, TODAY) as permits:
        await permits.employer()
        old_wp = await permits.work_permit("ISSUED")
        old = (
            await permits.stub.IssueResidencePermit(
                pb.IssueResidencePermitRequest(
                    request_id=rid(),
                    id=(
                        await permits.stub.ApproveResidencePermitApplication(
                            pb.ApproveResidencePermitApplicationRequest(
                                request_id=rid(),
                                id=(await permits.residence_permit(work_permit_id=old_wp.id)).id,
                            )
                        )
                    ).residence_permit_application.id,
                )
            )
        ).residence_permit_application
        await permits.employer(uscc=OTHER_USCC)
        new_wp = (
            await permits.stub.CreateWorkPermitApplication(
                work_permit_request(
                    uscc=OTHER_USCC,
                    materials=refs(
                        "wp_application_form",
                        "work_experience_proof",
                        "degree_certificate",
                        "no_criminal_record",
                        "health_certificate",
                        "contract",
                        "passport",
                        "photo",
                    ),
                )
            )
        ).work_permit_application

        exc = await fails(permits.residence_permit(work_permit_id=new_wp.id, entry_date=None))
        assert violations(exc) == {"entry_date": "REQUIRED"}
        exc = await fails(
            permits.residence_permit(
                work_permit_id=new_wp.id, entry_date=None, held_residence_permit_number=old_wp.permit_number
            )
        )
        assert reason(exc) == "RESIDENCE_PERMIT_NOT_HELD"  # a work permit number is not a residence permit
        new = await permits.residence_permit(
            work_permit_id=new_wp.id, entry_date=None, held_residence_permit_number=old.permit_number
        )
        assert new.replaces_id == old.id and new.awaiting_work_permit and not new.HasField("entry_date")

        await permits.stub.ApproveWorkPermitApplication(
            pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=new_wp.id)
        )
        await permits.stub.ApproveResidencePermitApplication(
            pb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=new.id)
        )
        mark = (await permits.events())[-1].sequence
        issued = (
            await permits.stub.IssueResidencePermit(
                pb.IssueResidencePermitRequest(request_id=rid(), id=new.id)
            )
        ).residence_permit_application
        held = await permits.stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=old.permit_number))
        assert not held.valid_now and held.state == pb.PERMIT_STATE_CANCELLED
        assert (
            await permits.stub.VerifyPermit(pb.VerifyPermitRequest(permit_number=issued.permit_number))
        ).valid_now
        [replaced] = of_type(await permits.events(after=mark), "ResidencePermitCancelled", old.id)
        assert replaced.data["cause"] == "REPLACED"


async def test_rejections_carry_codes_and_take_a_waiting_residence_permit_along(db_url: str) -> None:
    async with permits_on(db_url, TODAY) as permits:
        await permits.employer()
        wp = await permits.work_permit("UNDER_REVIEW")
        rp = await permits.residence_permit(work_permit_id=wp.id)

        def reject(**fields: object) -> object:
            request = pb.RejectWorkPermitApplicationRequest(request_id=rid(), id=wp.id, **fields)  # type: ignore[arg-type]
            return permits.stub.RejectWorkPermitApplication(request)

        exc = await fails(reject(reasons=["无犯罪记录证明不真实"], reason_codes=["MADE_UP"]))
        assert violations(exc) == {"reason_codes[0]": "UNKNOWN_REASON_CODE"}
        exc = await fails(reject(reasons=["a", "b"], reason_codes=["CRIMINAL_RECORD"]))
        assert violations(exc) == {"reason_codes": "COUNT_MISMATCH"}
        mark = (await permits.events())[-1].sequence
        rejected = (
            await reject(reasons=["无犯罪记录证明不真实"], reason_codes=["materials_not_authentic"])  # type: ignore[misc]
        ).work_permit_application
        assert list(rejected.rejection_codes) == ["MATERIALS_NOT_AUTHENTIC"]
        events = await permits.events(after=mark)
        [event] = of_type(events, "WorkPermitRejected", wp.id)
        assert event.data["reason_codes"] == ["MATERIALS_NOT_AUTHENTIC"]
        assert event.data["reasons"] == ["无犯罪记录证明不真实"]
        [gone] = of_type(events, "ResidencePermitCancelled", rp.id)
        assert gone.data["cause"] == "WORK_PERMIT_REJECTED"


async def test_the_quote_is_the_departments_own_rules(db_url: str) -> None:
    async with permits_on(db_url, TODAY) as permits:
        quote = await permits.stub.QuotePermits(
            pb.QuotePermitsRequest(valid_from=date(TODAY), valid_until=date(dt.date(2018, 4, 9)))
        )
        assert quote.on == date(TODAY) and quote.residence_permit_fee_fen == 80000
        assert quote.work_permit_working_days == 20 and quote.work_permit_short_stay_working_days == 5
        assert quote.residence_permit_decision_days == 15
        assert quote.residence_permit_apply_within_days_of_entry == 30
        assert [(t.min_months, t.fee_fen) for t in quote.residence_permit_fee_tiers] == [
            (0, 40000),
            (12, 80000),
            (36, 100000),
        ]
        assert {c.code for c in quote.rejection_codes} >= {"OTHER", "CRIMINAL_RECORD"}
        exc = await fails(
            permits.stub.QuotePermits(pb.QuotePermitsRequest(valid_from=date(TODAY), valid_until=date(ENTRY)))
        )
        assert violations(exc) == {"valid_until": "END_BEFORE_START"}


async def test_cross_field_dates_are_field_violations(db_url: str) -> None:
    async with permits_on(db_url, TODAY) as permits:
        await permits.employer()
        request = work_permit_request(
            contract=pb.Contract(start_date=date(dt.date(2017, 5, 1)), end_date=date(dt.date(2017, 4, 30)))
        )
        exc = await fails(permits.stub.CreateWorkPermitApplication(request))
        assert violations(exc) == {"contract.end_date": "END_BEFORE_START"}


async def test_every_category_input_reaches_the_scoring(db_url: str) -> None:
    """The eight inputs that decide a foreigner's category, each over gRPC into points and category."""
    async with permits_on(db_url, TODAY) as permits:
        await permits.employer()
        base = {"education": pb.EDUCATION_OTHER, "experience_years": 0}  # category C on its own

        async def apply(passport: str, **fields: object) -> pb.WorkPermitApplication:
            request = work_permit_request(passport=passport, **{**base, **fields})  # type: ignore[arg-type]
            return (await permits.stub.CreateWorkPermitApplication(request)).work_permit_application

        plain = await apply("E2000001")
        assert plain.category == pb.CATEGORY_C
        items = dict(plain.points.items)

        special = await apply("E2000002", special_criteria=[pb.SPECIAL_CRITERION_TALENT_PROGRAMME])
        assert special.category == pb.CATEGORY_A and "SPECIAL_CRITERIA" in special.category_grounds
        top = await apply("E2000003", top_university_or_fortune500=True)
        assert top.points.items["top_university_or_fortune500"] > 0
        region = await apply("E2000004", special_region=True)
        assert region.points.items["special_region"] > 0
        bonus = await apply("E2000005", provincial_bonus=7)
        assert bonus.points.items["provincial_bonus"] == 7 and items["provincial_bonus"] == 0
        chinese = await apply("E2000006", chinese=pb.Chinese(degree_taught_in_chinese=True))
        assert chinese.points.items["chinese"] > items["chinese"]
        skills = await apply("E2000007", international_skills_certificate=True)
        assert (
            skills.category == pb.CATEGORY_B and "INTERNATIONAL_SKILLS_CERTIFICATE" in skills.category_grounds
        )
        older = pb.Applicant(
            passport_number="E2000008",
            nationality="GBR",
            surname="Testperson",
            given_names="Sam",
            birth_date=date(dt.date(1950, 1, 2)),
            sex=1,
        )
        refused_age = await apply("E2000008", applicant=older, international_skills_certificate=True)
        assert refused_age.category == pb.CATEGORY_C  # 67: over category B's age limit
        relaxed = (
            await permits.stub.CreateWorkPermitApplication(
                work_permit_request(
                    passport="E2000009",
                    applicant=pb.Applicant(
                        **{**{f.name: v for f, v in older.ListFields()}, "passport_number": "E2000009"}
                    ),
                    international_skills_certificate=True,
                    age_limit_relaxed=True,
                    **base,  # type: ignore[arg-type]
                )
            )
        ).work_permit_application
        assert relaxed.category == pb.CATEGORY_B and "AGE_LIMIT_RELAXED" in relaxed.category_grounds
        short = await apply(
            "E2000010",
            short_stay=True,
            materials=refs(
                "wp_application_form",
                "work_experience_proof",
                "degree_certificate",
                "no_criminal_record",
                "health_certificate",
                "contract",
                "passport",
                "photo",
            ),
        )
        assert short.short_stay and short.decision_due_date == date(dt.date(2017, 4, 17))  # 5 working days
