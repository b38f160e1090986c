"""govhub.permits.v1.PermitsService over grpc.aio: proto in, the service layer (``handlers.py``), proto out.

The servicer checks and converts the request's fields (every bad field at once, named by its path), calls
one use case of ``PermitsHandlers`` and answers with the stored resource. Every mutating RPC runs through
``run_idempotent``: one unit of work holds the state change, its outbox events and the stored answer.
"Today" is the service clock's (``GOVHUB_TODAY`` pins it).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import Message

from govhub.common.v1 import common_pb2
from govhub.permits.v1 import permits_pb2, permits_pb2_grpc
from services.common.dates import age_on
from services.common.db import UnitOfWork
from services.common.errors import (
    FieldViolation,
    InvalidArgument,
    ValidationCollector,
)
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem
from services.common.idempotency import run_idempotent
from services.common.pages import decode_page_token, encode_page_token, page_size
from services.common.protoconv import (
    date_in,
    date_to_proto,
    enum_in,
    enum_out,
    event_to_proto,
    timestamp,
)
from services.common.service import ServiceContext
from services.permits import domain as d
from services.permits.calendar import CalendarAlarm
from services.permits.handlers import PermitsHandlers, SqlPermitsUnit
from services.permits.policy import default_policy
from services.permits.store import (
    EmployerRow,
    IdempotencyRecord,
    ResidencePermitRecord,
    WorkPermitRecord,
)

R = TypeVar("R", bound=Message)
P = TypeVar("P", bound=int)
Context = grpc.aio.ServicerContext[Any, Any]
S = d.PermitState

# A page token carries the last row's (create time, id) and a digest of the list's filters.
PAGE_KEY = (dt.datetime, str)
MAX_WORKING_DAY_SPANS = 1000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Domain field names that the request spells differently.
_FIELD_PATHS = {"annual_salary": "annual_salary_fen"}
_PLACEHOLDER_BIRTH_DATE = dt.date(1990, 1, 1)  # stands in for a missing date so that other fields are checked


# ----------------------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------------------


def _enum(wrapper: type[P], prefix: str, value: enum.Enum | None) -> P:
    """A domain enum (or None) as the number of the proto enum `wrapper`."""
    return cast(P, enum_out(wrapper, prefix, value))


def _materials_in(
    refs: Sequence[common_pb2.MaterialReference],
    field: str,
    errors: ValidationCollector,
    policy: d.PermitsPolicy,
) -> list[dict[str, Any]]:
    known = policy.all_material_codes()
    out = []
    for i, ref in enumerate(refs):
        path = f"{field}[{i}]"
        if not ref.kind:
            errors.add(f"{path}.kind", "REQUIRED")
        elif ref.kind not in known:
            errors.add(f"{path}.kind", "UNKNOWN_MATERIAL", "not a material kind of this department")
        if not _SHA256.match(ref.sha256):
            errors.add(f"{path}.sha256", "BAD_FORMAT", "64 lower-case hex digits")
        if ref.size_bytes < 0:
            errors.add(f"{path}.size_bytes", "NEGATIVE")
        out.append(
            {
                "kind": ref.kind,
                "sha256": ref.sha256,
                "media_type": ref.media_type,
                "size_bytes": ref.size_bytes,
            }
        )
    return out


def _kinds_in(kinds: Sequence[str], errors: ValidationCollector, policy: d.PermitsPolicy) -> frozenset[str]:
    if not kinds:
        errors.add("kinds", "REQUIRED", "name at least one material kind")
    known = policy.all_material_codes()
    for i, kind in enumerate(kinds):
        if kind not in known:
            errors.add(f"kinds[{i}]", "UNKNOWN_MATERIAL")
    return frozenset(kinds)


def _reference_out(ref: dict[str, Any]) -> common_pb2.MaterialReference:
    return common_pb2.MaterialReference(
        kind=ref["kind"], sha256=ref["sha256"], media_type=ref["media_type"], size_bytes=ref["size_bytes"]
    )


def _applicant_out(a: d.Applicant) -> permits_pb2.Applicant:
    return permits_pb2.Applicant(
        passport_number=a.passport_number,
        nationality=a.nationality,
        surname=a.surname,
        given_names=a.given_names,
        birth_date=date_to_proto(a.birth_date),
        sex=_enum(common_pb2.Sex, "SEX_", a.sex),
    )


def _missing_out(check: d.MaterialsCheck) -> list[permits_pb2.MissingMaterial]:
    deferred = {item.code for item in check.deferred}
    return [
        permits_pb2.MissingMaterial(kind=item.code, label=item.label, deferred=item.code in deferred)
        for item in check.missing
    ]


def _employer_out(row: EmployerRow) -> permits_pb2.Employer:
    return permits_pb2.Employer(
        id=row.id,
        unified_social_credit_code=row.uscc,
        name=row.name,
        address=row.address,
        status=_enum(permits_pb2.EmployerStatus, "EMPLOYER_STATUS_", d.EmployerStatus(row.status)),
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        status_reason=row.status_reason,
    )


def _person_filter(passport_number: str, nationality: str, errors: ValidationCollector) -> tuple[str, str]:
    passport = normalise_passport_number(passport_number) if passport_number else ""
    if passport and (problem := passport_number_problem(passport)):
        errors.add("passport_number", problem)
    if nationality and (problem := nationality_problem(nationality)):
        errors.add("nationality", problem)
    return passport, nationality


# ----------------------------------------------------------------------------------------------------------
# The servicer
# ----------------------------------------------------------------------------------------------------------


class PermitsServicer(permits_pb2_grpc.PermitsServiceServicer):
    def __init__(self, ctx: ServiceContext, policy: d.PermitsPolicy | None = None) -> None:
        self.ctx = ctx
        self.policy = policy or default_policy()
        self.calendar_alarm = CalendarAlarm(self.policy.calendar)
        self.handlers = PermitsHandlers(self.policy, ctx.clock, self.calendar_alarm)

    # -- plumbing --------------------------------------------------------------------------------------------

    async def _idempotent(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        handler: Callable[[SqlPermitsUnit], Awaitable[R]],
    ) -> R:
        """Run `handler` once per request_id in one unit of work (``run_idempotent``)."""

        async def run(uow: UnitOfWork) -> R:
            return await handler(SqlPermitsUnit(uow, self.ctx.feed))

        try:
            return await run_idempotent(
                self.ctx.uow, IdempotencyRecord, method, request, response_type, run, self.ctx.clock.now
            )
        except d.CalendarNotCovered as exc:
            self.calendar_alarm.raised(exc, method)
            raise

    async def _work_permit_change(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        change: Callable[[SqlPermitsUnit], Awaitable[WorkPermitRecord]],
    ) -> R:
        async def handler(unit: SqlPermitsUnit) -> R:
            record = await change(unit)
            return response_type(
                work_permit_application=self._work_permit_out(record, self.ctx.clock.today())
            )

        return await self._idempotent(method, request, response_type, handler)

    async def _residence_permit_change(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        change: Callable[[SqlPermitsUnit], Awaitable[ResidencePermitRecord]],
    ) -> R:
        async def handler(unit: SqlPermitsUnit) -> R:
            record = await change(unit)
            return response_type(
                residence_permit_application=self._residence_permit_out(record, self.ctx.clock.today())
            )

        return await self._idempotent(method, request, response_type, handler)

    # -- resources out ---------------------------------------------------------------------------------------

    def _work_permit_out(self, record: WorkPermitRecord, today: dt.date) -> permits_pb2.WorkPermitApplication:
        app, row = record.app, record.row
        req = app.request
        if app.state in (S.SUBMITTED, S.AWAITING_MATERIALS, S.UNDER_REVIEW):
            age = age_on(app.applicant.birth_date, today)
            missing = _missing_out(
                d.check_materials(
                    d.Stage.WORK_PERMIT_NOTICE, app.supplied_materials, age, app.category, self.policy
                )
            )
        elif app.state is S.APPROVED:
            missing = _missing_out(app.issue_check(today, self.policy))
        else:
            missing = []
        return permits_pb2.WorkPermitApplication(
            id=app.id,
            applicant=_applicant_out(app.applicant),
            employer_id=row.employer_id,
            employer_uscc=req.employer_uscc,
            position=req.position,
            work_region=req.work_region,
            contract=permits_pb2.Contract(
                start_date=date_to_proto(req.contract.start_date),
                end_date=date_to_proto(req.contract.end_date),
            ),
            annual_salary_fen=row.annual_salary_fen,
            education=_enum(permits_pb2.Education, "EDUCATION_", req.education),
            experience_years=req.experience_years,
            chinese=permits_pb2.Chinese(
                hsk_level=req.hsk_level, degree_taught_in_chinese=req.degree_taught_in_chinese
            ),
            months_per_year_in_china=req.months_per_year_in_china,
            special_region=req.special_region,
            top_university_or_fortune500=req.top_university_or_fortune500,
            patent=req.patent,
            provincial_bonus=req.provincial_bonus,
            special_criteria=[
                _enum(permits_pb2.SpecialCriterion, "SPECIAL_CRITERION_", c)
                for c in sorted(req.special_criteria)
            ],
            international_skills_certificate=req.international_skills_certificate,
            age_limit_relaxed=req.age_limit_relaxed,
            short_stay=not req.stay_over_90_days,
            state=_enum(permits_pb2.PermitState, "PERMIT_STATE_", app.state),
            category=_enum(permits_pb2.Category, "CATEGORY_", app.category),
            category_grounds=list(app.category_grounds),
            points=permits_pb2.Points(
                table_version=app.points.table_version, total=app.points.total, items=dict(app.points.items)
            ),
            materials=[_reference_out(r) for r in row.materials],
            missing_materials=missing,
            submit_date=date_to_proto(app.submitted_on),
            materials_complete_date=date_to_proto(app.materials_complete_on),
            decision_due_date=date_to_proto(app.decision_due),
            calendar_provisional=self.policy.calendar.is_provisional(app.decision_due),
            review_extended=app.extended,
            rejection_reasons=list(app.rejection_reasons),
            rejection_codes=list(app.rejection_codes),
            cancellation_reason=row.cancellation_reason,
            permit_number=app.permit_number or "",
            valid_from=date_to_proto(app.validity.valid_from if app.validity else None),
            valid_until=date_to_proto(app.validity.valid_until if app.validity else None),
            create_time=timestamp(row.created_at),
            update_time=timestamp(row.updated_at),
        )

    def _residence_permit_out(
        self, record: ResidencePermitRecord, today: dt.date
    ) -> permits_pb2.ResidencePermitApplication:
        app, row = record.app, record.row
        if app.state in (S.SUBMITTED, S.AWAITING_MATERIALS, S.UNDER_REVIEW, S.APPROVED):
            age = age_on(app.applicant.birth_date, today)
            missing = _missing_out(
                d.check_materials(
                    d.Stage.RESIDENCE_PERMIT, app.supplied_materials, age, app.category, self.policy
                )
            )
        else:
            missing = []
        return permits_pb2.ResidencePermitApplication(
            id=app.id,
            work_permit_id=app.work_permit_id,
            applicant=_applicant_out(app.applicant),
            state=_enum(permits_pb2.PermitState, "PERMIT_STATE_", app.state),
            category=_enum(permits_pb2.Category, "CATEGORY_", app.category),
            entry_date=date_to_proto(app.entry_date),
            requested_valid_until=date_to_proto(app.requested_valid_until),
            materials=[_reference_out(r) for r in row.materials],
            missing_materials=missing,
            submit_date=date_to_proto(app.submitted_on),
            materials_complete_date=date_to_proto(app.materials_complete_on),
            decision_due_date=date_to_proto(app.decision_due),
            decision_target_date=date_to_proto(app.decision_target),
            calendar_provisional=self.policy.calendar.is_provisional(app.decision_target),
            fee_fen=(app.fee_yuan or 0) * 100,
            rejection_reasons=list(app.rejection_reasons),
            rejection_codes=list(app.rejection_codes),
            awaiting_work_permit=app.awaiting_work_permit,
            replaces_id=app.replaces_id or "",
            cancellation_reason=row.cancellation_reason,
            permit_number=app.permit_number or "",
            valid_from=date_to_proto(app.validity.valid_from if app.validity else None),
            valid_until=date_to_proto(app.validity.valid_until if app.validity else None),
            create_time=timestamp(row.created_at),
            update_time=timestamp(row.updated_at),
        )

    # -- employers -------------------------------------------------------------------------------------------

    async def RegisterEmployer(
        self, request: permits_pb2.RegisterEmployerRequest, context: Context
    ) -> permits_pb2.RegisterEmployerResponse:
        async def handler(unit: SqlPermitsUnit) -> permits_pb2.RegisterEmployerResponse:
            row = await self.handlers.register_employer(
                unit,
                request.unified_social_credit_code,
                request.name,
                request.address,
                request_id=request.request_id,
            )
            return permits_pb2.RegisterEmployerResponse(employer=_employer_out(row))

        return await self._idempotent(
            "RegisterEmployer", request, permits_pb2.RegisterEmployerResponse, handler
        )

    async def GetEmployer(
        self, request: permits_pb2.GetEmployerRequest, context: Context
    ) -> permits_pb2.GetEmployerResponse:
        if not request.id and not request.unified_social_credit_code:
            raise InvalidArgument.one("id", "REQUIRED", "give the id or the unified social credit code")
        async with self.ctx.uow() as uow:
            row = await self.handlers.get_employer(
                SqlPermitsUnit(uow, self.ctx.feed), request.id, request.unified_social_credit_code
            )
            return permits_pb2.GetEmployerResponse(employer=_employer_out(row))

    async def SetEmployerStatus(
        self, request: permits_pb2.SetEmployerStatusRequest, context: Context
    ) -> permits_pb2.SetEmployerStatusResponse:
        errors = ValidationCollector()
        status = enum_in(
            permits_pb2.EmployerStatus, request.status, d.EmployerStatus, "EMPLOYER_STATUS_", "status", errors
        )
        errors.raise_if_any()
        assert status is not None

        async def handler(unit: SqlPermitsUnit) -> permits_pb2.SetEmployerStatusResponse:
            row = await self.handlers.set_employer_status(
                unit, request.id, status, request.reason, request_id=request.request_id
            )
            return permits_pb2.SetEmployerStatusResponse(employer=_employer_out(row))

        return await self._idempotent(
            "SetEmployerStatus", request, permits_pb2.SetEmployerStatusResponse, handler
        )

    # -- work permits ----------------------------------------------------------------------------------------

    def _work_permit_request(
        self, r: permits_pb2.CreateWorkPermitApplicationRequest, today: dt.date
    ) -> tuple[d.WorkPermitRequest, list[dict[str, Any]]]:
        """The domain request and the material references, with every bad field reported at once."""
        errors = ValidationCollector()
        a = r.applicant
        birth = date_in(a.birth_date, "applicant.birth_date", errors)
        sex = enum_in(common_pb2.Sex, a.sex, d.Sex, "SEX_", "applicant.sex", errors)
        start = date_in(r.contract.start_date, "contract.start_date", errors)
        end = date_in(r.contract.end_date, "contract.end_date", errors)
        education = enum_in(
            permits_pb2.Education, r.education, d.Education, "EDUCATION_", "education", errors
        )
        criteria = set()
        for i, value in enumerate(r.special_criteria):
            criterion = enum_in(
                permits_pb2.SpecialCriterion,
                value,
                d.SpecialCriterion,
                "SPECIAL_CRITERION_",
                f"special_criteria[{i}]",
                errors,
            )
            if criterion is not None:
                criteria.add(criterion)
        materials = _materials_in(r.materials, "materials", errors, self.policy)
        start = start or end or today
        request = d.WorkPermitRequest(
            applicant=d.Applicant(
                a.passport_number,
                a.nationality,
                a.surname,
                a.given_names,
                birth or _PLACEHOLDER_BIRTH_DATE,
                sex or d.Sex.FEMALE,
            ),
            employer_uscc=r.employer_uscc,
            position=r.position,
            work_region=r.work_region,
            contract=d.Contract(start, end or start),
            annual_salary=r.annual_salary_fen // 100,
            education=education or d.Education.OTHER,
            experience_years=r.experience_years,
            hsk_level=r.chinese.hsk_level,
            degree_taught_in_chinese=r.chinese.degree_taught_in_chinese,
            months_per_year_in_china=r.months_per_year_in_china,
            special_region=r.special_region,
            top_university_or_fortune500=r.top_university_or_fortune500,
            patent=r.patent,
            provincial_bonus=r.provincial_bonus,
            special_criteria=frozenset(criteria),
            international_skills_certificate=r.international_skills_certificate,
            age_limit_relaxed=r.age_limit_relaxed,
            stay_over_90_days=not r.short_stay,
        )
        try:
            request = d.validate_work_permit_request(request, today)
        except InvalidArgument as exc:
            errors.violations.extend(
                FieldViolation(_FIELD_PATHS.get(v.field, v.field), v.reason, v.description)
                for v in exc.violations
            )
        errors.raise_if_any()
        return request, materials

    async def CreateWorkPermitApplication(
        self, request: permits_pb2.CreateWorkPermitApplicationRequest, context: Context
    ) -> permits_pb2.CreateWorkPermitApplicationResponse:
        async def create(unit: SqlPermitsUnit) -> WorkPermitRecord:
            wp_request, materials = self._work_permit_request(request, self.ctx.clock.today())
            return await self.handlers.create_work_permit(
                unit, wp_request, request.annual_salary_fen, materials, request_id=request.request_id
            )

        return await self._work_permit_change(
            "CreateWorkPermitApplication", request, permits_pb2.CreateWorkPermitApplicationResponse, create
        )

    async def GetWorkPermitApplication(
        self, request: permits_pb2.GetWorkPermitApplicationRequest, context: Context
    ) -> permits_pb2.GetWorkPermitApplicationResponse:
        async with self.ctx.uow() as uow:  # read only; the answer is built before the session closes
            record = await self.handlers.work_permit(SqlPermitsUnit(uow, self.ctx.feed), request.id)
            return permits_pb2.GetWorkPermitApplicationResponse(
                work_permit_application=self._work_permit_out(record, self.ctx.clock.today())
            )

    async def ListWorkPermitApplications(
        self, request: permits_pb2.ListWorkPermitApplicationsRequest, context: Context
    ) -> permits_pb2.ListWorkPermitApplicationsResponse:
        errors = ValidationCollector()
        limit = page_size(request.page_size, errors)
        passport, nationality = _person_filter(request.passport_number, request.nationality, errors)
        uscc = d.compact_uscc(request.employer_uscc) if request.employer_uscc else ""
        state = None
        if request.state:
            state = enum_in(
                permits_pb2.PermitState, request.state, d.PermitState, "PERMIT_STATE_", "state", errors
            )
        filters = {"p": passport, "n": nationality, "e": uscc, "s": state.value if state else ""}
        after = decode_page_token(request.page_token, PAGE_KEY, errors, filters)
        errors.raise_if_any()
        async with self.ctx.uow() as uow:
            page = await self.handlers.work_permits(
                SqlPermitsUnit(uow, self.ctx.feed),
                limit=limit,
                after=after,
                nationality=nationality,
                passport_number=passport,
                employer_uscc=uscc,
                state=state,
            )
            today = self.ctx.clock.today()
            return permits_pb2.ListWorkPermitApplicationsResponse(
                work_permit_applications=[self._work_permit_out(r, today) for r in page.items],
                next_page_token=encode_page_token(page.last_key if page.has_more else None, filters),
            )

    async def SupplyWorkPermitMaterials(
        self, request: permits_pb2.SupplyWorkPermitMaterialsRequest, context: Context
    ) -> permits_pb2.SupplyWorkPermitMaterialsResponse:
        errors = ValidationCollector()
        materials = _materials_in(request.materials, "materials", errors, self.policy)
        if not materials:
            errors.add("materials", "REQUIRED")
        errors.raise_if_any()
        return await self._work_permit_change(
            "SupplyWorkPermitMaterials",
            request,
            permits_pb2.SupplyWorkPermitMaterialsResponse,
            lambda unit: self.handlers.supply_work_permit_materials(
                unit, request.id, materials, request_id=request.request_id
            ),
        )

    async def RequestWorkPermitMaterials(
        self, request: permits_pb2.RequestWorkPermitMaterialsRequest, context: Context
    ) -> permits_pb2.RequestWorkPermitMaterialsResponse:
        errors = ValidationCollector()
        kinds = _kinds_in(request.kinds, errors, self.policy)
        errors.raise_if_any()
        return await self._work_permit_change(
            "RequestWorkPermitMaterials",
            request,
            permits_pb2.RequestWorkPermitMaterialsResponse,
            lambda unit: self.handlers.request_work_permit_materials(
                unit, request.id, kinds, request_id=request.request_id
            ),
        )

    async def ExtendWorkPermitReview(
        self, request: permits_pb2.ExtendWorkPermitReviewRequest, context: Context
    ) -> permits_pb2.ExtendWorkPermitReviewResponse:
        return await self._work_permit_change(
            "ExtendWorkPermitReview",
            request,
            permits_pb2.ExtendWorkPermitReviewResponse,
            lambda unit: self.handlers.extend_work_permit_review(
                unit, request.id, request_id=request.request_id
            ),
        )

    async def ApproveWorkPermitApplication(
        self, request: permits_pb2.ApproveWorkPermitApplicationRequest, context: Context
    ) -> permits_pb2.ApproveWorkPermitApplicationResponse:
        return await self._work_permit_change(
            "ApproveWorkPermitApplication",
            request,
            permits_pb2.ApproveWorkPermitApplicationResponse,
            lambda unit: self.handlers.approve_work_permit(unit, request.id, request_id=request.request_id),
        )

    async def RejectWorkPermitApplication(
        self, request: permits_pb2.RejectWorkPermitApplicationRequest, context: Context
    ) -> permits_pb2.RejectWorkPermitApplicationResponse:
        codes = d.check_rejection_codes(request.reason_codes, self.policy)
        return await self._work_permit_change(
            "RejectWorkPermitApplication",
            request,
            permits_pb2.RejectWorkPermitApplicationResponse,
            lambda unit: self.handlers.reject_work_permit(
                unit, request.id, list(request.reasons), codes, request_id=request.request_id
            ),
        )

    async def IssueWorkPermit(
        self, request: permits_pb2.IssueWorkPermitRequest, context: Context
    ) -> permits_pb2.IssueWorkPermitResponse:
        return await self._work_permit_change(
            "IssueWorkPermit",
            request,
            permits_pb2.IssueWorkPermitResponse,
            lambda unit: self.handlers.issue_work_permit(unit, request.id, request_id=request.request_id),
        )

    async def CancelWorkPermitApplication(
        self, request: permits_pb2.CancelWorkPermitApplicationRequest, context: Context
    ) -> permits_pb2.CancelWorkPermitApplicationResponse:
        return await self._work_permit_change(
            "CancelWorkPermitApplication",
            request,
            permits_pb2.CancelWorkPermitApplicationResponse,
            lambda unit: self.handlers.cancel_work_permit(
                unit, request.id, request.reason, request_id=request.request_id
            ),
        )

    # -- residence permits -----------------------------------------------------------------------------------

    async def CreateResidencePermitApplication(
        self, request: permits_pb2.CreateResidencePermitApplicationRequest, context: Context
    ) -> permits_pb2.CreateResidencePermitApplicationResponse:
        errors = ValidationCollector()
        passport = normalise_passport_number(request.passport_number)
        if problem := passport_number_problem(request.passport_number):
            errors.add("passport_number", problem)
        if problem := nationality_problem(request.nationality):
            errors.add("nationality", problem)
        held_number = request.held_residence_permit_number.strip().upper()
        if held_number and (problem := d.permit_number_problem(held_number)):
            errors.add("held_residence_permit_number", problem)
        entry_date = date_in(request.entry_date, "entry_date", errors, required=not held_number)
        requested = date_in(request.requested_valid_until, "requested_valid_until", errors, required=False)
        materials = _materials_in(request.materials, "materials", errors, self.policy)
        errors.raise_if_any()
        # Only nationality and passport number identify the person; the rest comes from the work permit.
        person = d.Applicant(passport, request.nationality, "", "", _PLACEHOLDER_BIRTH_DATE, d.Sex.FEMALE)
        return await self._residence_permit_change(
            "CreateResidencePermitApplication",
            request,
            permits_pb2.CreateResidencePermitApplicationResponse,
            lambda unit: self.handlers.create_residence_permit(
                unit,
                person,
                request.work_permit_id,
                held_number,
                entry_date,
                requested,
                materials,
                request_id=request.request_id,
            ),
        )

    async def GetResidencePermitApplication(
        self, request: permits_pb2.GetResidencePermitApplicationRequest, context: Context
    ) -> permits_pb2.GetResidencePermitApplicationResponse:
        async with self.ctx.uow() as uow:
            record = await self.handlers.residence_permit(SqlPermitsUnit(uow, self.ctx.feed), request.id)
            return permits_pb2.GetResidencePermitApplicationResponse(
                residence_permit_application=self._residence_permit_out(record, self.ctx.clock.today())
            )

    async def ListResidencePermitApplications(
        self, request: permits_pb2.ListResidencePermitApplicationsRequest, context: Context
    ) -> permits_pb2.ListResidencePermitApplicationsResponse:
        errors = ValidationCollector()
        limit = page_size(request.page_size, errors)
        passport, nationality = _person_filter(request.passport_number, request.nationality, errors)
        state = None
        if request.state:
            state = enum_in(
                permits_pb2.PermitState, request.state, d.PermitState, "PERMIT_STATE_", "state", errors
            )
        filters = {"p": passport, "n": nationality, "s": state.value if state else ""}
        after = decode_page_token(request.page_token, PAGE_KEY, errors, filters)
        errors.raise_if_any()
        async with self.ctx.uow() as uow:
            page = await self.handlers.residence_permits(
                SqlPermitsUnit(uow, self.ctx.feed),
                limit=limit,
                after=after,
                nationality=nationality,
                passport_number=passport,
                state=state,
            )
            today = self.ctx.clock.today()
            return permits_pb2.ListResidencePermitApplicationsResponse(
                residence_permit_applications=[self._residence_permit_out(r, today) for r in page.items],
                next_page_token=encode_page_token(page.last_key if page.has_more else None, filters),
            )

    async def SupplyResidencePermitMaterials(
        self, request: permits_pb2.SupplyResidencePermitMaterialsRequest, context: Context
    ) -> permits_pb2.SupplyResidencePermitMaterialsResponse:
        errors = ValidationCollector()
        materials = _materials_in(request.materials, "materials", errors, self.policy)
        if not materials:
            errors.add("materials", "REQUIRED")
        errors.raise_if_any()
        return await self._residence_permit_change(
            "SupplyResidencePermitMaterials",
            request,
            permits_pb2.SupplyResidencePermitMaterialsResponse,
            lambda unit: self.handlers.supply_residence_permit_materials(
                unit, request.id, materials, request_id=request.request_id
            ),
        )

    async def RequestResidencePermitMaterials(
        self, request: permits_pb2.RequestResidencePermitMaterialsRequest, context: Context
    ) -> permits_pb2.RequestResidencePermitMaterialsResponse:
        errors = ValidationCollector()
        kinds = _kinds_in(request.kinds, errors, self.policy)
        errors.raise_if_any()
        return await self._residence_permit_change(
            "RequestResidencePermitMaterials",
            request,
            permits_pb2.RequestResidencePermitMaterialsResponse,
            lambda unit: self.handlers.request_residence_permit_materials(
                unit, request.id, kinds, request_id=request.request_id
            ),
        )

    async def ApproveResidencePermitApplication(
        self, request: permits_pb2.ApproveResidencePermitApplicationRequest, context: Context
    ) -> permits_pb2.ApproveResidencePermitApplicationResponse:
        return await self._residence_permit_change(
            "ApproveResidencePermitApplication",
            request,
            permits_pb2.ApproveResidencePermitApplicationResponse,
            lambda unit: self.handlers.approve_residence_permit(
                unit, request.id, request_id=request.request_id
            ),
        )

    async def RejectResidencePermitApplication(
        self, request: permits_pb2.RejectResidencePermitApplicationRequest, context: Context
    ) -> permits_pb2.RejectResidencePermitApplicationResponse:
        codes = d.check_rejection_codes(request.reason_codes, self.policy)
        return await self._residence_permit_change(
            "RejectResidencePermitApplication",
            request,
            permits_pb2.RejectResidencePermitApplicationResponse,
            lambda unit: self.handlers.reject_residence_permit(
                unit, request.id, list(request.reasons), codes, request_id=request.request_id
            ),
        )

    async def IssueResidencePermit(
        self, request: permits_pb2.IssueResidencePermitRequest, context: Context
    ) -> permits_pb2.IssueResidencePermitResponse:
        return await self._residence_permit_change(
            "IssueResidencePermit",
            request,
            permits_pb2.IssueResidencePermitResponse,
            lambda unit: self.handlers.issue_residence_permit(
                unit, request.id, request_id=request.request_id
            ),
        )

    async def CancelResidencePermitApplication(
        self, request: permits_pb2.CancelResidencePermitApplicationRequest, context: Context
    ) -> permits_pb2.CancelResidencePermitApplicationResponse:
        return await self._residence_permit_change(
            "CancelResidencePermitApplication",
            request,
            permits_pb2.CancelResidencePermitApplicationResponse,
            lambda unit: self.handlers.cancel_residence_permit(
                unit, request.id, request.reason, request_id=request.request_id
            ),
        )

    async def ExtendResidencePermit(
        self, request: permits_pb2.ExtendResidencePermitRequest, context: Context
    ) -> permits_pb2.ExtendResidencePermitResponse:
        errors = ValidationCollector()
        requested = date_in(request.requested_valid_until, "requested_valid_until", errors, required=False)
        errors.raise_if_any()
        return await self._residence_permit_change(
            "ExtendResidencePermit",
            request,
            permits_pb2.ExtendResidencePermitResponse,
            lambda unit: self.handlers.extend_residence_permit(
                unit, request.id, requested, request_id=request.request_id
            ),
        )

    # -- verification and events -----------------------------------------------------------------------------

    async def VerifyPermit(
        self, request: permits_pb2.VerifyPermitRequest, context: Context
    ) -> permits_pb2.VerifyPermitResponse:
        number = request.permit_number.strip().upper()
        if problem := d.permit_number_problem(number):
            raise InvalidArgument.one("permit_number", problem)
        async with self.ctx.uow() as uow:
            v = await self.handlers.verify_permit(SqlPermitsUnit(uow, self.ctx.feed), number)
        return permits_pb2.VerifyPermitResponse(
            permit_number=number,
            kind=_enum(permits_pb2.PermitKind, "PERMIT_KIND_", v.kind),
            valid_now=v.valid_now,
            state=_enum(permits_pb2.PermitState, "PERMIT_STATE_", v.state),
            category=_enum(permits_pb2.Category, "CATEGORY_", v.category),
            valid_from=date_to_proto(v.validity.valid_from if v.validity else None),
            valid_until=date_to_proto(v.validity.valid_until if v.validity else None),
        )

    async def QuotePermits(
        self, request: permits_pb2.QuotePermitsRequest, context: Context
    ) -> permits_pb2.QuotePermitsResponse:
        errors = ValidationCollector()
        on = date_in(request.on, "on", errors, required=False) or self.ctx.clock.today()
        valid_from = date_in(request.valid_from, "valid_from", errors, required=False)
        valid_until = date_in(request.valid_until, "valid_until", errors, required=False)
        if (valid_from is None) != (valid_until is None):
            errors.add("valid_until" if valid_until is None else "valid_from", "REQUIRED", "both or neither")
        elif valid_from is not None and valid_until is not None and valid_until < valid_from:
            errors.add("valid_until", "END_BEFORE_START", "the validity ends before it starts")
        errors.raise_if_any()
        validity = None if valid_from is None or valid_until is None else d.Validity(valid_from, valid_until)
        quote = self.handlers.quote(on, validity)
        p, dl = self.policy, self.policy.deadlines
        return permits_pb2.QuotePermitsResponse(
            on=date_to_proto(on),
            work_permit_working_days=dl.work_permit_working_days,
            work_permit_short_stay_working_days=dl.work_permit_short_stay_working_days,
            work_permit_extension_working_days=dl.work_permit_extension_working_days,
            work_permit_decision_due=date_to_proto(quote.work_permit_decision_due),
            work_permit_short_stay_decision_due=date_to_proto(quote.work_permit_short_stay_decision_due),
            residence_permit_decision_days=dl.residence_decision_calendar_days,
            residence_permit_target_working_days=dl.residence_target_working_days,
            residence_permit_decision_due=date_to_proto(quote.residence_permit_decision_due),
            residence_permit_apply_within_days_of_entry=dl.residence_apply_within_days_of_entry,
            residence_permit_fee_tiers=[
                permits_pb2.ResidencePermitFeeTier(min_months=t.min_months, fee_fen=t.fee_yuan * 100)
                for t in p.residence_fee_tiers
            ],
            residence_permit_fee_fen=(quote.residence_permit_fee_yuan or 0) * 100,
            rejection_codes=[
                permits_pb2.RejectionCode(code=code, text=text) for code, text in p.rejection_codes.items()
            ],
            calendar_provisional=quote.calendar_provisional,
        )

    async def CountWorkingDays(
        self, request: permits_pb2.CountWorkingDaysRequest, context: Context
    ) -> permits_pb2.CountWorkingDaysResponse:
        errors = ValidationCollector()
        if not 1 <= len(request.spans) <= MAX_WORKING_DAY_SPANS:
            errors.add("spans", "OUT_OF_RANGE", f"1 to {MAX_WORKING_DAY_SPANS} spans")
        spans = []
        for i, span in enumerate(request.spans[:MAX_WORKING_DAY_SPANS]):
            start = date_in(span.start_date, f"spans[{i}].start_date", errors)
            end = date_in(span.end_date, f"spans[{i}].end_date", errors)
            if start is not None and end is not None:
                spans.append((start, end))
        errors.raise_if_any()
        counted = self.handlers.count_working_days(spans)
        return permits_pb2.CountWorkingDaysResponse(
            working_days=counted.counts,
            last_covered_year=counted.last_published_year or 0,
            calendar_provisional=counted.calendar_provisional,
        )

    async def WatchEvents(
        self, request: permits_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[permits_pb2.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield permits_pb2.WatchEventsResponse(event=event_to_proto(row))
