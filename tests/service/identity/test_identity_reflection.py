"""Issue 3's "done when": a client that knows nothing but what server reflection tells it runs the whole
card lifecycle — first issue, approve, produce, issue, loss, VerifyCard says REPORTED_LOST, replacement,
issue, the found old card registered and recorded as destroyed.

This module imports none of our generated code: every message class comes from the server's reflection
service (only the fixture that starts the server knows the protos)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "govhub.identity.v1.IdentityService"
PERSON = {"id_number": "310104200005010110", "name": "沪小明"}  # in the fake register, hukou 310104


class Reflective:
    """Message classes from reflection; calls over a grpc.aio channel."""

    def __init__(self, channel: grpc.aio.Channel, pool: descriptor_pool.DescriptorPool) -> None:
        self.channel = channel
        self.pool = pool
        self.service = pool.FindServiceByName(SERVICE)

    @classmethod
    async def connect(cls, target: str, channel: grpc.aio.Channel) -> Reflective:
        def load() -> descriptor_pool.DescriptorPool:
            # The reflection database speaks over a blocking channel: resolve everything once, off the
            # event loop that also runs the server. Later lookups are answered from the pool.
            with grpc.insecure_channel(target) as sync_channel:
                db = ProtoReflectionDescriptorDatabase(sync_channel)
                assert SERVICE in db.get_services()
                pool = descriptor_pool.DescriptorPool(db)
                pool.FindServiceByName(SERVICE)
                return pool

        return cls(channel, await asyncio.to_thread(load))

    def methods(self) -> set[str]:
        return {m.name for m in self.service.methods}

    async def call(self, method: str, **fields: Any) -> Any:
        desc = self.service.FindMethodByName(method)
        request_cls = message_factory.GetMessageClass(desc.input_type)
        response_cls = message_factory.GetMessageClass(desc.output_type)
        rpc = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return await rpc(request_cls(**fields), timeout=10)

    async def change(self, method: str, **fields: Any) -> Any:
        return await self.call(method, request_id=str(uuid.uuid4()), **fields)


def enum_name(message: Any, field: str) -> str:
    value = getattr(message, field)
    return message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[value].name


async def test_card_lifecycle_by_reflection_only(identity: Any) -> None:
    async with grpc.aio.insecure_channel(identity.target) as channel:
        client = await Reflective.connect(identity.target, channel)
        assert {
            "CreateCardApplication",
            "ApproveCardApplication",
            "MarkCardProduced",
            "MarkCardReadyForPickup",
            "IssueCard",
            "ReportCardLost",
            "VerifyCard",
            "RegisterFoundCard",
            "SearchFoundCards",
            "ClaimFoundCard",
            "IssueTemporaryCard",
            "WatchEvents",
        } <= client.methods()

        async def run_to_issue(kind: str) -> Any:
            created = await client.change(
                "CreateCardApplication", kind=kind, accepting_region_code="310104", **PERSON
            )
            app = created.card_application
            assert enum_name(app, "state") == "CARD_APPLICATION_STATE_ACCEPTED"
            await client.change("ApproveCardApplication", id=app.id)
            await client.change("MarkCardProduced", id=app.id)
            await client.change("MarkCardReadyForPickup", id=app.id)
            issued = await client.change("IssueCard", id=app.id)
            assert enum_name(issued.card_application, "state") == "CARD_APPLICATION_STATE_ISSUED"
            assert enum_name(issued.card, "status") == "CARD_STATUS_VALID"
            return issued.card

        first = await run_to_issue("CARD_APPLICATION_KIND_FIRST_ISSUE")
        checked = await client.call(
            "VerifyCard", card_number=first.card_number, id_number=PERSON["id_number"]
        )
        assert checked.valid and enum_name(checked, "result") == "CARD_VERIFICATION_RESULT_VALID"

        lost = await client.change("ReportCardLost", station_region_code="310115", **PERSON)
        assert lost.card.card_number == first.card_number
        checked = await client.call(
            "VerifyCard", card_number=first.card_number, id_number=PERSON["id_number"]
        )
        assert not checked.valid and enum_name(checked, "result") == "CARD_VERIFICATION_RESULT_REPORTED_LOST"

        second = await run_to_issue("CARD_APPLICATION_KIND_REPLACEMENT")
        assert second.card_number != first.card_number
        checked = await client.call(
            "VerifyCard", card_number=second.card_number, id_number=PERSON["id_number"]
        )
        assert checked.valid

        registered = await client.change(
            "RegisterFoundCard",
            card_number=first.card_number,
            id_number=PERSON["id_number"],
            station_region_code="310101",
            found_place="南京东路步行街",
            found_on={"year": 2016, "month": 9, "day": 15},
        )
        found = registered.found_card
        assert enum_name(found, "status") == "FOUND_CARD_STATUS_DESTROYED" and not found.owner_notified
        search = await client.call("SearchFoundCards", id_number=PERSON["id_number"])
        assert [(f.id, enum_name(f, "status")) for f in search.found_cards] == [
            (found.id, "FOUND_CARD_STATUS_DESTROYED")
        ]
