"""The grants of govhub's own processes match their code: each internal client (``outside = false`` in
``services/common/grants.toml``) is granted exactly the department methods its code calls.

What a process calls is read from the code, not from a list kept by hand: every Python file of the
caller (the whole ``gateway/`` package; for a department, its modules that import another department's
protos, such as identity's residence client) is parsed, and every attribute (``stub.GetPerson``) or string
constant (``method="GetPerson"``, a dispatch by name) that is the name of a method of a service the
caller imports (from the generated descriptors) counts as a call of that method, and so does a typed RPC
named by its request and response classes (the gateway's adapters:
``rpc(residence_pb2.GetPersonRequest, residence_pb2.GetPersonResponse)``). A name
several reachable services share (``WatchEvents``) counts for each of them: the gateway's client is
generic over its departments. A call added without its grant, or a grant nobody calls, fails here.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.grants import Grants
from services.common.settings import CALLERS, DEFAULT_GRANTS_FILE, SERVICES

ROOT = Path(__file__).resolve().parents[3]
DEPARTMENT_PROTOS = ("identity", "residence", "permits", "audit")


@dataclass(frozen=True)
class Caller:
    name: str  # the client identity in grants.toml
    files: tuple[Path, ...]
    own: frozenset[str]  # proto packages it serves itself (a department does not call itself)


def _imported_proto_packages(tree: ast.AST) -> set[str]:
    """The govhub proto packages ("identity", "audit", ...) a module imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "govhub" and parts[1] in DEPARTMENT_PROTOS:
                found.add(parts[1])
    return found


