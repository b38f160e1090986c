"""Undoing a move-out and cancelling an accommodation registration (the one window's compensations)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from residence_factories import TODAY, XUHUI

from services.common.errors import FailedPrecondition
from services.residence import domain as d


def _ids(household: d.Household) -> list[tuple[str, str]]:
    return [(m.name, m.relationship_code) for m in household.members]


def test_cancelling_a_head_s_move_out_restores_the_household(policy, family):
    head, wife, son, mother = (m.id_number for m in family.members)
    cmd = d.MoveOut(head, "120101", "天津市和平区", new_head_id_number=son, relationship_updates={wife: "52"})
    out = d.move_out(family, cmd, policy=policy, today=TODAY, certificate_number="QY1")
    assert out.household is not None and out.person is not None and out.certificate is not None
    assert out.household.head.id_number == son

    later = TODAY + timedelta(days=1)
    undone = d.cancel_move_out(out.person, out.household, out.certificate, policy=policy, today=later)
    assert undone.household is not None and undone.person is not None and undone.certificate is not None
    assert _ids(undone.household) == _ids(family)
    assert undone.person.status is d.PersonStatus.REGISTERED and undone.person.pending_move is None
    assert undone.certificate.revoked_on == later
    cancelled, head_changed = undone.events
    assert isinstance(cancelled, d.MoveOutCancelled) and cancelled.head_restored
    assert isinstance(head_changed, d.HeadChanged) and head_changed.cause == "MOVE_OUT_CANCELLED"
    assert head_changed.old_head_id_number == son and head_changed.new_head_id_number == head
    assert mother in {m.id_number for m in undone.household.members}

    # The revoked certificate cannot be used for a move-in any more.
    moving = replace(out.person)
    with pytest.raises(FailedPrecondition) as exc:
        d.move_in(
            moving,
            None,
            d.MoveIn(
                head,
                later,
                d.HEAD_CODE,
                "QY1",
                new_household=d.NewHousehold("1201015000001", d.HouseholdType.FAMILY, "天津", XUHUI),
            ),
            policy=policy,
            today=later,
            certificate=undone.certificate,
        )
    assert exc.value.reason == "CERTIFICATE_REVOKED"


def test_a_move_out_cannot_be_undone_once_used_or_when_the_household_changed(policy, family):
    head, wife, son, _ = (m.id_number for m in family.members)
    out = d.move_out(
        family, d.MoveOut(son, "120101", "天津"), policy=policy, today=TODAY, certificate_number="QY1"
    )
    assert out.person is not None and out.household is not None and out.certificate is not None
    used = replace(out.certificate, used_on=TODAY)
    with pytest.raises(FailedPrecondition) as exc:
        d.cancel_move_out(out.person, out.household, used, policy=policy, today=TODAY)
    assert exc.value.reason == "CERTIFICATE_ALREADY_USED"

    out = d.move_out(
        family,
        d.MoveOut(head, "120101", "天津", new_head_id_number=son),
        policy=policy,
        today=TODAY,
        certificate_number="QY2",
    )
    assert out.person is not None and out.household is not None
    changed = d.change_head(out.household, d.ChangeHead(wife, "20"), policy=policy, today=TODAY).household
    assert changed is not None
    with pytest.raises(FailedPrecondition) as exc:
        d.cancel_move_out(out.person, changed, out.certificate, policy=policy, today=TODAY)
    assert exc.value.reason == "HOUSEHOLD_CHANGED_SINCE_MOVE_OUT"

    registered = family.members[0]
    with pytest.raises(FailedPrecondition) as exc:
        d.cancel_move_out(registered, family, None, policy=policy, today=TODAY)
    assert exc.value.reason == "PERSON_NOT_MOVING_OUT"


def test_cancelling_an_accommodation_registration_once(policy):
    now = datetime(2016, 7, 1, 12, tzinfo=UTC)
    cmd = d.RegisterAccommodation(
        passport_number="E1234567",
        nationality="GBR",
        name="Alex Testperson",
        address="上海市徐汇区某路1号",
        host=d.AccommodationHost(d.HostKind.HOTEL, "示例酒店", "H-1"),
        arrived_at=now - timedelta(hours=2),
        from_date=date(2016, 7, 1),
        to_date=date(2016, 7, 9),
    )
    registration = d.register_accommodation(
        cmd, station=XUHUI, policy=policy, now=now, registration_number="ZS1"
    ).accommodation
    assert registration is not None and registration.deadline == now + timedelta(hours=22)
    result = d.cancel_accommodation(registration, reason=" 未入住 ", now=now)
    assert result.accommodation is not None and result.accommodation.cancelled_at == now
    (event,) = result.events
    assert isinstance(event, d.AccommodationRegistrationCancelled) and event.reason == "未入住"
    with pytest.raises(FailedPrecondition) as exc:
        d.cancel_accommodation(result.accommodation, reason="", now=now)
    assert exc.value.reason == "REGISTRATION_CANCELLED"
