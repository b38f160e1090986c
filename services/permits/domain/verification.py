"""What another government system may learn about a permit from its number (docs/domain.md §4)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from services.permits.domain.lifecycle import PermitState
from services.permits.domain.residence_permit import ResidencePermitApplication
from services.permits.domain.scoring import Category
from services.permits.domain.validity import Validity
from services.permits.domain.work_permit import WorkPermitApplication

_S = PermitState


class PermitKind(enum.StrEnum):
    WORK_PERMIT = "WORK_PERMIT"
    RESIDENCE_PERMIT = "RESIDENCE_PERMIT"


@dataclass(frozen=True, slots=True)
class PermitVerification:
    """What another government system may learn: no name, passport number or birth date."""

    kind: PermitKind
    valid_now: bool
    state: PermitState
    category: Category
    validity: Validity | None


def verify_permit(
    permit: WorkPermitApplication | ResidencePermitApplication, today: dt.date
) -> PermitVerification:
    kind = (
        PermitKind.WORK_PERMIT if isinstance(permit, WorkPermitApplication) else PermitKind.RESIDENCE_PERMIT
    )
    valid_now = permit.state is _S.ISSUED and permit.validity is not None and permit.validity.covers(today)
    return PermitVerification(kind, valid_now, permit.state, permit.category, permit.validity)
