"""``make audit-deps``: the locked dependencies (``requirements.lock``) checked for known vulnerabilities
with pip-audit. Not part of ``make test``: it needs the vulnerability service, which a build machine may
not reach.

It says plainly what it could not check: when the service does not answer, or skips a package, the
answer is "NOT CHECKED" with the packages named, and the exit status is 3 — never "no known
vulnerabilities" for a package nobody looked at. Exit 0: every locked package was checked and none has
a known vulnerability; 1: some have (listed with their advisories); 2: no lock file or no pip-audit.

``make lock`` writes ``requirements.lock`` from the project's environment (exact versions of everything
installed but govhub itself).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str]], Ran]


def _run(argv: Sequence[str]) -> Ran:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=600, check=False)
    return Ran(done.returncode, done.stdout, done.stderr)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_packages(lock: Path) -> list[str]:
    names = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(canonical(line.split("==", 1)[0].strip()))
    return names


def report(ran: Ran, packages: Sequence[str]) -> tuple[int, list[str]]:
    """(exit status, lines) for one pip-audit run over `packages`."""
    try:
        data = json.loads(ran.stdout) if ran.stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        why = (ran.stderr.strip().splitlines() or ["no answer"])[-1][:300]
        return 3, [
            f"NOT CHECKED: the vulnerability service could not be asked ({why}).",
            f"Nothing is known about the {len(packages)} locked packages; run make audit-deps where the "
            "service is reachable.",
        ]
    lines: list[str] = []
    vulnerable, skipped, checked = [], [], 0
    for dep in data["dependencies"]:
        name, version = dep.get("name", "?"), dep.get("version", "")
        if dep.get("skip_reason"):
            skipped.append(f"{name}: {dep['skip_reason']}")
            continue
        checked += 1
        for vuln in dep.get("vulns") or []:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            vulnerable.append(f"{name} {version}: {vuln.get('id', '?')} (fixed in: {fixes})")
    missing = sorted(set(packages) - {canonical(str(d.get("name", ""))) for d in data["dependencies"]})
    skipped += [f"{name} (not in the answer)" for name in missing]
    if vulnerable:
        lines.append(f"KNOWN VULNERABILITIES in {len(vulnerable)} advisories:")
        lines += [f"  {v}" for v in vulnerable]
    if skipped:
        lines.append(f"NOT CHECKED: {len(skipped)} locked packages were not looked at:")
        lines += [f"  {s}" for s in skipped]
    if checked == 0:
        lines.append(f"none of the {len(packages)} locked packages could be checked")
    elif not vulnerable:
        lines.append(
            f"{checked} of {len(packages)} locked packages checked: no known vulnerabilities among them"
            + ("" if not skipped else " (the others above were NOT checked)")
        )
    return (1 if vulnerable else 3 if skipped else 0), lines


def main(argv: Sequence[str] | None = None, runner: Runner = _run, lock: Path = LOCK) -> int:
    if not lock.is_file():
        print(f"no lock file {lock.name}: run make lock first")
        return 2
    pip_audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if pip_audit is None:
        print("pip-audit is not installed: make install (it is a development dependency)")
        return 2
    packages = locked_packages(lock)
    ran = runner(
        [
            pip_audit,
            "--requirement",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--timeout",
            "20",
        ]
    )
    status, lines = report(ran, packages)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
