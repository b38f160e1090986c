"""Moves (迁出, 迁入) with their migration certificates (户口迁移证), and undoing a move-out
(docs/domain.md §3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, ValidationCollector
from services.common.events import DomainEvent
from services.residence.domain.events import (
    HeadChanged,
    MoveOutCancelled,
    PersonMovedIn,
    PersonMovedOut,
)
from services.residence.domain.model import (
    BEFORE_MOVE_OUT,
    CERTIFICATE_ALREADY_USED,
    CERTIFICATE_DESTINATION_MISMATCH,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_PERSON_MISMATCH,
    CERTIFICATE_REQUIRED,
    CERTIFICATE_REVOKED,
    DUPLICATE_MEMBER,
    HEAD_CODE,
    HOUSEHOLD_CHANGED_SINCE_MOVE_OUT,
    NOT_SAME_CITY,
    PERSON_ALREADY_REGISTERED,
    PERSON_NOT_MOVING_OUT,
    RELATIONSHIP_NOT_FOR_MEMBER,
    REQUIRED,
    SAME_REGISTERING_AREA,
    Arrival,
    Household,
    HouseholdType,
    MigrationCertificate,
    PendingMove,
    PersonEntry,
    PersonStatus,
    PoliceStation,
    ResidencePolicy,
    Result,
)
from services.residence.domain.register import (
    apply_updates,
    check_past,
    check_region,
    check_text,
    establish_household,
    replace_head,
    require_open,
    same_city,
    validate_relationship_updates,
    with_members,
)

# -- move-out --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoveOut:
    """迁出: `new_head_id_number` and `relationship_updates` are needed when the head leaves."""

    id_number: str
    destination_region_code: str
    destination_address: str
    new_head_id_number: str | None = None
    relationship_updates: Mapping[str, str] = field(default_factory=dict)


def move_out(
    household: Household,
    cmd: MoveOut,
    *,
    policy: ResidencePolicy,
    today: date,
    certificate_number: str,
) -> Result:
    """The person leaves `household` and becomes MOVING_OUT. A migration certificate (number from the
    store, validity from policy) is issued, except for a transfer between districts of the same city
    (同城办理), which needs none. The head may leave only when a new head is named in the same command."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    check_region(v, "destination_region_code", cmd.destination_region_code)
    check_text(v, "destination_address", cmd.destination_address)
    validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    require_open(household)
    person = household.member(cmd.id_number)
    if cmd.destination_region_code == household.region_code:
        raise FailedPrecondition(
            SAME_REGISTERING_AREA,
            "A move within the same registering area is an address change, not a move-out.",
        )
    transfer = same_city(household.region_code, cmd.destination_region_code)
    updated, head_events = replace_head(
        household, person, cmd.new_head_id_number, cmd.relationship_updates, policy, today, "MOVED_OUT"
    )
    certificate = None
    if not transfer:
        if not certificate_number:
            raise ValueError("certificate_number is required for a move out of the city")
        certificate = MigrationCertificate(
            number=certificate_number,
            id_number=person.id_number,
            name=person.name,
            sex=person.sex,
            birth_date=person.birth_date,
            origin_region_code=household.region_code,
            origin_address=household.address,
            origin_household_number=household.number,
            destination_region_code=cmd.destination_region_code,
            destination_address=cmd.destination_address.strip(),
            issued_on=today,
            valid_until=today + timedelta(days=policy.certificate_validity_days),
        )
    before = {m.id_number: m.relationship_code for m in household.members}
    head_event = next((e for e in head_events if isinstance(e, HeadChanged)), None)
    pending = PendingMove(
        origin_region_code=household.region_code,
        destination_region_code=cmd.destination_region_code,
        destination_address=cmd.destination_address.strip(),
        certificate_number=certificate.number if certificate else None,
        same_city=transfer,
        moved_out_on=today,
        former_relationship_code=person.relationship_code,
        member_changes=tuple(
            (m.id_number, before[m.id_number], m.relationship_code)
            for m in updated.members
            if before[m.id_number] != m.relationship_code
        ),
        new_head_id_number=head_event.new_head_id_number if head_event else "",
        closed_household=updated.closed_on is not None,
    )
    leaving = replace(person, status=PersonStatus.MOVING_OUT, status_since=today, pending_move=pending)
    event = PersonMovedOut(
        id_number=person.id_number,
        household_number=household.number,
        region_code=household.region_code,
        destination_region_code=cmd.destination_region_code,
        destination_address=pending.destination_address,
        certificate_number=pending.certificate_number,
        certificate_valid_until=certificate.valid_until if certificate else None,
        same_city=transfer,
        moved_out_on=today,
    )
    return Result(events=(event, *head_events), household=updated, person=leaving, certificate=certificate)


# -- move-in ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewHousehold:
    """The household a person founds on moving in (立户); the person becomes its head."""

    number: str
    type: HouseholdType
    address: str
    station: PoliceStation


