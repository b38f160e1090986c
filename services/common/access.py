"""Access control and audit for every department service: the interceptor right before the handlers
(after OpenTelemetry and the log-context and error-mapping interceptor), and the ``AuditService`` that lets
a person see who looked at their records.

For every call but health and reflection, ``AccessInterceptor``:

1. takes the caller's identity from the verified client certificate (``context.auth_context()``, subject
   CN) and looks it up in the grants file: a client or method not granted is refused with
   PERMISSION_DENIED (ErrorInfo reason ``NOT_GRANTED``) before the handler runs;
2. refuses a call by an outside system that carries no ``x-govhub-purpose`` metadata: PERMISSION_DENIED,
   reason ``PURPOSE_REQUIRED`` (an access-control refusal, not a business one: FAILED_PRECONDITION is
   what the departments answer for their business rules, and the gateway shows those to the applicant);
3. runs the handler, then writes the audit entries (``services.common.audit``) in a short transaction of
   its own, before the answer or the error status goes out: for every call of a method that touches
   personal data, and for every denied call. When the audit trail cannot be written, a call that was
   answered fails with UNAVAILABLE instead: no personal data leaves without its entry (changes are
   idempotent by request_id, so the retry is safe).

With TLS off (plaintext development mode) there is no peer identity: grants and purposes are **not
enforced**, the service says so in a warning at start, and entries are written with an empty client.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from govhub.audit.v1 import audit_pb2, audit_pb2_grpc
from services.common import metadata as md
from services.common.audit import (
    ALLOWED,
    DENIED,
    FAILED,
    Access,
    AuditMixin,
    AuditTrail,
    RecordKeys,
    load_key,
    personal_methods,
)
from services.common.clock import Clock
from services.common.errors import DomainError, InvalidArgument
from services.common.grants import Grants, is_open
from services.common.interceptors import Call, ServerInterceptor, abort_with, wrap
from services.common.logging import mask_text
from services.common.settings import ServiceSettings, SettingsError, TlsFiles
from services.common.tls import peer_identity

log = structlog.get_logger("govhub.access")

AUDIT_SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
ERROR_DOMAIN = "govhub.gov.cn"
NOT_GRANTED = "NOT_GRANTED"
PURPOSE_REQUIRED = "PURPOSE_REQUIRED"
_LONG_DIGITS = re.compile(r"\d{15,}")
_OUTCOMES = {
    ALLOWED: audit_pb2.ACCESS_OUTCOME_ALLOWED,
    DENIED: audit_pb2.ACCESS_OUTCOME_DENIED,
    FAILED: audit_pb2.ACCESS_OUTCOME_FAILED,
}


@dataclass
class ServiceSecurity:
    """What a service's access control needs: its TLS files (None: plaintext), grants and audit trail."""

    tls: TlsFiles | None
    grants: Grants
    trail: AuditTrail
    clock: Clock = field(default_factory=Clock)  # the process's one clock: entries share its time

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        model: type[AuditMixin],
    ) -> ServiceSecurity:
        security = settings.security
        key_file = security.audit_key_path(settings.common)
        try:
            key = load_key(key_file, create=not security.tls)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"GOVHUB_AUDIT_KEY_FILE={key_file}: {exc}") from None
        return cls(
            security.server_tls if security.tls else None,
            Grants.load(security.grants_file),
            AuditTrail(model, sessions, RecordKeys(key)),
            Clock(settings.common.today),
        )

    @property
    def enforced(self) -> bool:
        return self.tls is not None


