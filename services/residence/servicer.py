"""govhub.residence.v1.ResidenceService over grpc.aio: proto in, a use case of `handlers`, proto out.

This layer only translates: a request into plain values and domain commands (every field problem at once;
an ID number checked by ``require_id_number`` under the request's field name), an `Outcome` into the
response message; errors become statuses in ``services.common.grpcserver``. Every change runs its use case
through ``run_idempotent``: one unit of work holds the register change, its outbox events and the stored
answer. "Today" is the service clock's (``GOVHUB_TODAY`` pins it).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.db import UnitOfWork
from services.common.errors import InvalidArgument, ValidationCollector
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
from services.residence.handlers import (
    FoundHousehold,
    Outcome,
    ResidenceHandlers,
    household_key,
    require_accommodation_id,
)
from services.residence.policy import default_policy
from services.residence.store import (
    AccommodationRepository,
    AccommodationRow,
    CertificateRow,
    HouseholdRow,
    IdempotencyRecord,
    PersonRow,
    RegisterRepository,
    RegisterWork,
)

R = TypeVar("R", bound=Message)
P = TypeVar("P", bound=int)
Context = grpc.aio.ServicerContext[Any, Any]

# A members page token carries the household and the last member's register-order key.
MEMBERS_PAGE_KEY = (str, str)


# ----------------------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------------------


def _enum(wrapper: type[P], prefix: str, value: enum.Enum | None) -> P:
    """A domain enum (or None) as the number of the proto enum `wrapper`."""
    return cast(P, enum_out(wrapper, prefix, value))


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
            sex=_enum(common_pb2.Sex, "SEX_", entry.sex),
            birth_date=date_to_proto(entry.birth_date),
            ethnicity=entry.ethnicity,
            status=_enum(pb.PersonStatus, "PERSON_STATUS_", entry.status),
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
            education=_enum(pb.Education, "EDUCATION_", entry.education),
            marital_status=_enum(pb.MaritalStatus, "MARITAL_STATUS_", entry.marital_status),
            military_service=_enum(pb.MilitaryService, "MILITARY_SERVICE_", entry.military_service),
            occupation=entry.occupation,
            employer=entry.employer,
            arrived_in_city=_arrival_out(entry.arrived_in_city),
            arrived_at_address=_arrival_out(entry.arrived_at_address),
            registration_date=date_to_proto(entry.registered_on),
            status_date=date_to_proto(entry.status_since),
            deregistration_reason=_enum(
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
            civil_capacity=_enum(pb.CivilCapacity, "CIVIL_CAPACITY_", entry.civil_capacity),
            civil_capacity_since=date_to_proto(entry.civil_capacity_since),
            update_time=timestamp(row.updated_at),
        )

    def household(self, household: d.Household, row: HouseholdRow) -> pb.Household:
        head = next((m for m in household.members if m.relationship_code == d.HEAD_CODE), None)
        return pb.Household(
            id=row.id,
            number=household.number,
            type=_enum(pb.HouseholdType, "HOUSEHOLD_TYPE_", household.type),
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
            sex=_enum(common_pb2.Sex, "SEX_", d.Sex(row.sex)),
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
                kind=_enum(pb.HostKind, "HOST_KIND_", d.HostKind(row.host_kind)),
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


class ResidenceServicer(residence_pb2_grpc.ResidenceServiceServicer):
    def __init__(self, ctx: ServiceContext, policy: d.ResidencePolicy | None = None) -> None:
        self.ctx = ctx
        self.policy = policy or default_policy()
        self.handlers = ResidenceHandlers(self.policy, ctx.clock)
        self.views = Views(self.policy, ctx.clock.today)

    async def _change(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        use_case: Callable[[RegisterWork], Awaitable[Outcome]],
        respond: Callable[[Outcome], R],
    ) -> R:
        """Run a use case once per request_id, in one unit of work with its events and its answer."""

        async def handler(uow: UnitOfWork) -> R:
            work = RegisterWork(uow, self.ctx.feed, self.policy, getattr(request, "request_id", ""))
            return respond(await use_case(work))

        return await run_idempotent(
            self.ctx.uow, IdempotencyRecord, method, request, response_type, handler, self.ctx.clock.now
        )

    def _person(self, outcome: Outcome) -> pb.Person:
        assert outcome.result.person is not None
        assert outcome.person_row is not None and outcome.household_row is not None
        return self.views.person(outcome.result.person, outcome.person_row, outcome.household_row)

    def _household(self, outcome: Outcome) -> pb.Household:
        assert outcome.result.household is not None and outcome.household_row is not None
        return self.views.household(outcome.result.household, outcome.household_row)

    # -- queries ---------------------------------------------------------------------------------------------

    async def GetPerson(self, request: pb.GetPersonRequest, context: Context) -> pb.GetPersonResponse:
        number = require_id_number(request.id_number, "id_number").value
        async with self.ctx.read() as session:
            person, household = await self.handlers.get_person(self._reader(session), number)
            return pb.GetPersonResponse(
                person=self.views.person(person.entry, person.row, household.row),
                household=self.views.household(household.household, household.row),
            )

    async def VerifyHukou(self, request: pb.VerifyHukouRequest, context: Context) -> pb.VerifyHukouResponse:
        number = require_id_number(request.id_number, "id_number").value
        async with self.ctx.read() as session:
            found = await self.handlers.verify_hukou(self._reader(session), number)
        if found is None:
            return pb.VerifyHukouResponse(found=False)
        matches = found.name == request.name.strip()
        return pb.VerifyHukouResponse(
            found=True,
            name_matches=matches,
            status=_enum(pb.PersonStatus, "PERSON_STATUS_", found.status),
            hukou_province_code=found.region_code[:2] if matches else "",
            hukou_region_code=found.region_code if matches else "",
        )

    async def GetHousehold(
        self, request: pb.GetHouseholdRequest, context: Context
    ) -> pb.GetHouseholdResponse:
        async with self.ctx.read() as session:
            record = await self.handlers.get_household(self._reader(session), request.id, request.number)
            return pb.GetHouseholdResponse(household=self.views.household(record.household, record.row))

    async def ListMembers(self, request: pb.ListMembersRequest, context: Context) -> pb.ListMembersResponse:
        errors = ValidationCollector()
        size = page_size(request.page_size, errors)
        token = decode_page_token(request.page_token, MEMBERS_PAGE_KEY, errors)
        errors.raise_if_any()
        async with self.ctx.read() as session:
            household, page = await self.handlers.list_members(
                self._reader(session), request.household_id, request.household_number, after=token, limit=size
            )
            last = page.members[-1].row.member_order if page.members else None
            return pb.ListMembersResponse(
                members=[self.views.person(m.entry, m.row, household) for m in page.members],
                next_page_token=encode_page_token((household.id, last)) if page.has_more and last else "",
            )

    async def GetMigrationCertificate(
        self, request: pb.GetMigrationCertificateRequest, context: Context
    ) -> pb.GetMigrationCertificateResponse:
        async with self.ctx.read() as session:
            row = await self.handlers.get_certificate(self._reader(session), request.number)
            return pb.GetMigrationCertificateResponse(certificate=self.views.certificate(row))

    async def GetAccommodationRegistration(
        self, request: pb.GetAccommodationRegistrationRequest, context: Context
    ) -> pb.GetAccommodationRegistrationResponse:
        async with self.ctx.read() as session:
            row = await self.handlers.get_accommodation(
                AccommodationRepository(session), request.id, request.registration_number
            )
            return pb.GetAccommodationRegistrationResponse(
                accommodation_registration=self.views.accommodation(row)
            )

    def _reader(self, session: AsyncSession) -> RegisterRepository:
        """The register's repository over a read-only session (``ctx.read()``)."""
        return RegisterRepository(session, self.policy)

    # -- births ----------------------------------------------------------------------------------------------

    async def RegisterBirth(
        self, request: pb.RegisterBirthRequest, context: Context
    ) -> pb.RegisterBirthResponse:
        errors = ValidationCollector()
        p = request.person
        sex = enum_in(common_pb2.Sex, p.sex, d.Sex, "SEX_", "person.sex", errors, required=False)
        birth_date = date_in(p.birth_date, "person.birth_date", errors, required=False)
        declarant = _id_number_in(request.declarant_id_number, "declarant_id_number", errors, required=False)
        mother = _id_number_in(request.mother_id_number, "mother_id_number", errors, required=False)
        father = _id_number_in(request.father_id_number, "father_id_number", errors, required=False)
        errors.raise_if_any()
        household_key(request.household_id, request.household_number)
        cmd = d.RegisterBirth(
            household_number="",
            person=d.NewbornDetails(p.name, sex, birth_date, p.birth_place, p.ethnicity, p.native_place),
            relationship_code=request.relationship_code,
            declarant_id_number=declarant,
            mother_id_number=mother,
            father_id_number=father,
        )

        def respond(outcome: Outcome) -> pb.RegisterBirthResponse:
            event = outcome.event(d.BirthRegistered)
            return pb.RegisterBirthResponse(
                person=self._person(outcome),
                id_number=event.id_number,
                late=event.late,
                deadline=date_to_proto(event.deadline),
                household=self._household(outcome),
            )

        return await self._change(
            "RegisterBirth",
            request,
            pb.RegisterBirthResponse,
            lambda work: self.handlers.register_birth(
                work, cmd, household_id=request.household_id, household_number=request.household_number
            ),
            respond,
        )

    # -- moves -----------------------------------------------------------------------------------------------

    async def MoveOut(self, request: pb.MoveOutRequest, context: Context) -> pb.MoveOutResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        new_head = _id_number_in(request.new_head_id_number, "new_head_id_number", errors, required=False)
        updates = _updates_in(request.relationship_updates, "relationship_updates", errors)
        errors.raise_if_any()
        cmd = d.MoveOut(
            number, request.destination_region_code, request.destination_address, new_head or None, updates
        )

        def respond(outcome: Outcome) -> pb.MoveOutResponse:
            return pb.MoveOutResponse(
                person=self._person(outcome),
                certificate=self.views.certificate(outcome.certificate_row),
                same_city_transfer=outcome.result.certificate is None,
                origin_household=self._household(outcome),
            )

        return await self._change(
            "MoveOut", request, pb.MoveOutResponse, lambda work: self.handlers.move_out(work, cmd), respond
        )

    async def CancelMoveOut(
        self, request: pb.CancelMoveOutRequest, context: Context
    ) -> pb.CancelMoveOutResponse:
        number = require_id_number(request.id_number, "id_number").value

        def respond(outcome: Outcome) -> pb.CancelMoveOutResponse:
            return pb.CancelMoveOutResponse(
                person=self._person(outcome),
                certificate=self.views.certificate(outcome.certificate_row),
                household=self._household(outcome),
            )

        return await self._change(
            "CancelMoveOut",
            request,
            pb.CancelMoveOutResponse,
            lambda work: self.handlers.cancel_move_out(work, number, reason=request.reason),
            respond,
        )

    async def MoveIn(self, request: pb.MoveInRequest, context: Context) -> pb.MoveInResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        arrived_on = date_in(request.arrived_on, "arrived_on", errors, required=False)
        founding = None
        if request.HasField("new_household"):
            new = request.new_household
            household_type = enum_in(
                pb.HouseholdType, new.type, d.HouseholdType, "HOUSEHOLD_TYPE_", "new_household.type", errors
            )
            if not new.police_station_code:
                errors.add("new_household.police_station_code", "REQUIRED")
            if household_type is not None:
                founding = FoundHousehold(household_type, new.address, new.police_station_code)
        elif not request.household_id and not request.household_number:
            errors.add("household_id", "REQUIRED", "name the receiving household, or found a new one")
        errors.raise_if_any()
        cmd = d.MoveIn(
            number,
            arrived_on,
            request.relationship_code,
            request.certificate_number,
            household_number=request.household_number,
        )

        def respond(outcome: Outcome) -> pb.MoveInResponse:
            event = outcome.event(d.PersonMovedIn)
            return pb.MoveInResponse(
                person=self._person(outcome),
                household=self._household(outcome),
                certificate=self.views.certificate(outcome.certificate_row),
                late=event.late,
                deadline=date_to_proto(event.deadline),
            )

        return await self._change(
            "MoveIn",
            request,
            pb.MoveInResponse,
            lambda work: self.handlers.move_in(
                work, cmd, household_id=request.household_id, founding=founding
            ),
            respond,
        )

    # -- deregistration and changes --------------------------------------------------------------------------

    async def Deregister(self, request: pb.DeregisterRequest, context: Context) -> pb.DeregisterResponse:
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

        def respond(outcome: Outcome) -> pb.DeregisterResponse:
            return pb.DeregisterResponse(
                person=self._person(outcome),
                household=self._household(outcome),
                cancel_id_card=outcome.event(d.PersonDeregistered).cancel_id_card,
            )

        return await self._change(
            "Deregister",
            request,
            pb.DeregisterResponse,
            lambda work: self.handlers.deregister(work, cmd),
            respond,
        )

    async def ChangeHead(self, request: pb.ChangeHeadRequest, context: Context) -> pb.ChangeHeadResponse:
        errors = ValidationCollector()
        new_head = _id_number_in(request.new_head_id_number, "new_head_id_number", errors)
        updates = _updates_in(request.relationship_updates, "relationship_updates", errors)
        errors.raise_if_any()
        household_key(request.household_id, request.household_number)
        cmd = d.ChangeHead(new_head, request.old_head_relationship_code, updates)
        return await self._change(
            "ChangeHead",
            request,
            pb.ChangeHeadResponse,
            lambda work: self.handlers.change_head(
                work, cmd, household_id=request.household_id, household_number=request.household_number
            ),
            lambda outcome: pb.ChangeHeadResponse(household=self._household(outcome)),
        )

    async def RecordCivilCapacity(
        self, request: pb.RecordCivilCapacityRequest, context: Context
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
        return await self._change(
            "RecordCivilCapacity",
            request,
            pb.RecordCivilCapacityResponse,
            lambda work: self.handlers.record_civil_capacity(work, cmd),
            lambda outcome: pb.RecordCivilCapacityResponse(person=self._person(outcome)),
        )

    async def ChangeName(self, request: pb.ChangeNameRequest, context: Context) -> pb.ChangeNameResponse:
        errors = ValidationCollector()
        number = _id_number_in(request.id_number, "id_number", errors)
        applicant = _id_number_in(request.applicant_id_number, "applicant_id_number", errors)
        errors.raise_if_any()
        cmd = d.ChangeName(number, request.new_name, applicant)
        return await self._change(
            "ChangeName",
            request,
            pb.ChangeNameResponse,
            lambda work: self.handlers.change_name(work, cmd),
            lambda outcome: pb.ChangeNameResponse(person=self._person(outcome), card_renewal_required=True),
        )

    async def CorrectEntry(
        self, request: pb.CorrectEntryRequest, context: Context
    ) -> pb.CorrectEntryResponse:
        number = require_id_number(request.id_number, "id_number").value
        cmd = d.CorrectEntry(number, request.field, request.new_value)

        def respond(outcome: Outcome) -> pb.CorrectEntryResponse:
            return pb.CorrectEntryResponse(
                person=self._person(outcome),
                card_reissue_required=outcome.event(d.EntryCorrected).card_reissue_required,
            )

        return await self._change(
            "CorrectEntry",
            request,
            pb.CorrectEntryResponse,
            lambda work: self.handlers.correct_entry(work, cmd),
            respond,
        )

    # -- foreigners' accommodation ---------------------------------------------------------------------------

    async def RegisterAccommodation(
        self, request: pb.RegisterAccommodationRequest, context: Context
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
        return await self._change(
            "RegisterAccommodation",
            request,
            pb.RegisterAccommodationResponse,
            lambda work: self.handlers.register_accommodation(
                work, cmd, police_station_code=request.police_station_code
            ),
            lambda outcome: pb.RegisterAccommodationResponse(
                accommodation_registration=self._accommodation(outcome)
            ),
        )

    async def CancelAccommodationRegistration(
        self, request: pb.CancelAccommodationRegistrationRequest, context: Context
    ) -> pb.CancelAccommodationRegistrationResponse:
        require_accommodation_id(request.id)
        return await self._change(
            "CancelAccommodationRegistration",
            request,
            pb.CancelAccommodationRegistrationResponse,
            lambda work: self.handlers.cancel_accommodation(work, request.id, reason=request.reason),
            lambda outcome: pb.CancelAccommodationRegistrationResponse(
                accommodation_registration=self._accommodation(outcome)
            ),
        )

    def _accommodation(self, outcome: Outcome) -> pb.AccommodationRegistration:
        assert outcome.accommodation_row is not None
        return self.views.accommodation(outcome.accommodation_row)

    # -- events ----------------------------------------------------------------------------------------------

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield pb.WatchEventsResponse(event=event_to_proto(row))
