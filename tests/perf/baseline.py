"""The bare baseline of ``make bench``: an aiohttp server with none of the gateway's logic.

- ``GET /json``: a small JSON answer (what any aiohttp route costs);
- ``POST /submit``: what one cross-province renewal costs the gateway underneath — the same one gRPC call
  (identity ``CreateCardApplication``) and the same three write transactions on a database of its own
  (SQLite: the same one-writer engine as the gateway's), with no validation, auth, saga, idempotency or
  views.

``python -m tests.perf.baseline --port P --identity HOST:PORT --database URL`` (loopback only)."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator

import grpc
from aiohttp import web
from sqlalchemy import String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.db import create_schema, dispose_engine, make_engine, session_factory

sessions_key = web.AppKey("sessions", object)
stub_key = web.AppKey("stub", object)


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(String(200))


async def json_handler(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "case_no": "GH20161230ABCDEF", "state": "IN_REVIEW", "steps": []}
    )


async def submit(request: web.Request) -> web.Response:
    body = await request.json()
    sessions = request.app[sessions_key]
    row_id = str(uuid.uuid4())
    async with sessions() as session:  # 1: the case and its step
        session.add(Row(id=row_id, state="RECEIVED", payload=body["id_number"]))
        await session.commit()
    async with sessions() as session:  # 2: the claim
        await session.execute(update(Row).where(Row.id == row_id).values(state="RUNNING"))
        await session.commit()
    reply = await request.app[stub_key].CreateCardApplication(
        identity_pb2.CreateCardApplicationRequest(
            request_id=str(uuid.uuid4()),
            id_number=body["id_number"],
            name=body["name"],
            kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
            renewal_reason=identity_pb2.RENEWAL_REASON_SERIOUS_DAMAGE,
            accepting_region_code="310104",
            residence_permit=identity_pb2.ResidencePermit(
                number="SH3101042016000123", valid_until={"year": 2017, "month": 12, "day": 31}
            ),
        ),
        timeout=5,
    )
    async with sessions() as session:  # 3: the step's result
        await session.execute(update(Row).where(Row.id == row_id).values(state="ACCEPTED"))
        await session.commit()
    return web.json_response({"id": reply.card_application.id}, status=201)


def create_app(identity: str, database: str) -> web.Application:
    app = web.Application()
    app.router.add_get("/json", json_handler)
    app.router.add_post("/submit", submit)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(database)
        await create_schema(engine, Base.metadata)
        app[sessions_key] = session_factory(engine)
        channel = grpc.aio.insecure_channel(identity)
        app[stub_key] = identity_pb2_grpc.IdentityServiceStub(channel)
        yield
        await channel.close()
        await dispose_engine(engine)

    app.cleanup_ctx.append(resources)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    web.run_app(
        create_app(args.identity, args.database),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
