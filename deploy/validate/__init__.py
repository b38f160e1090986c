"""Offline checks of everything under deploy/ (``make deploy-lint``; part of ``make lint``).

1. **Kubernetes overlays** (``kustomize``): each overlay under ``deploy/k8s/overlays`` is rendered by a
   small kustomize resolver that implements exactly the kustomize features govhub's kustomizations use
   (JSON patches through the ``jsonpatch`` library). When ``kubectl`` (with its built-in kustomize) is on
   the PATH, every overlay is rendered again with ``kubectl kustomize`` and must give the same objects,
   which keeps the resolver honest; without it that cross-check is skipped with a note.
2. **Schemas** (``schemas``): every rendered object against the Kubernetes JSON schemas, strict.
3. **govhub's rules** (``cluster``, ``tls``, ``settings``) on the rendered objects: hardened pods,
   probes, drains, references, settings govhub accepts, network paths; a production overlay runs mutual
   TLS with its certificates from Secrets and probes on the health-only probe port; the optional
   cert-manager ``Certificate`` example issues exactly the Secrets the manifests mount.
4. **compose.yaml** (``compose``): the Compose specification, then the same cross-checks.
5. **Dockerfile** (``dockerfile``) and ``.dockerignore``.

The first error stops the run with a message naming the file and the object, and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.validate.cluster import check_cluster, check_postgres_init
from deploy.validate.common import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    KUBERNETES_VERSION,
    MAKEFILE,
    OVERLAYS_DIR,
    POSTGRES_INIT,
    README,
    DeployError,
    Resource,
    rel,
)
from deploy.validate.compose import check_compose
from deploy.validate.dockerfile import check_dockerfile
from deploy.validate.kustomize import build_kustomization, cross_check, kubectl_kustomize
from deploy.validate.schemas import validate_schemas
from deploy.validate.settings import known_settings
from deploy.validate.tls import CERT_MANAGER, check_cert_manager_example

__all__ = [
    "DEPLOY",
    "DOCKERIGNORE",
    "MAKEFILE",
    "OVERLAYS_DIR",
    "DeployError",
    "Resource",
    "build_kustomization",
    "check_cert_manager_example",
    "check_compose",
    "check_dockerfile",
    "check_overlay",
    "cross_check",
    "known_settings",
    "kubectl_kustomize",
    "main",
    "overlays",
]


def overlays() -> list[Path]:
    return sorted(p for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def check_overlay(
    directory: Path, *, use_kubectl: bool = True, postgres_init: Path = POSTGRES_INIT
) -> tuple[list[Resource], str | None]:
    """Render, cross-check, validate and apply govhub's rules to one overlay; returns the objects and
    the kubectl kustomize version used for the cross-check (None when it was skipped)."""
    resources = build_kustomization(directory)
    kustomize_version = None
    if use_kubectl:
        rendered = kubectl_kustomize(directory)
        if rendered is not None:
            kustomize_version, objects = rendered
            cross_check(directory, resources, objects)
    validate_schemas(resources)
    check_cluster(directory.name, resources)
    check_postgres_init(resources, postgres_init)
    return resources, kustomize_version


def undocumented_settings(readme: Path = README) -> list[str]:
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    return sorted(name for name in known_settings() if name not in text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-kubectl", action="store_true", help="skip the kubectl kustomize cross-check")
    args = parser.parse_args(argv)
    try:
        for directory in overlays():
            resources, version = check_overlay(directory, use_kubectl=not args.no_kubectl)
            crossed = (
                f"same as kubectl kustomize {version}" if version else "kubectl not found: resolver only"
            )
            print(
                f"deploy: {rel(directory)}: {len(resources)} objects valid (Kubernetes {KUBERNETES_VERSION}, "
                f"strict); {crossed}"
            )
        production = [d for d in overlays() if d.name == "production"]
        if production:
            certificates = check_cert_manager_example(build_kustomization(production[0]))
            print(
                f"deploy: {rel(CERT_MANAGER)}: {certificates} Certificates, exactly the Secrets the "
                "production overlay mounts"
            )
        check_compose()
        print(f"deploy: {rel(COMPOSE)}: valid Compose file, health-gated, settings accepted")
        check_dockerfile()
        print(f"deploy: {rel(DOCKERFILE)}, {rel(DOCKERIGNORE)}: multi-stage, non-root, gencode built inside")
    except DeployError as exc:
        print(f"deploy-lint: {exc}", file=sys.stderr)
        return 1
    for name in undocumented_settings():
        print(f"deploy-lint: warning: {name} is not described in {rel(README)}", file=sys.stderr)
    return 0
