"""Materials once: uploads are typed by content, limited in size and stored once by SHA-256."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.typedefs import material_files_key
from services.common.clock import Clock
from tests.fakes import FakeDepartment
from tests.service.gateway_support import TODAY, citizen, settings

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
UPLOADER = citizen("11010519491231002X")


@pytest.fixture
async def client(aiohttp_client: Any, db_url: str, tmp_path: Path) -> TestClient:
    config = dataclasses.replace(
        settings(db_url), materials_dir=tmp_path / "materials", material_max_bytes=4096
    )
    fakes = {name: FakeDepartment(name) for name in ("identity", "residence", "permits")}
    return await aiohttp_client(create_app(config, departments=fakes, clock=Clock(TODAY), background=False))


def form(
    content: bytes, filename: str = "doc.pdf", content_type: str = "application/pdf"
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", content, filename=filename, content_type=content_type)
    return data


async def test_a_document_is_stored_once_by_its_sha256(client: TestClient) -> None:
    first = await client.post("/api/v1/materials", data=form(PDF), headers=UPLOADER)
    assert first.status == 201
    body = await first.json()
    assert body == {
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "media_type": "application/pdf",
        "size_bytes": len(PDF),
    }
    again = await client.post(
        "/api/v1/materials", data=form(PDF, filename="other-name.pdf"), headers=UPLOADER
    )
    assert again.status == 200
    assert (await again.json())["sha256"] == body["sha256"]
    stored = client.app[material_files_key].path(body["sha256"])
    assert stored.read_bytes() == PDF
    assert len(list(stored.parent.parent.rglob("*"))) == 2  # one folder, one file


async def test_the_type_is_taken_from_the_content_not_the_claim(client: TestClient) -> None:
    resp = await client.post(
        "/api/v1/materials",
        data=form(PNG, filename="scan.pdf", content_type="application/pdf"),
        headers=UPLOADER,
    )
    assert resp.status == 201
    assert (await resp.json())["media_type"] == "image/png"
    resp = await client.post(
        "/api/v1/materials", data=form(b"MZ\x90\x00 not a document", filename="x.pdf"), headers=UPLOADER
    )
    assert resp.status == 415
    problem = await resp.json()
    assert problem["errors"][0] == {
        "field": "file",
        "reason": "TYPE_NOT_ALLOWED",
        "detail": "PDF, JPEG or PNG",
    }


async def test_size_limit_and_missing_file(client: TestClient) -> None:
    resp = await client.post("/api/v1/materials", data=form(PDF + b"0" * 5000), headers=UPLOADER)
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
    data = aiohttp.FormData(default_to_multipart=True)
    data.add_field("note", "no file here")
    resp = await client.post("/api/v1/materials", data=data, headers=UPLOADER)
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "file"
    resp = await client.post("/api/v1/materials", json={"file": "nope"}, headers=UPLOADER)
    assert resp.status == 415
