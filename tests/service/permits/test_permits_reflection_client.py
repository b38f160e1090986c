"""Issue 5's "done when": a client that knows nothing but the server's reflection (no generated govhub code)
runs employer -> work permit (missing materials listed, then supplied) -> approve -> issue -> residence permit
-> approve -> issue -> VerifyPermit, and sees a residence permit before the work permit refused with a reason.

grpcio-reflection's descriptor database is synchronous, so the client runs on a plain grpc channel in a worker
thread while the server runs in the test's event loop."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "govhub.permits.v1.PermitsService"
NOTICE_KINDS = [
    "wp_application_form",
    "work_experience_proof",
    "degree_certificate",
    "no_criminal_record",
    "health_certificate",
    "contract",
    "passport",
    "photo",
]
RESIDENCE_KINDS = [
    "passport_and_visa",
    "rp_application_form",
    "photo",
    "health_certificate",
    "employer_letter",
    "employer_licence_copy",
    "work_permit",
]


def _refs(kinds: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "kind": k,
            "sha256": hashlib.sha256(k.encode()).hexdigest(),
            "media_type": "image/jpeg",
            "size_bytes": 2048,
        }
        for k in kinds
    ]


class ReflectionClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        database = ProtoReflectionDescriptorDatabase(channel)
        self.services = list(database.get_services())
        self.pool = descriptor_pool.DescriptorPool(database)
        self.service = self.pool.FindServiceByName(SERVICE)

    def call(self, method_name: str, body: dict[str, Any]) -> dict[str, Any]:
        method = self.service.methods_by_name[method_name]
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        if "request_id" in method.input_type.fields_by_name:
            body = {"request_id": str(uuid.uuid4()), **body}
        rpc = self.channel.unary_unary(
            f"/{SERVICE}/{method_name}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = rpc(json_format.ParseDict(body, request_type()), timeout=10)
        return json_format.MessageToDict(response, preserving_proto_field_name=True)

    def refusal(self, method_name: str, body: dict[str, Any]) -> tuple[grpc.StatusCode, str]:
        try:
            self.call(method_name, body)
        except grpc.RpcError as exc:
            raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")  # type: ignore[attr-defined]
            info = error_details_pb2.ErrorInfo()
            for detail in status_pb2.Status.FromString(raw).details:
                if detail.Unpack(info):
                    break
            return exc.code(), info.reason  # type: ignore[attr-defined]
        raise AssertionError(f"{method_name} was not refused")


def run_client(target: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        client = ReflectionClient(channel)
        seen["services"] = client.services
        person = {"passport_number": "X9876543", "nationality": "DEU"}
        seen["too_early"] = client.refusal(
            "CreateResidencePermitApplication",
            {
                **person,
                "entry_date": {"year": 2017, "month": 4, "day": 1},
                "materials": _refs(RESIDENCE_KINDS),
            },
        )
        employer = client.call(
            "RegisterEmployer",
            {
                "unified_social_credit_code": "91110000600037341L",
                "name": "Synthetic Ltd",
                "address": "2 Example Rd",
            },
        )["employer"]
        created = client.call(
            "CreateWorkPermitApplication",
            {
                "applicant": {
                    **person,
                    "surname": "Muster",
                    "given_names": "Erika",
                    "birth_date": {"year": 1980, "month": 2, "day": 29},
                    "sex": "SEX_FEMALE",
                },
                "employer_uscc": employer["unified_social_credit_code"],
                "position": "Research chemist",
                "work_region": "310115",
                "contract": {
                    "start_date": {"year": 2017, "month": 4, "day": 1},
                    "end_date": {"year": 2020, "month": 3, "day": 31},
                },
                "annual_salary_fen": "15000000",
                "education": "EDUCATION_DOCTORATE",
                "experience_years": 12,
                "chinese": {"hsk_level": 4},
                "materials": _refs(["passport", "photo", "contract", "wp_application_form"]),
            },
        )["work_permit_application"]
        seen["created"] = created
        wp = {"id": created["id"]}
        seen["supplied"] = client.call("SupplyWorkPermitMaterials", {**wp, "materials": _refs(NOTICE_KINDS)})[
            "work_permit_application"
        ]
        seen["approved"] = client.call("ApproveWorkPermitApplication", wp)["work_permit_application"]
        client.call("SupplyWorkPermitMaterials", {**wp, "materials": _refs(["z_or_r_visa_with_entry_stamp"])})
        seen["issued"] = client.call("IssueWorkPermit", wp)["work_permit_application"]
        residence = client.call(
            "CreateResidencePermitApplication",
            {
                **person,
                "entry_date": {"year": 2017, "month": 4, "day": 1},
                "materials": _refs(RESIDENCE_KINDS),
            },
        )["residence_permit_application"]
        rp = {"id": residence["id"]}
        client.call("ApproveResidencePermitApplication", rp)
        seen["residence"] = client.call("IssueResidencePermit", rp)["residence_permit_application"]
        seen["verify_work"] = client.call("VerifyPermit", {"permit_number": seen["issued"]["permit_number"]})
        seen["verify_residence"] = client.call(
            "VerifyPermit", {"permit_number": seen["residence"]["permit_number"]}
        )
    return seen


async def test_reflection_only_client_runs_the_whole_path(permits: Any) -> None:
    seen = await asyncio.to_thread(run_client, permits.target)

    assert SERVICE in seen["services"]
    assert seen["too_early"] == (grpc.StatusCode.FAILED_PRECONDITION, "WORK_PERMIT_REQUIRED")

    created = seen["created"]
    assert created["state"] == "PERMIT_STATE_AWAITING_MATERIALS"
    # 20 (doctorate) + 11 (150,000 yuan) + 15 (12 years) + 8 (HSK 4) + 15 (age 37) = 69 points
    assert (created["category"], created["points"]["total"]) == ("CATEGORY_B", 69)
    assert [m["kind"] for m in created["missing_materials"]] == [
        "work_experience_proof",
        "degree_certificate",
        "no_criminal_record",
        "health_certificate",
    ]
    assert not any(m.get("deferred") for m in created["missing_materials"])  # 容缺受理 is for category A
    assert seen["supplied"]["state"] == "PERMIT_STATE_UNDER_REVIEW"
    assert "missing_materials" not in seen["supplied"]
    assert seen["approved"]["state"] == "PERMIT_STATE_APPROVED"
    assert seen["issued"]["state"] == "PERMIT_STATE_ISSUED"
    assert seen["residence"]["state"] == "PERMIT_STATE_ISSUED"

    work, residence = seen["verify_work"], seen["verify_residence"]
    assert work == {
        "permit_number": seen["issued"]["permit_number"],
        "kind": "PERMIT_KIND_WORK_PERMIT",
        "valid_now": True,
        "state": "PERMIT_STATE_ISSUED",
        "category": "CATEGORY_B",
        "valid_from": {"year": 2017, "month": 4, "day": 10},
        "valid_until": {"year": 2020, "month": 3, "day": 31},
    }
    assert residence["kind"] == "PERMIT_KIND_RESIDENCE_PERMIT"
    assert residence["valid_now"] is True
    assert residence["valid_until"] == {"year": 2020, "month": 3, "day": 31}