def _clip(value: str | bytes | None) -> str:
    """A metadata value as stored: decoded, trimmed, cut at MAX_LENGTH, and ID, passport and phone
    numbers in it masked (every free-text field of an entry goes through here)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return mask_text((value or "").strip()[: md.MAX_LENGTH])


@dataclass(frozen=True)
class _Caller:
    client: str
    organisation: str
    outside: bool
    actor: str
    actor_role: str
    purpose: str
    denied: str  # "" or the ErrorInfo reason


class AccessInterceptor(ServerInterceptor):
    """Grants, purposes and the audit trail; see the module notes. The last interceptor before the
    handlers: after OpenTelemetry and after the log-context and error-mapping one, which turns this one's
    refusals and the handlers' errors into status codes."""

    def __init__(self, service: str, security: ServiceSecurity, service_names: Iterable[str]) -> None:
        self.service = service
        self.security = security
        self.personal = personal_methods(service_names)

    def _caller(
        self, method: str, metadata: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> _Caller:
        keys = self.security.trail.keys
        raw_actor = metadata.get(md.ACTOR)
        actor = raw_actor.decode("utf-8", "replace") if isinstance(raw_actor, bytes) else raw_actor or ""
        actor = actor.strip()[: md.MAX_LENGTH]
        actor = "key:" + keys.id_number(actor) if _LONG_DIGITS.search(actor) else _clip(actor)
        purpose = _clip(metadata.get(md.PURPOSE))
        role = _clip(metadata.get(md.ACTOR_ROLE))
        if not self.security.enforced:
            return _Caller("", "", False, actor, role, purpose, "")
        name = peer_identity(context) or ""
        client = self.security.grants.client(name)
        denied = ""
        if client is None or method not in client.methods:
            denied = NOT_GRANTED
        elif client.outside and not purpose:
            denied = PURPOSE_REQUIRED
        if client is not None and (client.outside or client.role):
            role = client.role  # an outside system's role is its grant's, never what it sends
        elif client is None:
            role = ""
        return _Caller(
            name,
            client.organisation if client else "",
            client.outside if client else False,
            actor,
            role,
            purpose,
            denied,
        )

    async def _record(
        self,
        method: str,
        caller: _Caller,
        request: Message,
        response: Message | None,
        outcome: str,
        status: str,
    ) -> None:
        if outcome != DENIED and method not in self.personal:
            return
        keys = self.security.trail.keys
        records = keys.of_message(request) or (keys.of_message(response) if response is not None else [])
        resource = getattr(request, "id", "")
        request_id = getattr(request, "request_id", "")
        now = self.security.clock.now()
        accesses = [
            Access(
                occurred_at=now,
                service=self.service,
                client=caller.client,
                organisation=caller.organisation,
                outside=caller.outside,
                actor=caller.actor,
                actor_role=caller.actor_role,
                purpose=caller.purpose,
                record_key=record,
                resource=_clip(resource if isinstance(resource, str) else "")[:64],
                method=method[1:],
                outcome=outcome,
                status=status,
                request_id=_clip(request_id if isinstance(request_id, str) else "")[:64],
            )
            for record in (records or [""])
        ]
        await asyncio.shield(self.security.trail.append(accesses))

    async def _deny(self, context: grpc.aio.ServicerContext[Any, Any], method: str, caller: _Caller) -> None:
        log.warning("access denied", client=caller.client, rpc=method, reason=caller.denied)
        if caller.denied == PURPOSE_REQUIRED:
            message = "an outside system must give the purpose of the call in x-govhub-purpose"
        else:
            message = f"client {caller.client or '(none)'} is not granted {method[1:]}"
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason=caller.denied, domain=f"{self.service}.{ERROR_DOMAIN}", metadata={"method": method[1:]}
            )
        )
        await abort_with(
            context, status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message=message, details=[detail])
        )

    async def _before(
        self,
        method: str,
        metadata: dict[str, Any],
        request: Message,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> _Caller:
        caller = self._caller(method, metadata, context)
        if caller.denied:
            try:
                await self._record(method, caller, request, None, DENIED, "PERMISSION_DENIED")
            except Exception:
                log.exception("audit entry of a denied call not written", rpc=method)
            await self._deny(context, method, caller)
        return caller

    async def _after_error(
        self,
        method: str,
        caller: _Caller,
        request: Message,
        context: grpc.aio.ServicerContext[Any, Any],
        exc: BaseException,
    ) -> None:
        """Record a failed call. Runs inside the error-mapping interceptor, before the status is sent (a
        handler's own ``context.abort`` has already sent it)."""
        if isinstance(exc, grpc.aio.AbortError):
            code = context.code()
            status = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        elif isinstance(exc, DomainError):
            from services.common.grpcserver import domain_error_status

            status = code_pb2.Code.Name(domain_error_status(exc, self.service).code)
        else:
            status = "INTERNAL"
        try:
            await self._record(method, caller, request, None, FAILED, status)
        except Exception:
            log.exception("audit entry of a failed call not written", rpc=method)

    async def _after(
        self, method: str, caller: _Caller, request: Message, response: Message | None, context: Any
    ) -> None:
        code = context.code()
        ok = code is None or code == grpc.StatusCode.OK or code == 0
        status = "OK" if ok else (code.name if isinstance(code, grpc.StatusCode) else str(code))
        try:
            await self._record(method, caller, request, response, ALLOWED if ok else FAILED, status)
        except Exception:
            log.exception("audit trail not written: the answer is withheld", rpc=method)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the audit trail is unavailable; try again")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        method = details.method
        if handler is None or is_open(method):
            return handler
        if handler.unary_unary is None and handler.unary_stream is None:
            # Client- and bidirectional streaming methods: none exist; refuse rather than let one through.
            return (
                grpc.unary_unary_rpc_method_handler(self._unsupported) if self.security.enforced else handler
            )
        metadata = dict(details.invocation_metadata or ())

        @contextlib.asynccontextmanager
        async def around(call: Call, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Call]:
            caller = await self._before(method, metadata, call.request, context)
            try:
                yield call
            except Exception as exc:
                await self._after_error(method, caller, call.request, context, exc)
                raise
            await self._after(method, caller, call.request, call.response, context)

        return wrap(handler, around)  # type: ignore[return-value]

    async def _unsupported(self, _request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "streaming requests are not granted")


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """``ListAccessEntries``: a person's entries in this department's audit trail, newest first."""

    def __init__(self, service: str, trail: AuditTrail) -> None:
        self.service = service
        self.trail = trail

    async def ListAccessEntries(
        self, request: audit_pb2.ListAccessEntriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAccessEntriesResponse:
        keys = self.trail.keys
        which = request.WhichOneof("person")
        if which == "id_number" and request.id_number.strip():
            record_key = keys.id_number(request.id_number)
        elif which == "passport" and request.passport.passport_number.strip():
            record_key = keys.passport(request.passport.passport_number, request.passport.nationality)
        elif which == "record_key" and re.fullmatch(r"[0-9a-f]{64}", request.record_key):
            record_key = request.record_key
        else:
            raise InvalidArgument.one(
                "person", "REQUIRED", "give an id_number, a passport or a record_key (64 hex characters)"
            )
        if request.page_size < 0:
            raise InvalidArgument.one("page_size", "NEGATIVE", "page_size must not be negative")
        size = min(request.page_size or 50, 500)
        before = None
        if request.page_token:
            if (
                not (request.page_token.isdecimal() and request.page_token.isascii())
                or len(request.page_token) > 18
            ):
                raise InvalidArgument.one("page_token", "MALFORMED", "pass next_page_token unchanged")
            before = int(request.page_token)
        rows = await self.trail.about(record_key, before=before, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        entries = []
        for row in rows:
            when = timestamp_pb2.Timestamp()
            when.FromDatetime(row.occurred_at)
            entries.append(
                audit_pb2.AccessEntry(
                    sequence=row.sequence,
                    department=row.service,
                    client_system=row.client,
                    organisation=row.organisation,
                    role=row.actor_role,
                    purpose=row.purpose,
                    method=row.method,
                    outcome=_OUTCOMES.get(row.outcome, audit_pb2.ACCESS_OUTCOME_UNSPECIFIED),
                    access_time=when,
                )
            )
        token = str(rows[-1].sequence) if more and rows else ""
        return audit_pb2.ListAccessEntriesResponse(entries=entries, next_page_token=token)


def add_audit_service(server: grpc.aio.Server, service: str, security: ServiceSecurity) -> None:
    audit_pb2_grpc.add_AuditServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated, untyped
        AuditServicer(service, security.trail), server
    )
