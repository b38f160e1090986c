"""The OpenAPI 3.1 document of the gateway (``GET /api/v1/openapi.json``), generated.

Bodies come from the structs of gateway/models.py (``msgspec.json.schema_components``), the ``data`` of
each matter from its declared fields in the catalogue (``Data.<matter>``, so a client can check a form
before sending it), who may call an operation (``x-govhub-roles`` and ``security``) from the route's own
declaration. What is written here is only what no type says: each operation's summary, parameters and
answers. A test checks that the documented operations and the router's routes are the same set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from gateway import models as m
from gateway.auth import PUBLIC, declared
from gateway.catalogue import FieldSpec, Matter
from gateway.departments import FOLLOW_UPS
from gateway.typedefs import catalogue_key

S = dict[str, Any]
JSON = "application/json"
PROBLEM = "application/problem+json"
REF = "#/components/schemas/{name}"

# An answer's body: a struct of gateway/models.py, or a schema written out (for what is no struct).
Body = type[Any] | S


@dataclass(frozen=True)
class Op:
    summary: str
    answers: Mapping[int, tuple[str, Body]]  # status -> (description, body)
    body: Body | None = None
    body_required: bool = True
    parameters: tuple[S, ...] = ()
    description: str = ""
    # problems this operation answers beyond the common ones: status -> (description, body)
    problems: Mapping[int, tuple[str, Body]] = field(default_factory=dict)


def path_param(name: str) -> S:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def query(name: str, schema: S) -> S:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGING = (
    query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}),
    query("page_token", {"type": "string", "maxLength": 200}),
)
CASE_NO = path_param("case_no")
STEP_KEY = path_param("step_key")
CODE = query("code", {"type": "string", "maxLength": 16})
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Per caller: the same key and body within 24 hours answer with the same case as it "
    "stands now and a new query code (the code first given stops working), or with the first refusal. "
    "The same key with "
    "another body is 422 idempotency-key-reused; while the first request runs, 409 with Retry-After.",
    "schema": {"type": "string", "maxLength": 128},
}
OPEN: S = {"type": "object"}
NOT_AVAILABLE = {
    422: (
        "Refused by the rules (type /problems/refused: the department's `reason` and the `step`; where "
        "the rule is about one submitted field, `errors` names it, e.g. data.residence_permit.valid_until "
        "for RESIDENCE_PERMIT_EXPIRED); type /problems/matter-not-available: the matter cannot be applied "
        "for today (the answer carries available_from, available_until and today)",
        m.Problem,
    )
}
SENT = "Sent to the department"
UPLOAD: S = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/healthz"): Op("The process answers", {200: ("OK", m.Health)}),
    ("GET", "/readyz"): Op(
        "The gateway can serve: its database answers and its event consumers run (a department being "
        "down is shown on /api/v1/status and /metrics, not here)",
        {
            200: ("OK", m.Readiness),
            503: ("The gateway's database does not answer or an event consumer stopped", m.Readiness),
        },
    ),
    ("GET", "/api/v1/status"): Op(
        "For staff: each department's health, its event stream and its steps needing attention",
        {200: ("OK", m.DepartmentsStatus)},
    ),
    ("GET", "/metrics"): Op("Prometheus metrics", {200: ("Prometheus text format", {"type": "string"})}),
    ("GET", "/api/v1/openapi.json"): Op("This document", {200: ("OK", OPEN)}),
    ("GET", "/api/v1/matters"): Op("Every matter and what it needs, up front", {200: ("OK", m.Matters)}),
    ("GET", "/api/v1/matters/{matter_id}"): Op(
        "One matter", {200: ("OK", m.Matter)}, parameters=(path_param("matter_id"),)
    ),
    ("GET", "/api/v1/stats"): Op(
        "Cases by matter and state, on-time rate, average working days, satisfaction", {200: ("OK", m.Stats)}
    ),
    ("GET", "/api/v1/progress/{case_no}"): Op(
        "Public progress with the query code (no personal data; rate-limited per address)",
        {200: ("OK", m.Case)},
        parameters=(CASE_NO, {**CODE, "required": True}),
    ),
    ("GET", "/api/v1/cases/{case_no}"): Op(
        "A case: its status with the query code, or its details for who may see it (bearer token)",
        {200: ("OK", m.Case)},
        parameters=(CASE_NO, CODE),
    ),
    ("POST", "/api/v1/cases"): Op(
        "Apply online, for oneself (Idempotency-Key makes a retry safe)",
        {201: ("The case is opened", m.Case)},
        body=m.Submission,
        parameters=(IDEMPOTENCY_KEY,),
        problems=NOT_AVAILABLE,
    ),
    ("POST", "/api/v1/cases/{case_no}/withdraw"): Op(
        "Withdraw: as the applicant (bearer token) or with the query code",
        {
            200: ("Withdrawn: every department has undone its step", m.Case),
            202: (
                "Withdrawal under way (`WITHDRAWING`): a department has not yet undone its step "
                "(`COMPENSATING`); follow the case until it is `WITHDRAWN`",
                m.Case,
            ),
        },
        body=m.Withdrawal,
        body_required=False,
        parameters=(CASE_NO,),
        description="A case is withdrawn as a whole or not at all. When a department holds a step it can "
        "no longer undo, the answer is 409 `withdrawal-refused` naming each such step and why, and "
        "nothing is cancelled; a closed case answers 409 `case-closed`.",
        problems={
            409: (
                "withdrawal-refused (which steps and why) or case-closed",
                {"anyOf": [m.WithdrawalRefused, m.Problem]},
            )
        },
    ),
    ("POST", "/api/v1/materials"): Op(
        "Upload one document (PDF, JPEG or PNG), stored once by its SHA-256",
        {201: ("Stored", m.Material), 200: ("Already stored", m.Material)},
        body={"multipart/form-data": UPLOAD},
    ),
    ("GET", "/api/v1/me/cases"): Op("My cases, newest first", {200: ("OK", m.CasePage)}, parameters=PAGING),
    ("GET", "/api/v1/me/card"): Op("My ID card's status", {200: ("OK", m.Card)}),
    ("POST", "/api/v1/me/card/report-lost"): Op(
        "Report my card lost: invalid for every checker at once",
        {201: ("Reported", m.LossReport)},
        body=m.ReportLost,
    ),
    ("GET", "/api/v1/me/found-cards"): Op(
        "Found cards handed in under my ID number", {200: ("OK", m.FoundCardPage)}, parameters=PAGING
    ),
    ("GET", "/api/v1/me/household"): Op("My household and its members", {200: ("OK", m.MyHousehold)}),
    ("GET", "/api/v1/me/access-log"): Op(
        "Who looked at my records, when and for what purpose (newest first, paged by cursor)",
        {200: ("OK", m.AccessLog)},
        parameters=PAGING,
    ),
    ("GET", "/api/v1/me/notifications"): Op(
        "Messages sent about my cases", {200: ("OK", m.NotificationPage)}, parameters=PAGING
    ),
    ("POST", "/api/v1/cases/{case_no}/feedback"): Op(
        "Rate a completed case once (好差评)",
        {201: ("Rated", m.Feedback)},
        body=m.Rating,
        parameters=(CASE_NO,),
    ),
    ("GET", "/api/v1/cases/{case_no}/feedback"): Op(
        "A case's rating and the replies", {200: ("OK", m.Feedback)}, parameters=(CASE_NO,)
    ),
    ("POST", "/api/v1/cases/{case_no}/feedback/replies"): Op(
        "Staff reply to a rating", {201: ("Replied", m.Feedback)}, body=m.Reply, parameters=(CASE_NO,)
    ),
    ("POST", "/api/v1/counter/cases"): Op(
        "Open a case for the person at the window; answers the receipt with the query code",
        {201: ("Opened", m.OpenedAtCounter)},
        body=m.Submission,
        parameters=(IDEMPOTENCY_KEY,),
        problems={
            **NOT_AVAILABLE,
            403: (
                "not-your-hall: a hall field of the data (accepting_region_code, station_region_code) names "
                "another hall than the counter's; errors name the data path (NOT_THIS_HALL). Nothing is "
                "sent to a department.",
                m.Problem,
            ),
        },
    ),
    ("GET", "/api/v1/counter/queue"): Op(
        "The hall's cases, by department and state",
        {200: ("OK", m.CasePage)},
        parameters=(
            *PAGING,
            query("department", {"type": "string", "enum": ["identity", "residence", "permits"]}),
            query("state", {"type": "string"}),
        ),
    ),
    ("POST", "/api/v1/counter/cases/{case_no}/materials-checked"): Op(
        "Record the in-person materials checked at the window",
        {200: ("OK", m.Receipt)},
        body=m.MaterialsChecked,
        parameters=(CASE_NO,),
    ),
    ("GET", "/api/v1/counter/cases/{case_no}/receipt"): Op(
        "The receipt (without the query code)", {200: ("OK", m.Receipt)}, parameters=(CASE_NO,)
    ),
    ("POST", "/api/v1/counter/cases/{case_no}/pickup"): Op(
        "Hand every certificate over; the case completes",
        {200: ("OK", m.Receipt)},
        body=m.Pickup,
        body_required=False,
        parameters=(CASE_NO,),
        description="Open once every step is READY (the card ready for pickup, the permit issued). An ID "
        "card is handed over by identity's IssueCard: for a renewal (also one after a name change) the old "
        "card is handed in at the window, sent as `old_card_surrendered: true`; without it the answer is "
        "422 with reason `OLD_CARD_NOT_SURRENDERED` and nothing is handed over. A first card, or a "
        "replacement after a loss, has no old card to surrender.",
    ),
    ("GET", "/api/v1/backoffice/steps"): Op(
        "My department's steps (default: waiting for a decision)",
        {200: ("OK", m.DepartmentStepPage)},
        parameters=(*PAGING, query("state", {"type": "string"})),
    ),
    ("POST", "/api/v1/backoffice/cases/{case_no}/steps/{step_key}/approve"): Op(
        "Approve my department's step (the department's own RPC, with my identity)",
        {202: (SENT, m.Decided)},
        parameters=(CASE_NO, STEP_KEY),
    ),
    ("POST", "/api/v1/backoffice/cases/{case_no}/steps/{step_key}/reject"): Op(
        "Reject my department's step with reasons the applicant will read",
        {202: (SENT, m.Decided)},
        body=m.StepRejection,
        parameters=(CASE_NO, STEP_KEY),
    ),
    ("GET", "/api/v1/admin/feedback"): Op(
        "Ratings to follow up (or all)",
        {200: ("OK", m.FeedbackPage)},
        parameters=(*PAGING, query("flagged", {"type": "string", "enum": ["true", "false"]})),
    ),
}

# the decisions that follow an approval, one route each, as the department adapters declare them
OPERATIONS.update(
    {
        ("POST", f"/api/v1/backoffice/cases/{{case_no}}/steps/{{step_key}}/{word}"): Op(
            summary,
            {202: (SENT, m.Decided)},
            parameters=(CASE_NO, STEP_KEY),
            description="Open while the step is APPROVED and its department state allows it (the step "
            "list's `decisions` names what is open now); otherwise 409. Sent with the department's own "
            "RPC, with my identity.",
        )
        for word, summary in FOLLOW_UPS.items()
    }
)

ERRORS = {
    400: "Invalid request (errors name the fields)",
    401: "No or bad bearer token",
    403: "Your role may not do this",
    404: "No such resource (or not yours)",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Refused by the rules (reason given)",
    429: "Too many requests (see Retry-After)",
    503: "A department is unavailable (see Retry-After)",
    500: "Internal error",
}


# -- each matter's data, from its declared fields -------------------------------------------------------


def field_schema(spec: FieldSpec) -> S:
    """The JSON schema of one declared field, as the submission's check reads it (catalogue.py)."""
    text: S = {"type": "string", "maxLength": spec.max_length}
    schema: S
    if spec.kind == "bool":
        schema = {"type": "boolean"}
    elif spec.kind == "int":
        schema = {"type": "integer"}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
    elif spec.kind == "choices":
        schema = {"type": "array", "items": {"enum": list(spec.choices)}, "uniqueItems": True}
    elif spec.kind == "choice":
        schema = {"type": "string", "enum": list(spec.choices)}
    elif spec.kind == "date":
        schema = {**text, "format": "date"}
    elif spec.kind == "datetime":
        schema = {**text, "format": "date-time", "description": "with its UTC offset"}
    elif spec.kind == "region_code":
        schema = {"type": "string", "pattern": "^[0-9]{6}$"}
    elif spec.kind == "country":
        schema = {**text, "description": "ISO 3166 alpha-3 code of a country other than China"}
    elif spec.kind == "string":
        schema = {**text, "pattern": r"\S"} if spec.required else text
    else:  # id_number, passport_number: checked by their own rules (check digit, format)
        schema = {**text, "minLength": 1}
    schema = {"title": spec.title, "x-title-zh": spec.title_zh, **schema}
    if spec.personal:
        schema["x-personal"] = True
    if not spec.required:  # left out, null or "" alike
        kinds = schema.get("type")
        if isinstance(kinds, str):
            schema["type"] = [kinds, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def data_schema(matter: Matter) -> S:
    """A matter's ``data``: nested objects along the fields' dotted paths; a field is required when the
    matter says so (and so is every object on its way)."""
    root: S = {"type": "object", "properties": {}, "required": []}
    for spec in matter.fields:
        *parents, leaf = spec.path.split(".")
        node = root
        for part in parents:
            child = node["properties"].setdefault(part, {"type": "object", "properties": {}, "required": []})
            if spec.required and part not in node["required"]:
                node["required"].append(part)
            node = child
        node["properties"][leaf] = field_schema(spec)
        if spec.required:
            node["required"].append(leaf)
    return {"title": f"The data of {matter.id}", **root}


def submission_schema(catalogue: Mapping[str, Matter]) -> S:
    """One submission per matter: its id and its data's own schema."""
    if not catalogue:
        return ref("Submission")
    return {
        "oneOf": [
            {
                "allOf": [
                    ref("Submission"),
                    {
                        "type": "object",
                        "properties": {"matter": {"const": matter_id}, "data": ref(f"Data.{matter_id}")},
                    },
                ]
            }
            for matter_id in catalogue
        ]
    }


# -- the document ---------------------------------------------------------------------------------------


def ref(name: str) -> S:
    return {"$ref": REF.format(name=name)}


def _structs(body: Any) -> Iterable[type[Any]]:
    if isinstance(body, type):
        yield body
    elif isinstance(body, dict):
        for value in body.values():
            yield from _structs(value)
    elif isinstance(body, list | tuple):
        for value in body:
            yield from _structs(value)


def _resolve(body: Any, refs: Mapping[type[Any], S]) -> Any:
    """`body` with every struct replaced by its schema's reference."""
    if isinstance(body, type):
        return refs[body]
    if isinstance(body, dict):
        return {k: _resolve(v, refs) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [_resolve(v, refs) for v in body]
    return body


def components() -> tuple[dict[type[Any], S], S]:
    """The reference of each struct the operations name, and every schema (structs they hold too)."""
    types: list[type[Any]] = [m.Problem]
    for op in OPERATIONS.values():
        bodies = [op.body, *(b for _, b in op.answers.values()), *(b for _, b in op.problems.values())]
        types.extend(t for b in bodies for t in _structs(b) if t not in types)
    refs, schemas = msgspec.json.schema_components(types, ref_template=REF)
    return dict(zip(types, refs, strict=True)), schemas


def _handlers(app: web.Application) -> dict[tuple[str, str], Any]:
    return {
        (route.method, route.resource.canonical): route.handler
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def _request_body(op: Op, refs: Mapping[type[Any], S], submission: S) -> S:
    if op.body is m.Submission:
        content = {JSON: {"schema": submission}}
    elif isinstance(op.body, dict):  # by media type
        content = {media: {"schema": schema} for media, schema in op.body.items()}
    else:
        content = {JSON: {"schema": _resolve(op.body, refs)}}
    return {"required": op.body_required, "content": content}


def _operation(
    method: str, path: str, op: Op, roles: list[str], refs: Mapping[type[Any], S], submission: S
) -> S:
    responses: S = {}
    for status, (description, body) in op.answers.items():
        media = "text/plain" if path == "/metrics" else JSON
        responses[str(status)] = {
            "description": description,
            "content": {media: {"schema": _resolve(body, refs)}},
        }
    problem = refs[m.Problem]
    for status, (description, body) in op.problems.items():
        responses[str(status)] = {
            "description": description,
            "content": {PROBLEM: {"schema": _resolve(body, refs)}},
        }
    for status, description in ERRORS.items():
        responses.setdefault(
            str(status), {"description": description, "content": {PROBLEM: {"schema": problem}}}
        )
    name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    operation: S = {"operationId": f"{method.lower()}_{name}", "summary": op.summary}
    if op.description:
        operation["description"] = op.description
    if op.parameters:
        operation["parameters"] = list(op.parameters)
    if op.body is not None:
        operation["requestBody"] = _request_body(op, refs, submission)
    operation["responses"] = responses
    operation["x-govhub-roles"] = roles
    operation["security"] = [{}, {"bearer": []}] if PUBLIC in roles else [{"bearer": []}]
    return operation


def document(app: web.Application) -> dict[str, Any]:
    handlers = _handlers(app)
    catalogue: Mapping[str, Matter] = app.get(catalogue_key) or {}
    refs, schemas = components()
    for matter in catalogue.values():
        schemas[f"Data.{matter.id}"] = data_schema(matter)
    submission = submission_schema(catalogue)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        roles = sorted(declared(handlers.get((method, path))) or ())
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, roles, refs, submission)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "govhub gateway",
            "version": "1",
            "description": "One window for public-security service halls: one application, one case number, "
            "one status. Errors are RFC 9457 application/problem+json. Each matter's `data` is described "
            "by the schema `Data.<matter id>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
