"""The OpenAPI 3.1 document of the gateway (``GET /api/v1/openapi.json``).

Each operation is described here, once; who may call it (``x-govhub-roles`` and ``security``) is taken
from the route's own declaration, so the document cannot drift from what is enforced. A test checks
that the documented operations and the router's routes are the same set, both ways."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth import PUBLIC, declared

S = dict[str, Any]


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **extra: Any) -> S:
    return {"type": [kind, "null"], **extra}


def obj(properties: S, required: tuple[str, ...] = (), **extra: Any) -> S:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


def page_of(name: str, item: S) -> S:
    return obj(
        {name: {"type": "array", "items": item}, "next_page_token": {"type": "string"}},
        (name, "next_page_token"),
    )


STRING, INT, BOOL, DATE = (
    {"type": "string"},
    {"type": "integer"},
    {"type": "boolean"},
    {"type": "string", "format": "date"},
)
OPEN = {"type": "object"}

SCHEMAS: S = {
    "Problem": obj(
        {
            "type": STRING,
            "title": STRING,
            "status": INT,
            "detail": STRING,
            "instance": STRING,
            "errors": {
                "type": "array",
                "items": obj({"field": STRING, "reason": STRING, "detail": STRING}, ("field", "reason")),
            },
        },
        ("type", "title", "status"),
    ),
    "Step": obj(
        {
            "key": STRING,
            "title": STRING,
            "title_zh": STRING,
            "department": {"type": "string", "enum": ["identity", "residence", "permits"]},
            "state": STRING,
            "department_state": STRING,
            "statutory_deadline": DATE,
            "overdue": BOOL,
            "reason": STRING,
            "message": STRING,
            "results": {
                **OPEN,
                "description": "What the department produced, shown to the applicant and staff only: "
                "fee_fen (fixed by the department), id_number (a newborn's, assigned at once), "
                "permit_number / valid_from / valid_until, card_number, ready_on and "
                "collect_at_region_code (where and from when to collect), loss_report "
                "({already_reported, reported_on}), registration_number, certificate_number, late",
            },
        },
        ("key", "title", "department", "state", "department_state"),
    ),
    "Case": obj(
        {
            "case_no": STRING,
            "matter": STRING,
            "matter_title": STRING,
            "matter_title_zh": STRING,
            "state": STRING,
            "submitted_on": DATE,
            "updated_at": STRING,
            "steps": {"type": "array", "items": ref("Step")},
            "reason": STRING,
            "fee_fen": INT,
            "query_code": {"type": "string", "pattern": "^[2-9A-HJ-NP-Z]{8}$"},
            "applicant": OPEN,
            "materials": {"type": "array", "items": OPEN},
            "hall": STRING,
            "expected_date": DATE,
            "opened_by": nullable("string"),
        },
        ("case_no", "matter", "state", "submitted_on", "steps"),
    ),
    "CaseSummary": obj(
        {
            "case_no": STRING,
            "matter": STRING,
            "state": STRING,
            "submitted_on": DATE,
            "opened_by": nullable("string"),
        },
        ("case_no", "matter", "state", "submitted_on"),
    ),
    "Matter": obj(
        {
            "id": STRING,
            "title": STRING,
            "title_zh": STRING,
            "description": STRING,
            "fields": {"type": "array", "items": OPEN},
            "materials": {"type": "array", "items": OPEN},
            "steps": {"type": "array", "items": OPEN},
            "quoted_on": {**DATE, "description": "The day the departments quoted fees and time limits for"},
            "fees": {
                **nullable(
                    "array",
                    description="As the departments quote them today; null when they "
                    "cannot be asked now (see quote_unavailable)",
                ),
                "items": obj(
                    {"item": STRING, "item_zh": STRING, "amount_fen": INT, "only_when": STRING},
                    ("item", "amount_fen"),
                ),
            },
            "time_limits": {
                **nullable("array", description="Statutory time limits as the departments quote them"),
                "items": obj(
                    {
                        "item": STRING,
                        "item_zh": STRING,
                        "days": INT,
                        "working_days": BOOL,
                        "provisional": {
                            **BOOL,
                            "description": "Working days counted on a provisional calendar (the year's "
                            "holiday notice is not published yet); may change",
                        },
                    },
                    ("item", "days", "working_days"),
                ),
            },
            "quote_unavailable": {
                **STRING,
                "description": "The department that could not quote just now (fees and time_limits null)",
            },
            "available_from": {**DATE, "description": "The first day the matter can be applied for"},
            "available_until": nullable(
                "string", format="date", description="The last day it can be applied for; null: no end"
            ),
        },
        (
            "id",
            "title",
            "fields",
            "materials",
            "steps",
            "fees",
            "time_limits",
            "available_from",
            "available_until",
        ),
    ),
    "Submission": obj(
        {
            "matter": {"type": "string", "maxLength": 64},
            "data": OPEN,
            "materials": {"type": "object", "additionalProperties": {"type": "string"}},
            "contact": obj(
                {
                    "phone": {"type": "string", "maxLength": 20},
                    "email": {"type": "string", "maxLength": 200},
                    "language": {"type": "string", "enum": ["zh", "en"]},
                },
                additionalProperties=False,
            ),
        },
        ("matter", "data"),
    ),
    "Material": obj(
        {"sha256": STRING, "media_type": STRING, "size_bytes": INT}, ("sha256", "media_type", "size_bytes")
    ),
    "Receipt": obj(
        {
            "case_no": STRING,
            "matter": STRING,
            "matter_title_zh": STRING,
            "state": STRING,
            "hall": nullable("string"),
            "opened_by": nullable("string"),
            "submitted_on": DATE,
            "materials_received": {"type": "array", "items": OPEN},
            "fees": {
                "type": "array",
                "items": obj({"item": STRING, "amount_fen": INT}, ("item", "amount_fen")),
            },
            "fee_fen": nullable("integer"),
            "expected_date": nullable("string", format="date"),
            "query_code": STRING,
        },
        ("case_no", "matter", "state", "materials_received", "fees", "expected_date"),
    ),
    "Feedback": obj(
        {
            "case_no": STRING,
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": STRING,
            "flagged": BOOL,
            "created_at": STRING,
            "replies": {"type": "array", "items": OPEN},
            "matter": STRING,
            "hall": nullable("string"),
        },
        ("case_no", "rating", "comment", "flagged", "replies"),
    ),
}

JSON = "application/json"
PROBLEM = "application/problem+json"


def body(schema: S, required: bool = True) -> S:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def ok(schema: S, status: int = 200, description: str = "OK") -> dict[str, S]:
    return {str(status): {"description": description, "content": {JSON: {"schema": schema}}}}


def path_param(name: str) -> S:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def query(name: str, schema: S, required: bool = False) -> S:
    return {"name": name, "in": "query", "required": required, "schema": schema}


PAGING = [
    query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}),
    query("page_token", {"type": "string", "maxLength": 200}),
]
CASE_NO = path_param("case_no")
CODE = query("code", {"type": "string", "maxLength": 16})
REASONS = obj(
    {
        "reasons": {"type": "array", "items": {"type": "string", "maxLength": 500}},
        "reason_codes": {
            "type": "array",
            "items": {"type": "string", "maxLength": 64},
            "description": "The department's machine code of each reason, in the same order (its quote "
            "lists them); OTHER when left out",
        },
    },
    ("reasons",),
)

NOT_AVAILABLE: S = {
    "422": {
        "description": "Refused by the rules; type /problems/matter-not-available: the matter cannot be "
        "applied for today (the answer carries available_from, available_until and today)",
        "content": {PROBLEM: {"schema": ref("Problem")}},
    }
}

OPERATIONS: dict[tuple[str, str], S] = {
    ("GET", "/healthz"): {
        "summary": "The process answers",
        "responses": ok(obj({"status": STRING}, ("status",))),
    },
    ("GET", "/readyz"): {
        "summary": "The gateway can serve: its database answers and its event consumers run (a department "
        "being down is shown on /api/v1/status and /metrics, not here)",
        "responses": {
            **ok(
                obj(
                    {"status": STRING, "database": STRING, "event_consumers": OPEN},
                    ("status", "database", "event_consumers"),
                )
            ),
            "503": {
                "description": "The gateway's database does not answer or an event consumer stopped",
                "content": {JSON: {"schema": OPEN}},
            },
        },
    },
    ("GET", "/api/v1/status"): {
        "summary": "For staff: each department's health, its event stream and its steps needing attention",
        "responses": ok(obj({"departments": OPEN}, ("departments",))),
    },
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics",
        "responses": {
            "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": STRING}}}
        },
    },
    ("GET", "/api/v1/openapi.json"): {"summary": "This document", "responses": ok(OPEN)},
    ("GET", "/api/v1/matters"): {
        "summary": "Every matter and what it needs, up front",
        "responses": ok(obj({"matters": {"type": "array", "items": ref("Matter")}}, ("matters",))),
    },
    ("GET", "/api/v1/matters/{matter_id}"): {
        "summary": "One matter",
        "parameters": [path_param("matter_id")],
        "responses": ok(ref("Matter")),
    },
    ("GET", "/api/v1/stats"): {
        "summary": "Cases by matter and state, on-time rate, average working days, satisfaction",
        "responses": ok(
            obj(
                {"cases": OPEN, "on_time": OPEN, "working_days": OPEN, "satisfaction": OPEN},
                ("cases", "on_time", "working_days", "satisfaction"),
            )
        ),
    },
    ("GET", "/api/v1/progress/{case_no}"): {
        "summary": "Public progress with the query code (no personal data; rate-limited per address)",
        "parameters": [CASE_NO, CODE],
        "responses": ok(ref("Case")),
    },
    ("GET", "/api/v1/cases/{case_no}"): {
        "summary": "A case: its status with the query code, or its details for who may see it (bearer token)",
        "parameters": [CASE_NO, CODE],
        "responses": ok(ref("Case")),
    },
    ("POST", "/api/v1/cases"): {
        "summary": "Apply online, for oneself (Idempotency-Key makes a retry safe)",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 128},
            }
        ],
        "requestBody": body(ref("Submission")),
        "responses": {**ok(ref("Case"), 201, "The case is opened"), **NOT_AVAILABLE},
    },
    ("POST", "/api/v1/cases/{case_no}/withdraw"): {
        "summary": "Withdraw: as the applicant (bearer token) or with the query code",
        "parameters": [CASE_NO],
        "requestBody": body(obj({"code": {"type": "string", "maxLength": 16}}), required=False),
        "responses": {**ok(ref("Case")), **ok(ref("Case"), 202, "Compensation still running")},
    },
    ("POST", "/api/v1/materials"): {
        "summary": "Upload one document (PDF, JPEG or PNG), stored once by its SHA-256",
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": obj({"file": {"type": "string", "format": "binary"}}, ("file",))
                }
            },
        },
        "responses": {**ok(ref("Material"), 201, "Stored"), **ok(ref("Material"), 200, "Already stored")},
    },
    ("GET", "/api/v1/me/cases"): {
        "summary": "My cases, newest first",
        "parameters": PAGING,
        "responses": ok(page_of("cases", ref("CaseSummary"))),
    },
    ("GET", "/api/v1/me/card"): {
        "summary": "My ID card's status",
        "responses": ok(
            obj(
                {
                    "card_number": STRING,
                    "status": STRING,
                    "valid_from": nullable("string"),
                    "valid_until": nullable("string"),
                    "long_term": BOOL,
                },
                ("card_number", "status"),
            )
        ),
    },
    ("POST", "/api/v1/me/card/report-lost"): {
        "summary": "Report my card lost: invalid for every checker at once",
        "requestBody": body(
            obj(
                {
                    "name": {"type": "string", "maxLength": 60},
                    "station_region_code": {"type": "string", "pattern": "^[0-9]{6}$"},
                    "request_id": {"type": "string", "format": "uuid"},
                },
                ("name", "station_region_code"),
            )
        ),
        "responses": ok(
            obj(
                {
                    "loss_report_id": STRING,
                    "card_number": STRING,
                    "reported_on": nullable("string"),
                    "inside_hukou_area": BOOL,
                },
                ("loss_report_id",),
            ),
            201,
            "Reported",
        ),
    },
    ("GET", "/api/v1/me/found-cards"): {
        "summary": "Found cards handed in under my ID number",
        "parameters": PAGING,
        "responses": ok(page_of("found_cards", OPEN)),
    },
    ("GET", "/api/v1/me/household"): {
        "summary": "My household and its members",
        "responses": ok(
            obj({"household": OPEN, "members": {"type": "array", "items": OPEN}}, ("household", "members"))
        ),
    },
    ("GET", "/api/v1/me/access-log"): {
        "summary": "Who looked at my records, when and for what purpose (newest first, paged by cursor)",
        "parameters": PAGING,
        "responses": ok(
            obj(
                {
                    "entries": {
                        "type": "array",
                        "items": obj(
                            {
                                k: {"type": "string"}
                                for k in (
                                    "time",
                                    "department",
                                    "organisation",
                                    "system",
                                    "role",
                                    "purpose",
                                    "action",
                                    "outcome",
                                )
                            },
                            ("time", "department", "organisation", "action", "outcome"),
                        ),
                    },
                    "next_page_token": {"type": "string"},
                },
                ("entries", "next_page_token"),
            )
        ),
    },
    ("GET", "/api/v1/me/notifications"): {
        "summary": "Messages sent about my cases",
        "parameters": PAGING,
        "responses": ok(page_of("notifications", OPEN)),
    },
    ("POST", "/api/v1/cases/{case_no}/feedback"): {
        "summary": "Rate a completed case once (好差评)",
        "parameters": [CASE_NO],
        "requestBody": body(
            obj(
                {
                    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                    "comment": {"type": "string", "maxLength": 500},
                },
                ("rating",),
            )
        ),
        "responses": ok(ref("Feedback"), 201, "Rated"),
    },
    ("GET", "/api/v1/cases/{case_no}/feedback"): {
        "summary": "A case's rating and the replies",
        "parameters": [CASE_NO],
        "responses": ok(ref("Feedback")),
    },
    ("POST", "/api/v1/cases/{case_no}/feedback/replies"): {
        "summary": "Staff reply to a rating",
        "parameters": [CASE_NO],
        "requestBody": body(obj({"text": {"type": "string", "maxLength": 500}}, ("text",))),
        "responses": ok(ref("Feedback"), 201, "Replied"),
    },
    ("POST", "/api/v1/counter/cases"): {
        "summary": "Open a case for the person at the window; answers the receipt with the query code",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 128},
            }
        ],
        "requestBody": body(ref("Submission")),
        "responses": {
            **ok({"allOf": [ref("Case"), obj({"receipt": ref("Receipt")}, ("receipt",))]}, 201, "Opened"),
            **NOT_AVAILABLE,
            "403": {
                "description": "not-your-hall: a hall field of the data (accepting_region_code, "
                "station_region_code) names another hall than the counter's; errors name the data path "
                "(NOT_THIS_HALL). Nothing is sent to a department.",
                "content": {PROBLEM: {"schema": ref("Problem")}},
            },
        },
    },
    ("GET", "/api/v1/counter/queue"): {
        "summary": "The hall's cases, by department and state",
        "parameters": [
            *PAGING,
            query("department", {"type": "string", "enum": ["identity", "residence", "permits"]}),
            query("state", STRING),
        ],
        "responses": ok(page_of("cases", ref("CaseSummary"))),
    },
    ("POST", "/api/v1/counter/cases/{case_no}/materials-checked"): {
        "summary": "Record the in-person materials checked at the window",
        "parameters": [CASE_NO],
        "requestBody": body(
            obj(
                {"materials": {"type": "array", "items": {"type": "string", "maxLength": 64}}}, ("materials",)
            )
        ),
        "responses": ok(ref("Receipt")),
    },
    ("GET", "/api/v1/counter/cases/{case_no}/receipt"): {
        "summary": "The receipt (without the query code)",
        "parameters": [CASE_NO],
        "responses": ok(ref("Receipt")),
    },
    ("POST", "/api/v1/counter/cases/{case_no}/pickup"): {
        "summary": "Hand every certificate over; the case completes",
        "parameters": [CASE_NO],
        "requestBody": body(obj({"old_card_surrendered": BOOL}), required=False),
        "responses": ok(ref("Receipt")),
    },
    ("GET", "/api/v1/backoffice/steps"): {
        "summary": "My department's steps (default: waiting for a decision)",
        "parameters": [*PAGING, query("state", STRING)],
        "responses": ok(page_of("steps", OPEN)),
    },
    ("POST", "/api/v1/backoffice/cases/{case_no}/steps/{step_key}/approve"): {
        "summary": "Approve my department's step (the department's own RPC, with my identity)",
        "parameters": [CASE_NO, path_param("step_key")],
        "responses": ok(
            obj(
                {"case_no": STRING, "step": STRING, "decision": STRING, "department_state": STRING},
                ("case_no", "step", "decision"),
            ),
            202,
            "Sent to the department",
        ),
    },
    ("POST", "/api/v1/backoffice/cases/{case_no}/steps/{step_key}/reject"): {
        "summary": "Reject my department's step with reasons the applicant will read",
        "parameters": [CASE_NO, path_param("step_key")],
        "requestBody": body(REASONS),
        "responses": ok(
            obj(
                {"case_no": STRING, "step": STRING, "decision": STRING, "department_state": STRING},
                ("case_no", "step", "decision"),
            ),
            202,
            "Sent to the department",
        ),
    },
    ("GET", "/api/v1/admin/feedback"): {
        "summary": "Ratings to follow up (or all)",
        "parameters": [*PAGING, query("flagged", {"type": "string", "enum": ["true", "false"]})],
        "responses": ok(page_of("feedback", ref("Feedback"))),
    },
}

ERRORS = {
    "400": "Invalid request (errors name the fields)",
    "401": "No or bad bearer token",
    "403": "Your role may not do this",
    "404": "No such resource (or not yours)",
    "405": "Method not allowed",
    "409": "Conflicts with the current state",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Refused by the rules (reason given)",
    "429": "Too many requests (see Retry-After)",
    "503": "A department is unavailable (see Retry-After)",
}


def _handlers(app: web.Application) -> dict[tuple[str, str], Any]:
    return {
        (route.method, route.resource.canonical): route.handler
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def document(app: web.Application) -> dict[str, Any]:
    handlers = _handlers(app)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), spec in OPERATIONS.items():
        roles = sorted(declared(handlers.get((method, path))) or ())
        name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
        operation = {
            "operationId": f"{method.lower()}_{name}",
            **spec,
            "x-govhub-roles": roles,
            "security": [{}, {"bearer": []}] if PUBLIC in roles else [{"bearer": []}],
        }
        responses = dict(spec["responses"])
        for status, description in ERRORS.items():
            if status not in responses:
                responses[status] = {
                    "description": description,
                    "content": {PROBLEM: {"schema": ref("Problem")}},
                }
        responses["500"] = {"description": "Internal error", "content": {PROBLEM: {"schema": ref("Problem")}}}
        operation["responses"] = responses
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "govhub gateway",
            "version": "1",
            "description": "One window for public-security service halls: one application, one case number, "
            "one status. Errors are RFC 9457 application/problem+json.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
