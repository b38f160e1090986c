"""govhub.residence.v1.ResidenceService over grpc.aio: proto in, domain, proto out.

Every mutating RPC runs through ``run_idempotent``: one unit of work holds the register change, its outbox
events and the stored answer. "Today" is the service clock's (``GOVHUB_TODAY`` pins it). Every ID number in
a request is checked by ``require_id_number`` under the request's field name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.db import UnitOfWork
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, ValidationCollector
from services.common.idempotency import run_idempotent
from services.common.idnumber import require_id_number
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
from services.residence import domain as d
from services.residence.policy import default_policy
from services.residence.store import (
    MAX_ALLOCATION_ATTEMPTS,
    AccommodationRepository,
    AccommodationRow,
    CertificateRow,
    HouseholdRecord,
    HouseholdRow,
    IdempotencyRecord,
    PersonRow,
    RegisterRepository,
    accommodation_to_domain,
    certificate_to_domain,
    record_events,
)

# VerifyHukou's one read: three columns by the unique ID number index, built once.
_VERIFY_HUKOU = (
    select(PersonRow.name, PersonRow.status, HouseholdRow.region_code)
    .join_from(PersonRow, HouseholdRow, PersonRow.household_id == HouseholdRow.id)
    .where(PersonRow.id_number == bindparam("id_number"))
)

R = TypeVar("R", bound=Message)

# A members page token carries the household and the last member's register-order key.
MEMBERS_PAGE_KEY = (str, str)
UNKNOWN_POLICE_STATION = "UNKNOWN_POLICE_STATION"


# ----------------------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------------------


def _id_number_in(raw: str, field: str, errors: ValidationCollector, *, required: bool = True) -> str:
    """The normalised ID number, or "" with the problems added under `field`."""
    if not raw:
        if required:
            errors.add(field, "REQUIRED", "An ID number is required.")
        return ""
    try:
        return require_id_number(raw, field).value
    except InvalidArgument as exc:
        errors.violations.extend(exc.violations)
        return ""


def _guardian_out(guardian: d.Guardian | None) -> pb.Guardian | None:
    if guardian is None:
        return None
    return pb.Guardian(
        id_number=guardian.id_number,
        name=guardian.name,
        relationship=guardian.relationship,
        phone=guardian.phone,
    )


def _guardian_in(request: pb.DeregisterRequest, errors: ValidationCollector) -> d.Guardian | None:
    if not request.HasField("guardian"):
        return None
    g = request.guardian
    number = _id_number_in(g.id_number, "guardian.id_number", errors)
    return d.Guardian(number, g.name.strip(), g.relationship.strip(), g.phone.strip())


def _updates_in(updates: Mapping[str, str], field: str, errors: ValidationCollector) -> dict[str, str]:
    out = {}
    for key in sorted(updates):
        number = _id_number_in(key, f"{field}[{key}]", errors)
        if number:
            out[number] = updates[key]
    return out


def _instant_in(msg: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    return msg.ToDatetime(tzinfo=dt.UTC) if present else None


def _station_out(station: d.PoliceStation) -> pb.PoliceStation:
    return pb.PoliceStation(
        code=station.code, name=station.name, region_code=station.jurisdiction, rural=station.rural
    )


def _arrival_out(arrival: d.Arrival | None) -> pb.Arrival | None:
    if arrival is None:
        return None
    return pb.Arrival(from_place=arrival.from_place, date=date_to_proto(arrival.on))


class Views:
    """Domain objects and rows to proto messages."""

    def __init__(self, policy: d.ResidencePolicy, today: Callable[[], dt.date]) -> None:
        self.policy = policy
        self.today = today  # full civil capacity is read as of today

    def person(self, entry: d.PersonEntry, row: PersonRow, household: HouseholdRow) -> pb.Person:
        relationship = self.policy.relationships.get(entry.relationship_code)
        pending = entry.pending_move
        return pb.Person(
            id=row.id,
            id_number=entry.id_number,
            name=entry.name,
            sex=enum_out(common_pb2.Sex, "SEX_", entry.sex),
            birth_date=date_to_proto(entry.birth_date),
            ethnicity=entry.ethnicity,
            status=enum_out(pb.PersonStatus, "PERSON_STATUS_", entry.status),
            household_id=household.id,
            household_number=household.number,
            relationship_code=entry.relationship_code,
            relationship_name=relationship.name if relationship else "",
            hukou_province_code=household.region_code[:2],
            hukou_region_code=household.region_code,
            hukou_address=household.address,
            police_station=household.station_name,
            police_station_code=household.station_code,
            former_names=list(entry.former_names),
            birth_place=entry.birth_place,
            native_place=entry.native_place,
            education=enum_out(pb.Education, "EDUCATION_", entry.education),
            marital_status=enum_out(pb.MaritalStatus, "MARITAL_STATUS_", entry.marital_status),
            military_service=enum_out(pb.MilitaryService, "MILITARY_SERVICE_", entry.military_service),
            occupation=entry.occupation,
            employer=entry.employer,
            arrived_in_city=_arrival_out(entry.arrived_in_city),
            arrived_at_address=_arrival_out(entry.arrived_at_address),
            registration_date=date_to_proto(entry.registered_on),
            status_date=date_to_proto(entry.status_since),
            deregistration_reason=enum_out(
                pb.DeregistrationReason, "DEREGISTRATION_REASON_", entry.status_reason
            ),
            pending_move=None
            if pending is None
            else pb.PendingMove(
                destination_region_code=pending.destination_region_code,
                destination_address=pending.destination_address,
                certificate_number=pending.certificate_number or "",
                same_city=pending.same_city,
                move_out_date=date_to_proto(pending.moved_out_on),
            ),
            changes=[
                pb.ChangeRecord(
                    kind=c.kind, field=c.field, old_value=c.old, new_value=c.new, date=date_to_proto(c.on)
                )
                for c in entry.change_log
            ],
            full_civil_capacity=entry.has_full_capacity(self.today()),
            civil_capacity=enum_out(pb.CivilCapacity, "CIVIL_CAPACITY_", entry.civil_capacity),
            civil_capacity_since=date_to_proto(entry.civil_capacity_since),
            update_time=timestamp(row.updated_at),
        )

    def household(self, household: d.Household, row: HouseholdRow) -> pb.Household:
        head = next((m for m in household.members if m.relationship_code == d.HEAD_CODE), None)
        return pb.Household(
            id=row.id,
            number=household.number,
            type=enum_out(pb.HouseholdType, "HOUSEHOLD_TYPE_", household.type),
            address=household.address,
            police_station=_station_out(household.station),
            province_code=household.region_code[:2],
            region_code=household.region_code,
            head_id_number=head.id_number if head else "",
            head_name=head.name if head else "",
            member_count=len(household.members),
            establish_date=date_to_proto(household.established_on),
            close_date=date_to_proto(household.closed_on),
            update_time=timestamp(row.updated_at),
            follow_up_required=bool(household.follow_up),
            follow_up_reason=household.follow_up,
            follow_up_since=date_to_proto(household.follow_up_since),
            guardian=_guardian_out(household.guardian),
        )

    @staticmethod
    def certificate(row: CertificateRow | None) -> pb.MigrationCertificate | None:
        if row is None:
            return None
        return pb.MigrationCertificate(
            id=row.id,
            number=row.number,
            id_number=row.id_number,
            name=row.name,
            sex=enum_out(common_pb2.Sex, "SEX_", d.Sex(row.sex)),
            birth_date=date_to_proto(row.birth_date),
            origin_region_code=row.origin_region_code,
            origin_address=row.origin_address,
            origin_household_number=row.origin_household_number,
            destination_region_code=row.destination_region_code,
            destination_address=row.destination_address,
            issue_date=date_to_proto(row.issued_on),
            valid_until=date_to_proto(row.valid_until),
            use_date=date_to_proto(row.used_on),
            used_by_household_number=row.used_by_household or "",
            revoke_date=date_to_proto(row.revoked_on),
        )

    @staticmethod
    def accommodation(row: AccommodationRow) -> pb.AccommodationRegistration:
        return pb.AccommodationRegistration(
            id=row.id,
            registration_number=row.registration_number,
            passport_number=row.passport_number,
            nationality=row.nationality,
            name=row.name,
            address=row.address,
            police_station=pb.PoliceStation(
                code=row.station_code, name=row.station_name, region_code=row.region_code, rural=row.rural
            ),
            host=pb.AccommodationHost(
                kind=enum_out(pb.HostKind, "HOST_KIND_", d.HostKind(row.host_kind)),
                name=row.host_name,
                identifier=row.host_identifier,
            ),
            arrive_time=timestamp(row.arrived_at),
            from_date=date_to_proto(row.from_date),
            to_date=date_to_proto(row.to_date),
            register_time=timestamp(row.registered_at),
            deadline=timestamp(row.deadline),
            late=row.late,
            cancel_time=timestamp(row.cancelled_at),
            cancellation_reason=row.cancellation_reason,
        )


# ----------------------------------------------------------------------------------------------------------
# The servicer
# ----------------------------------------------------------------------------------------------------------


def _not_registered() -> FailedPrecondition:
    return FailedPrecondition(
        d.PERSON_NOT_REGISTERED_HERE, "The person is not a registered member of a household."
    )


class ResidenceServicer(residence_pb2_grpc.ResidenceServiceServicer):
    def __init__(self, ctx: ServiceContext, policy: d.ResidencePolicy | None = None) -> None:
        self.ctx = ctx
        self.policy = policy or default_policy()
        self.views = Views(self.policy, ctx.clock.today)

    # -- plumbing --------------------------------------------------------------------------------------------

    async def _idempotent(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        handler: Callable[[UnitOfWork], Awaitable[R]],
    ) -> R:
        return await run_idempotent(
            self.ctx.uow, IdempotencyRecord, method, request, response_type, handler, self.ctx.clock.now
        )

    def _repo(self, uow: UnitOfWork) -> RegisterRepository:
        return RegisterRepository(uow.session, self.policy)

    def _reader(self, session: AsyncSession) -> RegisterRepository:
        """The repository over a read-only session (``ctx.read()``)."""
        return RegisterRepository(session, self.policy)

    async def _events(
        self,
        uow: UnitOfWork,
        result: d.Result,
        request_id: str,
        now: dt.datetime,
        *,
        person_id: str | None = None,
        households: tuple[HouseholdRow, ...] = (),
        aggregate_id: str | None = None,
    ) -> None:
        await record_events(
            self.ctx.feed,
            uow,
            result.events,
            person_id=person_id,
            household_ids={h.number: h.id for h in households},
            now=now,
            request_id=request_id,
            aggregate_id=aggregate_id,
        )

    @staticmethod
    def _household_key(id: str, number: str, field: str = "household_id") -> tuple[str, str]:
        if not id and not number:
            raise InvalidArgument.one(field, "REQUIRED", "name the household by id or by number")
        return id, number

    # -- queries ---------------------------------------------------------------------------------------------

    async def GetPerson(
        self, request: pb.GetPersonRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPersonResponse:
        number = require_id_number(request.id_number, "id_number").value
        async with self.ctx.read() as session:
            repo = self._reader(session)
            person = await repo.person(number)
            household = await repo.household(id=person.row.household_id)
            return pb.GetPersonResponse(
                person=self.views.person(person.entry, person.row, household.row),
                household=self.views.household(household.household, household.row),
            )

    async def VerifyHukou(
        self, request: pb.VerifyHukouRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyHukouResponse:
        number = require_id_number(request.id_number, "id_number").value
        async with self.ctx.read() as session:
            found = (await session.execute(_VERIFY_HUKOU, {"id_number": number})).first()
        if found is None:
            return pb.VerifyHukouResponse(found=False)
        name, status, region_code = found
        matches = name == request.name.strip()
        return pb.VerifyHukouResponse(
            found=True,
            name_matches=matches,
            status=enum_out(pb.PersonStatus, "PERSON_STATUS_", d.PersonStatus(status)),
            hukou_province_code=region_code[:2] if matches else "",
            hukou_region_code=region_code if matches else "",
        )

    async def GetHousehold(
        self, request: pb.GetHouseholdRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHouseholdResponse:
        id, number = self._household_key(request.id, request.number, "id")
        async with self.ctx.read() as session:
            record = await self._reader(session).household(number, id=id)
            return pb.GetHouseholdResponse(household=self.views.household(record.household, record.row))

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        errors = ValidationCollector()
        size = page_size(request.page_size, errors)
        token = decode_page_token(request.page_token, MEMBERS_PAGE_KEY, errors)
        errors.raise_if_any()
        id, number = self._household_key(request.household_id, request.household_number)
        async with self.ctx.read() as session:
            repo = self._reader(session)
            household = await repo.household_row(id=id, number=number)
            if token is not None and token[0] != household.id:
                raise InvalidArgument.one("page_token", "BAD_PAGE_TOKEN", "a page token of another household")
            page = await repo.members_page(household.id, after=token[1] if token else None, limit=size)
            last = page.members[-1].row.member_order if page.members else None
            return pb.ListMembersResponse(
                members=[self.views.person(m.entry, m.row, household) for m in page.members],
                next_page_token=encode_page_token((household.id, last)) if page.has_more and last else "",
            )

    async def GetMigrationCertificate(
        self, request: pb.GetMigrationCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMigrationCertificateResponse:
        if not request.number:
            raise InvalidArgument.one("number", "REQUIRED")
        async with self.ctx.read() as session:
            row = await self._reader(session).certificate(request.number)
            if row is None:
                raise NotFound("no such migration certificate")
            return pb.GetMigrationCertificateResponse(certificate=self.views.certificate(row))

    async def GetAccommodationRegistration(
        self, request: pb.GetAccommodationRegistrationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccommodationRegistrationResponse:
        if not request.id and not request.registration_number:
            raise InvalidArgument.one("id", "REQUIRED", "give the id or the registration number")
        async with self.ctx.read() as session:
            row = await AccommodationRepository(session).get(
                id=request.id, registration_number=request.registration_number
            )
            return pb.GetAccommodationRegistrationResponse(
                accommodation_registration=self.views.accommodation(row)
            )

    # -- births ----------------------------------------------------------------------------------------------

    async def RegisterBirth(
        self, request: pb.RegisterBirthRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBirthResponse:
        errors = ValidationCollector()
        p = request.person
        sex = enum_in(common_pb2.Sex, p.sex, d.Sex, "SEX_", "person.sex", errors, required=False)
        birth_date = date_in(p.birth_date, "person.birth_date", errors, required=False)
        declarant = _id_number_in(request.declarant_id_number, "declarant_id_number", errors, required=False)
        mother = _id_number_in(request.mother_id_number, "mother_id_number", errors, required=False)
        father = _id_number_in(request.father_id_number, "father_id_number", errors, required=False)
        errors.raise_if_any()
        id, number = self._household_key(request.household_id, request.household_number)
        cmd = d.RegisterBirth(
            household_number="",
            person=d.NewbornDetails(p.name, sex, birth_date, p.birth_place, p.ethnicity, p.native_place),
            relationship_code=request.relationship_code,
            declarant_id_number=declarant,
            mother_id_number=mother,
            father_id_number=father,
        )

        async def handler(uow: UnitOfWork) -> pb.RegisterBirthResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            record = await repo.household(number, id=id, for_update=True)
            result, row = await repo.add_newborn(record, cmd, today=today, now=now)
            assert result.household is not None and result.person is not None
            await repo.save_household(record, result.household, now)
            await self._events(
                uow, result, request.request_id, now, person_id=row.id, households=(record.row,)
            )
            event = result.events[0]
            assert isinstance(event, d.BirthRegistered)
            return pb.RegisterBirthResponse(
                person=self.views.person(result.person, row, record.row),
                id_number=result.person.id_number,
                late=event.late,
                deadline=date_to_proto(event.deadline),
                household=self.views.household(result.household, record.row),
            )

        return await self._idempotent("RegisterBirth", request, pb.RegisterBirthResponse, handler)

    # -- moves -----------------------------------------------------------------------------------------------

    async def MoveOut(
        self, request: pb.MoveOutRequest, context: grpc.aio.ServicerContext
    ) -> pb.MoveOutResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        new_head = _id_number_in(request.new_head_id_number, "new_head_id_number", errors, required=False)
        updates = _updates_in(request.relationship_updates, "relationship_updates", errors)
        errors.raise_if_any()
        cmd = d.MoveOut(
            number, request.destination_region_code, request.destination_address, new_head or None, updates
        )

        async def handler(uow: UnitOfWork) -> pb.MoveOutResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            person = await repo.person(number, for_update=True)
            if person.entry.status is not d.PersonStatus.REGISTERED:
                raise _not_registered()
            record = await repo.household(id=person.row.household_id, for_update=True)
            certificate_number = await repo.next_certificate_number(record.household.region_code, today)
            certificate_row = None
            for _ in range(MAX_ALLOCATION_ATTEMPTS):
                result = d.move_out(
                    record.household,
                    cmd,
                    policy=self.policy,
                    today=today,
                    certificate_number=certificate_number,
                )
                if result.certificate is None:
                    break
                certificate_row = await repo.add_certificate(person, result.certificate, now)
                if certificate_row is not None:
                    break
                serial = int(certificate_number[10:]) + 1
                certificate_number = f"{certificate_number[:10]}{serial:06d}"
            else:  # pragma: no cover
                raise RuntimeError("could not allocate a certificate number")
            assert result.household is not None and result.person is not None
            await repo.save_household(record, result.household, now)
            await repo.save_person(person.row, result.person, record.id, now)
            await self._events(
                uow, result, request.request_id, now, person_id=person.id, households=(record.row,)
            )
            return pb.MoveOutResponse(
                person=self.views.person(result.person, person.row, record.row),
                certificate=self.views.certificate(certificate_row),
                same_city_transfer=result.certificate is None,
                origin_household=self.views.household(result.household, record.row),
            )

        return await self._idempotent("MoveOut", request, pb.MoveOutResponse, handler)

    async def CancelMoveOut(
        self, request: pb.CancelMoveOutRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelMoveOutResponse:
        number = require_id_number(request.id_number, "id_number").value

        async def handler(uow: UnitOfWork) -> pb.CancelMoveOutResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            person = await repo.person(number, for_update=True)
            pending = person.entry.pending_move
            if person.entry.status is not d.PersonStatus.MOVING_OUT or pending is None:
                raise FailedPrecondition(d.PERSON_NOT_MOVING_OUT, "The person has no move-out to cancel.")
            record = await repo.household(id=person.row.household_id, for_update=True)
            certificate_row = None
            if pending.certificate_number:
                certificate_row = await repo.certificate(pending.certificate_number, for_update=True)
            result = d.cancel_move_out(
                person.entry,
                record.household,
                certificate_to_domain(certificate_row) if certificate_row else None,
                policy=self.policy,
                today=today,
                reason=request.reason,
            )
            assert result.household is not None and result.person is not None
            await repo.save_household(record, result.household, now)
            await repo.save_person(person.row, result.person, record.id, now)
            if certificate_row is not None and result.certificate is not None:
                await repo.save_certificate(certificate_row, result.certificate, now)
            await self._events(
                uow, result, request.request_id, now, person_id=person.id, households=(record.row,)
            )
            return pb.CancelMoveOutResponse(
                person=self.views.person(result.person, person.row, record.row),
                certificate=self.views.certificate(certificate_row),
                household=self.views.household(result.household, record.row),
            )

        return await self._idempotent("CancelMoveOut", request, pb.CancelMoveOutResponse, handler)

    async def MoveIn(self, request: pb.MoveInRequest, context: grpc.aio.ServicerContext) -> pb.MoveInResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        arrived_on = date_in(request.arrived_on, "arrived_on", errors, required=False)
        founding = request.HasField("new_household")
        household_type = None
        if founding:
            household_type = enum_in(
                pb.HouseholdType,
                request.new_household.type,
                d.HouseholdType,
                "HOUSEHOLD_TYPE_",
                "new_household.type",
                errors,
            )
            if not request.new_household.police_station_code:
                errors.add("new_household.police_station_code", "REQUIRED")
        elif not request.household_id and not request.household_number:
            errors.add("household_id", "REQUIRED", "name the receiving household, or found a new one")
        errors.raise_if_any()

        async def handler(uow: UnitOfWork) -> pb.MoveInResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            person = await repo.person(number, for_update=True)
            certificate_row = None
            if request.certificate_number:
                certificate_row = await repo.certificate(request.certificate_number, for_update=True)
            certificate = certificate_to_domain(certificate_row) if certificate_row else None
            if founding:
                station = await repo.station(request.new_household.police_station_code)
                if station is None:
                    raise InvalidArgument.one(
                        "new_household.police_station_code", UNKNOWN_POLICE_STATION, "no such police station"
                    )
                assert household_type is not None
                for _ in range(MAX_ALLOCATION_ATTEMPTS):
                    household_number = await repo.allocate_household_number(station.jurisdiction)
                    cmd = d.MoveIn(
                        number,
                        arrived_on,
                        request.relationship_code,
                        request.certificate_number,
                        new_household=d.NewHousehold(
                            household_number, household_type, request.new_household.address, station
                        ),
                    )
                    result = d.move_in(
                        person.entry, None, cmd, policy=self.policy, today=today, certificate=certificate
                    )
                    assert result.household is not None
                    household_row = await repo.add_household(result.household, now)
                    if household_row is not None:
                        break
                else:  # pragma: no cover
                    raise RuntimeError("could not allocate a household number")
                record = HouseholdRecord(result.household, household_row, {})
            else:
                record = await repo.household(
                    request.household_number, id=request.household_id, for_update=True
                )
                cmd = d.MoveIn(
                    number,
                    arrived_on,
                    request.relationship_code,
                    request.certificate_number,
                    household_number=record.household.number,
                )
                result = d.move_in(
                    person.entry,
                    record.household,
                    cmd,
                    policy=self.policy,
                    today=today,
                    certificate=certificate,
                )
                assert result.household is not None
                await repo.save_household(record, result.household, now)
            assert result.person is not None and result.household is not None
            await repo.save_person(person.row, result.person, record.id, now)
            if certificate_row is not None and result.certificate is not None:
                await repo.save_certificate(certificate_row, result.certificate, now)
            await self._events(
                uow, result, request.request_id, now, person_id=person.id, households=(record.row,)
            )
            event = result.events[0]
            assert isinstance(event, d.PersonMovedIn)
            return pb.MoveInResponse(
                person=self.views.person(result.person, person.row, record.row),
                household=self.views.household(result.household, record.row),
                certificate=self.views.certificate(certificate_row if result.certificate else None),
                late=event.late,
                deadline=date_to_proto(event.deadline),
            )

        return await self._idempotent("MoveIn", request, pb.MoveInResponse, handler)

    # -- deregistration and changes --------------------------------------------------------------------------

    async def Deregister(
        self, request: pb.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        new_head = _id_number_in(request.new_head_id_number, "new_head_id_number", errors, required=False)
        updates = _updates_in(request.relationship_updates, "relationship_updates", errors)
        reason = enum_in(
            pb.DeregistrationReason,
            request.reason,
            d.DeregistrationReason,
            "DEREGISTRATION_REASON_",
            "reason",
            errors,
            required=False,
        )
        occurred_on = date_in(request.occurred_on, "occurred_on", errors, required=False)
        guardian = _guardian_in(request, errors)
        errors.raise_if_any()
        cmd = d.Deregister(number, reason, occurred_on, new_head or None, updates, guardian)

        async def handler(uow: UnitOfWork) -> pb.DeregisterResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            person = await repo.person(number, for_update=True)
            if person.entry.status is not d.PersonStatus.REGISTERED:
                raise _not_registered()
            record = await repo.household(id=person.row.household_id, for_update=True)
            result = d.deregister(record.household, cmd, policy=self.policy, today=today)
            assert result.household is not None and result.person is not None
            await repo.save_household(record, result.household, now)
            await repo.save_person(person.row, result.person, record.id, now)
            await self._events(
                uow, result, request.request_id, now, person_id=person.id, households=(record.row,)
            )
            event = result.events[0]
            assert isinstance(event, d.PersonDeregistered)
            return pb.DeregisterResponse(
                person=self.views.person(result.person, person.row, record.row),
                household=self.views.household(result.household, record.row),
                cancel_id_card=event.cancel_id_card,
            )

        return await self._idempotent("Deregister", request, pb.DeregisterResponse, handler)

    async def ChangeHead(
        self, request: pb.ChangeHeadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeHeadResponse:
        errors = ValidationCollector()
        new_head = _id_number_in(request.new_head_id_number, "new_head_id_number", errors)
        updates = _updates_in(request.relationship_updates, "relationship_updates", errors)
        errors.raise_if_any()
        id, number = self._household_key(request.household_id, request.household_number)
        cmd = d.ChangeHead(new_head, request.old_head_relationship_code, updates)

        async def handler(uow: UnitOfWork) -> pb.ChangeHeadResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            repo = self._repo(uow)
            record = await repo.household(number, id=id, for_update=True)
            result = d.change_head(record.household, cmd, policy=self.policy, today=today)
            assert result.household is not None
            await repo.save_household(record, result.household, now)
            await self._events(uow, result, request.request_id, now, households=(record.row,))
            return pb.ChangeHeadResponse(household=self.views.household(result.household, record.row))

        return await self._idempotent("ChangeHead", request, pb.ChangeHeadResponse, handler)

    async def _change_entry(
        self,
        uow: UnitOfWork,
        number: str,
        request_id: str,
        change: Callable[[d.Household, dt.date], d.Result],
    ) -> tuple[d.Result, pb.Person]:
        today, now = self.ctx.clock.today(), self.ctx.clock.now()
        repo = self._repo(uow)
        person = await repo.person(number, for_update=True)
        if person.entry.status is not d.PersonStatus.REGISTERED:
            raise _not_registered()
        record = await repo.household(id=person.row.household_id, for_update=True)
        result = change(record.household, today)
        assert result.household is not None and result.person is not None
        await repo.save_household(record, result.household, now)
        await self._events(uow, result, request_id, now, person_id=person.id, households=(record.row,))
        return result, self.views.person(result.person, person.row, record.row)

    async def RecordCivilCapacity(
        self, request: pb.RecordCivilCapacityRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordCivilCapacityResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        capacity = enum_in(
            pb.CivilCapacity,
            request.civil_capacity,
            d.CivilCapacity,
            "CIVIL_CAPACITY_",
            "civil_capacity",
            errors,
            required=False,
        )
        since = date_in(request.since, "since", errors, required=False)
        errors.raise_if_any()
        cmd = d.RecordCivilCapacity(number, capacity, since, request.reference.strip())

        async def handler(uow: UnitOfWork) -> pb.RecordCivilCapacityResponse:
            _, person = await self._change_entry(
                uow,
                number,
                request.request_id,
                lambda household, today: d.record_civil_capacity(
                    household, cmd, policy=self.policy, today=today
                ),
            )
            return pb.RecordCivilCapacityResponse(person=person)

        return await self._idempotent("RecordCivilCapacity", request, pb.RecordCivilCapacityResponse, handler)

    async def ChangeName(
        self, request: pb.ChangeNameRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeNameResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        applicant = _id_number_in(request.applicant_id_number, "applicant_id_number", errors)
        errors.raise_if_any()
        cmd = d.ChangeName(number, request.new_name, applicant)

        async def handler(uow: UnitOfWork) -> pb.ChangeNameResponse:
            _, person = await self._change_entry(
                uow,
                number,
                request.request_id,
                lambda household, today: d.change_name(household, cmd, policy=self.policy, today=today),
            )
            return pb.ChangeNameResponse(person=person, card_renewal_required=True)

        return await self._idempotent("ChangeName", request, pb.ChangeNameResponse, handler)

    async def CorrectEntry(
        self, request: pb.CorrectEntryRequest, context: grpc.aio.ServicerContext
    ) -> pb.CorrectEntryResponse:
        number = require_id_number(request.id_number, "id_number").value
        cmd = d.CorrectEntry(number, request.field, request.new_value)

        async def handler(uow: UnitOfWork) -> pb.CorrectEntryResponse:
            result, person = await self._change_entry(
                uow,
                number,
                request.request_id,
                lambda household, today: d.correct_entry(household, cmd, policy=self.policy, today=today),
            )
            event = result.events[0]
            assert isinstance(event, d.EntryCorrected)
            return pb.CorrectEntryResponse(person=person, card_reissue_required=event.card_reissue_required)

        return await self._idempotent("CorrectEntry", request, pb.CorrectEntryResponse, handler)

    # -- foreigners' accommodation ---------------------------------------------------------------------------

    async def RegisterAccommodation(
        self, request: pb.RegisterAccommodationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterAccommodationResponse:
        errors = ValidationCollector()
        host = None
        if request.HasField("host"):
            kind = enum_in(pb.HostKind, request.host.kind, d.HostKind, "HOST_KIND_", "host.kind", errors)
            if kind is not None:
                host = d.AccommodationHost(kind, request.host.name, request.host.identifier)
        from_date = date_in(request.from_date, "from_date", errors, required=False)
        to_date = date_in(request.to_date, "to_date", errors, required=False)
        if not request.police_station_code:
            errors.add("police_station_code", "REQUIRED")
        errors.raise_if_any()
        cmd = d.RegisterAccommodation(
            passport_number=request.passport_number,
            nationality=request.nationality,
            name=request.name,
            address=request.address,
            host=host,
            arrived_at=_instant_in(request.arrive_time, request.HasField("arrive_time")),
            from_date=from_date,
            to_date=to_date,
        )

        async def handler(uow: UnitOfWork) -> pb.RegisterAccommodationResponse:
            today, now = self.ctx.clock.today(), self.ctx.clock.now()
            station = await self._repo(uow).station(request.police_station_code)
            if station is None:
                raise InvalidArgument.one(
                    "police_station_code", UNKNOWN_POLICE_STATION, "no such police station"
                )
            repo = AccommodationRepository(uow.session)
            registration_number = await repo.next_number(station.code, today)
            for _ in range(MAX_ALLOCATION_ATTEMPTS):
                result = d.register_accommodation(
                    cmd, station=station, policy=self.policy, now=now, registration_number=registration_number
                )
                assert result.accommodation is not None
                row = await repo.add(result.accommodation)
                if row is not None:
                    break
                prefix, serial = registration_number[:-5], int(registration_number[-5:]) + 1
                registration_number = f"{prefix}{serial:05d}"
            else:  # pragma: no cover
                raise RuntimeError("could not allocate a registration number")
            await self._events(uow, result, request.request_id, now, aggregate_id=row.id)
            return pb.RegisterAccommodationResponse(accommodation_registration=self.views.accommodation(row))

        return await self._idempotent(
            "RegisterAccommodation", request, pb.RegisterAccommodationResponse, handler
        )

    async def CancelAccommodationRegistration(
        self, request: pb.CancelAccommodationRegistrationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelAccommodationRegistrationResponse:
        if not request.id:
            raise InvalidArgument.one("id", "REQUIRED")

        async def handler(uow: UnitOfWork) -> pb.CancelAccommodationRegistrationResponse:
            now = self.ctx.clock.now()
            repo = AccommodationRepository(uow.session)
            row = await repo.get(id=request.id, for_update=True)
            result = d.cancel_accommodation(accommodation_to_domain(row), reason=request.reason, now=now)
            assert result.accommodation is not None
            await repo.save(row, result.accommodation)
            await self._events(uow, result, request.request_id, now, aggregate_id=row.id)
            return pb.CancelAccommodationRegistrationResponse(
                accommodation_registration=self.views.accommodation(row)
            )

        return await self._idempotent(
            "CancelAccommodationRegistration", request, pb.CancelAccommodationRegistrationResponse, handler
        )

    # -- events ----------------------------------------------------------------------------------------------

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield pb.WatchEventsResponse(event=event_to_proto(row))
