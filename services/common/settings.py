"""Settings: read once from ``GOVHUB_*`` environment variables into frozen, typed objects that are
passed down to the factories. Nothing else in govhub reads ``os.environ``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORTS = {"identity": 50051, "residence": 50052, "permits": 50053, "gateway": 8080}
# Where each department service serves its Prometheus metrics (GOVHUB_<SERVICE>_METRICS_LISTEN).
DEFAULT_METRICS_PORTS = {"identity": 9151, "residence": 9152, "permits": 9153}
TRACE_EXPORTERS = ("none", "console", "otlp", "file")
SERVICES = ("identity", "residence", "permits")
DEFAULT_GRANTS_FILE = Path(__file__).resolve().parent / "grants.toml"
# The processes that call a department and so present a client certificate (identity asks residence).
CALLERS = ("gateway", "identity")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={value} must be positive")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(env, name, default).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _listen(env: Mapping[str, str], name: str, default_port: int) -> tuple[str, int]:
    raw = _get(env, name, f"127.0.0.1:{default_port}")
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SettingsError(f"{name}={raw!r} must be HOST:PORT")
    value = int(port)
    if value > 65535:
        raise SettingsError(f"{name}={raw!r}: port out of range")
    return host.strip("[]"), value


def _optional_listen(env: Mapping[str, str], name: str, default_port: int) -> tuple[str, int] | None:
    """HOST:PORT like `_listen`, or ``off`` (None): a listener that may be turned off."""
    if _get(env, name, "").lower() == "off":
        return None
    return _listen(env, name, default_port)


def _listen_or_off(env: Mapping[str, str], name: str) -> tuple[str, int] | None:
    """HOST:PORT like `_listen`; unset or ``off``: None (a listener that is off unless asked for)."""
    if _get(env, name, "off").lower() == "off":
        return None
    return _listen(env, name, 0)


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    """A file that must exist when the variable is set."""
    raw = _get(env, name, "")
    if not raw:
        return None
    if not Path(raw).is_file():
        raise SettingsError(f"{name}={raw}: no such file")
    return Path(raw)


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """What every process shares: logging, tracing, the clock, where local files go."""

    log_format: str = "auto"  # auto (console on a terminal, JSON otherwise) | console | json
    log_level: str = "info"
    trace_exporter: str = "none"  # none | console | otlp (OTEL_EXPORTER_OTLP_* variables tune it) | file
    today: dt.date | None = None
    var_dir: Path = Path("var")
    # GOVHUB_AUTO_MIGRATE: auto | on | off, the schema rule at start (services/common/migrate.py).
    auto_migrate: str = "auto"
    # GOVHUB_TRACE_FILE: where the `file` exporter appends one JSON object per span per line (several
    # processes may share it; a `{service}` in the path gives each its own file).
    trace_file: Path = Path("var/traces.jsonl")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommonSettings:
        raw_today = _get(env, "GOVHUB_TODAY", "")
        today = None
        if raw_today:
            try:
                today = dt.date.fromisoformat(raw_today)
            except ValueError:
                raise SettingsError(f"GOVHUB_TODAY={raw_today!r} is not an ISO date (YYYY-MM-DD)") from None
        return cls(
            log_format=_choice(env, "GOVHUB_LOG_FORMAT", "auto", ("auto", "console", "json")),
            log_level=_choice(env, "GOVHUB_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            trace_exporter=_choice(env, "GOVHUB_TRACE_EXPORTER", "none", TRACE_EXPORTERS),
            today=today,
            var_dir=Path(_get(env, "GOVHUB_VAR_DIR", "var")),
            auto_migrate=_choice(env, "GOVHUB_AUTO_MIGRATE", "auto", ("auto", "on", "off")),
            trace_file=Path(
                _get(env, "GOVHUB_TRACE_FILE", str(Path(_get(env, "GOVHUB_VAR_DIR", "var")) / "traces.jsonl"))
            ),
        )


def _existing(name: str, path: Path, hint: str = "") -> Path:
    if not path.is_file():
        raise SettingsError(f"{name}={path}: no such file{hint}")
    return path


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files of one end of a mutual-TLS connection: the CA it trusts, its certificate, its key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Mutual TLS, grants and the audit trail (docs/architecture.md, "Security").

    ``GOVHUB_TLS=on`` turns on mutual TLS; every file below must then exist (checked at start, naming the
    variable). The files default to the layout ``make certs`` writes under ``GOVHUB_TLS_DIR``
    (default ``<GOVHUB_VAR_DIR>/certs``), each overridable on its own:

    - ``GOVHUB_TLS_CA`` (``<dir>/ca.crt``): the one CA trusted, by servers and clients alike;
    - ``GOVHUB_<SERVICE>_TLS_CERT`` / ``_KEY`` (``<dir>/<service>.crt`` / ``.key``): a service's server
      certificate and key;
    - ``GOVHUB_<CALLER>_TLS_CLIENT_CERT`` / ``_KEY`` (``<dir>/clients/<caller>.crt`` / ``.key``): the client
      certificate of a process that calls a department (``GATEWAY``, ``IDENTITY``); its subject CN is the
      client identity of the grants file;
    - ``GOVHUB_GRANTS_FILE`` (``services/common/grants.toml``): who may call which method;
    - ``GOVHUB_AUDIT_KEY_FILE`` (``<GOVHUB_VAR_DIR>/audit.key``): the HMAC key of the audit trail's record
      keys (hex or raw bytes, at least 32 bytes).

    With TLS off (the development default for ``make run``) there is no peer identity: grants are not
    enforced (the service says so in a warning at start) and a missing audit key file is created.
    With TLS on the audit key file must exist: every service must use the same key.
    """

    tls: bool = False
    server_tls: TlsFiles | None = None
    client_tls: TlsFiles | None = None
    grants_file: Path = DEFAULT_GRANTS_FILE
    audit_key_file: Path | None = None  # None: <var_dir>/audit.key

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], common: CommonSettings, *, server: str | None, caller: str | None
    ) -> SecuritySettings:
        tls = _choice(env, "GOVHUB_TLS", "off", ("on", "off")) == "on"
        grants_file = _existing(
            "GOVHUB_GRANTS_FILE", Path(_get(env, "GOVHUB_GRANTS_FILE", str(DEFAULT_GRANTS_FILE)))
        )
        audit_key_file = Path(_get(env, "GOVHUB_AUDIT_KEY_FILE", str(common.var_dir / "audit.key")))
        if not tls:
            return cls(False, None, None, grants_file, audit_key_file)
        hint = " (run `make certs` for a development CA and certificates)"
        directory = Path(_get(env, "GOVHUB_TLS_DIR", str(common.var_dir / "certs")))

        def path(name: str, default: Path) -> Path:
            return _existing(name, Path(_get(env, name, str(default))), hint)

        ca = path("GOVHUB_TLS_CA", directory / "ca.crt")
        server_tls = client_tls = None
        if server is not None:
            prefix = f"GOVHUB_{server.upper()}_TLS"
            server_tls = TlsFiles(
                ca,
                path(f"{prefix}_CERT", directory / f"{server}.crt"),
                path(f"{prefix}_KEY", directory / f"{server}.key"),
            )
        if caller is not None and caller in CALLERS:
            prefix = f"GOVHUB_{caller.upper()}_TLS_CLIENT"
            client_tls = TlsFiles(
                ca,
                path(f"{prefix}_CERT", directory / "clients" / f"{caller}.crt"),
                path(f"{prefix}_KEY", directory / "clients" / f"{caller}.key"),
            )
        _existing(
            "GOVHUB_AUDIT_KEY_FILE", audit_key_file, " (with GOVHUB_TLS=on every service must share one key)"
        )
        return cls(True, server_tls, client_tls, grants_file, audit_key_file)

    def audit_key_path(self, common: CommonSettings) -> Path:
        return self.audit_key_file or common.var_dir / "audit.key"


