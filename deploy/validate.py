"""Offline checks of everything under deploy/ (``make deploy-lint``; part of ``make lint``).

1. **Kubernetes overlays.** Each overlay under ``deploy/k8s/overlays`` is rendered by a small kustomize
   resolver (below). No kustomize package on PyPI does this reliably for Python 3.11, so the resolver
   implements *exactly* the kustomize features govhub's kustomizations use: ``resources`` (files and
   directories), ``namespace``, ``labels`` (``includeSelectors``/``includeTemplates`` false: metadata
   labels only), ``images`` (``newName``/``newTag``/``digest``), ``replicas`` and ``patches`` given as
   RFC 6902 JSON patch files with a ``kind``/``name`` target, applied in kustomize's order (patches,
   namespace, labels, replicas, images). Anything else is refused with a message, never guessed; it is
   also stricter than kustomize in two ways: a patch or replica entry that matches nothing is an error,
   and so is an unknown kind. When ``kubectl`` (with its built-in kustomize) is on the PATH, every
   overlay is rendered again with ``kubectl kustomize`` and must give the same objects, which keeps the
   resolver honest; without it that cross-check is skipped with a note.
2. **Schemas.** Every rendered object is validated against the Kubernetes JSON schemas shipped by the
   ``kubernetes-validate`` package, strict (unknown fields are errors), for Kubernetes
   ``KUBERNETES_VERSION``.
3. **govhub's rules**, on the rendered objects: hardened pods (non-root, read-only root file system
   with an emptyDir /tmp, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault), a
   ServiceAccount per workload with no token, requests and limits, native gRPC probes for the services
   and HTTP probes for the gateway on the ports the settings listen on, termination grace longer than
   the drain, every ConfigMap/Secret reference resolvable, settings that govhub's own settings code
   accepts (unknown ``GOVHUB_*`` names are typos), a Service behind every target a process calls and a
   NetworkPolicy path for every such call, deny-by-default policies, and a PodDisruptionBudget and
   HorizontalPodAutoscaler for the gateway.
4. **compose.yaml**: parsed and validated against the Compose specification by the ``compose-spec``
   package, then cross-checked the same way (health-gated ``depends_on``, settings, targets, volumes).
5. **Dockerfile** (cheaply): multi-stage, generated code made in a build stage with the Makefile's
   protoc flags, a numeric non-root ``USER`` in the runtime stage, no build tools there; and
   ``.dockerignore``.

The first error stops the run with a message naming the file and the object, and exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import yaml
from compose_spec import PyOptions

from services.common.settings import GatewaySettings, ServiceSettings, SettingsError

KUBERNETES_VERSION = "1.32.0"
DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
OVERLAYS_DIR = DEPLOY / "k8s" / "overlays"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POSTGRES_INIT = DEPLOY / "postgres" / "init-databases.sh"
MAKEFILE = ROOT / "Makefile"
README = DEPLOY / "README.md"

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
# Secrets an overlay deliberately does not ship: they are created out of band (deploy/README.md).
EXTERNAL_SECRETS = {
    "production": {f"govhub-{p}-database" for p in (*DEPARTMENTS, "gateway")}
    | {"govhub-audit-key", "govhub-gateway-jwt"},
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


# kubernetes-validate reads and parses its 1 MB definitions file again for every object; the schema
# files never change while we run, so remember them (a run goes from ~1 s to ~0.1 s per overlay).
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


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


# ----------------------------------------------------------------------------------------------------
# The kustomize resolver


def build_kustomization(directory: Path) -> list[Resource]:
    """Render one kustomization directory (recursively), as ``kustomize build`` would."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise DeployError(f"{rel(directory)}: no kustomization.yaml")
    docs = load_documents(kfile)
    if len(docs) != 1:
        raise DeployError(f"{rel(kfile)}: must hold exactly one Kustomization")
    spec = docs[0]
    unsupported = sorted(set(spec) - KUSTOMIZATION_FIELDS)
    if unsupported:
        raise DeployError(
            f"{rel(kfile)}: kustomize field(s) {', '.join(unsupported)} are not supported by "
            f"deploy/validate.py's resolver (it renders only {', '.join(sorted(KUSTOMIZATION_FIELDS))})"
        )
    if spec.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or spec.get("kind") != "Kustomization":
        raise DeployError(
            f"{rel(kfile)}: must be apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization"
        )

    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        if not isinstance(entry, str) or "://" in entry:
            raise DeployError(f"{rel(kfile)}: resource {entry!r}: only local files and directories")
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(build_kustomization(path))
        elif path.is_file():
            resources.extend(Resource(doc, path) for doc in load_documents(path))
        else:
            raise DeployError(f"{rel(kfile)}: resource {entry!r} does not exist")
    seen: dict[tuple[str, str], Resource] = {}
    for res in resources:
        if res.kind not in NAMESPACED | CLUSTER_SCOPED:
            raise res.fail(
                f"kind {res.kind} is not known to deploy/validate.py's resolver; teach it how kustomize "
                "transforms that kind before using it"
            )
        if res.key in seen:
            raise res.fail(f"defined twice (also in {seen[res.key].where()})")
        seen[res.key] = res

    for patch in spec.get("patches", []):
        apply_patch_entry(kfile, patch, resources)
    namespace = spec.get("namespace")
    if namespace:
        for res in resources:
            if res.kind in NAMESPACED:
                res.obj.setdefault("metadata", {})["namespace"] = namespace
    for entry in spec.get("labels", []):
        apply_labels(kfile, entry, resources)
    for entry in spec.get("replicas", []):
        apply_replicas(kfile, entry, resources)
    for entry in spec.get("images", []):
        apply_image(kfile, entry, resources)
    return resources


