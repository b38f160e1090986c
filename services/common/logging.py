"""structlog configured once per process: readable on a terminal, JSON otherwise.

Every line carries the service name and, where known, trace_id, request_id and case_no (bound in
contextvars by the gRPC interceptor and the gateway middleware). Personal data is masked by
``mask_pii`` before anything is rendered: values under personal keys (ID numbers, passport numbers,
names) and anything shaped like a citizen ID number inside any string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import trace

PII_KEYS = frozenset(
    {
        "id_number",
        "national_id",
        "passport_number",
        "passport",
        "name",
        "full_name",
        "surname",
        "given_names",
        "former_names",
        "applicant_name",
        "holder_name",
        "address",
        "phone",
    }
)
# 18-digit numbers (check character may be X) and 15-digit legacy numbers standing alone.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8}|\d{6})(\d{3}[0-9Xx]|\d)(?![0-9A-Za-z])")


# Passport numbers (one or two letters and 7 to 9 digits, e.g. E12345678, standing alone) and phone
# numbers (mainland mobiles, 1[3-9] + 9 digits, with or without +86; landlines 0 + area code + number).
_UUID_RE = re.compile(
    r"(?<![0-9A-Za-z])([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})(?![0-9A-Za-z])"
)
_PASSPORT_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,2}\d{7,9}(?![0-9A-Za-z])")
_PHONE_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:\+|00)?86[- ]?)?(?:1[3-9]\d{9}|0\d{2,3}[- ]?\d{7,8})(?![0-9A-Za-z])"
)


def _star(match: re.Match[str]) -> str:
    text = match.group(0)
    return "*" * (len(text) - 2) + text[-2:]


def mask_text(text: str) -> str:
    """Free text with every ID, passport and phone number in it masked (all but the last two
    characters; an ID number keeps its first three as well). UUIDs (record ids, request ids) are left
    whole: a group such as ``b2319803`` has a passport number's shape."""
    parts = _UUID_RE.split(text)
    for i in range(0, len(parts), 2):  # the odd parts are the UUIDs the split kept
        parts[i] = _mask_numbers(parts[i])
    return "".join(parts)


def _mask_numbers(text: str) -> str:
    text = _ID_RE.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 5) + m.group(0)[-2:], text)
    text = _PASSPORT_RE.sub(_star, text)
    return _PHONE_RE.sub(_star, text)


def mask_value(key: str, value: Any) -> Any:
    if isinstance(value, str) and key in PII_KEYS:
        if not value:
            return value
        if key in {"id_number", "national_id"} and len(value) >= 10:
            return value[:3] + "*" * (len(value) - 5) + value[-2:]
        if key in {"passport_number", "passport"} and len(value) > 3:
            return "*" * (len(value) - 2) + value[-2:]
        return value[0] + "*" * max(len(value) - 1, 1)
    if isinstance(value, str):
        return _ID_RE.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 5) + m.group(0)[-2:], value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(key, v) for v in value)
    return value


def mask_pii(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask personal data in every field of the event."""
    return {k: mask_value(k, v) for k, v in event_dict.items()}


def add_trace_context(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def configure_logging(service: str, log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library's logging for this process. Call once, from __main__."""
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
        lambda _l, _m, ed: {"service": service, **ed},
        mask_pii,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if log_format == "json" else (lambda _l, _m, ed: ed),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosqlite logs SQL parameters (personal data) at DEBUG: never below WARNING.
    for noisy in ("aiohttp.access", "asyncio", "sqlalchemy.engine", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
