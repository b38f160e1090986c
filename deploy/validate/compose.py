"""``deploy/compose.yaml``: parsed and validated against the Compose specification by the
``compose-spec`` package, then cross-checked like the manifests (health-gated ``depends_on``, settings
govhub accepts, targets that are there, declared volumes, hardened services)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from compose_spec import PyOptions

from deploy.validate.common import COMPOSE, GOVHUB_UID, PROCESSES, DeployError, process_of, rel, seconds
from deploy.validate.settings import check_settings, host_port, targets
from services.common.settings import GatewaySettings, ServiceSettings


def check_compose(path: Path = COMPOSE) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        PyOptions(apply_merge=True).from_yaml(text).validate()
    except ValueError as exc:
        raise DeployError(f"{rel(path)}: not a valid Compose file: {exc}") from None
    doc = yaml.safe_load(text)
    services: dict[str, dict[str, Any]] = doc.get("services", {})
    volumes = set(doc.get("volumes") or {})
    govhub: dict[str, tuple[str, ServiceSettings | GatewaySettings]] = {}
    images = set()
    for name, svc in services.items():
        where = f"{rel(path)}: service {name}"
        deps = svc.get("depends_on", {})
        for dep, cond in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            if dep not in services:
                raise DeployError(f"{where}: depends on {dep!r}, which is not a service")
            if (cond or {}).get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                raise DeployError(f"{where}: waits for {dep} to be healthy, but {dep} has no healthcheck")
        for mount in svc.get("volumes", []):
            source = str(mount).split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (path.parent / source).exists():
                    raise DeployError(f"{where}: bind mount {source} does not exist")
            elif source not in volumes:
                raise DeployError(f"{where}: volume {source!r} is not declared under volumes:")
        if "build" in svc:
            build = svc["build"]
            context = path.parent / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                raise DeployError(f"{where}: build: no {build.get('dockerfile')} in {build.get('context')}")
        command = svc.get("command")
        process = process_of({"command": shlex.split(command) if isinstance(command, str) else command or []})
        if process is None:
            continue
        images.add(svc.get("image"))
        env = {str(k): str(v) for k, v in (svc.get("environment") or {}).items()}
        settings = check_settings(where, process, env)
        user = str(svc.get("user", "0")).split(":", 1)[0]
        if user != str(GOVHUB_UID):
            raise DeployError(f"{where}: must run as the image's user {GOVHUB_UID}")
        if svc.get("read_only") is not True or "ALL" not in svc.get("cap_drop", []):
            raise DeployError(f"{where}: must be read_only with cap_drop [ALL]")
        if seconds(svc.get("stop_grace_period", "10s")) <= settings.shutdown_grace:
            raise DeployError(f"{where}: stop_grace_period must be longer than GOVHUB_SHUTDOWN_GRACE")
        targets_mounted = {
            str(m).split(":")[1] if isinstance(m, str) else m.get("target") for m in svc.get("volumes", [])
        }
        if str(settings.common.var_dir) not in targets_mounted:
            raise DeployError(
                f"{where}: GOVHUB_VAR_DIR ({settings.common.var_dir}) must be a volume (read_only)"
            )
        test = (svc.get("healthcheck") or {}).get("test") or []
        if not any(str(settings.port) in str(part) for part in test[1:]):
            raise DeployError(f"{where}: the healthcheck must probe the port it listens on ({settings.port})")
        govhub[name] = (process, settings)
    if set(p for p, _ in govhub.values()) != set(PROCESSES.values()):
        raise DeployError(f"{rel(path)}: must run all four govhub processes")
    if len(images) != 1:
        raise DeployError(
            f"{rel(path)}: every govhub process must use the same image (found {sorted(map(str, images))})"
        )
    ports = {name: settings.port for name, (_, settings) in govhub.items()}
    for name, (_, settings) in govhub.items():
        for department, target in targets(settings).items():
            host, port = host_port(f"{rel(path)}: service {name}", target)
            if ports.get(host) != port or govhub[host][0] != department:
                raise DeployError(
                    f"{rel(path)}: service {name}: calls {target}, but {department} is not there"
                )
            deps = services[name].get("depends_on", {})
            if (deps.get(host) or {}).get("condition") != "service_healthy":
                raise DeployError(f"{rel(path)}: service {name}: must wait for {host} to be healthy")
