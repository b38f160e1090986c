"""Residence (the household register): accommodation registration of a foreigner, moving out and in,
registering a birth and changing a name. None of these waits for a decision: the register records them
at once, so there are no events to follow and nothing for the back office to decide."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import timestamp_pb2

from gateway.departments.base import Action, Outcome, Service, StepInput, proto_date
from gateway.saga.model import StepState as S
from govhub.residence.v1 import residence_pb2

rpc = Service(residence_pb2.DESCRIPTOR, "ResidenceService").rpc
REGISTER_ACCOMMODATION = rpc(
    residence_pb2.RegisterAccommodationRequest, residence_pb2.RegisterAccommodationResponse
)
MOVE_OUT = rpc(residence_pb2.MoveOutRequest, residence_pb2.MoveOutResponse)
CANCEL_MOVE_OUT = rpc(residence_pb2.CancelMoveOutRequest, residence_pb2.CancelMoveOutResponse)
MOVE_IN = rpc(residence_pb2.MoveInRequest, residence_pb2.MoveInResponse)
REGISTER_BIRTH = rpc(residence_pb2.RegisterBirthRequest, residence_pb2.RegisterBirthResponse)
CHANGE_NAME = rpc(residence_pb2.ChangeNameRequest, residence_pb2.ChangeNameResponse)
# asked on a citizen's behalf (gateway/api/citizen.py)
GET_PERSON = rpc(residence_pb2.GetPersonRequest, residence_pb2.GetPersonResponse)
LIST_MEMBERS = rpc(residence_pb2.ListMembersRequest, residence_pb2.ListMembersResponse)


def _timestamp(value: str) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.datetime.fromisoformat(value))
    return ts


def _accommodation_request(step: StepInput) -> residence_pb2.RegisterAccommodationRequest:
    return residence_pb2.RegisterAccommodationRequest(
        request_id=step.request_id,
        passport_number=step.get("applicant.passport_number"),
        nationality=step.get("applicant.nationality"),
        name=f"{step.get('applicant.surname')} {step.get('applicant.given_names')}",
        address=step.get("accommodation.address"),
        police_station_code=step.get("accommodation.police_station_code"),
        host=residence_pb2.AccommodationHost(
            kind=f"HOST_KIND_{step.get('accommodation.host_kind')}",
            name=step.get("accommodation.host_name"),
            identifier=step.get("accommodation.host_identifier"),
        ),
        arrive_time=_timestamp(step.get("accommodation.arrived_at")),
        from_date=proto_date(step.get("accommodation.from_date")),
        to_date=proto_date(step.get("accommodation.to_date")),
    )


def _accommodation_outcome(response: residence_pb2.RegisterAccommodationResponse) -> Outcome:
    reg = response.accommodation_registration
    return Outcome(
        resource_id=reg.id,
        state=S.DONE,
        department_state="REGISTERED",
        result={"registration_number": reg.registration_number, "late": reg.late},
    )


def _move_out_request(step: StepInput) -> residence_pb2.MoveOutRequest:
    return residence_pb2.MoveOutRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        destination_region_code=step.get("destination.region_code"),
        destination_address=step.get("destination.address"),
        new_head_id_number=step.get("new_head_id_number") or "",
    )


def _move_out_outcome(response: residence_pb2.MoveOutResponse) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=S.DONE,
        department_state="MOVED_OUT",
        result={
            "id_number": response.person.id_number,
            "certificate_number": response.certificate.number,
            "same_city_transfer": response.same_city_transfer,
        },
    )


def _cancel_move_out(
    resource_id: str, request_id: str, reason: str, result: dict[str, Any]
) -> residence_pb2.CancelMoveOutRequest:
    return residence_pb2.CancelMoveOutRequest(
        request_id=request_id, id_number=result["id_number"], reason=reason
    )


def _move_in_request(step: StepInput) -> residence_pb2.MoveInRequest:
    moved = step.results.get("move_out", {})
    return residence_pb2.MoveInRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        arrived_on=proto_date(step.get("arrived_on")),
        certificate_number=moved.get("certificate_number") or step.get("certificate_number") or "",
        household_number=step.get("destination.household_number"),
        relationship_code=step.get("relationship_code"),
    )


def _move_in_outcome(response: residence_pb2.MoveInResponse) -> Outcome:
    person = response.person
    return Outcome(
        resource_id=person.id,
        state=S.DONE,
        department_state="MOVED_IN",
        result={
            "id_number": person.id_number,
            "region_code": person.hukou_region_code,
            "address": person.hukou_address,
            "household_number": person.household_number,
            "late": response.late,
        },
    )


def _birth_request(step: StepInput) -> residence_pb2.RegisterBirthRequest:
    return residence_pb2.RegisterBirthRequest(
        request_id=step.request_id,
        household_number=step.get("household_number"),
        person=residence_pb2.Newborn(
            name=step.get("newborn.name"),
            sex=f"SEX_{step.get('newborn.sex')}",
            birth_date=proto_date(step.get("newborn.birth_date")),
            birth_place=step.get("newborn.birth_place"),
            ethnicity=step.get("newborn.ethnicity"),
            native_place=step.get("newborn.native_place") or "",
        ),
        relationship_code=step.get("relationship_code"),
        declarant_id_number=step.get("guardian.id_number"),  # who registers it: a parent, guardian or head
        mother_id_number=step.get("mother_id_number") or "",
        father_id_number=step.get("father_id_number") or "",
    )


def _birth_outcome(response: residence_pb2.RegisterBirthResponse) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=S.DONE,
        department_state="REGISTERED",
        result={
            "id_number": response.id_number,
            "name": response.person.name,
            "region_code": response.person.hukou_region_code,
            "late": response.late,
        },
    )


def _change_name_request(step: StepInput) -> residence_pb2.ChangeNameRequest:
    return residence_pb2.ChangeNameRequest(
        request_id=step.request_id,
        id_number=step.get("applicant.id_number"),
        new_name=step.get("new_name"),
        applicant_id_number=step.get("applicant.id_number"),
    )


def _change_name_outcome(response: residence_pb2.ChangeNameResponse) -> Outcome:
    return Outcome(
        resource_id=response.person.id,
        state=S.DONE,
        department_state="NAME_CHANGED",
        result={"region_code": response.person.hukou_region_code},
    )


ACTIONS: list[Action[Any, Any]] = [
    Action(
        name="residence.accommodation",
        department="residence",
        rpc=REGISTER_ACCOMMODATION,
        build=_accommodation_request,
        outcome=_accommodation_outcome,
        reads=frozenset(
            {
                "applicant.passport_number",
                "applicant.nationality",
                "applicant.surname",
                "applicant.given_names",
                "accommodation.address",
                "accommodation.police_station_code",
                "accommodation.host_kind",
                "accommodation.host_name",
                "accommodation.host_identifier",
                "accommodation.arrived_at",
                "accommodation.from_date",
                "accommodation.to_date",
            }
        ),
        # where a foreigner stays is a fact of its own, not the case's: a permit refused or cancelled, or
        # the case withdrawn, does not undo it — the registration stays in force until residence ends
        # it (its own CancelAccommodationRegistration, not the window's)
        with_case=False,
        shown=("registration_number", "late"),
    ),
    Action(
        name="residence.move_out",
        department="residence",
        rpc=MOVE_OUT,
        build=_move_out_request,
        outcome=_move_out_outcome,
        reads=frozenset(
            {"applicant.id_number", "destination.region_code", "destination.address", "new_head_id_number"}
        ),
        compensate_rpc=CANCEL_MOVE_OUT,
        compensate_build=_cancel_move_out,
        # residence cancels a move-out while the person is moving out: not once the move-in used it
        # (PERSON_NOT_MOVING_OUT / CERTIFICATE_ALREADY_USED); tests/service/residence checks this
        undo_ended_by=frozenset({"residence.move_in"}),
        shown=("certificate_number",),
    ),
    Action(
        name="residence.move_in",
        department="residence",
        rpc=MOVE_IN,
        build=_move_in_request,
        outcome=_move_in_outcome,
        shown=("household_number", "late"),
        reads=frozenset(
            {
                "applicant.id_number",
                "arrived_on",
                "certificate_number",
                "destination.household_number",
                "relationship_code",
            }
        ),
    ),
    Action(
        name="residence.birth",
        department="residence",
        rpc=REGISTER_BIRTH,
        build=_birth_request,
        outcome=_birth_outcome,
        shown=("id_number", "late"),  # the newborn's ID number, assigned at once
        reads=frozenset(
            {
                "household_number",
                "newborn.name",
                "newborn.sex",
                "newborn.birth_date",
                "newborn.birth_place",
                "newborn.ethnicity",
                "newborn.native_place",
                "relationship_code",
                "guardian.id_number",
                "mother_id_number",
                "father_id_number",
            }
        ),
    ),
    Action(
        name="residence.change_name",
        department="residence",
        rpc=CHANGE_NAME,
        build=_change_name_request,
        outcome=_change_name_outcome,
        reads=frozenset({"applicant.id_number", "new_name"}),
    ),
]
