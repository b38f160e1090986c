"""Mutual TLS and probes in the manifests (docs/operations.md, "Mutual TLS in production").

* A **production** overlay (its objects labelled ``govhub.gov.cn/environment: production``) runs every
  govhub process with ``GOVHUB_TLS=on``: with TLS off the grants are not enforced and gRPC between pods
  is plaintext. Its certificate Secrets may not be optional.
* With TLS on, every certificate and key a process reads comes from a Secret volume that delivers
  exactly that file (a ``secret`` volume or a ``projected`` one of Secrets, its ``items`` naming it).
* Each department is probed on its **probe port** (``GOVHUB_<SERVICE>_PROBE_LISTEN``): the gRPC health
  service alone, in plaintext, which a kubelet can reach while the grpc port demands a client
  certificate. Every probe is a native gRPC probe there, the container port is named ``probe``, and no
  Service exposes it (it is for the kubelet, not for clients).
* The optional cert-manager example (``deploy/k8s/cert-manager``) issues exactly the Secrets the
  production overlay mounts: server certificates naming the Services, client certificates whose
  subject CN is the client identity of ``services/common/grants.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

from deploy.validate.common import DEPARTMENTS, DEPLOY, DeployError, Resource, load_documents, rel
from services.common.grants import Grants
from services.common.settings import CALLERS, DEFAULT_GRANTS_FILE, GatewaySettings, ServiceSettings

PRODUCTION_LABEL = ("govhub.gov.cn/environment", "production")
CERT_MANAGER = DEPLOY / "k8s" / "cert-manager"
# The keys cert-manager (and `kubectl create secret tls` plus a ca.crt) write into a TLS Secret.
TLS_SECRET_KEYS = ("ca.crt", "tls.crt", "tls.key")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def is_production(resources: Iterable[Resource]) -> bool:
    key, value = PRODUCTION_LABEL
    return any(r.obj.get("metadata", {}).get("labels", {}).get(key) == value for r in resources)


def tls_file_settings(process: str) -> list[str]:
    """The GOVHUB_* variables naming the certificate files `process` reads with GOVHUB_TLS=on."""
    names = ["GOVHUB_TLS_CA"]
    if process in DEPARTMENTS:
        names += [f"GOVHUB_{process.upper()}_TLS_CERT", f"GOVHUB_{process.upper()}_TLS_KEY"]
    if process in CALLERS:
        names += [f"GOVHUB_{process.upper()}_TLS_CLIENT_CERT", f"GOVHUB_{process.upper()}_TLS_CLIENT_KEY"]
    return names


def secret_sources(volume: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The Secrets a volume delivers, each as {"name", "optional", "items"}; [] for any other volume."""
    if "secret" in volume:
        secret = volume["secret"]
        return [
            {
                "name": secret.get("secretName", ""),
                "optional": secret.get("optional", False),
                "items": secret.get("items"),
            }
        ]
    sources: list[Mapping[str, Any]] = []
    for source in (volume.get("projected") or {}).get("sources", []):
        if "secret" in source:
            secret = source["secret"]
            sources.append(
                {
                    "name": secret.get("name", ""),
                    "optional": secret.get("optional", False),
                    "items": secret.get("items"),
                }
            )
    return sources


def non_secret_sources(volume: Mapping[str, Any]) -> bool:
    projected = volume.get("projected")
    return projected is not None and any("secret" not in s for s in projected.get("sources", []))


def check_tls(
    res: Resource,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    process: str,
    settings: ServiceSettings | GatewaySettings,
    env: Mapping[str, str],
    *,
    production: bool,
) -> None:
    name = container["name"]
    if not settings.security.tls:
        if production:
            raise res.fail(
                f"container {name}: a production overlay must run mutual TLS (GOVHUB_TLS=on): with it off "
                "gRPC between pods is plaintext and the grants are not enforced"
            )
        return
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = [
        (PurePosixPath(m["mountPath"]), volumes.get(m["name"], {})) for m in container.get("volumeMounts", [])
    ]
    for setting in tls_file_settings(process):
        value = env.get(setting)
        if not value:
            raise res.fail(
                f"container {name}: with GOVHUB_TLS=on set {setting} to a file of a mounted Secret"
            )
        path = PurePosixPath(value)
        found = [(mount, volume) for mount, volume in mounts if path.is_relative_to(mount)]
        if not found:
            raise res.fail(f"container {name}: {setting}={value} is on no mounted volume")
        mount, volume = max(found, key=lambda f: len(f[0].parts))
        sources = secret_sources(volume)
        if not sources or non_secret_sources(volume):
            raise res.fail(f"container {name}: {setting}={value} must come from a Secret volume")
        relative = str(path.relative_to(mount))
        delivered = [
            s
            for s in sources
            if (s["items"] is None and relative in TLS_SECRET_KEYS)
            or any(item.get("path") == relative for item in s["items"] or [])
        ]
        if not delivered:
            raise res.fail(
                f"container {name}: {setting}={value}: no Secret of the volume at {mount} delivers it"
            )
        if production and any(s["optional"] for s in delivered):
            raise res.fail(
                f"container {name}: Secret {delivered[0]['name']} ({setting}) may not be optional "
                "in production"
            )


