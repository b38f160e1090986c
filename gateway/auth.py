"""Who may do what: bearer JWTs verified with PyJWT, and a declaration on every route.

Tokens
    ``Authorization: Bearer <JWT>``, verified against an algorithm allowlist (never ``none``): HS256
    with a shared secret (development), RS256/ES256 with the public keys of a PEM file (production).
    ``iss``, ``aud``, ``exp`` and ``sub`` are required and checked (with a small leeway). Claims:

    - ``role``: ``citizen`` | ``counter`` | ``department`` | ``admin``;
    - ``person`` (citizen): the citizen's ID number, or a foreigner's passport number;
    - ``hall`` (counter): the six-digit region code of the service hall;
    - ``dept`` (department): ``identity`` | ``residence`` | ``permits``.

    With no key configured the gateway uses a development secret generated once into
    ``<GOVHUB_VAR_DIR>/dev-jwt-secret``; ``make token ROLE=… SUB=…`` (``python -m gateway.auth token``)
    mints a token with it.

Declarations
    Every handler is decorated with ``@allow(...roles)`` or ``@public``. The auth middleware refuses a
    request to a handler that declares nothing (and a test fails if one exists).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jwt
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.problems import Problem
from services.common.foreigner import normalise_passport_number
from services.common.idnumber import check_id_number
from services.common.settings import GatewaySettings

log = structlog.get_logger("govhub.auth")

ROLES = ("citizen", "counter", "department", "admin")
DEPARTMENTS = ("identity", "residence", "permits")
PUBLIC = "public"
DEV_SECRET_NAME = "dev-jwt-secret"  # noqa: S105 - a file name, not a secret
MAX_TOKEN_LENGTH = 8192

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

ACCESS_ATTRIBUTE = "__govhub_access__"


def allow(*roles: str) -> Callable[[H], H]:
    """Declare the roles that may call a route (checked before the handler runs)."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def mark(handler: H) -> H:
        setattr(handler, ACCESS_ATTRIBUTE, frozenset(roles))
        return handler

    return mark


def public(handler: H) -> H:
    """Declare a route anyone may call (a bearer token, if sent, is still verified)."""
    setattr(handler, ACCESS_ATTRIBUTE, frozenset({PUBLIC}))
    return handler


def declared(handler: Any) -> frozenset[str] | None:
    return getattr(handler, ACCESS_ATTRIBUTE, None)


