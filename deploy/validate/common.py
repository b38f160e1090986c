"""What every check of ``make deploy-lint`` shares: where deploy/ is, govhub's fixed facts about its
processes, the error every check raises, and a rendered Kubernetes object with where it came from."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.32.0"
DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
OVERLAYS_DIR = DEPLOY / "k8s" / "overlays"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POSTGRES_INIT = DEPLOY / "postgres" / "init-databases.sh"
MAKEFILE = ROOT / "Makefile"
README = ROOT / "docs" / "operations.md"

# The image's fixed non-root user (deploy/Dockerfile); pods and compose must run as it.
GOVHUB_UID = 10001
# `python -m <module>` -> the govhub process it starts.
PROCESSES = {
    "services.identity": "identity",
    "services.residence": "residence",
    "services.permits": "permits",
    "gateway": "gateway",
}
DEPARTMENTS = ("identity", "residence", "permits")
# Secrets an overlay deliberately does not ship: they are created out of band (docs/operations.md).
EXTERNAL_SECRETS = {
    "production": {f"govhub-{p}-database" for p in (*DEPARTMENTS, "gateway")}
    | {"govhub-audit-key", "govhub-gateway-jwt"}
    # Certificates (keys ca.crt, tls.crt, tls.key), e.g. from cert-manager (deploy/k8s/cert-manager).
    | {f"govhub-{d}-tls" for d in DEPARTMENTS}
    | {"govhub-gateway-client-tls", "govhub-identity-client-tls"},
}
DOCKERIGNORE_REQUIRED = (".venv", "gen", "var", ".git", ".tools")

KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}
CLUSTER_SCOPED = {"Namespace"}
NAMESPACED = {
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Deployment",
    "StatefulSet",
    "Service",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
}
WORKLOADS = {"Deployment", "StatefulSet"}


class DeployError(Exception):
    """A deploy file is wrong; the message names the file and the object."""


@dataclass
class Resource:
    obj: dict[str, Any]
    source: Path

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "?"))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", "?"))

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def where(self) -> str:
        return f"{rel(self.source)}: {self.kind}/{self.name}"

    def fail(self, message: str) -> DeployError:
        return DeployError(f"{self.where()}: {message}")


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_documents(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as exc:
        raise DeployError(f"{rel(path)}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise DeployError(f"{rel(path)}: cannot read: {exc.strerror}") from None
    for doc in docs:
        if not isinstance(doc, dict):
            raise DeployError(f"{rel(path)}: every YAML document must be a mapping")
    return docs


def split_image(image: str) -> tuple[str, str | None, str | None]:
    name, digest = image.split("@", 1) if "@" in image else (image, None)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for field_name in ("initContainers", "containers"):
        yield from pod.get(field_name, []) or []


def process_of(container: Mapping[str, Any]) -> str | None:
    command = [str(c) for c in (container.get("command") or []) + (container.get("args") or [])]
    if len(command) >= 3 and command[0] == "python" and command[1] == "-m":
        return PROCESSES.get(command[2])
    return None


def seconds(value: Any) -> float:
    """A compose duration (``20s``, ``1m30s``) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    total, matched = 0.0, False
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        matched = True
    if not matched:
        raise ValueError(f"not a duration: {value!r}")
    return total
