"""Personal data never reaches a log line unmasked."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from services.common.logging import configure_logging, mask_value


@pytest.fixture
def captured() -> io.StringIO:
    configure_logging("testsvc", "json", "info")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_personal_fields_and_embedded_id_numbers_are_masked(captured: io.StringIO) -> None:
    log = structlog.get_logger("t")
    structlog.contextvars.bind_contextvars(request_id="r-1")
    log.info(
        "applied",
        id_number="11010519491231002X",
        name="张三丰",
        passport_number="E12345678",
        note="holder 440308199901101512 asked twice; legacy 610104620927690",
        nested={"id_number": "34052419800101001X", "count": 3},
    )
    structlog.contextvars.clear_contextvars()
    text = captured.getvalue()
    for raw in (
        "11010519491231002X",
        "张三丰",
        "E12345678",
        "440308199901101512",
        "610104620927690",
        "34052419800101001X",
    ):
        assert raw not in text
    [line] = lines(captured)
    assert line["service"] == "testsvc"
    assert line["request_id"] == "r-1"
    assert line["id_number"] == "110*************2X"
    assert line["nested"] == {"id_number": "340*************1X", "count": 3}


def test_stdlib_records_are_masked_too(captured: io.StringIO) -> None:
    logging.getLogger("some.library").warning("lookup failed for 11010519491231002X")
    assert "11010519491231002X" not in captured.getvalue()
    assert lines(captured)[0]["service"] == "testsvc"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("name", "李四", "李*"),
        ("passport_number", "E12345678", "*******78"),
        ("case_no", "GH20160915ABCDEF", "GH20160915ABCDEF"),
        ("count", 5, 5),
        ("message", "card 11010519491231002X lost", "card 110*************2X lost"),
    ],
)
def test_mask_value(key: str, value: object, expected: object) -> None:
    assert mask_value(key, value) == expected


def test_free_text_masks_numbers_but_leaves_uuids_whole() -> None:
    from services.common.logging import mask_text

    # a UUID group of one letter and seven digits has a passport number's shape
    record = "b2319803-c682-4009-b9c5-2bc8ae997729"
    text = f"app {record} of 110101199003070011, passport E12345678, tel 13812345678"
    masked = mask_text(text)
    assert record in masked
    for raw in ("110101199003070011", "E12345678", "13812345678"):
        assert raw not in masked
    assert mask_text("E12345678") == "*******78"
