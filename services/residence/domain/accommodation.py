"""Foreigners' accommodation registration (境外人员住宿登记, Exit-Entry Law Art. 39)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from services.common.errors import FailedPrecondition, ValidationCollector
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem
from services.common.idnumber import check_id_number
from services.residence.domain.events import (
    AccommodationRegistered,
    AccommodationRegistrationCancelled,
)
from services.residence.domain.model import (
    BEFORE_START,
    FUTURE_DATE,
    NOT_TIMEZONE_AWARE,
    REGISTRATION_CANCELLED,
    REQUIRED,
    AccommodationHost,
    AccommodationRegistration,
    HostKind,
    PoliceStation,
    ResidencePolicy,
    Result,
)
from services.residence.domain.register import (
    check_name,
    check_text,
)

# -- foreigners' accommodation registration ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterAccommodation:
    passport_number: str
    nationality: str
    name: str
    address: str
    host: AccommodationHost | None
    arrived_at: datetime | None
    from_date: date | None
    to_date: date | None


def register_accommodation(
    cmd: RegisterAccommodation,
    *,
    station: PoliceStation,
    policy: ResidencePolicy,
    now: datetime,
    registration_number: str,
) -> Result:
    """住宿登记 of a foreigner at `station` (Exit-Entry Law Art. 39): within 24 hours of arrival in a city,
    72 in the countryside (policy); a later registration is accepted and flagged ``late``."""
    v = ValidationCollector()
    problem = passport_number_problem(cmd.passport_number)
    if problem:
        v.add("passport_number", problem, "Not a plausible passport number.")
    problem = nationality_problem(cmd.nationality)
    if problem:
        v.add("nationality", problem, "An ISO 3166-1 alpha-3 code of a foreign country.")
    check_name(v, "name", cmd.name)
    check_text(v, "address", cmd.address)
    if cmd.host is None:
        v.add("host", REQUIRED, "The registering host is required.")
    else:
        check_text(v, "host.name", cmd.host.name)
        if cmd.host.kind is HostKind.RESIDENT:
            check = check_id_number(cmd.host.identifier)
            for problem in check.problems:
                v.add("host.identifier", problem, "The resident host's citizen ID number.")
        else:
            check_text(v, "host.identifier", cmd.host.identifier)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if cmd.arrived_at is None:
        v.add("arrived_at", REQUIRED, "The arrival time is required.")
    elif cmd.arrived_at.tzinfo is None:
        v.add("arrived_at", NOT_TIMEZONE_AWARE, "The arrival time needs a time zone.")
    elif cmd.arrived_at > now:
        v.add("arrived_at", FUTURE_DATE, "The arrival is in the future.")
    if cmd.from_date is None:
        v.add("from_date", REQUIRED, "The first night is required.")
    if cmd.to_date is None:
        v.add("to_date", REQUIRED, "The last day is required.")
    elif cmd.from_date is not None and cmd.to_date < cmd.from_date:
        v.add("to_date", BEFORE_START, "The stay ends before it starts.")
    v.raise_if_any()
    assert cmd.host is not None and cmd.arrived_at is not None
    assert cmd.from_date is not None and cmd.to_date is not None

    hours = policy.accommodation_countryside_hours if station.rural else policy.accommodation_city_hours
    deadline = cmd.arrived_at + timedelta(hours=hours)
    late = now > deadline
    passport = normalise_passport_number(cmd.passport_number)
    registration = AccommodationRegistration(
        registration_number=registration_number,
        passport_number=passport,
        nationality=cmd.nationality,
        name=cmd.name.strip(),
        address=cmd.address.strip(),
        station=station,
        host=cmd.host,
        arrived_at=cmd.arrived_at,
        from_date=cmd.from_date,
        to_date=cmd.to_date,
        registered_at=now,
        late=late,
        deadline=deadline,
    )
    event = AccommodationRegistered(
        registration_number=registration_number,
        passport_number=passport,
        nationality=cmd.nationality,
        region_code=station.jurisdiction,
        station_code=station.code,
        host_kind=cmd.host.kind,
        from_date=cmd.from_date,
        to_date=cmd.to_date,
        arrived_at=cmd.arrived_at,
        registered_at=now,
        deadline=deadline,
        late=late,
    )
    return Result(events=(event,), accommodation=registration)


def cancel_accommodation(registration: AccommodationRegistration, *, reason: str, now: datetime) -> Result:
    """Cancel an accommodation registration (compensation, or a stay that did not happen)."""
    v = ValidationCollector()
    check_text(v, "reason", reason, required=False)
    v.raise_if_any()
    if registration.cancelled_at is not None:
        raise FailedPrecondition(REGISTRATION_CANCELLED, "The registration is already cancelled.")
    cancelled = replace(registration, cancelled_at=now, cancellation_reason=reason.strip())
    event = AccommodationRegistrationCancelled(
        registration_number=registration.registration_number,
        passport_number=registration.passport_number,
        nationality=registration.nationality,
        reason=reason.strip(),
        cancelled_at=now,
    )
    return Result(events=(event,), accommodation=cancelled)