def probe_port(res: Resource, container: Mapping[str, Any], settings: ServiceSettings) -> int:
    """Check a department's probes go to its health-only probe port; returns that port."""
    name = container["name"]
    setting = settings.probe_listen_setting
    if settings.probe_listen is None:
        raise res.fail(
            f"container {name}: set {setting}: the probes go to a plaintext port serving health only, "
            "since the grpc port demands a client certificate when GOVHUB_TLS=on"
        )
    host, port = settings.probe_listen
    if host not in ("0.0.0.0", "::"):
        raise res.fail(
            f"container {name}: {setting} must listen on 0.0.0.0:<port> (the kubelet probes the pod IP)"
        )
    taken = {settings.port, settings.metrics_listen[1] if settings.metrics_listen else None}
    if port in taken:
        raise res.fail(f"container {name}: {setting} ({port}) must be a port of its own")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    if ports.get("probe") != port:
        raise res.fail(
            f"container {name}: the container port named 'probe' must be {port}, where {setting} listens"
        )
    for probe_name in PROBES:
        probe = container.get(probe_name)
        if probe is not None and probe.get("grpc", {}).get("port") != port:
            raise res.fail(
                f"container {name}: {probe_name} must be a native gRPC probe on the probe port "
                f"{port} ({setting})"
            )
    return port


def check_probe_ports_private(
    resources: Iterable[Resource], probe_ports: Mapping[str, tuple[Resource, int]]
) -> None:
    """No Service offers a probe port: it serves the kubelet, not clients."""
    for res in resources:
        if res.kind != "Service":
            continue
        selector = res.obj["spec"].get("selector", {})
        for workload, port in probe_ports.values():
            labels = workload.obj["spec"]["template"]["metadata"].get("labels", {})
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for entry in res.obj["spec"]["ports"]:
                if entry.get("targetPort") in ("probe", port) or (
                    "targetPort" not in entry and entry.get("port") == port
                ):
                    raise res.fail(
                        f"exposes the probe port {port} of {workload.name}: it is for the kubelet only"
                    )


# ----------------------------------------------------------------------------------------------------
# The optional cert-manager example


def check_cert_manager_example(production: list[Resource], directory: Any = CERT_MANAGER) -> int:
    """The example issues exactly the certificate Secrets the production overlay mounts, each fit for its
    use; returns how many Certificates it holds. cert-manager's resources are custom resources with no
    schema in kubernetes-validate: the fields used are checked here, strictly."""
    kfile = directory / "kustomization.yaml"
    spec = load_documents(kfile)[0]
    if set(spec) - {"apiVersion", "kind", "namespace", "resources"}:
        raise DeployError(f"{rel(kfile)}: only namespace and resources")
    namespace = spec.get("namespace")
    docs: list[tuple[Any, dict[str, Any]]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs += [(path, doc) for doc in load_documents(path)]
    issuers = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "Issuer"}
    certificates: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, doc in docs:
        where = f"{rel(path)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("apiVersion") != "cert-manager.io/v1" or doc.get("kind") not in ("Issuer", "Certificate"):
            raise DeployError(f"{where}: only cert-manager.io/v1 Issuer and Certificate")
        if doc["kind"] == "Issuer":
            continue
        cert = doc["spec"]
        unknown = set(cert) - {
            "secretName",
            "commonName",
            "dnsNames",
            "usages",
            "duration",
            "renewBefore",
            "privateKey",
            "issuerRef",
        }
        if unknown:
            raise DeployError(f"{where}: unknown field(s) {sorted(unknown)}")
        ref = cert.get("issuerRef", {})
        if ref.get("kind", "Issuer") == "Issuer" and ref.get("name") not in issuers:
            raise DeployError(f"{where}: issuerRef names no Issuer of the example")
        certificates[cert["secretName"]] = (where, cert)

    mounted: dict[str, str] = {}  # Secret -> the process that mounts it
    for res in production:
        if res.kind != "Deployment":
            continue
        for volume in res.obj["spec"]["template"]["spec"].get("volumes", []):
            if volume["name"] == "tls":
                for source in secret_sources(volume):
                    mounted[source["name"]] = res.name
    if set(certificates) != set(mounted):
        raise DeployError(
            f"{rel(directory)}: the Certificates issue {sorted(certificates)}, but the production overlay "
            f"mounts {sorted(mounted)}"
        )
    internal = {c.name for c in Grants.load(DEFAULT_GRANTS_FILE).clients.values() if not c.outside}
    for secret, (where, cert) in certificates.items():
        process = mounted[secret]
        usages = set(cert.get("usages", []))
        if secret.endswith("-client-tls"):
            if "client auth" not in usages or cert.get("commonName") != process or process not in internal:
                raise DeployError(
                    f"{where}: a client certificate needs usage 'client auth' and commonName {process!r}, "
                    "the client identity in services/common/grants.toml"
                )
        else:
            wanted = {process, f"{process}.{namespace}.svc"}
            if "server auth" not in usages or not wanted <= set(cert.get("dnsNames", [])):
                raise DeployError(
                    f"{where}: a server certificate needs usage 'server auth' and dnsNames {sorted(wanted)}"
                )
    return len(certificates)
