"""One trace per request across every process: the hub started as ``make run`` starts it, with the
``file`` trace exporter; one cross-province ID card renewal submitted over HTTP with a W3C
``traceparent``; the hub stopped (every process flushes its spans on SIGTERM); then the spans of that
submission — the gateway's HTTP and gRPC client spans, identity's and residence's gRPC server spans and
the SQL statements in both — are one trace, each linked to its parent in the process that called.

A new case's steps are held for the submitting request (the background saga loop does not take them
while it drives them), so the department calls are always in the request's trace."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import start_hub, stop_hub

pytestmark = pytest.mark.e2e

TIANJIN = {"id_number": "120101198503120115", "name": "王津生"}  # accepted in Shanghai from 2016-07-01
APPLICATION = {
    "matter": "id-card-renewal-cross-province",
    "data": {
        "applicant": TIANJIN,
        "renewal_reason": "EXPIRY",
        "accepting_region_code": "310104",
        "residence_permit": {"number": "SH3101042016000123", "valid_until": "2017-08-31"},
    },
}


async def accepted(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 180  # generous: under load identity may be retried after a timeout
    while True:
        async with http.get(url, headers=headers) as resp:
            view = await resp.json()
        if view["steps"][0]["department_state"] == "ACCEPTED":
            return
        assert time.monotonic() < deadline, (view["state"], view["steps"])
        await asyncio.sleep(0.2)


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_sql(span: dict[str, Any]) -> bool:
    return "sqlalchemy" in (span["scope"] or "") or "db.system" in span["attributes"]


async def test_one_submission_is_one_trace_across_gateway_identity_and_residence(tmp_path: Path) -> None:
    trace_file = tmp_path / "traces.jsonl"
    hub = start_hub(
        tmp_path / "hub",
        extra_env={"GOVHUB_TRACE_EXPORTER": "file", "GOVHUB_TRACE_FILE": str(trace_file)},
    )
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{hub.base_url}/api/v1/cases",
                json=APPLICATION,
                headers={
                    **hub.citizen(TIANJIN["id_number"]),
                    "traceparent": f"00-{trace_id}-{caller_span}-01",
                },
            ) as resp:
                body = await resp.json()
                assert resp.status == 201, body
            # The request's own drive runs the step; under load the answer may come before identity's
            # does (and says so), so wait for the step to be accepted before the hub is stopped.
            await accepted(
                http, f"{hub.base_url}/api/v1/cases/{body['case_no']}", hub.citizen(TIANJIN["id_number"])
            )
    finally:
        code = stop_hub(hub.process)
        assert hub.process.stdout is not None
        hub.process.stdout.close()
        hub.log_file.close()
    assert code == 0, hub.log()[-4000:]
    # The operator reads where each process listens (a listening address is not a person's address).
    assert f'"listen": "{hub.base_url}"' in hub.log(), hub.log()[-4000:]

    spans = read_spans(trace_file)
    ours = [s for s in spans if s["trace_id"] == trace_id]
    by_service = Counter(s["service"] for s in ours)
    assert {"govhub-gateway", "govhub-identity", "govhub-residence"} <= set(by_service), by_service
    by_id = {s["span_id"]: s for s in ours}

    # The gateway continued the caller's trace: its HTTP server span's parent is the caller's span.
    [http_span] = [s for s in ours if s["service"] == "govhub-gateway" and s["kind"] == "SERVER"]
    assert http_span["name"] == "POST /api/v1/cases"
    assert http_span["parent_span_id"] == caller_span

    def server_span(service: str, method: str) -> dict[str, Any]:
        found = [
            s
            for s in ours
            if s["service"] == service and s["kind"] == "SERVER" and s["name"].endswith(f"/{method}")
        ]
        assert found, f"no {method} server span in {service}: {sorted({s['name'] for s in ours})}"
        return found[0]

    def caller_of(span: dict[str, Any]) -> dict[str, Any]:
        parent = by_id.get(span["parent_span_id"])
        assert parent is not None, f"{span['name']} has no parent in this trace"
        return parent

    # gateway -> identity: identity's server span is the child of a gateway gRPC client span.
    submit = server_span("govhub-identity", "CreateCardApplication")
    client = caller_of(submit)
    assert (client["service"], client["kind"]) == ("govhub-gateway", "CLIENT")
    assert client["name"].endswith("/CreateCardApplication")

    # identity -> residence: the hukou question asked while identity served the submission.
    verify = server_span("govhub-residence", "VerifyHukou")
    asker = caller_of(verify)
    assert (asker["service"], asker["kind"]) == ("govhub-identity", "CLIENT")
    assert asker["name"].endswith("/VerifyHukou")

    # SQL in each department, inside its gRPC server span.
    def descends_from(span: dict[str, Any], ancestor: dict[str, Any]) -> bool:
        while span["parent_span_id"] in by_id:
            span = by_id[span["parent_span_id"]]
            if span is ancestor:
                return True
        return False

    identity_sql = [s for s in ours if s["service"] == "govhub-identity" and is_sql(s)]
    residence_sql = [s for s in ours if s["service"] == "govhub-residence" and is_sql(s)]
    gateway_sql = [s for s in ours if s["service"] == "govhub-gateway" and is_sql(s)]
    assert identity_sql and all(descends_from(s, submit) for s in identity_sql), identity_sql
    assert residence_sql and all(descends_from(s, verify) for s in residence_sql), residence_sql
    assert gateway_sql, "the gateway's own SQL (the case and its steps) is in the trace too"

    # Every span of the submission hangs off the caller's span: one tree, no orphans.
    for span in ours:
        if span is not http_span:
            assert descends_from(span, http_span), (
                f"{span['service']} {span['name']} is not under the request"
            )
