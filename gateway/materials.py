"""Materials once: each document is uploaded one time, stored by its SHA-256 (the same file is stored
once however often it is sent), and each step is handed references to exactly the materials its
department needs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader

# Accepted types, recognised by their first bytes, never by what the client claims.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}


class MaterialTooLarge(Exception):
    pass


class MaterialTypeNotAllowed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StoredMaterial:
    sha256: str
    media_type: str
    size_bytes: int

    def reference(self, kind: str) -> dict[str, object]:
        return {
            "kind": kind,
            "sha256": self.sha256,
            "media_type": self.media_type,
            "size_bytes": self.size_bytes,
        }


def sniff(head: bytes) -> str | None:
    for media_type, signatures in SIGNATURES.items():
        if any(head.startswith(sig) for sig in signatures):
            return media_type
    return None


def _write_once(root: Path, sha256: str, data: bytes) -> None:
    target = root / sha256[:2] / sha256
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MaterialFiles:
    """Content-addressed files under one folder (``<root>/<first two hex>/<sha256>``)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    async def save(self, part: BodyPartReader) -> StoredMaterial:
        """Read one multipart part (at most max_bytes), check its type, store it once."""
        data = bytearray()
        digest = hashlib.sha256()
        while chunk := await part.read_chunk(64 * 1024):
            data.extend(chunk)
            if len(data) > self.max_bytes:
                raise MaterialTooLarge
            digest.update(chunk)
        media_type = sniff(bytes(data[:16]))
        if media_type is None:
            raise MaterialTypeNotAllowed
        sha = digest.hexdigest()
        await asyncio.to_thread(_write_once, self.root, sha, bytes(data))
        return StoredMaterial(sha, media_type, len(data))

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256
