"""Conversions between protobuf messages and plain Python values, shared by every servicer and client."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from govhub.common.v1 import common_pb2
from services.common.errors import FieldViolation, InvalidArgument


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


def message_to_dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)
