"""The pages' sessions: an encrypted and signed cookie (Fernet: AES-128-CBC + HMAC-SHA256) holding the
bearer token, the role and a CSRF token. The cookie is ``HttpOnly`` and ``SameSite=Strict``, scoped to its
area (``/hall``, ``/counter``, ``/backoffice``); the token inside (and the person's number in its claims)
is never readable from the browser. The key is generated once into ``<GOVHUB_VAR_DIR>/web-session-key``
(share it between gateway replicas)."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "web-session-key"
MAX_AGE = 8 * 3600  # seconds; the token inside may expire sooner
AREAS = ("hall", "counter", "backoffice")


def load_key(var_dir: Path) -> bytes:
    path = var_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, Fernet.generate_key())
            finally:
                os.close(fd)
    key = path.read_bytes().strip()
    Fernet(key)  # a malformed key stops the gateway here, not at the first request
    return key


@dataclass
class Session:
    area: str
    token: str = ""
    role: str = ""
    label: str = ""  # what the header shows: a masked number, a staff number with the hall or department
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    receipt: dict[str, str] = field(default_factory=dict)  # the last case opened: {case_no, query_code}
    changed: bool = False

    @property
    def signed_in(self) -> bool:
        return bool(self.token)

    def csrf_ok(self, sent: str) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf, sent)

    def sign_in(self, token: str, role: str, label: str) -> None:
        self.token, self.role, self.label = token, role, label
        self.csrf = secrets.token_urlsafe(24)  # a new session gets a new CSRF token
        self.receipt = {}
        self.changed = True

    def sign_out(self) -> None:
        self.token = self.role = self.label = ""
        self.receipt = {}
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True


class Sessions:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def cookie_name(area: str) -> str:
        return f"govhub_{area}"

    def load(self, request: web.Request, area: str) -> Session:
        raw = request.cookies.get(self.cookie_name(area), "")
        if raw:
            try:
                data: dict[str, Any] = json.loads(self._fernet.decrypt(raw.encode(), ttl=MAX_AGE))
                return Session(
                    area=area,
                    token=str(data.get("t", "")),
                    role=str(data.get("r", "")),
                    label=str(data.get("l", "")),
                    csrf=str(data.get("c", "")) or secrets.token_urlsafe(24),
                    receipt=dict(data.get("rc", {})),
                )
            except (InvalidToken, ValueError, TypeError):
                pass
        return Session(area=area, changed=True)

    def save(self, response: web.StreamResponse, session: Session, *, secure: bool) -> None:
        """Set the cookie (``Secure`` when the page was served over HTTPS)."""
        body: dict[str, object] = {
            "t": session.token,
            "r": session.role,
            "l": session.label,
            "c": session.csrf,
        }
        if session.receipt:
            body["rc"] = session.receipt
        value = self._fernet.encrypt(json.dumps(body, separators=(",", ":")).encode()).decode()
        response.set_cookie(
            self.cookie_name(session.area),
            value,
            path=f"/{session.area}",
            max_age=MAX_AGE,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )
