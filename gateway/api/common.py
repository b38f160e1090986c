"""What every route module shares: JSON bodies within a limit, pages within a limit, and object-level
access (a case someone may not see does not exist for them: 404, never 403)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from gateway.audit import note_applicant
from gateway.auth import Principal
from gateway.cases import load_case
from gateway.clients import Invalid, Refused, Unavailable
from gateway.models import Invalid as InvalidBody
from gateway.models import decode
from gateway.problems import Problem
from gateway.store import Case, CaseStep
from gateway.typedefs import catalogue_key, sessions_key, settings_key
from services.common.errors import FieldViolation

MAX_JSON_BYTES = 256 * 1024
# Deepest nesting of arrays and objects a body may have: the deepest form (a matter's data) is 4 levels.
MAX_JSON_DEPTH = 32
DEFAULT_PAGE_SIZE = 20
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw`, counted without parsing it (strings are skipped), so
    that a hostile body cannot exhaust the parser's recursion."""
    depth = deepest = 0
    for char in _JSON_STRING.sub(b"", raw).translate(None, _BRACKETS):
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _no_constants(text: str) -> Any:
    raise ValueError(text)


def _encodable(value: Any) -> bool:
    """No lone surrogate (``"\\ud800"``) anywhere: every string must be storable as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def parse_json(raw: bytes) -> Any:
    """`raw` as JSON within MAX_JSON_DEPTH, with finite numbers and UTF-8 text only: any other body is a
    400 problem naming what is wrong with it."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise Problem(
            400, "malformed-json", f"The body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        body = json.loads(raw, parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:  # the bound above makes this unreachable; kept as the last line of defence
        raise Problem(400, "malformed-json", f"The body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError, over-long integers, NaN, Infinity, 1e999
        raise Problem(
            400, "malformed-json", "The body is not valid JSON (or holds a number out of range)"
        ) from None
    if not _encodable(body):
        raise Problem(400, "malformed-json", "The body holds text that is not valid Unicode")
    return body


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, read within MAX_JSON_BYTES (413 beyond, whatever the headers say) and
    parsed within MAX_JSON_DEPTH (``parse_json``)."""
    if not request.can_read_body and not required:
        return {}
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Send the request as application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise Problem(413, "payload-too-large", f"A JSON body may be at most {MAX_JSON_BYTES} bytes")
    raw = b""
    while len(raw) <= MAX_JSON_BYTES:  # read() answers what has arrived: a chunked body comes in pieces
        chunk = await request.content.read(MAX_JSON_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_JSON_BYTES:
        raise Problem(413, "payload-too-large", f"A JSON body may be at most {MAX_JSON_BYTES} bytes")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise Problem(400, "malformed-json", "The body must be a JSON object")
    return body


T = TypeVar("T", bound=msgspec.Struct)


async def read_body(request: web.Request, model: type[T], *, required: bool = True) -> T:
    """The request's JSON object (``json_body``: size, depth and text bounds) decoded as `model`
    (gateway/models.py); a field that does not fit is a 400 naming its path and reason. An absent
    optional body is the model's defaults."""
    body = await json_body(request, required=required)
    try:
        return decode(body, model)
    except InvalidBody as exc:
        raise Problem(
            400, "invalid-request", "The request has invalid fields", errors=[exc.violation]
        ) from None


def reply(body: msgspec.Struct, status: int = 200) -> web.Response:
    """`body` (a struct of gateway/models.py, so what is sent is what the document says) as JSON."""
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json", charset="utf-8"
    )


def invalid(field: str, reason: str, description: str = "") -> Problem:
    return Problem(
        400,
        "invalid-request",
        "The request has invalid fields",
        errors=[FieldViolation(field, reason, description)],
    )


def page_size(request: web.Request) -> int:
    """``page_size``: DEFAULT_PAGE_SIZE when absent, at most the page_size_max setting."""
    limit = request.app[settings_key].page_size_max
    raw = request.query.get("page_size", "")
    size = DEFAULT_PAGE_SIZE if not raw else _int(raw, "page_size")
    if size < 1 or size > limit:
        raise invalid("page_size", "OUT_OF_RANGE", f"between 1 and {limit}")
    return size


def page(request: web.Request) -> tuple[int, int]:
    """(page_size, offset) from ``page_size`` and ``page_token``."""
    size = page_size(request)
    token = request.query.get("page_token", "")
    offset = 0
    if token:
        try:
            decoded = base64.urlsafe_b64decode(token.encode() + b"==").decode()
            if not decoded.startswith("o:"):
                raise ValueError(token)
            offset = int(decoded[2:])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise invalid("page_token", "MALFORMED", "use next_page_token from the previous page") from None
        if offset < 0 or offset > 10**9:
            raise invalid("page_token", "MALFORMED", "use next_page_token from the previous page")
    return size, offset


def next_token(offset: int, size: int, got: int) -> str:
    """The token of the next page, or "" on the last one (``got`` is how many rows were read: size + 1
    tells that there is more)."""
    if got <= size:
        return ""
    return base64.urlsafe_b64encode(f"o:{offset + size}".encode()).decode().rstrip("=")


def _int(raw: str, field: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise invalid(field, "NOT_AN_INTEGER", "a whole number") from None


def can_see(who: Principal | None, case: Case, steps: list[CaseStep]) -> bool:
    """Object-level access: a citizen their own cases, counter staff the cases of their hall,
    department staff the cases with a step of their department, an admin any."""
    if who is None:
        return False
    if who.role == "citizen":
        return bool(who.person_key) and case.applicant_key == who.person_key
    if who.role == "counter":
        return case.hall is not None and case.hall == who.hall
    if who.role == "department":
        return any(s.department == who.department for s in steps)
    return who.role == "admin"


def not_found() -> Problem:
    return Problem(404, "not-found", "No such case")


async def visible_case(request: web.Request, who: Principal | None) -> tuple[Case, list[CaseStep]]:
    """The case named in the path if `who` may see it (else 404); the look is audited either way."""
    loaded = await load_case(request.app[sessions_key], request.match_info["case_no"])
    if loaded is not None:
        note_applicant(request, loaded[0], request.app[catalogue_key].get(loaded[0].matter))
    if loaded is None or not can_see(who, *loaded):
        raise not_found()
    return loaded


def department_problem(exc: Exception) -> Problem:
    """A department's answer to a call made for a person, as the HTTP error of the table in
    docs/architecture.md."""
    if isinstance(exc, Unavailable):
        return Problem(
            503, "department-unavailable", "The department did not answer", headers={"Retry-After": "5"}
        )
    if isinstance(exc, Invalid):
        return Problem(
            400,
            "invalid-request",
            "The department found invalid fields",
            errors=[FieldViolation(f, r, d) for f, r, d in exc.violations],
        )
    if isinstance(exc, Refused):
        if exc.code == "NOT_FOUND":
            return Problem(404, "not-found", "The department holds no such record")
        if exc.code == "ALREADY_EXISTS":
            return Problem(409, "conflict", "The department already holds this", reason=exc.reason)
        if exc.code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return Problem(
                403, "forbidden", "The department refused the gateway this call", reason=exc.reason
            )
        return Problem(422, "refused", "The department refused", exc.message, reason=exc.reason)
    raise exc
