"""Pure rules of the permits department (docs/domain.md §4): employers, the foreigner's work permit
(外国人工作许可) and the work-type residence permit (工作类居留许可).

No I/O, no grpc, no protobuf, no SQL, and no clock: every rule that depends on the date takes ``today``
as a parameter. Everything docs/domain.md marks U or policy-driven (points tables, local average salaries,
deadlines, validity limits, fee tiers, materials lists, the holiday calendar) is data, loaded by
``services.permits.policy`` into the frozen dataclasses of ``policy.py``.

The package, along its seams (every public name is re-exported here, so ``domain.X`` works throughout):

* ``workdays``          the working-day calendar (holidays and 调休 as data)
* ``employers``         employers and whether they may sponsor
* ``scoring``           the work permit request, its points and its category A, B or C
* ``validity``          validity, the residence permit fee, permit numbers
* ``materials``         checklists and what is missing
* ``policy``            the policy as data, rejection codes
* ``events``            the domain events (a published contract: types and payloads do not change)
* ``lifecycle``         the state machine both permits share
* ``work_permit``       the work permit; ``residence_permit`` the residence permit, and how a work
                        permit's decision reaches the residence permits resting on it
* ``verification``      what another government system may learn

Applications are frozen: an operation returns the new application with its events (``Changed``, or
``Supplied`` with the materials check); a decision on a work permit returns ``WorkPermitDecided``.

Errors (``services.common.errors``):

* ``InvalidArgument`` carries every field violation of a request at once. Field paths are the request's:
  ``unified_social_credit_code``, ``name``, ``address`` (employer); ``applicant.passport_number``,
  ``applicant.nationality``, ``applicant.surname``, ``applicant.given_names``, ``applicant.birth_date``,
  ``employer_uscc``, ``position``, ``work_region``, ``contract.start_date``, ``contract.end_date``,
  ``annual_salary``, ``experience_years``, ``chinese.hsk_level``, ``months_per_year_in_china``,
  ``provincial_bonus`` (work permit); ``entry_date``, ``requested_valid_until`` (residence permit);
  ``reasons`` (rejection); ``materials`` (unknown material codes).
* ``FailedPrecondition`` reasons (stable, UPPER_SNAKE_CASE):

  ``EMPLOYER_NOT_ELIGIBLE``        the employer has a serious record of illegal or dishonest conduct
  ``EMPLOYER_NOT_ACTIVE``          the employer is suspended or deregistered
  ``APPLICANT_UNDER_AGE``          the applicant is under 18 on the application date (a business rule, not a
                                   malformed field, so it is checked after the fields are valid)
  ``NO_POINTS_TABLE``              no points table is in force on that date
  ``LOCAL_AVERAGE_SALARY_UNKNOWN`` no local average salary for the work region on that date
  ``CALENDAR_NOT_COVERED``         a working-day computation reaches a year no holiday notice covers
                                   (``CalendarNotCovered``; the message names the year)
  ``ILLEGAL_TRANSITION``           the application is not in a state that allows the step
  ``MATERIALS_INCOMPLETE``         a step needs materials that are still missing (the message lists them all)
  ``EXTENSION_NOT_ALLOWED``        a review extension for a stay ≤ 90 days
  ``ALREADY_EXTENDED``             the review was already extended once
  ``CONTRACT_ENDED``               the contract ends before the permit could start
  ``WORK_PERMIT_REQUIRED``         residence permit without an approved or issued work permit of the same
                                   person
  ``APPLICATION_TOO_LATE``         residence permit applied for more than 30 days after entry
  ``VALIDITY_TOO_SHORT``           the residence permit would be valid for less than 90 days
  ``EXTENSION_TOO_LATE``           residence permit extension asked for less than 30 days before expiry
  ``PERMIT_NOT_ISSUED``            extension of a permit that is not issued
  ``PERMIT_EXPIRED``               extension of a permit that has already expired
"""

from __future__ import annotations

from services.permits.domain import events
from services.permits.domain.employers import (
    Employer,
    EmployerStatus,
    compact_uscc,
    register_employer,
    uscc_problem,
)
from services.permits.domain.lifecycle import (
    FINAL,
    TRANSITIONS,
    Application,
    PermitState,
    Supplied,
)
from services.permits.domain.materials import (
    MaterialItem,
    MaterialsCheck,
    Stage,
    check_materials,
    refuse_unknown_materials,
    require_complete,
)
from services.permits.domain.policy import (
    OTHER_REJECTION,
    Deadlines,
    PermitsPolicy,
    check_rejection_codes,
)
from services.permits.domain.residence_permit import (
    WORK_PERMIT_DECIDED,
    WORK_PERMIT_PENDING,
    ResidencePermitApplication,
    WorkPermitDecided,
    approve_work_permit,
    cancel_work_permit,
    reject_work_permit,
    residence_validity,
    submit_residence_permit,
)
from services.permits.domain.scoring import (
    EDUCATION_RANK,
    POINT_FLAGS,
    REGION,
    AgeBracket,
    Applicant,
    Category,
    CategoryDecision,
    CategoryRules,
    Contract,
    Education,
    ExperienceRule,
    LocalAverageSalary,
    PointsBreakdown,
    PointsTable,
    Sex,
    SpecialCriterion,
    Threshold,
    WorkPermitRequest,
    classify,
    frozen_mapping,
    score_points,
    validate_work_permit_request,
)
from services.permits.domain.validity import (
    FeeTier,
    Validity,
    ValidityLimits,
    permit_number,
    permit_number_problem,
    residence_fee,
    validate_permit_number,
    work_permit_validity,
)
from services.permits.domain.verification import (
    PermitKind,
    PermitVerification,
    verify_permit,
)
from services.permits.domain.work_permit import (
    WorkPermitApplication,
    submit_work_permit,
)
from services.permits.domain.workdays import (
    ONE_DAY,
    CalendarNotCovered,
    HolidayCalendar,
)

__all__ = [
    "EDUCATION_RANK",
    "FINAL",
    "ONE_DAY",
    "OTHER_REJECTION",
    "POINT_FLAGS",
    "REGION",
    "TRANSITIONS",
    "WORK_PERMIT_DECIDED",
    "WORK_PERMIT_PENDING",
    "AgeBracket",
    "Applicant",
    "Application",
    "CalendarNotCovered",
    "Category",
    "CategoryDecision",
    "CategoryRules",
    "Contract",
    "Deadlines",
    "Education",
    "Employer",
    "EmployerStatus",
    "ExperienceRule",
    "FeeTier",
    "HolidayCalendar",
    "LocalAverageSalary",
    "MaterialItem",
    "MaterialsCheck",
    "PermitKind",
    "PermitState",
    "PermitVerification",
    "PermitsPolicy",
    "PointsBreakdown",
    "PointsTable",
    "ResidencePermitApplication",
    "Sex",
    "SpecialCriterion",
    "Stage",
    "Supplied",
    "Threshold",
    "Validity",
    "ValidityLimits",
    "WorkPermitApplication",
    "WorkPermitDecided",
    "WorkPermitRequest",
    "approve_work_permit",
    "cancel_work_permit",
    "check_materials",
    "check_rejection_codes",
    "classify",
    "compact_uscc",
    "events",
    "frozen_mapping",
    "permit_number",
    "permit_number_problem",
    "refuse_unknown_materials",
    "register_employer",
    "reject_work_permit",
    "require_complete",
    "residence_fee",
    "residence_validity",
    "score_points",
    "submit_residence_permit",
    "submit_work_permit",
    "uscc_problem",
    "validate_permit_number",
    "validate_work_permit_request",
    "verify_permit",
    "work_permit_validity",
]