def apply_labels(kfile: Path, entry: Mapping[str, Any], resources: list[Resource]) -> None:
    extra = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if extra or entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise DeployError(
            f"{rel(kfile)}: labels: only `pairs` with includeSelectors/includeTemplates false are supported"
        )
    for res in resources:
        labels = res.obj.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({str(k): str(v) for k, v in entry.get("pairs", {}).items()})


def apply_replicas(kfile: Path, entry: Mapping[str, Any], resources: list[Resource]) -> None:
    matched = [r for r in resources if r.kind in WORKLOADS and r.name == entry.get("name")]
    if not matched or set(entry) != {"name", "count"}:
        raise DeployError(f"{rel(kfile)}: replicas entry {dict(entry)} matches no Deployment or StatefulSet")
    for res in matched:
        res.obj["spec"]["replicas"] = int(entry["count"])


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    name, digest = image.split("@", 1) if "@" in image else (image, None)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def _containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for field_name in ("initContainers", "containers"):
        yield from pod.get(field_name, []) or []


def apply_image(kfile: Path, entry: Mapping[str, Any], resources: list[Resource]) -> None:
    if not set(entry) <= {"name", "newName", "newTag", "digest"} or "name" not in entry:
        raise DeployError(f"{rel(kfile)}: images entry {dict(entry)}: only name, newName, newTag, digest")
    matched = False
    for res in resources:
        for container in _containers(res.obj):
            name, tag, digest = _split_image(str(container.get("image", "")))
            if name != entry["name"]:
                continue
            matched = True
            name = str(entry.get("newName", name))
            if "newTag" in entry:
                tag, digest = str(entry["newTag"]), None
            if "digest" in entry:
                tag, digest = None, str(entry["digest"])
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if not matched:
        raise DeployError(f"{rel(kfile)}: images entry {entry['name']!r} matches no container image")


