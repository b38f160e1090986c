"""The one check of every request's shape, before any handler sees it (the errors interceptor runs it).

The limits are the ones documented in ``protos/govhub/common/v1/common.proto`` ("Limits of every
request"), kept here as data:

* every string field holds at most ``MAX_CHARS`` characters, or the field's own limit in ``LIMITS``
  (keyed by field name: free text such as an address or a reason may be longer). These are ceilings
  of the wire, above every department's own rule (an address over 200 characters is refused by the
  department with its own reason, TOO_LONG, before this bound is reached);
* no string holds a control character other than tab, line feed and carriage return (PostgreSQL cannot
  store NUL, and no field of a person's data has a use for them);
* a repeated field holds at most ``MAX_ITEMS`` values;
* an enum field holds one of its enum's values (an unknown number is UNKNOWN_VALUE, not a crash);
* a ``google.protobuf.Timestamp`` lies between 0001-01-01 and 9999-12-31 with nanos in 0..999,999,999.

A violation is an ``InvalidArgument`` naming the field's path (``items[2].name``) and the reason
(``TOO_LONG``, ``CONTROL_CHARACTER``, ``TOO_MANY``, ``UNKNOWN_VALUE``, ``OUT_OF_RANGE``). Well-known
types other than the timestamp (``Struct`` and the like) are not descended into.
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import FieldViolation, InvalidArgument

MAX_CHARS = 256
MAX_ITEMS = 1000
MAX_DEPTH = 16
_FREE_TEXT = 2000
LIMITS: dict[str, int] = {
    name: _FREE_TEXT
    for name in (
        "address",
        "birth_place",
        "cancellation_reason",
        "category_grounds",
        "destination_address",
        "former_names",
        "found_place",
        "hukou_address",
        "native_place",
        "new_value",
        "occupation",
        "old_value",
        "origin_address",
        "position",
        "reason",
        "reasons",
        "rejection_reason",
        "rejection_reasons",
        "status_reason",
    )
} | {"page_token": 1024}
_TIMESTAMP = "google.protobuf.Timestamp"
_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def limit_of(field: FieldDescriptor) -> int:
    return LIMITS.get(field.name, MAX_CHARS)


def violations(message: Message, prefix: str = "", depth: int = 0) -> list[FieldViolation]:
    """Every violation of the limits above in `message`, in field order."""
    found: list[FieldViolation] = []
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == _TIMESTAMP:
        seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
        if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos <= 999_999_999:
            found.append(FieldViolation(prefix or "time", "OUT_OF_RANGE", "a time between years 1 and 9999"))
        return found
    if depth > MAX_DEPTH or descriptor.full_name.startswith("google.protobuf."):
        return found
    for field, value in message.ListFields():
        path = f"{prefix}.{field.name}" if prefix else field.name
        repeated = field.is_repeated
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if len(value) > MAX_ITEMS:
                found.append(FieldViolation(path, "TOO_MANY", f"at most {MAX_ITEMS} entries"))
            continue
        items = list(value) if repeated else [value]
        if repeated and len(items) > MAX_ITEMS:
            found.append(FieldViolation(path, "TOO_MANY", f"at most {MAX_ITEMS} values"))
            continue
        for index, item in enumerate(items):
            where = f"{path}[{index}]" if repeated else path
            found.extend(_check(field, item, where, depth))
    return found


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check(field: FieldDescriptor, value: object, path: str, depth: int) -> list[FieldViolation]:
    if field.type == FieldDescriptor.TYPE_STRING and isinstance(value, str):
        limit = limit_of(field)
        if len(value) > limit:
            return [FieldViolation(path, "TOO_LONG", f"at most {limit} characters")]
        if _CONTROL.search(value):
            return [FieldViolation(path, "CONTROL_CHARACTER", "holds a control character")]
    elif field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, int):
        enum_type = field.enum_type
        if enum_type is not None and value not in enum_type.values_by_number:
            return [FieldViolation(path, "UNKNOWN_VALUE", f"not a value of {enum_type.name}")]
    elif field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(value, Message):
        return violations(value, path, depth + 1)
    return []


def check_request(message: Message) -> None:
    """Raise InvalidArgument with every violation of the request limits in `message`."""
    found = violations(message)
    if found:
        raise InvalidArgument(found)
