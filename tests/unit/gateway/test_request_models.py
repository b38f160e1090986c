"""A request body that does not fit its struct is refused naming the field and the reason the struct
declares for it, also for an optional field (declared as ``X | None``), never with the decoder's own
wording of types."""

from __future__ import annotations

import pytest

from gateway.models import Invalid, ReportLost, Withdrawal, decode


def test_an_optional_field_of_the_wrong_type_gets_its_declared_reason() -> None:
    with pytest.raises(Invalid) as raised:
        decode({"code": 12}, Withdrawal)
    violation = raised.value.violation
    assert (violation.field, violation.reason, violation.description) == (
        "code",
        "MALFORMED",
        "the case's query code",
    )


def test_an_optional_uuid_that_is_not_one_gets_its_declared_reason() -> None:
    with pytest.raises(Invalid) as raised:
        decode({"name": "王津生", "station_region_code": "310104", "request_id": "nope"}, ReportLost)
    assert (raised.value.violation.field, raised.value.violation.reason) == ("request_id", "NOT_A_UUID")


def test_a_required_field_keeps_its_declared_reason() -> None:
    with pytest.raises(Invalid) as raised:
        decode({"name": "王津生", "station_region_code": "31"}, ReportLost)
    assert (raised.value.violation.field, raised.value.violation.reason) == (
        "station_region_code",
        "NOT_A_REGION_CODE",
    )