def apply_patch_entry(kfile: Path, entry: Mapping[str, Any], resources: list[Resource]) -> None:
    if set(entry) != {"path", "target"}:
        raise DeployError(
            f"{rel(kfile)}: patches: only entries with `path` (an RFC 6902 JSON patch file) and `target` "
            "are supported"
        )
    target = entry["target"]
    if not set(target) <= {"kind", "name", "group", "version"} or not {"kind", "name"} <= set(target):
        raise DeployError(f"{rel(kfile)}: patch target {dict(target)}: only kind, name, group, version")
    path = (kfile.parent / entry["path"]).resolve()
    docs = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(docs, list):
        raise DeployError(
            f"{rel(path)}: must be an RFC 6902 JSON patch (a list of operations); strategic merge "
            "patches are not supported by deploy/validate.py's resolver"
        )
    matched = [
        r
        for r in resources
        if r.kind == target["kind"]
        and r.name == target["name"]
        and _group_version_match(r.obj.get("apiVersion", ""), target)
    ]
    if not matched:
        raise DeployError(f"{rel(kfile)}: patch {entry['path']} matches no {target['kind']}/{target['name']}")
    for res in matched:
        for op in docs:
            try:
                json_patch(res.obj, op)
            except (KeyError, IndexError, ValueError, TypeError) as exc:
                raise DeployError(
                    f"{rel(path)}: on {res.where()}: {op.get('op')} {op.get('path')}: {exc}"
                ) from None


