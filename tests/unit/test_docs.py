"""The repository explains itself: nothing in it points to documents outside it, and every section of
docs/domain.md or docs/architecture.md that a file cites exists there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Written in pieces so that this file does not match itself.
OUTSIDE_REFERENCES = ("../" + "shared", "DESIGN" + ".md", "DOMAIN" + ".md")
SKIPPED_DIRS = {".git", ".venv", "gen", "var", ".tools", "node_modules", "__pycache__", ".pytest_cache"}

_NUMBER = r"\d+(?:\.\d+)?"
# "docs/domain.md §2.8", "§2.7-2.8", "§3.4 and §2.3", "§4, §4.5", "§1.2 and §7.8"
_CITATION = re.compile(
    rf"docs/domain\.md(?P<refs>(?:(?:\s*[,;]?\s*(?:and|or)?\s*)§{_NUMBER}(?:\s*[-–]\s*{_NUMBER})?)+)"
)
_REF = re.compile(rf"§(?P<first>{_NUMBER})(?:\s*[-–]\s*(?P<last>{_NUMBER}))?")
_HEADING = re.compile(rf"^#{{2,4}} (?P<number>{_NUMBER})[. ]", re.MULTILINE)
_ARCHITECTURE_SECTION = re.compile(r'docs/architecture\.md, "(?P<title>[^"]+)"')


def tracked_files() -> list[Path]:
    """Every file git tracks; outside a git checkout, every file of the tree but the generated ones."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        return None
    return raw.decode("utf-8", errors="replace")


def cited_sections(text: str) -> list[str]:
    """The section numbers of every ``docs/domain.md §…`` citation in `text` (both ends of a range)."""
    numbers = []
    for citation in _CITATION.finditer(text):
        for ref in _REF.finditer(citation["refs"]):
            numbers.append(ref["first"])
            if ref["last"]:
                numbers.append(ref["last"])
    return numbers


def domain_headings() -> set[str]:
    return {m["number"] for m in _HEADING.finditer((DOCS / "domain.md").read_text(encoding="utf-8"))}


def test_citations_are_parsed_with_ranges_and_lists() -> None:
    text = (
        "see docs/domain.md §2.7-2.8, the roll-out; docs/domain.md §3.4 and §2.3; "
        "(docs/domain.md §4, §4.5) and docs/domain.md §4.3–4.4. Not a citation: §9.9 alone."
    )
    assert cited_sections(text) == ["2.7", "2.8", "3.4", "2.3", "4", "4.5", "4.3", "4.4"]


def test_the_docs_exist() -> None:
    for name in ("README.md", "architecture.md", "domain.md", "contributing.md"):
        assert (DOCS / name).is_file(), name


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(ref in line for ref in OUTSIDE_REFERENCES):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_cited_rule_book_section_exists() -> None:
    headings = domain_headings()
    assert {"1.1", "2.8", "3.4", "4.2", "7.9"} <= headings  # the heading pattern itself works
    missing = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number in cited_sections(text):
            if number not in headings:
                missing.append(f"{path.relative_to(ROOT)}: docs/domain.md §{number}")
    assert not missing, "no such section in docs/domain.md:\n" + "\n".join(missing)


def test_every_section_the_rule_book_refers_to_exists() -> None:
    """References inside docs/domain.md itself ("(§7.8)") point to its own headings."""
    headings = domain_headings()
    text = (DOCS / "domain.md").read_text(encoding="utf-8")
    missing = sorted(
        {
            number
            for ref in _REF.finditer(text)
            for number in (ref["first"], ref["last"])
            if number and number not in headings
        }
    )
    assert not missing, missing


def test_architecture_sections_cited_exist() -> None:
    """A citation such as ``docs/architecture.md, "Security"`` names a section of docs/architecture.md."""
    assert _ARCHITECTURE_SECTION.findall('(docs/architecture.md, "Errors") and') == ["Errors"]
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^##+ (.+)$", text, re.MULTILINE))
    missing = []
    for path in tracked_files():
        source = text_of(path)
        if source is None:
            continue
        for m in _ARCHITECTURE_SECTION.finditer(source):
            if m["title"] not in headings:
                missing.append(f"{path.relative_to(ROOT)}: {m['title']}")
    assert not missing, missing
