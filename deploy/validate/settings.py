"""govhub's settings as govhub's own settings code reads them: which ``GOVHUB_*`` names exist, whether a
process accepts the settings a manifest gives it, and which departments it then calls."""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from deploy.validate.common import PROCESSES, DeployError
from services.common.settings import GatewaySettings, ServiceSettings, SettingsError


class _Recording(Mapping[str, str]):
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.env[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.env.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


def read_settings(process: str, env: Mapping[str, str]) -> ServiceSettings | GatewaySettings:
    if process == "gateway":
        return GatewaySettings.from_env(env)
    return ServiceSettings.from_env(process, env)


@functools.cache
def known_settings() -> frozenset[str]:
    """Every GOVHUB_* variable the four processes read, found by asking govhub's settings code: each
    process's settings are read from an empty environment and again with ``GOVHUB_TLS=on``, recording
    every name looked up. Files the settings insist on (certificates) are created empty in a scratch
    ``GOVHUB_VAR_DIR`` until the settings are satisfied."""
    known: set[str] = set()
    for process in PROCESSES.values():
        for extra in ({}, {"GOVHUB_TLS": "on"}):
            with tempfile.TemporaryDirectory() as scratch:
                for _ in range(50):
                    env = _Recording({"GOVHUB_VAR_DIR": scratch, **extra})
                    try:
                        read_settings(process, env)
                        break
                    except SettingsError as exc:
                        missing = re.match(r"GOVHUB_\w+=(.+?): no such file", str(exc))
                        path = Path(missing.group(1)) if missing else None
                        if path is None or not path.resolve().is_relative_to(Path(scratch).resolve()):
                            break  # a setting this probe cannot satisfy: keep what was read so far
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.touch()
                    finally:
                        known |= env.read
    return frozenset(known)


def check_settings(
    where: str, process: str, env: Mapping[str, str], file_mounts: Iterable[str] = ()
) -> ServiceSettings | GatewaySettings:
    """Parse `env` with govhub's own settings code. Files that live in `file_mounts` (Secret and
    ConfigMap volumes, present only in the running pod) are stood in for by scratch files."""
    unknown = sorted(k for k in env if k.startswith("GOVHUB_") and k not in known_settings())
    if unknown:
        raise DeployError(
            f"{where}: unknown setting(s) {', '.join(unknown)} (a typo? see docs/operations.md)"
        )
    with tempfile.TemporaryDirectory() as scratch:
        probe = dict(env)
        for key, value in env.items():
            if key.startswith("GOVHUB_") and any(value.startswith(m.rstrip("/") + "/") for m in file_mounts):
                stand_in = Path(scratch, key)
                stand_in.write_text("0" * 64, encoding="ascii")
                probe[key] = str(stand_in)
        try:
            settings = read_settings(process, probe)
        except SettingsError as exc:
            raise DeployError(f"{where}: govhub refuses its settings: {exc}") from None
    if settings.host not in ("0.0.0.0", "::"):
        raise DeployError(
            f"{where}: {settings.listen_setting} must listen on 0.0.0.0:<port> in a container, "
            f"not {settings.host}"
        )
    return settings


def targets(settings: ServiceSettings | GatewaySettings) -> dict[str, str]:
    """The departments this process calls: name -> host:port."""
    if isinstance(settings, GatewaySettings):
        return {
            "identity": settings.identity_target,
            "residence": settings.residence_target,
            "permits": settings.permits_target,
        }
    if settings.service == "identity":
        return {"residence": settings.residence_target}
    return {}


def host_port(where: str, target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise DeployError(f"{where}: target {target!r} must be HOST:PORT")
    return host, int(port)
