"""The window offers a newborn exactly the relationship codes residence accepts for one: the choices of
newborn-registration's relationship_code are the `newborn = true` codes of residence's table (the
window may not read residence's files; this test reads both)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[3]


def test_newborn_relationship_choices_are_residences_newborn_codes() -> None:
    table = tomllib.loads((ROOT / "services/residence/relationships.toml").read_text(encoding="utf-8"))
    newborn_codes = {r["code"] for r in table["relationship"] if r.get("newborn")}
    matter = load_catalogue()["newborn-registration"]
    field = next(f for f in matter.fields if f.path == "relationship_code")
    assert field.kind == "choice"
    assert set(field.choices) == newborn_codes
    assert len(field.choices) == len(set(field.choices))
    assert "28" not in field.choices  # 女婿 (an in-law) is no newborn's relation