def _group_version_match(api_version: str, target: Mapping[str, Any]) -> bool:
    group, _, version = api_version.rpartition("/")
    return target.get("group", group) == group and target.get("version", version) == version


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError("a JSON pointer starts with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, op: Mapping[str, Any]) -> None:
    """One RFC 6902 operation (add, remove, replace, test), in place."""
    kind = op.get("op")
    *parents, last = _pointer(str(op.get("path", "")))
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if kind == "add":
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            node[last] = copy.deepcopy(op["value"])
    elif kind == "replace":
        if isinstance(node, list):
            node[int(last)] = copy.deepcopy(op["value"])
        else:
            if last not in node:
                raise KeyError(f"{last!r} does not exist (replace needs an existing value)")
            node[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif kind == "test":
        actual = node[int(last)] if isinstance(node, list) else node[last]
        if actual != op["value"]:
            raise ValueError(f"test failed: {actual!r} != {op['value']!r}")
    else:
        raise ValueError(f"operation {kind!r} is not supported (add, remove, replace, test)")


def kubectl_kustomize(directory: Path) -> tuple[str, list[dict[str, Any]]] | None:
    """Render with ``kubectl kustomize`` when kubectl is installed; None when it is not."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=60)
    found = re.search(r"Kustomize Version: (\S+)", version.stdout)
    if version.returncode != 0 or not found:
        return None
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DeployError(f"{rel(directory)}: kubectl kustomize failed: {done.stderr.strip()}")
    return found.group(1), [d for d in yaml.safe_load_all(done.stdout) if d]


def cross_check(directory: Path, resources: list[Resource], rendered: list[dict[str, Any]]) -> None:
    ours = {(r.kind, r.name): r for r in resources}
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in rendered}
    for key in sorted(set(ours) | set(theirs)):
        if key not in theirs:
            raise ours[key].fail(f"rendered by the resolver but not by kubectl kustomize {rel(directory)}")
        if key not in ours:
            raise DeployError(f"{rel(directory)}: {key[0]}/{key[1]}: rendered by kubectl kustomize only")
        if ours[key].obj != theirs[key]:
            diff = _first_difference(ours[key].obj, theirs[key])
            raise ours[key].fail(f"the resolver and kubectl kustomize disagree at {diff}")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '.'}: {a!r} (resolver) != {b!r} (kubectl)"


# ----------------------------------------------------------------------------------------------------
# Schemas


def validate_schemas(resources: list[Resource]) -> None:
    for res in resources:
        try:
            kubernetes_validate.validate(res.obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(top)"
            raise res.fail(
                f"does not validate against Kubernetes {exc.version}: {where}: {exc.message}"
            ) from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise res.fail(exc.message) from None


# ----------------------------------------------------------------------------------------------------
# Settings, as govhub's own settings code reads them


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
        raise DeployError(f"{where}: unknown setting(s) {', '.join(unknown)} (a typo? see deploy/README.md)")
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


def _host_port(where: str, target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise DeployError(f"{where}: target {target!r} must be HOST:PORT")
    return host, int(port)


# ----------------------------------------------------------------------------------------------------
# govhub's rules for the rendered Kubernetes objects


def _process_of(container: Mapping[str, Any]) -> str | None:
    command = [str(c) for c in (container.get("command") or []) + (container.get("args") or [])]
    if len(command) >= 3 and command[0] == "python" and command[1] == "-m":
        return PROCESSES.get(command[2])
    return None


def _seconds(value: Any) -> float:
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


def check_cluster(overlay: str, resources: list[Resource]) -> None:
    by_key = {(r.kind, r.name): r for r in resources}
    external = EXTERNAL_SECRETS.get(overlay, set())

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
            if "secret" in volume:
                lookup(
                    res,
                    "Secret",
                    volume["secret"]["secretName"],
                    optional=volume["secret"].get("optional", False),
                )
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
            _, tag, digest = _split_image(image)
            if not (tag or digest) or tag == "latest":
                raise res.fail(
                    f"container {container['name']}: image {image!r} must be pinned to a tag or digest"
                )
            process = _process_of(container)
            if process is None:
                continue
            file_mounts = [
                m["mountPath"]
                for m in container.get("volumeMounts", [])
                if {"secret", "configMap"} & set(volumes.get(m["name"], {}))
            ]
            settings = check_settings(
                f"{res.where()}: container {container['name']}", process, env, file_mounts
            )
            check_govhub_container(res, pod, container, process, settings, env)
            processes[process] = (res, pod_labels, settings)

    missing = set(PROCESSES.values()) - set(processes)
    if missing:
        raise DeployError(f"overlay {overlay}: no workload runs {', '.join(sorted(missing))}")
    for res, labels, settings in processes.values():
        for department, target in targets(settings).items():
            host, port = _host_port(res.where(), target)
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
        if r.kind == "PodDisruptionBudget" and _selects(r.obj["spec"]["selector"], processes["gateway"][1])
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
                and _selects(
                    {"matchLabels": res.obj["spec"]["selector"]},
                    r.obj["spec"]["template"]["metadata"]["labels"],
                )
            ]
            if not pods:
                raise res.fail("selects no pods")
            names = {p.get("name") for r in pods for c in _containers(r.obj) for p in c.get("ports", [])}
            for port in res.obj["spec"]["ports"]:
                if isinstance(port.get("targetPort"), str) and port["targetPort"] not in names:
                    raise res.fail(f"targetPort {port['targetPort']!r} is not a named container port")


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
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
        if direction not in spec.get("policyTypes", []) or not _selects(spec.get("podSelector", {}), own):
            continue
        for rule in spec.get(rules_key, []) or []:
            ports = rule.get("ports") or [{}]
            if not any(p.get("port", port) == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(
                set(pp) == {"podSelector"} and _selects(pp["podSelector"], peer) for pp in peers
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
        elif probe.get("grpc", {}).get("port") != settings.port:
            raise res.fail(
                f"container {name}: {probe_name} must be a native gRPC probe on port {settings.port}"
            )
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
    if process != "gateway" and "GOVHUB_AUDIT_KEY_FILE" in known_settings():
        key = Path(env.get("GOVHUB_AUDIT_KEY_FILE") or settings.common.var_dir / "audit.key")
        if str(key.parent) not in mounts:
            raise res.fail(f"container {name}: the audit key {key} must come from a mounted volume")
    jwt_settings = {"GOVHUB_GATEWAY_JWT_SECRET_FILE", "GOVHUB_GATEWAY_JWT_PUBLIC_KEYS"}
    if process == "gateway" and jwt_settings <= known_settings() and not jwt_settings & set(env):
        raise res.fail(
            f"container {name}: every gateway replica must verify tokens with the same key: set "
            "GOVHUB_GATEWAY_JWT_SECRET_FILE or GOVHUB_GATEWAY_JWT_PUBLIC_KEYS"
        )
    if process == "gateway" and str(settings.materials_dir) not in mounts:
        raise res.fail(
            f"container {name}: GOVHUB_GATEWAY_MATERIALS_DIR ({settings.materials_dir}) must be a volume"
        )
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


# ----------------------------------------------------------------------------------------------------
# compose.yaml


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
        process = _process_of(
            {"command": shlex.split(command) if isinstance(command, str) else command or []}
        )
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
        if _seconds(svc.get("stop_grace_period", "10s")) <= settings.shutdown_grace:
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
            host, port = _host_port(f"{rel(path)}: service {name}", target)
            if ports.get(host) != port or govhub[host][0] != department:
                raise DeployError(
                    f"{rel(path)}: service {name}: calls {target}, but {department} is not there"
                )
            deps = services[name].get("depends_on", {})
            if (deps.get(host) or {}).get("condition") != "service_healthy":
                raise DeployError(f"{rel(path)}: service {name}: must wait for {host} to be healthy")


# ----------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def check_dockerfile(path: Path = DOCKERFILE, makefile: Path = MAKEFILE, ignore: Path = DOCKERIGNORE) -> None:
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, rest in dockerfile_instructions(path.read_text(encoding="utf-8")):
        if keyword == "FROM":
            found = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            stages.append((found.group(1) if found else "", []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    if len(stages) < 2 or not all(name for name, _ in stages):
        raise DeployError(f"{rel(path)}: must be a multi-stage build with named stages (FROM ... AS name)")
    (final, runtime), builders = stages[-1], stages[:-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    if not users or not re.fullmatch(r"\d+(:\d+)?", users[-1]) or int(users[-1].split(":")[0]) == 0:
        raise DeployError(f"{rel(path)}: stage {final}: needs USER with a fixed, non-root numeric UID")
    if int(users[-1].split(":")[0]) != GOVHUB_UID:
        raise DeployError(f"{rel(path)}: stage {final}: USER must be {GOVHUB_UID}, as the manifests expect")
    if not any(k == "COPY" and "--from=" in r for k, r in runtime):
        raise DeployError(f"{rel(path)}: stage {final}: must COPY --from= a build stage")
    for keyword, rest in runtime:
        if keyword == "RUN" and re.search(
            r"apt-get install|apk add|pip install|grpc_tools|gcc|build-essential", rest
        ):
            raise DeployError(
                f"{rel(path)}: stage {final}: no build tools in the runtime image ({rest[:60]}...)"
            )
    protoc = next(
        (r for _, instrs in builders for k, r in instrs if k == "RUN" and "grpc_tools.protoc" in r), None
    )
    if protoc is None:
        raise DeployError(
            f"{rel(path)}: a build stage must generate the protobuf code with grpc_tools.protoc"
        )
    made = re.search(r"grpc_tools\.protoc (.*)", makefile.read_text(encoding="utf-8"))
    flags = re.findall(r"(-I\S+|--\w+_out)", made.group(1)) if made else []
    missing = [f for f in flags if f not in protoc]
    if not flags or missing or ".pth" not in protoc:
        raise DeployError(
            f"{rel(path)}: generate the code as `make protos` does (flags {' '.join(flags)} and a .pth "
            f"file); missing: {' '.join(missing) or '.pth'}"
        )
    entries = {line.strip().rstrip("/") for line in ignore.read_text(encoding="utf-8").splitlines()}
    absent = [e for e in DOCKERIGNORE_REQUIRED if e not in entries]
    if absent:
        raise DeployError(f"{rel(ignore)}: must exclude {', '.join(absent)}")


def check_postgres_init(overlay_resources: list[Resource]) -> None:
    """The development overlay's init ConfigMap carries the same script as compose mounts."""
    for res in overlay_resources:
        script = res.obj.get("data", {}).get(POSTGRES_INIT.name) if res.kind == "ConfigMap" else None
        if script is not None and script != POSTGRES_INIT.read_text(encoding="utf-8"):
            raise res.fail(f"data {POSTGRES_INIT.name} differs from {rel(POSTGRES_INIT)}")


# ----------------------------------------------------------------------------------------------------


def overlays() -> list[Path]:
    return sorted(p for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def check_overlay(directory: Path, *, use_kubectl: bool = True) -> tuple[list[Resource], str | None]:
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
    check_postgres_init(resources)
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


if __name__ == "__main__":
    sys.exit(main())
