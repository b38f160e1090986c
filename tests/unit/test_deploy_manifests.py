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


def test_production_runs_mutual_tls_and_probes_the_probe_port() -> None:
    prod = {r.key: r.obj for r in validate.build_kustomization(validate.OVERLAYS_DIR / "production")}
    settings = prod[("ConfigMap", "govhub-settings")]["data"]
    assert settings["GOVHUB_TLS"] == "on"
    assert settings["GOVHUB_IDENTITY_TLS_CLIENT_CERT"] == "/etc/govhub/tls/clients/identity.crt"
    identity = prod[("Deployment", "identity")]["spec"]["template"]["spec"]
    tls = identity["volumes"][0]
    assert tls["name"] == "tls"
    assert [(s["secret"]["name"], s["secret"]["optional"]) for s in tls["projected"]["sources"]] == [
        ("govhub-identity-tls", False),
        ("govhub-identity-client-tls", False),
    ]
    container = identity["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["probe"] == 9251
    assert container["readinessProbe"]["grpc"] == {"port": 9251}
    assert settings["GOVHUB_IDENTITY_PROBE_LISTEN"] == "0.0.0.0:9251"
    dev = {r.key: r.obj for r in validate.build_kustomization(validate.OVERLAYS_DIR / "development")}
    assert dev[("ConfigMap", "govhub-settings")]["data"]["GOVHUB_TLS"] == "off"


def test_the_cert_manager_example_issues_what_production_mounts() -> None:
    production = validate.build_kustomization(validate.OVERLAYS_DIR / "production")
    assert validate.check_cert_manager_example(production) == 5


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
            "grpc:\n              port: 9252",
            "grpc:\n              port: 50052",
        ),
        "startupProbe must be a native gRPC probe on the probe port 9252 (GOVHUB_RESIDENCE_PROBE_LISTEN)",
    ),
    "no probe port": (
        lambda d: edit(d / "k8s/base/settings.yaml", "  GOVHUB_PERMITS_PROBE_LISTEN: 0.0.0.0:9253\n", ""),
        "Deployment/permits: container permits: set GOVHUB_PERMITS_PROBE_LISTEN",
    ),
    "a probe port on loopback": (
        lambda d: edit(d / "k8s/base/settings.yaml", "0.0.0.0:9253", "127.0.0.1:9253"),
        "GOVHUB_PERMITS_PROBE_LISTEN must listen on 0.0.0.0:<port>",
    ),
    "a probe port that is the metrics port": (
        lambda d: edit(d / "k8s/base/settings.yaml", "0.0.0.0:9253", "0.0.0.0:9153"),
        "GOVHUB_PERMITS_PROBE_LISTEN (9153) must be a port of its own",
    ),
    "a probe container port out of step": (
        lambda d: edit(d / "k8s/base/identity.yaml", "containerPort: 9251", "containerPort: 9250"),
        "Deployment/identity: container identity: the container port named 'probe' must be 9251",
    ),
    "a Service offering the probe port": (
        lambda d: edit(
            d / "k8s/base/identity.yaml",
            "    - name: metrics\n      port: 9151\n",
            "    - name: probe\n      port: 9251\n      targetPort: probe\n      protocol: TCP\n"
            "    - name: metrics\n      port: 9151\n",
        ),
        "Service/identity: exposes the probe port 9251 of identity: it is for the kubelet only",
    ),
    "production with mutual TLS off": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/tls-settings.yaml", 'value: "on"', 'value: "off"'
        ),
        "a production overlay must run mutual TLS (GOVHUB_TLS=on)",
    ),
    "production without its TLS settings": (
        lambda d: edit(
            d / "k8s/overlays/production/kustomization.yaml",
            "  - path: patches/tls-settings.yaml\n    target:\n      kind: ConfigMap\n"
            "      name: govhub-settings\n",
            "",
        ),
        "a production overlay must run mutual TLS",
    ),
    "a certificate Secret optional in production": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/identity-client-tls-required.yaml",
            "value: false",
            "value: true",
        ),
        "Secret govhub-identity-client-tls (GOVHUB_IDENTITY_TLS_CLIENT_CERT) may not be optional",
    ),
    "a certificate file no Secret delivers": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/tls-settings.yaml",
            "/etc/govhub/tls/permits.key",
            "/etc/govhub/tls/permits.pem",
        ),
        "GOVHUB_PERMITS_TLS_KEY=/etc/govhub/tls/permits.pem: no Secret of the volume at /etc/govhub/tls",
    ),
    "a certificate on no mounted Secret": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/tls-settings.yaml",
            "value: /etc/govhub/tls/ca.crt",
            "value: /var/lib/govhub/ca.crt",
        ),
        "govhub refuses its settings: GOVHUB_TLS_CA=/var/lib/govhub/ca.crt: no such file",
    ),
    "a patch guard that does not hold": (
        lambda d: edit(
            d / "k8s/overlays/production/patches/tls-secrets-required.yaml", "value: tls", "value: tmp"
        ),
        "/gateway.yaml: Deployment/gateway: test /spec/template/spec/volumes/0/name: tls",
    ),
    "a gateway without the shared audit key": (
        lambda d: edit(
            d / "k8s/base/gateway.yaml",
            "            - name: audit-key\n              mountPath: /etc/govhub/audit\n",
            "            - name: audit-key\n              mountPath: /etc/govhub/audit-key\n",
        ),
        "Deployment/gateway: container gateway: the audit key /etc/govhub/audit/audit.key must come from a "
        "mounted volume",
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
def test_a_broken_overlay_fails_naming_file_and_object(case: str, deploy_copy: Path) -> None:
    breaks, message = BROKEN_OVERLAYS[case]
    breaks(deploy_copy)
    with pytest.raises(DeployError) as caught:
        for name in OVERLAYS:
            validate.check_overlay(
                deploy_copy / "k8s/overlays" / name,
                use_kubectl=False,
                postgres_init=deploy_copy / "postgres/init-databases.sh",
            )
    assert message in str(caught.value)


BROKEN_CERTIFICATES: dict[str, tuple[str, str, str]] = {
    "a Secret nobody mounts": (
        "secretName: govhub-permits-tls",
        "secretName: govhub-permit-tls",
        "the Certificates issue ['govhub-gateway-client-tls', 'govhub-identity-client-tls', "
        "'govhub-identity-tls', 'govhub-permit-tls', 'govhub-residence-tls'], but the production overlay "
        "mounts",
    ),
    "a client identity grants.toml does not know": (
        "commonName: gateway",
        "commonName: hall-gateway",
        "Certificate/govhub-gateway-client-tls: a client certificate needs usage 'client auth' and "
        "commonName 'gateway'",
    ),
    "a server certificate for another name": (
        "    - residence.govhub.svc\n",
        "    - residence.other.svc\n",
        "Certificate/govhub-residence-tls: a server certificate needs usage 'server auth' and dnsNames",
    ),
    "a server certificate used as a client one": (
        "    - server auth\n",
        "    - client auth\n",
        "Certificate/govhub-identity-tls: a server certificate needs usage 'server auth'",
    ),
}


@pytest.mark.parametrize("case", BROKEN_CERTIFICATES)
def test_a_broken_cert_manager_example_fails(case: str, deploy_copy: Path) -> None:
    old, new, message = BROKEN_CERTIFICATES[case]
    edit(deploy_copy / "k8s/cert-manager/certificates.yaml", old, new)
    production = validate.build_kustomization(validate.OVERLAYS_DIR / "production")
    with pytest.raises(DeployError) as caught:
        validate.check_cert_manager_example(production, deploy_copy / "k8s/cert-manager")
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
