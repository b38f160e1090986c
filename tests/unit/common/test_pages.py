"""``services.common.pages``: page sizes and opaque page tokens, shared by the three department services."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from services.common.errors import InvalidArgument, ValidationCollector
from services.common.pages import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
    page_size,
)

KEY = (dt.datetime, str)
WHEN = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def violations(errors: ValidationCollector) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in errors.violations]


@pytest.mark.parametrize(
    ("requested", "size"),
    [(0, DEFAULT_PAGE_SIZE), (1, 1), (MAX_PAGE_SIZE, MAX_PAGE_SIZE), (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE)],
)
def test_a_page_size_defaults_when_unset_and_is_cut_to_the_maximum(requested: int, size: int) -> None:
    errors = ValidationCollector()
    assert page_size(requested, errors) == size
    assert errors.violations == []


def test_a_negative_page_size_is_an_invalid_argument_naming_page_size() -> None:
    errors = ValidationCollector()
    page_size(-1, errors)
    assert violations(errors) == [("page_size", "OUT_OF_RANGE")]
    with pytest.raises(InvalidArgument) as refused:
        errors.raise_if_any()
    assert refused.value.violations[0].field == "page_size"


def test_a_token_gives_back_the_key_it_was_made_from() -> None:
    errors = ValidationCollector()
    token = encode_page_token((WHEN, "app-7"), {"state": "SUBMITTED"})
    assert decode_page_token(token, KEY, errors, {"state": "SUBMITTED"}) == (WHEN, "app-7")
    assert decode_page_token(encode_page_token(("h-1", "0003")), (str, str), errors) == ("h-1", "0003")
    assert errors.violations == []
    assert "=" not in token and "app-7" not in token  # opaque, URL-safe


def test_no_token_is_the_first_page_and_no_key_is_no_next_page() -> None:
    errors = ValidationCollector()
    assert decode_page_token("", KEY, errors) is None
    assert encode_page_token(None) == ""
    assert errors.violations == []


def _raw(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "%%%",
        _raw([1, 2]),
        _raw({"k": [{"t": WHEN.isoformat()}], "f": ""}),  # a key of another shape
        _raw({"k": [{"t": "2026-03-01T09:30:00"}, "a"], "f": ""}),  # a time with no zone
        _raw({"k": [{"t": "yesterday"}, "a"], "f": ""}),
        _raw({"k": [{"t": WHEN.isoformat()}, 7], "f": ""}),
        _raw({"k": ["2026-03-01T09:30:00+00:00", "a"], "f": ""}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_token_this_service_did_not_give_out_is_an_invalid_argument_naming_page_token(token: str) -> None:
    errors = ValidationCollector()
    assert decode_page_token(token, KEY, errors) is None
    assert violations(errors) == [("page_token", "BAD_PAGE_TOKEN")]


def test_a_token_given_for_other_filters_is_refused() -> None:
    errors = ValidationCollector()
    token = encode_page_token((WHEN, "app-7"), {"state": "SUBMITTED"})
    assert decode_page_token(token, KEY, errors, {"state": "APPROVED"}) is None
    assert violations(errors) == [("page_token", "BAD_PAGE_TOKEN")]
    assert "filters" in errors.violations[0].description


def test_bad_size_and_bad_token_are_reported_together() -> None:
    errors = ValidationCollector()
    page_size(-5, errors)
    decode_page_token("garbage", KEY, errors)
    assert violations(errors) == [("page_size", "OUT_OF_RANGE"), ("page_token", "BAD_PAGE_TOKEN")]
