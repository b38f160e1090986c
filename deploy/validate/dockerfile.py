"""The Dockerfile, cheaply: multi-stage, the generated code made in a build stage with the Makefile's
protoc flags, a numeric non-root ``USER`` in the runtime stage, no build tools there; and
``.dockerignore``."""

from __future__ import annotations

import re
from pathlib import Path

from deploy.validate.common import (
    DOCKERFILE,
    DOCKERIGNORE,
    DOCKERIGNORE_REQUIRED,
    GOVHUB_UID,
    MAKEFILE,
    DeployError,
    rel,
)


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
