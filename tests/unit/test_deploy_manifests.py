"""deploy/ stays valid: every overlay renders and validates against the Kubernetes schemas, compose and the
Dockerfile pass their checks, and deliberately broken copies fail with a message naming file and object."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy import validate
from deploy.validate import DeployError

OVERLAYS = [p.name for p in validate.overlays()]


def test_there_are_two_overlays() -> None:
    assert OVERLAYS == ["development", "production"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    resources, _ = validate.check_overlay(validate.OVERLAYS_DIR / overlay, use_kubectl=False)
    kinds = {r.kind for r in resources}
    assert {
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds
    assert all(r.obj["metadata"].get("namespace") == "govhub" for r in resources if r.kind != "Namespace")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resolver_agrees_with_kubectl_kustomize(overlay: str) -> None:
    directory = validate.OVERLAYS_DIR / overlay
    rendered = validate.kubectl_kustomize(directory)
    if rendered is None:
        pytest.skip("this kubectl has no built-in kustomize")
    validate.cross_check(directory, validate.build_kustomization(directory), rendered[1])


def test_production_differs_where_it_should() -> None:
    dev = {r.key: r.obj for r in validate.build_kustomization(validate.OVERLAYS_DIR / "development")}
    prod = {r.key: r.obj for r in validate.build_kustomization(validate.OVERLAYS_DIR / "production")}
    assert prod[("HorizontalPodAutoscaler", "gateway")]["spec"]["minReplicas"] > 1
    assert (
        prod[("HorizontalPodAutoscaler", "gateway")]["spec"]["minReplicas"]
        > dev[("HorizontalPodAutoscaler", "gateway")]["spec"]["minReplicas"]
    )
    image = prod[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "govhub:0.1.0"
    assert ("Secret", "govhub-gateway-database") in dev
    assert not any(kind == "Secret" for kind, _ in prod), "production ships no Secrets"


def test_compose_dockerfile_and_init_script() -> None:
    validate.check_compose()
    validate.check_dockerfile()


def test_the_whole_run_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main(["--no-kubectl"]) == 0
    assert "deploy/compose.yaml: valid Compose file" in capsys.readouterr().out


def test_known_settings_come_from_the_settings_code() -> None:
    known = validate.known_settings()
    assert {
        "GOVHUB_SHUTDOWN_GRACE",
        "GOVHUB_GATEWAY_MATERIALS_DIR",
        "GOVHUB_IDENTITY_RESIDENCE_TARGET",
    } <= known
    assert "GOVHUB_IDENTITY_LISTN" not in known


def test_json_patch_operations() -> None:
    doc = {"spec": {"a": [1, 2], "b": {"c": 1}}}
    validate.json_patch(doc, {"op": "add", "path": "/spec/a/-", "value": 3})
    validate.json_patch(doc, {"op": "replace", "path": "/spec/b/c", "value": 2})
    validate.json_patch(doc, {"op": "remove", "path": "/spec/a/0"})
    validate.json_patch(doc, {"op": "add", "path": "/spec/d~1e", "value": "x"})
    assert doc == {"spec": {"a": [2, 3], "b": {"c": 2}, "d/e": "x"}}
    with pytest.raises(KeyError):
        validate.json_patch(doc, {"op": "replace", "path": "/spec/missing", "value": 1})
    with pytest.raises(ValueError):
        validate.json_patch(doc, {"op": "move", "path": "/spec/a", "from": "/spec/b"})


# -- deliberately broken copies -----------------------------------------------------------------------


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """A copy of deploy/ (and the files the checks read beside it) to break."""
    target = tmp_path / "deploy"
    shutil.copytree(validate.DEPLOY, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    shutil.copy(validate.MAKEFILE, tmp_path / "Makefile")
    shutil.copy(validate.DOCKERIGNORE, tmp_path / ".dockerignore")
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN_OVERLAYS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a misspelt field": (
        lambda d: edit(d / "k8s/base/identity.yaml", "readinessProbe:", "readynessProbe:"),
        "identity.yaml: Deployment/identity: does not validate against Kubernetes 1.32",
    ),
    "a wrong type": (
        lambda d: edit(d / "k8s/base/gateway.yaml", "maxUnavailable: 1\n", "maxUnavailable: [1]\n"),
        "PodDisruptionBudget/gateway: does not validate",
    ),
    "a grace shorter than the drain": (
        lambda d: edit(
            d / "k8s/base/permits.yaml",
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 12",
        ),
        "Deployment/permits: terminationGracePeriodSeconds (12) must be longer",
    ),
    "a missing network path": (
        lambda d: edit(
            d / "k8s/base/networkpolicies.yaml",
            "name: identity-to-residence-egress\nspec:\n  podSelector:\n    matchLabels:\n"
            "      app.kubernetes.io/name: identity",
            "name: identity-to-residence-egress\nspec:\n  podSelector:\n    matchLabels:\n"
            "      app.kubernetes.io/name: permits",
        ),
        "Deployment/identity: no NetworkPolicy allows egress to residence on port 50052",
    ),
    "a missing ingress half": (
        lambda d: edit(
            d / "k8s/base/networkpolicies.yaml",
            "name: gateway-to-residence-ingress\nspec:\n  podSelector:\n    matchLabels:\n"
            "      app.kubernetes.io/name: residence",
            "name: gateway-to-residence-ingress\nspec:\n  podSelector:\n    matchLabels:\n"
            "      app.kubernetes.io/name: permits",
        ),
        "Deployment/residence: no NetworkPolicy allows ingress from gateway on port 50052",
    ),
    "a misspelt setting": (
        lambda d: edit(d / "k8s/base/settings.yaml", "GOVHUB_IDENTITY_LISTEN:", "GOVHUB_IDENTITY_LISTN:"),
        "unknown setting(s) GOVHUB_IDENTITY_LISTN",
    ),
    "a loopback listen address": (
        lambda d: edit(d / "k8s/base/settings.yaml", "0.0.0.0:8080", "127.0.0.1:8080"),
        "GOVHUB_GATEWAY_LISTEN must listen on 0.0.0.0:<port>",
    ),
    "a setting govhub refuses": (
        lambda d: edit(
            d / "k8s/base/settings.yaml", 'GOVHUB_SHUTDOWN_GRACE: "10"', "GOVHUB_SHUTDOWN_GRACE: ten"
        ),
        "govhub refuses its settings: GOVHUB_SHUTDOWN_GRACE='ten' is not a number",
    ),
    "a target no Service offers": (
        lambda d: edit(
            d / "k8s/base/settings.yaml",
            "GOVHUB_GATEWAY_PERMITS_TARGET: permits:50053",
            "GOVHUB_GATEWAY_PERMITS_TARGET: permit:50053",
        ),
        "calls permit:50053 (permits), but no Service permit offers port 50053",
    ),
    "a probe on the wrong port": (
        lambda d: edit(
            d / "k8s/base/residence.yaml",
            "grpc:\n              port: 50052",
            "grpc:\n              port: 50053",
        ),
        "startupProbe must be a native gRPC probe on port 50052",
    ),
    "a writable root file system": (
        lambda d: edit(
            d / "k8s/base/identity.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"
        ),
        "Deployment/identity: container identity: securityContext must set",
    ),
    "a token mounted": (
        lambda d: edit(
            d / "k8s/base/serviceaccounts.yaml",
            "name: permits\nautomountServiceAccountToken: false",
            "name: permits\nautomountServiceAccountToken: true",
        ),
        "Deployment/permits: its ServiceAccount must set automountServiceAccountToken: false",
    ),
    "a missing Secret": (
        lambda d: edit(
            d / "k8s/overlays/development/secrets.yaml", "name: govhub-permits-database", "name: other"
        ),
        "Deployment/permits: refers to Secret 'govhub-permits-database'",
    ),
    "an unpinned image": (
        lambda d: edit(d / "k8s/overlays/production/kustomization.yaml", 'newTag: "0.1.0"', "newTag: latest"),
        "image 'govhub:latest' must be pinned",
    ),
    "a patch of a path that is not there": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/gateway-hpa.yaml", "/spec/maxReplicas", "/spec/maxReplica"
        ),
        "gateway-hpa.yaml: on ",
    ),
    "a kustomize feature the resolver does not know": (
        lambda d: edit(
            d / "k8s/overlays/development/kustomization.yaml", "images:", "commonLabels: {a: b}\nimages:"
        ),
        "kustomize field(s) commonLabels are not supported",
    ),
    "no shared bearer-token key": (
        lambda d: edit(
            d / "k8s/overlays/development/patches/jwt-settings.yaml",
            "path: /data/GOVHUB_GATEWAY_JWT_SECRET_FILE\n  value: /etc/govhub/jwt/secret",
            'path: /data/GOVHUB_GATEWAY_JWT_LEEWAY\n  value: "30"',
        ),
        "Deployment/gateway: container gateway: every gateway replica must verify tokens with the same key",
    ),
    "a key file outside its volume": (
        lambda d: edit(
            d / "k8s/overlays/development/patches/jwt-settings.yaml",
            "/etc/govhub/jwt/secret",
            "/etc/jwt/secret",
        ),
        "govhub refuses its settings: GOVHUB_GATEWAY_JWT_SECRET_FILE=/etc/jwt/secret: no such file",
    ),
    "an audit key on the read-only root": (
        lambda d: edit(d / "k8s/base/settings.yaml", "/etc/govhub/audit/audit.key", "/etc/audit.key"),
        "the audit key /etc/audit.key must come from a mounted volume",
    ),
    "an init script out of step": (
        lambda d: edit(d / "postgres/init-databases.sh", "set -eu", "set -e"),
        "ConfigMap/postgresql-init: data init-databases.sh differs",
    ),
}


@pytest.mark.parametrize("case", BROKEN_OVERLAYS)
def test_a_broken_overlay_fails_naming_file_and_object(
    case: str, deploy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaks, message = BROKEN_OVERLAYS[case]
    breaks(deploy_copy)
    monkeypatch.setattr(validate, "POSTGRES_INIT", deploy_copy / "postgres/init-databases.sh")
    with pytest.raises(DeployError) as caught:
        for name in OVERLAYS:
            validate.check_overlay(deploy_copy / "k8s/overlays" / name, use_kubectl=False)
    assert message in str(caught.value)


BROKEN_COMPOSE: dict[str, tuple[str, str, str]] = {
    "a misspelt key": ("read_only: true", "read_onyl: true", "not a valid Compose file"),
    "a dependency with no healthcheck": (
        'test: ["CMD", "pg_isready"',
        'x: ["CMD", "pg_isready"',
        "not a valid Compose file",
    ),
    "a grace shorter than the drain": (
        "stop_grace_period: 20s",
        "stop_grace_period: 5s",
        "stop_grace_period must be longer",
    ),
    "a wrong target": (
        "GOVHUB_IDENTITY_RESIDENCE_TARGET: residence:50052",
        "GOVHUB_IDENTITY_RESIDENCE_TARGET: residence:50051",
        "service identity: calls residence:50051, but residence is not there",
    ),
    "root": ('user: "10001:10001"', 'user: "0:0"', "must run as the image's user 10001"),
}


@pytest.mark.parametrize("case", BROKEN_COMPOSE)
def test_a_broken_compose_file_fails(case: str, deploy_copy: Path) -> None:
    old, new, message = BROKEN_COMPOSE[case]
    edit(deploy_copy / "compose.yaml", old, new)
    with pytest.raises(DeployError) as caught:
        validate.check_compose(deploy_copy / "compose.yaml")
    assert message in str(caught.value)


def test_compose_needs_a_healthcheck_behind_service_healthy(deploy_copy: Path) -> None:
    text = (deploy_copy / "compose.yaml").read_text(encoding="utf-8")
    start = text.index('    healthcheck:\n      test: ["CMD", "pg_isready"')
    end = text.index("    restart: unless-stopped\n    stop_grace_period: 30s")
    (deploy_copy / "compose.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(
        DeployError, match="waits for postgres to be healthy, but postgres has no healthcheck"
    ):
        validate.check_compose(deploy_copy / "compose.yaml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("USER 10001:10001", "USER root", "needs USER with a fixed, non-root numeric UID"),
        ("USER 10001:10001", "USER 0", "needs USER with a fixed, non-root numeric UID"),
        ("FROM ${PYTHON_IMAGE} AS runtime", "FROM ${PYTHON_IMAGE}", "multi-stage build with named stages"),
        ("--pyi_out=/opt/govhub/gen", "", "missing: --pyi_out"),
        (
            "COPY --from=build /opt/govhub /opt/govhub",
            "COPY --from=build /opt/govhub /opt/govhub\nRUN pip install x",
            "no build tools in the runtime image",
        ),
    ],
)
def test_a_broken_dockerfile_fails(old: str, new: str, message: str, deploy_copy: Path) -> None:
    edit(deploy_copy / "Dockerfile", old, new)
    with pytest.raises(DeployError, match=re.escape(message)):
        validate.check_dockerfile(
            deploy_copy / "Dockerfile", deploy_copy.parent / "Makefile", deploy_copy.parent / ".dockerignore"
        )


def test_dockerignore_must_keep_the_venv_out(deploy_copy: Path) -> None:
    edit(deploy_copy.parent / ".dockerignore", "\n.venv\n", "\n")
    with pytest.raises(DeployError, match=re.escape("must exclude .venv")):
        validate.check_dockerfile(
            deploy_copy / "Dockerfile", deploy_copy.parent / "Makefile", deploy_copy.parent / ".dockerignore"
        )