def person_key(value: str) -> str:
    """The applicant key of a person (Case.applicant_key): sha256 of the normalised ID or passport number."""
    value = value.strip()
    check = check_id_number(value)
    normalised = check.normalised if check.valid else normalise_passport_number(value)
    return hashlib.sha256(normalised.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    subject: str
    role: str
    person: str = ""  # citizen: ID number or passport number (personal data: never logged)
    hall: str = ""  # counter: region code of the service hall
    department: str = ""  # department staff: identity | residence | permits

    @property
    def person_key(self) -> str:
        return person_key(self.person) if self.person else ""

    @property
    def actor_role(self) -> str:
        """The role forwarded to a department as gRPC metadata."""
        return {"counter": "staff", "department": "officer"}.get(self.role, self.role)


principal_key: web.RequestKey[Principal | None] = web.RequestKey("principal")  # the verified caller, if any


# -- keys -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet:
    """What tokens are verified with: one HS256 secret, or public keys (RS256 / ES256)."""

    algorithms: tuple[str, ...]
    keys: tuple[Any, ...]
    secret: bytes | None = None  # set only for HS256 (development), to mint tokens

    @property
    def development(self) -> bool:
        return self.secret is not None


def dev_secret_path(settings: GatewaySettings) -> Path:
    return settings.common.var_dir / DEV_SECRET_NAME


def ensure_dev_secret(path: Path) -> bytes:
    """The development secret, generated once (0600) and then read back."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, secrets.token_hex(32).encode())
        except FileExistsError:
            pass  # another process made it first
        finally:
            if fd is not None:
                os.close(fd)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: a JWT secret must be at least 32 bytes")
    return secret


def _public_keys(pem_file: Path) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    text = pem_file.read_text()
    keys: list[Any] = []
    algorithms: set[str] = set()
    marker = "-----END PUBLIC KEY-----"
    for block in text.split(marker):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = load_pem_public_key((block.strip() + "\n" + marker + "\n").encode())
        if isinstance(key, rsa.RSAPublicKey):
            algorithms.add("RS256")
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            algorithms.add("ES256")
        else:
            raise ValueError(f"{pem_file}: only RSA and P-256 public keys are accepted")
        keys.append(key)
    if not keys:
        raise ValueError(f"{pem_file}: no PEM public key found")
    return tuple(sorted(algorithms)), tuple(keys)


def load_keys(settings: GatewaySettings) -> KeySet:
    if settings.jwt_public_keys_file is not None:
        algorithms, keys = _public_keys(settings.jwt_public_keys_file)
        return KeySet(algorithms, keys)
    path = settings.jwt_secret_file or dev_secret_path(settings)
    secret = ensure_dev_secret(path) if settings.jwt_secret_file is None else path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: a JWT secret must be at least 32 bytes")
    if settings.jwt_secret_file is None:
        log.warning("bearer tokens use the generated development secret", file=str(path))
    return KeySet(("HS256",), (secret,), secret)


# -- verifying --------------------------------------------------------------------------------------------


class TokenVerifier:
    def __init__(self, keys: KeySet, *, issuer: str, audience: str, leeway: float) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises Problem(401) otherwise (never says which check failed
        beyond a short reason)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise unauthenticated("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("malformed token") from None
        if header.get("alg") not in self.keys.algorithms:
            raise unauthenticated("algorithm not accepted")
        claims: dict[str, Any] | None = None
        for key in self.keys.keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=list(self.keys.algorithms),
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise unauthenticated("token expired") from None
            except jwt.PyJWTError:
                raise unauthenticated("invalid token") from None
        if claims is None:
            raise unauthenticated("bad signature")
        return principal_from(claims)


def principal_from(claims: dict[str, Any]) -> Principal:
    role = claims.get("role")
    subject = claims.get("sub")
    if role not in ROLES or not isinstance(subject, str) or not subject:
        raise unauthenticated("unknown role")
    person: Any = ""
    hall: Any = ""
    department: Any = ""
    if role == "citizen":
        person = claims.get("person")
        if not isinstance(person, str) or not person.strip():
            raise unauthenticated("a citizen token names its person")
    elif role == "counter":
        hall = claims.get("hall")
        if not isinstance(hall, str) or not (len(hall) == 6 and hall.isdigit()):
            raise unauthenticated("a counter token names its hall (a six-digit region code)")
    elif role == "department":
        department = claims.get("dept")
        if department not in DEPARTMENTS:
            raise unauthenticated("a department token names its department")
    return Principal(subject=subject, role=role, person=person, hall=hall, department=department)


def unauthenticated(reason: str) -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "A valid bearer token is required",
        reason,
        headers={"WWW-Authenticate": 'Bearer realm="govhub"'},
    )


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("use the Bearer scheme")
    return token.strip()


def auth_middleware(verifier_for: Callable[[web.Request], TokenVerifier]) -> Any:
    """Verifies the bearer token, if any, and enforces the route's declaration."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:  # no such route / method: let it answer 404 / 405
            return await handler(request)
        roles = declared(match.handler)
        if roles is None:
            resource = match.route.resource
            log.error("route declares no access; refused", route=resource.canonical if resource else "?")
            raise Problem(403, "forbidden", "This route is not open to anyone")
        token = bearer(request)
        principal = verifier_for(request).verify(token) if token else None
        request[principal_key] = principal
        if PUBLIC not in roles:
            if principal is None:
                raise unauthenticated("no bearer token")
            if principal.role not in roles:
                raise Problem(403, "forbidden", "Your role may not do this", role=principal.role)
        if principal is not None:
            structlog.contextvars.bind_contextvars(actor=principal.subject, role=principal.role)
        return await handler(request)

    return middleware


def principal(request: web.Request) -> Principal | None:
    return request.get(principal_key)


def require(request: web.Request) -> Principal:
    who = principal(request)
    if who is None:
        raise unauthenticated("no bearer token")
    return who


# -- minting (development) --------------------------------------------------------------------------------


def mint(
    secret: bytes,
    *,
    role: str,
    sub: str,
    issuer: str = "govhub",
    audience: str = "govhub-gateway",
    person: str = "",
    hall: str = "",
    dept: str = "",
    ttl: dt.timedelta = dt.timedelta(hours=8),
    now: dt.datetime | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    issued = now or dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    for name, value in (("person", person), ("hall", hall), ("dept", dept)):
        if value:
            claims[name] = value
    try:
        principal_from(claims)  # refuse to mint what the gateway would refuse
    except Problem as problem:
        raise ValueError(problem.detail) from None
    return jwt.encode(claims, secret, algorithm="HS256")


def _cli(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.auth", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="mint a development token with the gateway's secret")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--sub", required=True, help="the subject: a staff number or a citizen's account")
    token.add_argument("--id", default="", help="citizen: ID number (or a foreigner's passport number)")
    token.add_argument("--hall", default="", help="counter: the hall's six-digit region code")
    token.add_argument("--dept", default="", choices=("", *DEPARTMENTS), help="department staff")
    token.add_argument("--hours", type=float, default=8.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    from services.common.settings import SettingsError

    try:
        settings = GatewaySettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"gateway.auth: {exc}", file=sys.stderr)
        return 2
    if settings.jwt_public_keys_file is not None:
        print(
            "gateway.auth: the gateway verifies public-key tokens; mint them with your issuer",
            file=sys.stderr,
        )
        return 2
    path = settings.jwt_secret_file or dev_secret_path(settings)
    secret = ensure_dev_secret(path) if settings.jwt_secret_file is None else path.read_bytes().strip()
    try:
        print(
            mint(
                secret,
                role=args.role,
                sub=args.sub,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                person=args.id,
                hall=args.hall,
                dept=args.dept,
                ttl=dt.timedelta(hours=args.hours),
            )
        )
    except ValueError as exc:
        print(f"gateway.auth: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