def _database_url(env: Mapping[str, str], prefix: str, name: str, var_dir: Path) -> str:
    url = _get(env, f"{prefix}_DATABASE_URL", f"sqlite+aiosqlite:///{var_dir / (name + '.db')}")
    if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
        raise SettingsError(
            f"{prefix}_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    return url


def database_url_from_env(process: str, env: Mapping[str, str]) -> str:
    """One process's database URL (``GOVHUB_<PROCESS>_DATABASE_URL``, default under ``GOVHUB_VAR_DIR``),
    read without the process's other settings: ``python -m deploy.migrate`` needs nothing else."""
    if process not in (*SERVICES, "gateway"):
        raise SettingsError(f"unknown process {process!r}")
    return _database_url(env, f"GOVHUB_{process.upper()}", process, CommonSettings.from_env(env).var_dir)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """One department service (identity, residence or permits)."""

    service: str
    host: str
    port: int
    database_url: str
    common: CommonSettings = field(default_factory=CommonSettings)
    db_pool_size: int = 20
    shutdown_grace: float = 10.0
    health_interval: float = 5.0
    # Other departments this one calls (identity asks residence for hukou facts).
    residence_target: str = f"127.0.0.1:{DEFAULT_PORTS['residence']}"
    call_timeout: float = 5.0
    security: SecuritySettings = field(default_factory=SecuritySettings)
    # Prometheus metrics on a port of their own (GOVHUB_<SERVICE>_METRICS_LISTEN; None: off). Built
    # directly (tests) a service serves none; from the environment the default is 127.0.0.1:915x.
    metrics_listen: tuple[str, int] | None = None
    # GOVHUB_<SERVICE>_PROBE_LISTEN: a plaintext port serving the gRPC health service and nothing else,
    # for probes that cannot present a client certificate (Kubernetes' native gRPC probes) when
    # GOVHUB_TLS=on. None (unset or "off"): no such port.
    probe_listen: tuple[str, int] | None = None

    @property
    def listen_setting(self) -> str:
        return f"GOVHUB_{self.service.upper()}_LISTEN"

    @property
    def metrics_listen_setting(self) -> str:
        return f"GOVHUB_{self.service.upper()}_METRICS_LISTEN"

    @property
    def probe_listen_setting(self) -> str:
        return f"GOVHUB_{self.service.upper()}_PROBE_LISTEN"

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str]) -> ServiceSettings:
        if service not in SERVICES:
            raise SettingsError(f"unknown service {service!r}")
        common = CommonSettings.from_env(env)
        prefix = f"GOVHUB_{service.upper()}"
        host, port = _listen(env, f"{prefix}_LISTEN", DEFAULT_PORTS[service])
        return cls(
            service=service,
            host=host,
            port=port,
            database_url=_database_url(env, prefix, service, common.var_dir),
            common=common,
            db_pool_size=_int(env, f"{prefix}_DB_POOL_SIZE", 20, minimum=1),
            shutdown_grace=_float(env, "GOVHUB_SHUTDOWN_GRACE", 10.0),
            health_interval=_float(env, "GOVHUB_HEALTH_INTERVAL", 5.0),
            residence_target=_get(
                env, f"{prefix}_RESIDENCE_TARGET", f"127.0.0.1:{DEFAULT_PORTS['residence']}"
            ),
            call_timeout=_float(env, "GOVHUB_CALL_TIMEOUT", 5.0),
            security=SecuritySettings.from_env(env, common, server=service, caller=service),
            metrics_listen=_optional_listen(env, f"{prefix}_METRICS_LISTEN", DEFAULT_METRICS_PORTS[service]),
            probe_listen=_listen_or_off(env, f"{prefix}_PROBE_LISTEN"),
        )


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str
    port: int
    database_url: str
    identity_target: str
    residence_target: str
    permits_target: str
    common: CommonSettings = field(default_factory=CommonSettings)
    db_pool_size: int = 20
    call_timeout: float = 5.0
    submit_wait: float = 8.0
    retry_base: float = 0.5
    retry_max: float = 30.0
    max_attempts: int = 8
    shutdown_grace: float = 10.0
    materials_dir: Path = Path("var/materials")
    material_max_bytes: int = 10 * 1024 * 1024
    # Bearer tokens (gateway/auth.py): HS256 with a shared secret (development) or RS256/ES256 with the
    # public keys of a PEM file (production). With neither set, a development secret is generated once
    # into <var_dir>/dev-jwt-secret.
    jwt_issuer: str = "govhub"
    jwt_audience: str = "govhub-gateway"
    jwt_secret_file: Path | None = None
    jwt_public_keys_file: Path | None = None
    jwt_leeway: float = 30.0
    page_size_max: int = 100  # every list answers at most this many items a page
    progress_rate: float = 1.0  # public progress lookups per second per client address (token bucket)
    progress_burst: int = 20
    notify_interval: float = 2.0  # how often the notifier looks for case milestones
    security: SecuritySettings = field(default_factory=SecuritySettings)

    listen_setting = "GOVHUB_GATEWAY_LISTEN"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        common = CommonSettings.from_env(env)
        host, port = _listen(env, "GOVHUB_GATEWAY_LISTEN", DEFAULT_PORTS["gateway"])
        return cls(
            host=host,
            port=port,
            database_url=_database_url(env, "GOVHUB_GATEWAY", "gateway", common.var_dir),
            identity_target=_get(
                env, "GOVHUB_GATEWAY_IDENTITY_TARGET", f"127.0.0.1:{DEFAULT_PORTS['identity']}"
            ),
            residence_target=_get(
                env, "GOVHUB_GATEWAY_RESIDENCE_TARGET", f"127.0.0.1:{DEFAULT_PORTS['residence']}"
            ),
            permits_target=_get(
                env, "GOVHUB_GATEWAY_PERMITS_TARGET", f"127.0.0.1:{DEFAULT_PORTS['permits']}"
            ),
            common=common,
            db_pool_size=_int(env, "GOVHUB_GATEWAY_DB_POOL_SIZE", 20, minimum=1),
            call_timeout=_float(env, "GOVHUB_CALL_TIMEOUT", 5.0),
            submit_wait=_float(env, "GOVHUB_GATEWAY_SUBMIT_WAIT", 8.0),
            retry_base=_float(env, "GOVHUB_GATEWAY_RETRY_BASE", 0.5),
            retry_max=_float(env, "GOVHUB_GATEWAY_RETRY_MAX", 30.0),
            max_attempts=_int(env, "GOVHUB_GATEWAY_MAX_ATTEMPTS", 8, minimum=1),
            shutdown_grace=_float(env, "GOVHUB_SHUTDOWN_GRACE", 10.0),
            materials_dir=Path(_get(env, "GOVHUB_GATEWAY_MATERIALS_DIR", str(common.var_dir / "materials"))),
            material_max_bytes=_int(env, "GOVHUB_GATEWAY_MATERIAL_MAX_BYTES", 10 * 1024 * 1024, minimum=1024),
            jwt_issuer=_get(env, "GOVHUB_GATEWAY_JWT_ISSUER", "govhub"),
            jwt_audience=_get(env, "GOVHUB_GATEWAY_JWT_AUDIENCE", "govhub-gateway"),
            jwt_secret_file=_optional_path(env, "GOVHUB_GATEWAY_JWT_SECRET_FILE"),
            jwt_public_keys_file=_optional_path(env, "GOVHUB_GATEWAY_JWT_PUBLIC_KEYS"),
            jwt_leeway=_float(env, "GOVHUB_GATEWAY_JWT_LEEWAY", 30.0),
            page_size_max=_int(env, "GOVHUB_GATEWAY_PAGE_SIZE_MAX", 100, minimum=1),
            progress_rate=_float(env, "GOVHUB_GATEWAY_PROGRESS_RATE", 1.0),
            progress_burst=_int(env, "GOVHUB_GATEWAY_PROGRESS_BURST", 20, minimum=1),
            notify_interval=_float(env, "GOVHUB_GATEWAY_NOTIFY_INTERVAL", 2.0),
            security=SecuritySettings.from_env(env, common, server=None, caller="gateway"),
        )