@dataclass(frozen=True, slots=True)
class MoveIn:
    """迁入 into an existing household (`household_number`, with `relationship_code`), or founding one
    (`new_household`). `certificate_number` is empty only for a same-city transfer."""

    id_number: str
    arrived_on: date | None
    relationship_code: str
    certificate_number: str = ""
    household_number: str = ""
    new_household: NewHousehold | None = None


def move_in(
    person: PersonEntry,
    receiving: Household | None,
    cmd: MoveIn,
    *,
    policy: ResidencePolicy,
    today: date,
    certificate: MigrationCertificate | None,
) -> Result:
    """Register a MOVING_OUT person in the receiving household (or in a new one), consuming the migration
    certificate: it must be this person's, unexpired, unused and made out to the receiving area. A same-city
    transfer needs no certificate. Late registration (3 days in a city, 10 in the countryside after arrival)
    is flagged. The event tells identity to update the card's address record (no renewal, §2.3)."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    check_past(v, "arrived_on", cmd.arrived_on, today)
    founding = cmd.new_household is not None
    if founding:
        if cmd.relationship_code and cmd.relationship_code != HEAD_CODE:
            v.add("relationship_code", RELATIONSHIP_NOT_FOR_MEMBER, "The founder of a household is its head.")
        nh = cmd.new_household
        assert nh is not None
        check_text(v, "new_household.number", nh.number)
        check_text(v, "new_household.address", nh.address)
        check_region(v, "new_household.station.jurisdiction", nh.station.jurisdiction)
    else:
        if not cmd.household_number:
            v.add("household_number", REQUIRED, "The receiving household is required.")
        problem = policy.relationships.member_code_problem(cmd.relationship_code, person.sex)
        if problem is None and cmd.relationship_code == HEAD_CODE:
            problem = RELATIONSHIP_NOT_FOR_MEMBER
        if problem:
            v.add("relationship_code", problem, "Not a valid relationship to the receiving household's head.")
    v.raise_if_any()
    assert cmd.arrived_on is not None

    if person.id_number != cmd.id_number:
        raise NotFound("no such person")
    if person.status is PersonStatus.REGISTERED:
        raise FailedPrecondition(
            PERSON_ALREADY_REGISTERED,
            "The person is registered elsewhere: a person is registered in one place only.",
        )
    if person.status is not PersonStatus.MOVING_OUT or person.pending_move is None:
        raise FailedPrecondition(PERSON_NOT_MOVING_OUT, "The person has not moved out of a household.")

    if founding:
        nh = cmd.new_household
        assert nh is not None
        station, address, number = nh.station, nh.address.strip(), nh.number
    else:
        if receiving is None or receiving.number != cmd.household_number:
            raise NotFound("no such household")
        require_open(receiving)
        station, address, number = receiving.station, receiving.address, receiving.number
    region_code = station.jurisdiction

    pending = person.pending_move
    if cmd.arrived_on < pending.moved_out_on:
        raise InvalidArgument.one("arrived_on", BEFORE_MOVE_OUT, "The arrival is before the move-out.")
    used_certificate = None
    if pending.same_city and not cmd.certificate_number:
        if not same_city(region_code, pending.origin_region_code):
            raise FailedPrecondition(NOT_SAME_CITY, "A transfer without a certificate must stay in the city.")
        if region_code != pending.destination_region_code:
            raise FailedPrecondition(
                CERTIFICATE_DESTINATION_MISMATCH, "The transfer was made out to another registering area."
            )
    else:
        if certificate is None or not cmd.certificate_number or certificate.number != cmd.certificate_number:
            raise FailedPrecondition(CERTIFICATE_REQUIRED, "A valid migration certificate is required.")
        if certificate.id_number != person.id_number:
            raise FailedPrecondition(
                CERTIFICATE_PERSON_MISMATCH, "The certificate was issued to someone else."
            )
        if certificate.used_on is not None:
            raise FailedPrecondition(
                CERTIFICATE_ALREADY_USED, "The migration certificate has already been used."
            )
        if certificate.revoked_on is not None:
            raise FailedPrecondition(CERTIFICATE_REVOKED, "The migration certificate has been revoked.")
        if today > certificate.valid_until:
            raise FailedPrecondition(CERTIFICATE_EXPIRED, "The migration certificate has expired.")
        if certificate.destination_region_code != region_code:
            raise FailedPrecondition(
                CERTIFICATE_DESTINATION_MISMATCH, "The certificate is made out to another registering area."
            )
        used_certificate = replace(certificate, used_on=today, used_by_household=number)

    origin_place = used_certificate.origin_address if used_certificate else pending.origin_region_code
    arrival = Arrival(origin_place, cmd.arrived_on)
    moved = replace(
        person,
        household_number=number,
        relationship_code=HEAD_CODE if founding else cmd.relationship_code,
        status=PersonStatus.REGISTERED,
        status_reason=None,
        status_since=today,
        pending_move=None,
        arrived_at_address=arrival,
        arrived_in_city=person.arrived_in_city
        if not used_certificate or same_city(used_certificate.origin_region_code, region_code)
        else arrival,
    )
    if founding:
        nh = cmd.new_household
        assert nh is not None
        updated = establish_household(
            nh.number, nh.type, nh.address, nh.station, (moved,), policy=policy, today=today
        )
    else:
        assert receiving is not None
        if receiving.has_member(person.id_number):
            raise FailedPrecondition(DUPLICATE_MEMBER, "The person is already a member of this household.")
        updated = with_members(receiving, (*receiving.members, moved), policy, today)

    days = policy.move_in_countryside_days if station.rural else policy.move_in_city_days
    deadline = cmd.arrived_on + timedelta(days=days)
    event = PersonMovedIn(
        id_number=person.id_number,
        household_number=number,
        region_code=region_code,
        station_code=station.code,
        address=address,
        relationship_code=moved.relationship_code,
        certificate_number=used_certificate.number if used_certificate else None,
        arrived_on=cmd.arrived_on,
        registered_on=today,
        deadline=deadline,
        late=today > deadline,
    )
    return Result(events=(event,), household=updated, person=moved, certificate=used_certificate)


# -- undoing a move-out (compensation) -------------------------------------------------------------------


def cancel_move_out(
    person: PersonEntry,
    origin: Household,
    certificate: MigrationCertificate | None,
    *,
    policy: ResidencePolicy,
    today: date,
    reason: str = "",
) -> Result:
    """Undo a move-out that has not been completed: the certificate (if any) is revoked and the person is
    REGISTERED in the origin household again with the former relationship code. What the move-out changed
    there is reverted: the other members' codes, the head it named (the person is head again), a household
    it closed (reopened). If the household changed since in a way that conflicts, the move-out stands
    (HOUSEHOLD_CHANGED_SINCE_MOVE_OUT)."""
    pending = person.pending_move
    if person.status is not PersonStatus.MOVING_OUT or pending is None:
        raise FailedPrecondition(PERSON_NOT_MOVING_OUT, "The person has no move-out to cancel.")
    if origin.number != person.household_number:
        raise ValueError("origin must be the household the person moved out of")
    revoked = None
    if pending.certificate_number:
        if certificate is None or certificate.number != pending.certificate_number:
            raise ValueError("the certificate issued on the move-out is required")
        if certificate.used_on is not None:
            raise FailedPrecondition(
                CERTIFICATE_ALREADY_USED, "The migration certificate has already been used."
            )
        revoked = (
            certificate if certificate.revoked_on is not None else replace(certificate, revoked_on=today)
        )
    code = pending.former_relationship_code or person.relationship_code
    restored = replace(
        person,
        household_number=origin.number,
        relationship_code=code,
        status=PersonStatus.REGISTERED,
        status_reason=None,
        status_since=today,
        pending_move=None,
    )
    changed = FailedPrecondition(
        HOUSEHOLD_CHANGED_SINCE_MOVE_OUT, "The household changed since the move-out; it cannot be undone."
    )
    reopened = False
    events: list[DomainEvent] = []
    if origin.closed_on is not None:
        if not pending.closed_household or origin.members:
            raise changed
        reopened = True
        updated = replace(origin, closed_on=None)
        try:
            updated = with_members(updated, (restored,), policy, today)
        except FailedPrecondition:
            raise changed from None
    else:
        if pending.closed_household:
            raise changed
        current = {m.id_number: m for m in origin.members}
        if restored.id_number in current:
            raise FailedPrecondition(DUPLICATE_MEMBER, "The person is already a member of this household.")
        reverted: dict[str, str] = {}
        for id_number, old, new in pending.member_changes:
            member = current.get(id_number)
            if member is None or member.relationship_code != new:
                raise changed
            reverted[id_number] = old
        try:
            updated = with_members(
                origin, (*apply_updates(origin.members, reverted), restored), policy, today
            )
        except FailedPrecondition:
            raise changed from None
        if pending.new_head_id_number:
            events.append(
                HeadChanged(
                    origin.number,
                    pending.new_head_id_number,
                    restored.id_number,
                    "MOVE_OUT_CANCELLED",
                    today,
                    tuple((i, new, old) for i, old, new in pending.member_changes),
                )
            )
    event = MoveOutCancelled(
        id_number=person.id_number,
        household_number=origin.number,
        region_code=origin.region_code,
        certificate_number=pending.certificate_number,
        relationship_code=code,
        head_restored=bool(pending.new_head_id_number) or (reopened and code == HEAD_CODE),
        household_reopened=reopened,
        cancelled_on=today,
        reason=reason.strip(),
    )
    return Result(events=(event, *events), household=updated, person=restored, certificate=revoked)
