"""Pagination of the department services' list RPCs, one way for all three.

``page_size``: 0 (unset) means ``DEFAULT_PAGE_SIZE``, more than ``MAX_PAGE_SIZE`` is cut to it, a
negative size is an INVALID_ARGUMENT on ``page_size`` (OUT_OF_RANGE). A page token is opaque to the
client: the last item's key (a tuple of strings and timezone-aware datetimes), and optionally a digest
of the list's filters, as unpadded URL-safe base64 of JSON. A token this service did not give out, of
another shape, or given for other filters is an INVALID_ARGUMENT on ``page_token`` (BAD_PAGE_TOKEN).
Violations go to the caller's ``ValidationCollector``, so a request's every error is reported at once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from services.common.errors import ValidationCollector

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

KeyPart = str | dt.datetime


def page_size(requested: int, errors: ValidationCollector) -> int:
    """The number of items a page holds for a request's `page_size`."""
    if requested < 0:
        errors.add("page_size", "OUT_OF_RANGE", "page_size must not be negative")
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _digest(filters: Mapping[str, str] | None) -> str:
    return hashlib.sha256(json.dumps(dict(filters or {}), sort_keys=True).encode()).hexdigest()[:16]


def encode_page_token(key: tuple[KeyPart, ...] | None, filters: Mapping[str, str] | None = None) -> str:
    """The token for the page after the item with this `key`, for a list filtered by `filters`; ""
    (no next page) for no key."""
    if key is None:
        return ""
    parts = [{"t": p.isoformat()} if isinstance(p, dt.datetime) else p for p in key]
    raw = json.dumps({"k": parts, "f": _digest(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _part(value: Any, kind: type[KeyPart]) -> KeyPart:
    if kind is dt.datetime:
        when = dt.datetime.fromisoformat(value["t"])
        if when.tzinfo is None:
            raise ValueError("a naive time")
        return when
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def decode_page_token(
    token: str,
    shape: tuple[type[KeyPart], ...],
    errors: ValidationCollector,
    filters: Mapping[str, str] | None = None,
) -> tuple[Any, ...] | None:
    """The key a `token` carries, of the given `shape` (e.g. ``(dt.datetime, str)``); None for no
    token (the first page) or a bad one (then recorded in `errors`)."""
    if not token:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        parts, digest = doc["k"], doc["f"]
        if not isinstance(parts, list) or len(parts) != len(shape):
            raise ValueError("another shape")
        key = tuple(_part(p, kind) for p, kind in zip(parts, shape, strict=True))
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        errors.add("page_token", "BAD_PAGE_TOKEN", "page_token is not one this list gave out")
        return None
    if digest != _digest(filters):
        errors.add("page_token", "BAD_PAGE_TOKEN", "the filters changed since this page_token was given")
        return None
    return key
