"""Materials checklists: what each stage needs, what is missing, what may be deferred (容缺受理)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.common.errors import FailedPrecondition, InvalidArgument
from services.permits.domain.scoring import Category

if TYPE_CHECKING:
    from services.permits.domain.policy import PermitsPolicy


class Stage(enum.StrEnum):
    WORK_PERMIT_NOTICE = "WORK_PERMIT_NOTICE"  # 《外国人工作许可通知》, applied for from abroad
    WORK_PERMIT = "WORK_PERMIT"  # 《外国人工作许可证》, after entry
    RESIDENCE_PERMIT = "RESIDENCE_PERMIT"  # work-type residence permit


@dataclass(frozen=True, slots=True)
class MaterialItem:
    """One item of a checklist. It is satisfied by its own code or any of `alternatives`; it is required only
    for applicants aged `min_age`..`max_age` (inclusive, None = unbounded); `deferrable` items may be
    missing when a category A file is accepted (容缺受理), but must be supplied before issue."""

    code: str
    label: str
    deferrable: bool = False
    alternatives: tuple[str, ...] = ()
    min_age: int | None = None
    max_age: int | None = None

    def applies_to(self, age: int) -> bool:
        return (self.min_age is None or age >= self.min_age) and (self.max_age is None or age <= self.max_age)

    def satisfied_by(self, supplied: frozenset[str]) -> bool:
        return self.code in supplied or any(a in supplied for a in self.alternatives)


@dataclass(frozen=True, slots=True)
class MaterialsCheck:
    stage: Stage
    missing: tuple[MaterialItem, ...]  # every missing item, in checklist order
    deferred: tuple[MaterialItem, ...]  # missing but accepted under 容缺受理 (category A)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def acceptable(self) -> bool:
        """The file may be accepted (受理) now: nothing is missing that may not be deferred."""
        return len(self.missing) == len(self.deferred)

    @property
    def missing_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.missing)


def check_materials(
    stage: Stage, supplied: Iterable[str], age: int, category: Category | None, policy: PermitsPolicy
) -> MaterialsCheck:
    """Every missing item of the stage's checklist at once. Only category A may defer ``deferrable`` items."""
    have = frozenset(supplied)
    missing = tuple(
        item for item in policy.materials[stage] if item.applies_to(age) and not item.satisfied_by(have)
    )
    deferred = tuple(item for item in missing if item.deferrable) if category is Category.A else ()
    return MaterialsCheck(stage, missing, deferred)


def refuse_unknown_materials(items: Iterable[str], policy: PermitsPolicy) -> None:
    unknown = sorted(set(items) - policy.all_material_codes())
    if unknown:
        raise InvalidArgument.one("materials", "UNKNOWN_MATERIAL", "unknown: " + ", ".join(unknown))


def require_complete(check: MaterialsCheck) -> None:
    if not check.complete:
        raise FailedPrecondition(
            "MATERIALS_INCOMPLETE", "missing materials: " + ", ".join(check.missing_codes)
        )
