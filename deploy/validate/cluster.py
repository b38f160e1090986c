"""govhub's rules for the rendered Kubernetes objects of an overlay: hardened pods (non-root, read-only
root file system with an emptyDir /tmp, no privilege escalation, ALL capabilities dropped, seccomp
RuntimeDefault), a ServiceAccount per workload with no token, requests and limits, native gRPC probes on
each department's probe port and HTTP probes for the gateway, termination grace longer than the drain,
every ConfigMap/Secret reference resolvable, settings that govhub's own settings code accepts, a Service
behind every target a process calls and a NetworkPolicy path for every such call, deny-by-default
policies, a PodDisruptionBudget and HorizontalPodAutoscaler for the gateway; mutual TLS
(``deploy.validate.tls``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy.validate.common import (
    EXTERNAL_SECRETS,
    GOVHUB_UID,
    POSTGRES_INIT,
    PROCESSES,
    WORKLOADS,
    DeployError,
    Resource,
    containers,
    process_of,
    rel,
    split_image,
)
from deploy.validate.settings import check_settings, host_port, known_settings, targets
from deploy.validate.tls import (
    check_probe_ports_private,
    check_tls,
    is_production,
    probe_port,
    secret_sources,
)
from services.common.settings import GatewaySettings, ServiceSettings


def check_cluster(overlay: str, resources: list[Resource]) -> None:
    by_key = {(r.kind, r.name): r for r in resources}
    external = EXTERNAL_SECRETS.get(overlay, set())
    production = is_production(resources)

    def lookup(res: Resource, kind: str, name: str, *, optional: bool = False) -> Resource | None:
        found = by_key.get((kind, name))
        if found is None and not optional and not (kind == "Secret" and name in external):
            raise res.fail(f"refers to {kind} {name!r}, which this overlay does not define")
        return found

    def data_of(found: Resource | None) -> dict[str, str]:
        if found is None:
            return {}
        data = {k: str(v) for k, v in (found.obj.get("stringData") or {}).items()}
        for k, v in (found.obj.get("data") or {}).items():
            data[k] = base64.b64decode(v).decode() if found.kind == "Secret" else str(v)
        return data

    policies = [r for r in resources if r.kind == "NetworkPolicy"]
    if not any(
        p.obj["spec"].get("podSelector") == {}
        and set(p.obj["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p.obj["spec"].get("ingress")
        and not p.obj["spec"].get("egress")
        for p in policies
    ):
        raise DeployError(f"overlay {overlay}: no NetworkPolicy denies all ingress and egress by default")

    processes: dict[str, tuple[Resource, dict[str, Any], ServiceSettings | GatewaySettings]] = {}
    probe_ports: dict[str, tuple[Resource, int]] = {}
    for res in resources:
        if res.kind not in WORKLOADS:
            continue
        pod = res.obj["spec"]["template"]["spec"]
        pod_labels = res.obj["spec"]["template"]["metadata"].get("labels", {})
        selector = res.obj["spec"]["selector"].get("matchLabels", {})
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            raise res.fail("the selector does not match the pod template's labels")
        check_pod_security(res, pod)
        sa = lookup(res, "ServiceAccount", pod.get("serviceAccountName", ""))
        if sa is None or sa.obj.get("automountServiceAccountToken") is not False:
            raise res.fail("its ServiceAccount must set automountServiceAccountToken: false")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                lookup(
                    res,
                    "ConfigMap",
                    volume["configMap"]["name"],
                    optional=volume["configMap"].get("optional", False),
                )
            for secret in secret_sources(volume):
                lookup(res, "Secret", secret["name"], optional=secret["optional"])
            if "persistentVolumeClaim" in volume:
                lookup(res, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        for container in pod["containers"]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(data_of(lookup(res, "ConfigMap", source["configMapRef"]["name"])))
                if "secretRef" in source:
                    env.update(data_of(lookup(res, "Secret", source["secretRef"]["name"])))
            for item in container.get("env", []):
                ref = item.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    found = lookup(res, "Secret", ref["secretKeyRef"]["name"])
                    if found is not None and ref["secretKeyRef"]["key"] not in data_of(found):
                        raise res.fail(
                            f"env {item['name']}: Secret {found.name} has no key {ref['secretKeyRef']['key']}"
                        )
                if "configMapKeyRef" in ref:
                    lookup(res, "ConfigMap", ref["configMapKeyRef"]["name"])
                if "value" in item:
                    env[item["name"]] = str(item["value"])
            image = str(container.get("image", ""))
            _, tag, digest = split_image(image)
            if not (tag or digest) or tag == "latest":
                raise res.fail(
                    f"container {container['name']}: image {image!r} must be pinned to a tag or digest"
                )
            process = process_of(container)
            if process is None:
                continue
            file_mounts = [
                m["mountPath"]
                for m in container.get("volumeMounts", [])
                if {"secret", "configMap", "projected"} & set(volumes.get(m["name"], {}))
            ]
            settings = check_settings(
                f"{res.where()}: container {container['name']}", process, env, file_mounts
            )
            check_govhub_container(res, pod, container, process, settings, env)
            check_tls(res, pod, container, process, settings, env, production=production)
            if isinstance(settings, ServiceSettings):
                probe_ports[process] = (res, probe_port(res, container, settings))
            processes[process] = (res, pod_labels, settings)

    missing = set(PROCESSES.values()) - set(processes)
    if missing:
        raise DeployError(f"overlay {overlay}: no workload runs {', '.join(sorted(missing))}")
    check_probe_ports_private(resources, probe_ports)
    for res, labels, settings in processes.values():
        for department, target in targets(settings).items():
            host, port = host_port(res.where(), target)
            service = by_key.get(("Service", host))
            if service is None or port not in [p["port"] for p in service.obj["spec"]["ports"]]:
                raise res.fail(f"calls {target} ({department}), but no Service {host} offers port {port}")
            callee_res, callee_labels, callee_settings = processes[department]
            selector = service.obj["spec"]["selector"]
            if any(callee_labels.get(k) != v for k, v in selector.items()):
                raise service.fail(f"selects no {department} pods")
            if not allowed(policies, "Egress", labels, callee_labels, callee_settings.port):
                raise res.fail(
                    f"no NetworkPolicy allows egress to {department} on port {callee_settings.port}"
                )
            if not allowed(policies, "Ingress", callee_labels, labels, callee_settings.port):
                raise callee_res.fail(
                    f"no NetworkPolicy allows ingress from {res.name} on port {callee_settings.port}"
                )

    gateway = processes["gateway"][0]
    pdb = [
        r
        for r in resources
        if r.kind == "PodDisruptionBudget" and selects(r.obj["spec"]["selector"], processes["gateway"][1])
    ]
    if not pdb:
        raise gateway.fail("no PodDisruptionBudget covers the gateway")
    hpa = [
        r
        for r in resources
        if r.kind == "HorizontalPodAutoscaler"
        and r.obj["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": gateway.name}
    ]
    if not hpa:
        raise gateway.fail("no HorizontalPodAutoscaler scales the gateway")
    if "replicas" in gateway.obj["spec"]:
        raise gateway.fail("the HorizontalPodAutoscaler owns the replica count: set no spec.replicas")
    for res in resources:
        if res.kind == "Service":
            pods = [
                r
                for r in resources
                if r.kind in WORKLOADS
                and selects(
                    {"matchLabels": res.obj["spec"]["selector"]},
                    r.obj["spec"]["template"]["metadata"]["labels"],
                )
            ]
            if not pods:
                raise res.fail("selects no pods")
            names = {p.get("name") for r in pods for c in containers(r.obj) for p in c.get("ports", [])}
            for port in res.obj["spec"]["ports"]:
                if isinstance(port.get("targetPort"), str) and port["targetPort"] not in names:
                    raise res.fail(f"targetPort {port['targetPort']!r} is not a named container port")


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match = selector.get("matchLabels", {})
    if set(selector) - {"matchLabels"}:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def allowed(
    policies: list[Resource], direction: str, own: Mapping[str, str], peer: Mapping[str, str], port: int
) -> bool:
    """Does some policy of `direction` on pods labelled `own` allow the peer pods on TCP `port`?"""
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in policies:
        spec = policy.obj["spec"]
        if direction not in spec.get("policyTypes", []) or not selects(spec.get("podSelector", {}), own):
            continue
        for rule in spec.get(rules_key, []) or []:
            ports = rule.get("ports") or [{}]
            if not any(p.get("port", port) == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(
                set(pp) == {"podSelector"} and selects(pp["podSelector"], peer) for pp in peers
            ):
                return True
    return False


def check_pod_security(res: Resource, pod: Mapping[str, Any]) -> None:
    ctx = pod.get("securityContext", {})
    if ctx.get("runAsNonRoot") is not True or ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        raise res.fail("pod securityContext must set runAsNonRoot: true and seccompProfile RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        raise res.fail("pod must set automountServiceAccountToken: false")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        name = container["name"]
        sec = container.get("securityContext", {})
        if (
            sec.get("allowPrivilegeEscalation") is not False
            or sec.get("readOnlyRootFilesystem") is not True
            or "ALL" not in sec.get("capabilities", {}).get("drop", [])
            or sec.get("privileged")
        ):
            raise res.fail(
                f"container {name}: securityContext must set allowPrivilegeEscalation: false, "
                "readOnlyRootFilesystem: true and capabilities.drop [ALL]"
            )
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):  # noqa: S108 (a mount path)
            raise res.fail(f"container {name}: a read-only root file system needs an emptyDir at /tmp")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                raise res.fail(f"container {name}: resources.{bound} must set cpu and memory")
        if "readinessProbe" not in container or "livenessProbe" not in container:
            raise res.fail(f"container {name}: needs a readiness and a liveness probe")


def check_govhub_container(
    res: Resource,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    process: str,
    settings: ServiceSettings | GatewaySettings,
    env: Mapping[str, str],
) -> None:
    name = container["name"]
    ctx = pod.get("securityContext", {})
    if ctx.get("runAsUser") != GOVHUB_UID:
        raise res.fail(f"pod must run as the image's user {GOVHUB_UID}")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    wanted = "http" if process == "gateway" else "grpc"
    if ports.get(wanted) != settings.port:
        raise res.fail(
            f"container {name}: port {wanted!r} must be {settings.port}, "
            f"where {settings.listen_setting} listens"
        )
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            continue
        if process == "gateway":
            http = probe.get("httpGet", {})
            path = "/readyz" if probe_name == "readinessProbe" else "/healthz"
            if http.get("path") != path or http.get("port") not in (settings.port, "http"):
                raise res.fail(
                    f"container {name}: {probe_name} must be an HTTP GET of {path} on the http port"
                )
        # A department's probes: deploy.validate.tls.probe_port (the health-only probe port).
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    pause = 0.0
    if pre_stop.get("exec", {}).get("command", [None])[0] == "sleep":
        pause = float(pre_stop["exec"]["command"][1])
    elif "sleep" in pre_stop:
        pause = float(pre_stop["sleep"]["seconds"])
    grace = float(pod.get("terminationGracePeriodSeconds", 30))
    if grace <= settings.shutdown_grace + pause:
        raise res.fail(
            f"terminationGracePeriodSeconds ({grace:g}) must be longer than GOVHUB_SHUTDOWN_GRACE "
            f"({settings.shutdown_grace:g}) plus the preStop pause ({pause:g})"
        )
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    if str(settings.common.var_dir) not in mounts:
        raise res.fail(
            f"container {name}: GOVHUB_VAR_DIR ({settings.common.var_dir}) must be a volume: the root file "
            "system is read-only"
        )
    if "GOVHUB_AUDIT_KEY_FILE" in known_settings():
        key = Path(env.get("GOVHUB_AUDIT_KEY_FILE") or settings.common.var_dir / "audit.key")
        if str(key.parent) not in mounts:
            raise res.fail(f"container {name}: the audit key {key} must come from a mounted volume")
    jwt_settings = {"GOVHUB_GATEWAY_JWT_SECRET_FILE", "GOVHUB_GATEWAY_JWT_PUBLIC_KEYS"}
    if process == "gateway" and jwt_settings <= known_settings() and not jwt_settings & set(env):
        raise res.fail(
            f"container {name}: every gateway replica must verify tokens with the same key: set "
            "GOVHUB_GATEWAY_JWT_SECRET_FILE or GOVHUB_GATEWAY_JWT_PUBLIC_KEYS"
        )
    materials_dir = getattr(settings, "materials_dir", None)
    if materials_dir is not None and str(materials_dir) not in mounts:
        raise res.fail(f"container {name}: GOVHUB_GATEWAY_MATERIALS_DIR ({materials_dir}) must be a volume")
    if not str(settings.database_url).startswith("postgresql+asyncpg://") and not env_has_external_db(
        res, container
    ):
        raise res.fail(f"container {name}: the database URL must be PostgreSQL (SQLite is single-process)")


def env_has_external_db(res: Resource, container: Mapping[str, Any]) -> bool:
    """The database URL comes from a Secret the overlay does not ship (created out of band)."""
    return any(
        "secretRef" in s and s["secretRef"]["name"].endswith("-database")
        for s in container.get("envFrom", [])
    )


def check_postgres_init(overlay_resources: list[Resource], init: Path = POSTGRES_INIT) -> None:
    """The development overlay's init ConfigMap carries the same script as compose mounts."""
    for res in overlay_resources:
        script = res.obj.get("data", {}).get(init.name) if res.kind == "ConfigMap" else None
        if script is not None and script != init.read_text(encoding="utf-8"):
            raise res.fail(f"data {init.name} differs from {rel(init)}")
