"""Conversions between protobuf messages and plain Python values, shared by every servicer and client."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from govhub.common.v1 import common_pb2
from services.common.errors import FieldViolation, InvalidArgument, ValidationCollector


def date_to_proto(value: dt.date | None) -> common_pb2.Date | None:
    if value is None:
        return None
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_from_proto(msg: common_pb2.Date, field: str, *, required: bool = True) -> dt.date | None:
    """A Date message as a date; an unset (all-zero) date is None, or a REQUIRED violation."""
    if msg.year == 0 and msg.month == 0 and msg.day == 0:
        if required:
            raise InvalidArgument([FieldViolation(field, "REQUIRED", f"{field} is required")])
        return None
    try:
        return dt.date(msg.year, msg.month, msg.day)
    except ValueError:
        raise InvalidArgument(
            [FieldViolation(field, "IMPOSSIBLE_DATE", f"{field} is not a real date")]
        ) from None


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    msg = struct_pb2.Struct()
    msg.update(data)
    return msg


def event_to_proto(row: Any) -> common_pb2.Event:
    """An outbox row (OutboxMixin) as a common Event."""
    return common_pb2.Event(
        sequence=row.sequence,
        type=row.event_type,
        aggregate_id=row.aggregate_id,
        occur_time=timestamp(row.occurred_at),
        request_id=row.request_id or "",
        data=struct(row.payload),
    )


def date_in(
    msg: common_pb2.Date, field: str, errors: ValidationCollector, *, required: bool = True
) -> dt.date | None:
    """A request's Date as a date, collecting its problem (REQUIRED, IMPOSSIBLE_DATE) under `field`."""
    try:
        return date_from_proto(msg, field, required=required)
    except InvalidArgument as exc:
        errors.violations.extend(exc.violations)
        return None


def enum_in(
    wrapper: Any,
    value: int,
    domain_enum: Any,
    prefix: str,
    field: str,
    errors: ValidationCollector,
    *,
    required: bool = True,
) -> Any:
    """A proto enum value as the domain enum; REQUIRED when unset, UNKNOWN_VALUE when not in the contract."""
    if value == 0:
        if required:
            errors.add(field, "REQUIRED")
        return None
    try:
        name = wrapper.Name(value)
    except ValueError:
        errors.add(field, "UNKNOWN_VALUE")
        return None
    return domain_enum(name.removeprefix(prefix))


def enum_out(wrapper: Any, prefix: str, value: Any) -> int:
    """A domain enum (or None) as the proto enum's number."""
    return 0 if value is None else int(wrapper.Value(prefix + value.value))
