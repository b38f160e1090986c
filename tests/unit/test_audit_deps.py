"""make audit-deps reads pip-audit's answer honestly: what was not checked is said to be not checked."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.audit_deps import Ran, locked_packages, report

PACKAGES = ["aiohttp", "typing-extensions", "jwt"]


def answer(*deps: dict[str, object]) -> Ran:
    return Ran(1 if any(d.get("vulns") for d in deps) else 0, json.dumps({"dependencies": list(deps)}), "")


def test_an_unreachable_service_is_not_checked_never_no_known_vulnerabilities() -> None:
    status, lines = report(Ran(1, "", "ConnectionError: Max retries exceeded"), PACKAGES)
    assert status == 3
    assert lines[0].startswith("NOT CHECKED") and "Max retries exceeded" in lines[0]
    assert not any("no known vulnerabilities" in line for line in lines)


def test_skipped_packages_are_named_and_none_checked_is_said() -> None:
    status, lines = report(
        answer(*({"name": p, "skip_reason": "could not be audited"} for p in PACKAGES)), PACKAGES
    )
    assert status == 3
    assert lines[-1] == "none of the 3 locked packages could be checked"
    assert not any("no known vulnerabilities" in line for line in lines)


def test_a_partial_answer_names_the_rest_as_not_checked() -> None:
    status, lines = report(
        answer(
            {"name": "aiohttp", "version": "3.14.5", "vulns": []}, {"name": "typing_extensions", "vulns": []}
        ),
        PACKAGES,
    )
    assert status == 3
    assert "  jwt (not in the answer)" in lines
    assert lines[-1].startswith(
        "2 of 3 locked packages checked: no known vulnerabilities among them (the others"
    )


def test_vulnerabilities_are_listed_and_fail() -> None:
    vuln = {"id": "GHSA-xxxx", "fix_versions": ["3.14.6"]}
    status, lines = report(
        answer(*({"name": p, "version": "1", "vulns": [vuln] if p == "aiohttp" else []} for p in PACKAGES)),
        PACKAGES,
    )
    assert status == 1
    assert "  aiohttp 1: GHSA-xxxx (fixed in: 3.14.6)" in lines


def test_all_checked_and_clean_passes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("aiohttp==3.14.5\nTyping_Extensions==4.16.0  # why\n\n-e .\n")
    names = locked_packages(lock)
    assert names == ["aiohttp", "typing-extensions"]
    status, lines = report(answer(*({"name": n, "version": "1", "vulns": []} for n in names)), names)
    assert (status, lines) == (0, ["2 of 2 locked packages checked: no known vulnerabilities among them"])
