"""Grants: which client identity may call which method (docs/architecture.md, "Security").

The grants file is data (``services/common/grants.toml``, its header documents the format): each client
identity, the subject CN of its client certificate, is mapped to the fully-qualified methods it may call.
Everything else is refused, including methods added to a service later. Health and reflection are open.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pool

from services.common.settings import SettingsError

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_METHOD_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.[A-Z][A-Za-z0-9]*/[A-Z][A-Za-z0-9]*$")
_CLIENT_KEYS = frozenset({"organisation", "outside", "methods", "role"})
OUTSIDE_ROLE = (
    "outside system"  # the role an outside system's calls are recorded under when its grant names none
)


class GrantsError(SettingsError):
    """The grants file is malformed or names a method that does not exist; the message says where."""


def is_open(method: str) -> bool:
    """Health checks and server reflection need no grant."""
    return method.startswith(OPEN_PREFIXES)


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    organisation: str
    outside: bool
    methods: frozenset[str]  # gRPC paths: "/package.Service/Method"
    role: str = ""  # the role its calls are recorded under (outside systems: never what they send)


@dataclass(frozen=True, slots=True)
class Grants:
    clients: Mapping[str, Client]
    source: str = "<memory>"

    def client(self, name: str | None) -> Client | None:
        return self.clients.get(name) if name else None

    def allows(self, name: str | None, method: str) -> bool:
        client = self.client(name)
        return client is not None and method in client.methods

    @classmethod
    def load(cls, path: Path) -> Grants:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GrantsError(f"{path}: {exc}") from None
        return cls.from_data(data, source=str(path))

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "<memory>") -> Grants:
        extra = set(data) - {"clients"}
        if extra:
            raise GrantsError(f"{source}: unknown top-level key(s) {sorted(extra)}")
        clients: dict[str, Client] = {}
        for name, entry in (data.get("clients") or {}).items():
            where = f"{source}: [clients.{name}]"
            if not isinstance(entry, Mapping):
                raise GrantsError(f"{where} must be a table")
            unknown = set(entry) - _CLIENT_KEYS
            if unknown:
                raise GrantsError(f"{where}: unknown key(s) {sorted(unknown)}")
            organisation, outside, methods = (
                entry.get("organisation"),
                entry.get("outside"),
                entry.get("methods"),
            )
            if not isinstance(organisation, str) or not organisation:
                raise GrantsError(f"{where}: organisation must be a non-empty string")
            if not isinstance(outside, bool):
                raise GrantsError(f"{where}: outside must be true or false")
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise GrantsError(f"{where}: methods must be a list of strings")
            for method in methods:
                if not _METHOD_RE.match(method):
                    raise GrantsError(
                        f"{where}: {method!r} is not a fully-qualified method (package.Service/Method; "
                        "wildcards are not supported)"
                    )
            role = entry.get("role", OUTSIDE_ROLE if outside else "")
            if not isinstance(role, str) or (outside and not role.strip()):
                raise GrantsError(f"{where}: role must be a non-empty string")
            clients[name] = Client(
                name, organisation, outside, frozenset(f"/{m}" for m in methods), role.strip()[:80]
            )
        return cls(clients, source)

    def check_methods(self, service_names: Iterable[str]) -> None:
        """Refuse a grant that names a method missing from one of `service_names` (those this server
        serves; grants for other services are for other servers)."""
        pool = descriptor_pool.Default()
        served = set(service_names)
        for client in self.clients.values():
            for path in sorted(client.methods):
                service, method = path[1:].split("/")
                if service not in served:
                    continue
                if pool.FindServiceByName(service).methods_by_name.get(method) is None:
                    raise GrantsError(
                        f"{self.source}: [clients.{client.name}] grants {path[1:]}, "
                        f"which {service} does not have"
                    )
