"""``build_server(settings)``: the identity service, built but not started (``services.common.assemble``)."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.assemble import Department, Parts, assemble
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.identity import store
from services.identity.deaths import RegisterFollower, follow
from services.identity.handlers import IdentityHandlers
from services.identity.migrations import DATABASE
from services.identity.policy import default_policy
from services.identity.residence import GrpcHukouDirectory, HukouDirectory
from services.identity.servicer import IdentityServicer

IDENTITY = Department.of("identity", identity_pb2, identity_pb2_grpc, DATABASE, store)
SERVICE_NAME = IDENTITY.service_name


async def build_server(
    settings: ServiceSettings,
    tracer_provider: TracerProvider | None = None,
    *,
    clock: Clock | None = None,
    hukou: HukouDirectory | None = None,
) -> GrpcService:
    """`hukou` replaces the residence service (tests pass a fake); the service closes whichever it
    was given. Beside the RPCs, a background job follows the residence register's deaths."""

    async def servicer(parts: Parts) -> IdentityServicer:
        directory = hukou or GrpcHukouDirectory(
            settings.residence_target, tracer_provider=parts.tracer_provider, tls=settings.security.client_tls
        )
        parts.closers.push_async_callback(directory.close)
        handlers = IdentityHandlers(default_policy(), parts.ctx.clock)
        parts.background.append(lambda: follow(RegisterFollower(parts.ctx, directory, handlers)))
        return IdentityServicer(parts.ctx, directory, handlers)

    return await assemble(IDENTITY, settings, servicer, tracer_provider, clock=clock)
