"""A small kustomize: renders govhub's kustomizations offline, exactly as ``kustomize build`` would for
the features they use, and cross-checks the result with ``kubectl kustomize`` when kubectl is installed.

Supported: ``resources`` (files and directories), ``namespace``, ``labels`` (``includeSelectors`` /
``includeTemplates`` false: metadata labels only), ``images`` (``newName``/``newTag``/``digest``),
``replicas`` and ``patches`` given as RFC 6902 JSON patch files (applied with the ``jsonpatch`` library)
with a ``kind``/``name`` target, in kustomize's order (patches, namespace, labels, replicas, images).
Anything else is refused with a message, never guessed; stricter than kustomize in two ways: a patch or
replica entry that matches nothing is an error, and so is an unknown kind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from deploy.validate.common import (
    CLUSTER_SCOPED,
    KUSTOMIZATION_FIELDS,
    NAMESPACED,
    WORKLOADS,
    DeployError,
    Resource,
    containers,
    load_documents,
    rel,
    split_image,
)


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
            f"deploy-lint's resolver (it renders only {', '.join(sorted(KUSTOMIZATION_FIELDS))})"
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
                f"kind {res.kind} is not known to deploy-lint's resolver; teach it how kustomize "
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


def apply_image(kfile: Path, entry: Mapping[str, Any], resources: list[Resource]) -> None:
    if not set(entry) <= {"name", "newName", "newTag", "digest"} or "name" not in entry:
        raise DeployError(f"{rel(kfile)}: images entry {dict(entry)}: only name, newName, newTag, digest")
    matched = False
    for res in resources:
        for container in containers(res.obj):
            name, tag, digest = split_image(str(container.get("image", "")))
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
            "patches are not supported by deploy-lint's resolver (deploy/validate/kustomize.py)"
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
    try:
        # One patch per operation, so that an error names the operation that failed.
        operations = [(op, jsonpatch.JsonPatch([op])) for op in docs]
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as exc:
        raise DeployError(f"{rel(path)}: not a valid RFC 6902 JSON patch: {exc}") from None
    for res in matched:
        for op, patch in operations:
            try:
                res.obj = patch.apply(res.obj)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise DeployError(
                    f"{rel(path)}: on {res.where()}: {op.get('op')} {op.get('path')}: {exc}"
                ) from None


def _group_version_match(api_version: str, target: Mapping[str, Any]) -> bool:
    group, _, version = api_version.rpartition("/")
    return bool(target.get("group", group) == group and target.get("version", version) == version)


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
