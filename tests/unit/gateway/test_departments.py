"""The department adapters: each action reads only the fields it declares, the catalogue refuses at start
a matter whose steps read fields it does not declare, and each RPC is checked against its service."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.catalogue import CatalogueError, load_catalogue
from gateway.departments import ACTIONS, StepInput, UndeclaredField
from gateway.departments.base import service
from govhub.identity.v1 import identity_pb2


def test_every_matter_reads_only_what_it_declares() -> None:
    catalogue = load_catalogue()
    for matter in catalogue.values():
        paths = {f.path for f in matter.fields}
        for step in matter.steps:
            assert ACTIONS[step.action].reads <= paths, (matter.id, step.key)


def test_a_matter_whose_step_reads_an_undeclared_field_is_refused_at_start() -> None:
    renewal = ACTIONS["identity.card_renewal"]
    typo = dataclasses.replace(renewal, reads=renewal.reads | {"applicant.id_numbr"})
    with pytest.raises(CatalogueError, match=r"card_renewal reads undeclared fields applicant\.id_numbr"):
        load_catalogue({**ACTIONS, typo.name: typo})


def test_a_builder_reading_a_field_it_did_not_declare_fails_loudly() -> None:
    step = StepInput(
        data={"applicant": {"id_number": "x"}}, reads=frozenset(), materials=[], results={}, request_id="r"
    )
    with pytest.raises(UndeclaredField):
        step.get("applicant.id_number")


def test_rpcs_are_checked_against_the_service_and_requests_against_their_type() -> None:
    rpc = service(identity_pb2.DESCRIPTOR, "IdentityService")
    with pytest.raises(KeyError):
        rpc("CreateCardApplicaton")
    create = rpc("CreateCardApplication")
    assert create.check(identity_pb2.CreateCardApplicationRequest()) is not None
    with pytest.raises(TypeError):
        create.check(identity_pb2.CancelCardApplicationRequest())


def test_every_action_builds_its_own_rpc_request_type() -> None:
    for action in ACTIONS.values():
        assert action.rpc.descriptor.input_type.name.endswith("Request"), action.name
        if action.compensable:
            assert action.compensate_rpc is not None and action.compensate_build is not None