def service_methods(packages: Iterable[str]) -> dict[str, set[str]]:
    """Method name -> the fully-qualified methods ("pkg.Service/Method") of that name, over every
    service of the given proto packages, from the generated descriptors."""
    methods: dict[str, set[str]] = defaultdict(set)
    for package in packages:
        module = importlib.import_module(f"govhub.{package}.v1.{package}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[method.name].add(f"{service.full_name}/{method.name}")
    return methods


def typed_methods(packages: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    """(request type, response type) -> the fully-qualified methods taking and answering them."""
    methods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for package in packages:
        module = importlib.import_module(f"govhub.{package}.v1.{package}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                pair = (method.input_type.name, method.output_type.name)
                methods[pair].add(f"{service.full_name}/{method.name}")
    return methods


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _pairs_used(tree: ast.AST) -> set[tuple[str, str]]:
    """The (first, second) argument names of every call with two or more positional arguments."""
    return {
        (_name(node.args[0]), _name(node.args[1]))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and len(node.args) >= 2
    }


def _names_used(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    return names


def called_methods(files: Iterable[Path], own: frozenset[str] = frozenset()) -> set[str]:
    """The fully-qualified department methods the code of `files` calls (see the module notes)."""
    trees = [ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in files]
    packages: set[str] = set()
    for tree in trees:
        packages |= _imported_proto_packages(tree)
    packages -= own
    # The audit service is served by every department: a caller reaches it through any of them.
    if packages & set(SERVICES):
        packages.add("audit")
    by_name = service_methods(sorted(packages))
    by_types = typed_methods(sorted(packages))
    called: set[str] = set()
    for tree in trees:
        for name in _names_used(tree) & by_name.keys():
            called |= by_name[name]
        for pair in _pairs_used(tree) & by_types.keys():
            called |= by_types[pair]
    return called


def internal_callers() -> list[Caller]:
    """The gateway, and every department whose code imports another department's protos."""
    callers = [Caller("gateway", tuple(sorted((ROOT / "gateway").rglob("*.py"))), frozenset())]
    for service in SERVICES:
        files = []
        for path in sorted((ROOT / "services" / service).rglob("*.py")):
            imported = _imported_proto_packages(ast.parse(path.read_text(encoding="utf-8")))
            if imported - {service, "audit"}:
                files.append(path)
        if files:
            callers.append(Caller(service, tuple(files), frozenset({service})))
    return callers


def _granted(grants: Grants, name: str) -> set[str]:
    client = grants.client(name)
    assert client is not None, f"grants.toml has no [clients.{name}], but {name} calls departments"
    return {m.removeprefix("/") for m in client.methods}


def grant_gaps(grants: Grants, caller: Caller) -> tuple[set[str], set[str]]:
    """(called but not granted, granted but never called)."""
    called = called_methods(caller.files, caller.own)
    granted = _granted(grants, caller.name)
    return called - granted, granted - called


GRANTS = Grants.load(DEFAULT_GRANTS_FILE)
CALLERS_FOUND = internal_callers()


@pytest.mark.parametrize("caller", CALLERS_FOUND, ids=lambda c: c.name)
def test_an_internal_client_is_granted_exactly_what_its_code_calls(caller: Caller) -> None:
    missing, unused = grant_gaps(GRANTS, caller)
    assert not missing, (
        f"{caller.name} calls these methods, which grants.toml does not grant: {sorted(missing)}"
    )
    assert not unused, (
        f"grants.toml grants {caller.name} these methods, which its code never calls: {sorted(unused)}"
    )


def test_the_internal_clients_of_grants_settings_and_code_are_the_same() -> None:
    in_grants = {c.name for c in GRANTS.clients.values() if not c.outside}
    in_code = {c.name for c in CALLERS_FOUND}
    assert in_grants == in_code
    # Each of them is given a client certificate (GOVHUB_<CALLER>_TLS_CLIENT_*).
    assert set(CALLERS) == in_code


def test_the_scan_sees_the_calls_the_gateway_makes_by_stub_and_by_name() -> None:
    gateway = CALLERS_FOUND[0]
    called = called_methods(gateway.files)
    # Some the issue found missing: the card shown on /api/v1/me/card, back-office approval, a name change.
    assert {
        "govhub.identity.v1.IdentityService/GetCurrentCard",
        "govhub.identity.v1.IdentityService/ApproveCardApplication",
        "govhub.residence.v1.ResidenceService/ChangeName",
        "govhub.permits.v1.PermitsService/WatchEvents",
        "govhub.audit.v1.AuditService/ListAccessEntries",
    } <= called


def test_a_call_added_without_a_grant_fails(tmp_path: Path) -> None:
    """New modules calling a method by stub attribute, by name and as a typed RPC are all caught."""
    gateway = CALLERS_FOUND[0]
    by_stub = tmp_path / "by_stub.py"
    by_stub.write_text(
        "from govhub.identity.v1 import identity_pb2_grpc\n"
        "async def found(stub: identity_pb2_grpc.IdentityServiceStub, request: object) -> object:\n"
        "    return await stub.ClaimFoundCard(request)\n"
    )
    by_name = tmp_path / "by_name.py"
    by_name.write_text("ACTION = dict(department='residence', method='Deregister')\n")
    typed = tmp_path / "typed.py"
    typed.write_text(
        "from govhub.permits.v1 import permits_pb2\n"
        "VERIFY = rpc(permits_pb2.VerifyPermitRequest, permits_pb2.VerifyPermitResponse)\n"
    )
    caller = Caller("gateway", (*gateway.files, by_stub, by_name, typed), frozenset())
    missing, unused = grant_gaps(GRANTS, caller)
    assert missing == {
        "govhub.identity.v1.IdentityService/ClaimFoundCard",
        "govhub.residence.v1.ResidenceService/Deregister",
        "govhub.permits.v1.PermitsService/VerifyPermit",
    }
    assert not unused


def test_a_grant_nobody_calls_fails() -> None:
    gateway = CALLERS_FOUND[0]
    widened = Grants.from_data(
        {
            "clients": {
                "gateway": {
                    "organisation": "x",
                    "outside": False,
                    "methods": [
                        *_granted(GRANTS, "gateway"),
                        "govhub.identity.v1.IdentityService/ClaimFoundCard",
                    ],
                }
            }
        }
    )
    missing, unused = grant_gaps(widened, gateway)
    assert not missing
    assert unused == {"govhub.identity.v1.IdentityService/ClaimFoundCard"}


def test_a_department_does_not_count_its_own_methods_as_calls() -> None:
    identity = next(c for c in CALLERS_FOUND if c.name == "identity")
    assert all(
        m.startswith(("govhub.residence.", "govhub.audit."))
        for m in called_methods(identity.files, identity.own)
    )
