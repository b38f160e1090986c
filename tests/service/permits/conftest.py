"""A real permits server on port 0 per test, a grpc.aio channel made in the test's own loop, and synthetic
requests (no real people or companies)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from stdnum.cn import uscc

from govhub.common.v1 import common_pb2
from govhub.permits.v1 import permits_pb2 as pb
from govhub.permits.v1 import permits_pb2_grpc
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.permits.server import build_server

TODAY = dt.date(2017, 4, 10)  # a Monday after the nationwide roll-out; the calendar covers 2016-2018
EMPLOYER_USCC = "91110000600037341L"  # python-stdnum's documented example
OTHER_USCC = "91310115MA1FL0000" + uscc.calc_check_digit("91310115MA1FL0000")
_marker_numbers = itertools.count(1)


def fresh_uscc() -> str:
    body = f"91310115MA1M{next(_marker_numbers):05d}"
    return body + uscc.calc_check_digit(body)


NOTICE_KINDS = (
    "wp_application_form",
    "work_experience_proof",
    "degree_certificate",
    "no_criminal_record",
    "health_certificate",
    "contract",
    "passport",
    "photo",
)
RESIDENCE_KINDS = (
    "passport_and_visa",
    "rp_application_form",
    "photo",
    "health_certificate",
    "employer_letter",
    "employer_licence_copy",
    "work_permit",
)


def rid() -> str:
    return str(uuid.uuid4())


def date(value: dt.date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def ref(kind: str) -> common_pb2.MaterialReference:
    return common_pb2.MaterialReference(
        kind=kind,
        sha256=hashlib.sha256(kind.encode()).hexdigest(),
        media_type="application/pdf",
        size_bytes=1024,
    )


def refs(*kinds: str) -> list[common_pb2.MaterialReference]:
    return [ref(k) for k in kinds]


def work_permit_request(
    passport: str = "E1234567", uscc: str = EMPLOYER_USCC, **overrides: Any
) -> pb.CreateWorkPermitApplicationRequest:
    """Scores 15 (age 31) + 10 (bachelor) + 8 (salary 100,000 yuan) + 7 (4 years) = 40: category B by degree
    and experience."""
    fields: dict[str, Any] = {
        "request_id": rid(),
        "applicant": pb.Applicant(
            passport_number=passport,
            nationality="GBR",
            surname="Testperson",
            given_names="Alex",
            birth_date=date(dt.date(1985, 6, 15)),
            sex=common_pb2.SEX_FEMALE,
        ),
        "employer_uscc": uscc,
        "position": "Software engineer",
        "work_region": "310115",
        "contract": pb.Contract(start_date=date(dt.date(2017, 5, 1)), end_date=date(dt.date(2019, 4, 30))),
        "annual_salary_fen": 100_000_00,
        "education": pb.EDUCATION_BACHELOR,
        "experience_years": 4,
    }
    fields.update(overrides)
    return pb.CreateWorkPermitApplicationRequest(**fields)


def status_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """The google.rpc.Status details of a failed call, unpacked."""
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, "no status details"
    out: list[Any] = []
    for detail in status_pb2.Status.FromString(raw).details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                out.append(msg)
    return out


def violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
    (bad,) = [d for d in status_details(exc) if isinstance(d, error_details_pb2.BadRequest)]
    return {v.field: v.reason for v in bad.field_violations}


def reason(exc: grpc.aio.AioRpcError) -> str:
    (info,) = [d for d in status_details(exc) if isinstance(d, error_details_pb2.ErrorInfo)]
    return info.reason


@dataclass
class Permits:
    stub: permits_pb2_grpc.PermitsServiceStub
    service: GrpcService

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    async def employer(self, uscc: str = EMPLOYER_USCC) -> pb.Employer:
        response = await self.stub.RegisterEmployer(
            pb.RegisterEmployerRequest(
                request_id=rid(),
                unified_social_credit_code=uscc,
                name="Synthetic Widgets Ltd",
                address="1 Example Rd",
            )
        )
        return response.employer

    async def work_permit(self, state: str = "UNDER_REVIEW", **kwargs: Any) -> pb.WorkPermitApplication:
        """A work permit application driven by the RPCs up to `state`: UNDER_REVIEW, APPROVED or ISSUED."""
        app = (
            await self.stub.CreateWorkPermitApplication(
                work_permit_request(materials=refs(*NOTICE_KINDS), **kwargs)
            )
        ).work_permit_application
        assert app.state == pb.PERMIT_STATE_UNDER_REVIEW
        if state == "UNDER_REVIEW":
            return app
        app = (
            await self.stub.ApproveWorkPermitApplication(
                pb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=app.id)
            )
        ).work_permit_application
        if state == "APPROVED":
            return app
        await self.stub.SupplyWorkPermitMaterials(
            pb.SupplyWorkPermitMaterialsRequest(
                request_id=rid(), id=app.id, materials=refs("z_or_r_visa_with_entry_stamp")
            )
        )
        app = (
            await self.stub.IssueWorkPermit(pb.IssueWorkPermitRequest(request_id=rid(), id=app.id))
        ).work_permit_application
        assert state == "ISSUED"
        return app

    async def residence_permit(
        self, passport: str = "E1234567", **overrides: Any
    ) -> pb.ResidencePermitApplication:
        fields: dict[str, Any] = {
            "request_id": rid(),
            "passport_number": passport,
            "nationality": "GBR",
            "entry_date": date(TODAY - dt.timedelta(days=5)),
            "materials": refs(*RESIDENCE_KINDS),
        }
        fields.update(overrides)
        response = await self.stub.CreateResidencePermitApplication(
            pb.CreateResidencePermitApplicationRequest(**fields)
        )
        return response.residence_permit_application

    async def events(self, after: int = 0) -> list[common_pb2.Event]:
        """Every event after `after`, in order. A marker event (a freshly registered employer) is written
        last, and the stream is read up to it: no sleeping, and nothing recorded before it can be missed."""
        marker = await self.employer(uscc=fresh_uscc())
        call = self.stub.WatchEvents(pb.WatchEventsRequest(after_sequence=after))
        out: list[common_pb2.Event] = []
        try:
            async for response in call:
                if response.event.aggregate_id == marker.id:
                    break
                out.append(response.event)
        finally:
            call.cancel()
        return out


@pytest.fixture
async def permits(db_url: str) -> AsyncIterator[Permits]:
    settings = ServiceSettings(service="permits", host="127.0.0.1", port=0, database_url=db_url)
    service = await build_server(settings, clock=Clock(TODAY))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Permits(permits_pb2_grpc.PermitsServiceStub(channel), service)
    finally:
        await channel.close()
        await service.stop(0)
