"""The gateway's knowledge of what residence can undo (``Action.undo_until``, ``Action.undo_ended_by``,
``compensate_rpc`` in gateway/departments/residence.py) checked against residence itself: each undo the
window may ask for is one residence performs, and each limit it declares is one residence enforces. The
requests are built by the gateway's own adapters, so a change on either side fails here."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from gateway.departments import ACTIONS
from gateway.saga.model import StepState, Undo
from govhub.residence.v1 import residence_pb2 as pb
from services.residence.seed import DEMO_PEOPLE
from tests.service.residence.conftest import TODAY, Residence, date, reason, rid

CHEN = DEMO_PEOPLE[2]  # 陈沪明, alone in 徐汇
RESIDENCE_ACTIONS = {name: a for name, a in ACTIONS.items() if a.department == "residence"}


def test_the_window_undoes_only_what_residence_has_a_cancellation_for() -> None:
    service = pb.DESCRIPTOR.services_by_name["ResidenceService"]
    cancellations = {m.name for m in service.methods if m.name.startswith("Cancel")}
    undoable = {a.compensate_rpc.name for a in RESIDENCE_ACTIONS.values() if a.compensate_rpc}
    assert undoable == {"CancelMoveOut"} < cancellations
    # an accommodation registration stands on its own: a failed case leaves it in force, and only
    # residence itself cancels it (CancelAccommodationRegistration, not the window's).
    # Recorded at once (DONE) and undone while DONE; a move-out until the move-in has used it
    assert ACTIONS["residence.move_out"].undo == Undo(True, StepState.DONE)
    assert ACTIONS["residence.move_out"].undo_ended_by == frozenset({"residence.move_in"})
    assert ACTIONS["residence.accommodation"].undo == Undo(False, StepState.DONE, with_case=False)
    assert ACTIONS["residence.accommodation"].undo_ended_by == frozenset()
    for name in ("residence.move_in", "residence.birth", "residence.change_name"):
        assert not ACTIONS[name].undo.compensable, name


async def _undo(residence: Residence, action: str, resource_id: str, result: dict[str, Any]) -> Any:
    """The compensation the saga would send for a step of `action` (its request built by the adapter)."""
    chosen = ACTIONS[action]
    assert chosen.compensate_rpc is not None and chosen.compensate_build is not None
    request = chosen.compensate_build(resource_id, rid(), "WITHDRAWN_BY_APPLICANT", result)
    return await getattr(residence.stub, chosen.compensate_rpc.name)(request)


async def test_a_move_out_is_undone_while_done_and_not_once_the_move_in_used_it(residence: Residence) -> None:
    out = ACTIONS["residence.move_out"]
    move = pb.MoveOutRequest(
        request_id=rid(),
        id_number=CHEN.id_number,
        destination_region_code="310115",
        destination_address="上海市浦东新区世纪大道100号",
    )
    outcome = out.outcome(await residence.stub.MoveOut(move))
    assert outcome.state == StepState.DONE  # the step the saga records
    await _undo(residence, "residence.move_out", outcome.resource_id, outcome.result)
    assert (await residence.person(CHEN.id_number)).status == pb.PERSON_STATUS_REGISTERED

    outcome = out.outcome(
        await residence.stub.MoveOut(pb.MoveOutRequest(**{**_fields(move), "request_id": rid()}))
    )
    await residence.stub.MoveIn(  # the step that ends the undo
        pb.MoveInRequest(
            request_id=rid(),
            id_number=CHEN.id_number,
            arrived_on=date(TODAY),
            new_household=pb.NewHousehold(
                type=pb.HOUSEHOLD_TYPE_FAMILY,
                address="上海市浦东新区世纪大道100号",
                police_station_code="31011501",
            ),
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _undo(residence, "residence.move_out", outcome.resource_id, outcome.result)
    assert reason(refused.value) == "PERSON_NOT_MOVING_OUT"


def _fields(message: Any) -> dict[str, Any]:
    return {f.name: v for f, v in message.ListFields()}
