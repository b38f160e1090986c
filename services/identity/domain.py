"""The identity department's rules: resident ID card applications, the card register, loss reports,
lost-and-found, temporary cards and cross-province acceptance (docs/domain.md §2).

Pure: no I/O, no clock (every "today" is a parameter), no grpc, protobuf or SQL. Every rule that
docs/domain.md marks unverified or policy-driven comes from an `IdentityPolicy` (loaded from
``policy.toml`` by ``services.identity.policy``) passed in by the caller. Objects are frozen; a change
returns a new object. The operations at the end (the ones the service layer, ``handlers.py``, calls)
return the new state together with the domain events it causes (``services.common.events``): a
``Changed`` for one aggregate, a result type with an ``events`` field when several change.

Refusals raise ``FailedPrecondition(reason, message)`` with one of the reason constants below.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, ClassVar

from services.common.dates import add_months, add_years, age_on
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ValidationCollector
from services.common.events import Changed, DomainEvent

# -- refusal reasons (FailedPrecondition.reason) ----------------------------------------------------
ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
OLD_CARD_NOT_SURRENDERED = "OLD_CARD_NOT_SURRENDERED"
RENEWAL_REASON_REQUIRED = "RENEWAL_REASON_REQUIRED"
TOO_EARLY_FOR_RENEWAL = "TOO_EARLY_FOR_RENEWAL"
CARD_DOES_NOT_EXPIRE = "CARD_DOES_NOT_EXPIRE"
FEE_REDUCTION_NOT_APPLICABLE = "FEE_REDUCTION_NOT_APPLICABLE"
NOT_CROSS_PROVINCE = "NOT_CROSS_PROVINCE"
FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE = "FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE"
PROVINCE_NOT_YET_ACCEPTED = "PROVINCE_NOT_YET_ACCEPTED"
ETHNIC_MINORITY_NOT_YET_ACCEPTED = "ETHNIC_MINORITY_NOT_YET_ACCEPTED"
RESIDENCE_PERMIT_REQUIRED = "RESIDENCE_PERMIT_REQUIRED"
RESIDENCE_PERMIT_EXPIRED = "RESIDENCE_PERMIT_EXPIRED"
IDENTITY_NOT_CONFIRMED = "IDENTITY_NOT_CONFIRMED"
BAD_CREDIT_RECORD = "BAD_CREDIT_RECORD"
CARD_ALREADY_REPORTED_LOST = "CARD_ALREADY_REPORTED_LOST"
CARD_NOT_CURRENT = "CARD_NOT_CURRENT"
FOUND_CARD_NOT_CLAIMABLE = "FOUND_CARD_NOT_CLAIMABLE"
NO_APPLICATION_IN_PROGRESS = "NO_APPLICATION_IN_PROGRESS"
NOT_AT_HUKOU_STATION = "NOT_AT_HUKOU_STATION"
URGENT_NEED_NOT_STATED = "URGENT_NEED_NOT_STATED"

KIND_NOT_ACCEPTED_CROSS_PROVINCE = "KIND_NOT_ACCEPTED_CROSS_PROVINCE"
CROSS_PROVINCE_NOT_OFFERED_HERE = "CROSS_PROVINCE_NOT_OFFERED_HERE"
LOSS_NOT_REPORTED = "LOSS_NOT_REPORTED"
HUKOU_RECORD_NOT_FOUND = "HUKOU_RECORD_NOT_FOUND"
HUKOU_NAME_MISMATCH = "HUKOU_NAME_MISMATCH"
HUKOU_NOT_ACTIVE = "HUKOU_NOT_ACTIVE"
NO_CURRENT_CARD = "NO_CURRENT_CARD"
NOT_A_REPLACEMENT = "NOT_A_REPLACEMENT"
UNKNOWN_REASON_CODE = "UNKNOWN_REASON_CODE"
OTHER_REJECTION = "OTHER"

REFUSAL_REASONS = frozenset(
    {
        ILLEGAL_TRANSITION,
        OLD_CARD_NOT_SURRENDERED,
        RENEWAL_REASON_REQUIRED,
        TOO_EARLY_FOR_RENEWAL,
        CARD_DOES_NOT_EXPIRE,
        FEE_REDUCTION_NOT_APPLICABLE,
        NOT_CROSS_PROVINCE,
        FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE,
        KIND_NOT_ACCEPTED_CROSS_PROVINCE,
        PROVINCE_NOT_YET_ACCEPTED,
        ETHNIC_MINORITY_NOT_YET_ACCEPTED,
        RESIDENCE_PERMIT_REQUIRED,
        RESIDENCE_PERMIT_EXPIRED,
        IDENTITY_NOT_CONFIRMED,
        BAD_CREDIT_RECORD,
        CARD_ALREADY_REPORTED_LOST,
        CARD_NOT_CURRENT,
        FOUND_CARD_NOT_CLAIMABLE,
        NO_APPLICATION_IN_PROGRESS,
        NOT_AT_HUKOU_STATION,
        URGENT_NEED_NOT_STATED,
        CROSS_PROVINCE_NOT_OFFERED_HERE,
        LOSS_NOT_REPORTED,
        HUKOU_RECORD_NOT_FOUND,
        HUKOU_NAME_MISMATCH,
        HUKOU_NOT_ACTIVE,
        NO_CURRENT_CARD,
    }
)

# -- field violation reasons (InvalidArgument) -------------------------------------------------------------
REQUIRED = "REQUIRED"
TOO_LONG = "TOO_LONG"
BAD_REGION_CODE = "BAD_REGION_CODE"
ADDRESS_MAX_LENGTH = 200


# ----------------------------------------------------------------------------------------------------------
# Kinds, reasons, reductions
# ----------------------------------------------------------------------------------------------------------


class ApplicationKind(enum.Enum):
    FIRST_ISSUE = "FIRST_ISSUE"  # 首次申领
    RENEWAL = "RENEWAL"  # 换领 / 换发
    REPLACEMENT = "REPLACEMENT"  # 补领 after loss


class RenewalReason(enum.Enum):
    EXPIRY = "EXPIRY"
    NAME_CHANGE = "NAME_CHANGE"
    SERIOUS_DAMAGE = "SERIOUS_DAMAGE"
    CORRECTION = "CORRECTION"  # a registered item was wrong: the PSB corrects it (换发)
    NEW_GENERATION = "NEW_GENERATION"


class FeeReduction(enum.Enum):
    NONE = "NONE"
    MINIMUM_LIVING_ALLOWANCE = "MINIMUM_LIVING_ALLOWANCE"  # 低保
    ENTITLED_GROUP = "ENTITLED_GROUP"  # 优抚
    HARDSHIP = "HARDSHIP"


def fee_case(kind: ApplicationKind, reason: RenewalReason | None = None) -> str:
    """The key of the fee and materials tables: ``FIRST_ISSUE``, ``RENEWAL.EXPIRY`` …, ``REPLACEMENT``."""
    if kind is ApplicationKind.RENEWAL:
        if reason is None:
            raise FailedPrecondition(RENEWAL_REASON_REQUIRED, "A renewal needs a reason.")
        return f"RENEWAL.{reason.value}"
    if reason is not None:
        raise InvalidArgument.one("renewal_reason", "NOT_A_RENEWAL", "Only a renewal has a renewal reason.")
    return str(kind.value)


ALL_FEE_CASES: tuple[str, ...] = (
    "FIRST_ISSUE",
    *(f"RENEWAL.{r.value}" for r in RenewalReason),
    "REPLACEMENT",
)
TEMPORARY_CARD = "TEMPORARY_CARD"


# ----------------------------------------------------------------------------------------------------------
# Policy (data loaded by services.identity.policy)
# ----------------------------------------------------------------------------------------------------------


class AgeBasis(enum.Enum):
    APPLICATION_DATE = "application_date"
    ISSUE_DATE = "issue_date"


@dataclass(frozen=True, slots=True)
class ValidityBracket:
    """Ages `min_age` to `max_age` (inclusive; None = no upper end) get a card valid `years` years, or
    long-term when `years` is None."""

    min_age: int
    max_age: int | None
    years: int | None


@dataclass(frozen=True, slots=True)
class ValidityPolicy:
    brackets: tuple[ValidityBracket, ...]
    age_basis: AgeBasis
    early_renewal_months: int


@dataclass(frozen=True, slots=True)
class Reduction:
    payable_percent: int
    applies_to: frozenset[str]


@dataclass(frozen=True, slots=True)
class FeePolicy:
    fen: Mapping[str, int]  # fee case (and TEMPORARY_CARD) -> fen
    reductions: Mapping[FeeReduction, Reduction]


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    statutory_days: int
    remote_extension_days: int


@dataclass(frozen=True, slots=True)
class TemporaryCardPolicy:
    validity_months: int
    issue_within_days: int
    fee_fen: int
    hukou_station_only: bool
    urgent_need_required: bool


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """From `effective` on, these hukou provinces are accepted too (`all_provinces`: every one)."""

    effective: date
    province_codes: frozenset[str]
    all_provinces: bool


@dataclass(frozen=True, slots=True)
class CrossProvincePolicy:
    acceptance_province_code: str
    kinds: frozenset[ApplicationKind]
    rollout: tuple[RolloutStep, ...]
    residence_permit_required: bool
    ethnic_minority_from: date | None
    postal_delivery_from: date | None


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    mainland_province_codes: frozenset[str]
    validity: ValidityPolicy
    fees: FeePolicy
    deadlines: DeadlinePolicy
    temporary_card: TemporaryCardPolicy
    cross_province: CrossProvincePolicy
    materials: Mapping[str, tuple[str, ...]]  # fee case or "<case>+CROSS_PROVINCE" / "+UNDER_16"
    material_names: Mapping[str, str]
    # The rejection reasons the department answers with: machine code -> words the applicant reads
    # (always holds OTHER, for a reason stated only in words).
    rejection_codes: Mapping[str, str] = field(default_factory=lambda: {OTHER_REJECTION: "其他原因"})


def rejection_code(code: str, policy: IdentityPolicy) -> str:
    """A rejection's machine code: one of the policy's published codes (OTHER when none is given)."""
    value = code.strip().upper() or OTHER_REJECTION
    if value not in policy.rejection_codes:
        raise InvalidArgument.one(
            "reason_code", UNKNOWN_REASON_CODE, f"not one of {', '.join(sorted(policy.rejection_codes))}"
        )
    return value


# ----------------------------------------------------------------------------------------------------------
# Validity (§2.1)
# ----------------------------------------------------------------------------------------------------------


def validity_years(age: int, policy: IdentityPolicy) -> int | None:
    """Years of validity for a holder of `age` (None = long-term)."""
    for bracket in policy.validity.brackets:
        if age >= bracket.min_age and (bracket.max_age is None or age <= bracket.max_age):
            return bracket.years
    raise InvalidArgument.one("birth_date", "NEGATIVE_AGE", "The birth date is after the application date.")


def card_validity(
    birth_date: date, application_date: date, issue_date: date, policy: IdentityPolicy
) -> tuple[date, date | None]:
    """(valid from, valid until inclusive or None for long-term). The age is taken on the application or
    on the issue date, as the policy says; the period runs from the issue date."""
    on = application_date if policy.validity.age_basis is AgeBasis.APPLICATION_DATE else issue_date
    years = validity_years(age_on(birth_date, on), policy)
    return issue_date, (None if years is None else add_years(issue_date, years))


def check_expiry_renewal(valid_until: date | None, application_date: date, policy: IdentityPolicy) -> None:
    """A renewal for expiry is open from `early_renewal_months` before the end of validity on."""
    if valid_until is None:
        raise FailedPrecondition(CARD_DOES_NOT_EXPIRE, "A long-term card does not expire.")
    opens = add_months(valid_until, -policy.validity.early_renewal_months)
    if application_date < opens:
        raise FailedPrecondition(TOO_EARLY_FOR_RENEWAL, f"Renewal for expiry opens on {opens.isoformat()}.")


# ----------------------------------------------------------------------------------------------------------
# Fees (§2.4), deadlines (§2.5), materials (§2.3, §2.7)
# ----------------------------------------------------------------------------------------------------------


def fee_fen(case: str, reduction: FeeReduction, policy: IdentityPolicy) -> int:
    """The fee in fen (1 yuan = 100 fen). Cross-province cases pay the same as local ones."""
    base = policy.fees.fen[case]
    if reduction is FeeReduction.NONE:
        return base
    rule = policy.fees.reductions[reduction]
    if case not in rule.applies_to:
        raise FailedPrecondition(
            FEE_REDUCTION_NOT_APPLICABLE, f"The {reduction.value} reduction does not apply to {case}."
        )
    return base * rule.payable_percent // 100


def statutory_deadline(application_date: date, policy: IdentityPolicy, *, remote_area: bool = False) -> date:
    """The card must be issued within 60 days of the form, at most 30 more in remote areas (Art. 12).
    Cross-province cases get no extra time."""
    days = policy.deadlines.statutory_days + (policy.deadlines.remote_extension_days if remote_area else 0)
    return application_date + timedelta(days=days)


def required_materials(
    case: str, policy: IdentityPolicy, *, cross_province: bool = False, under_16: bool = False
) -> tuple[str, ...]:
    """Material codes (see ``policy.material_names``) the applicant presents, in order."""
    items = list(policy.materials[case + "+CROSS_PROVINCE" if cross_province else case])
    if under_16:
        items += [m for m in policy.materials.get(case + "+UNDER_16", ()) if m not in items]
    return tuple(items)


@dataclass(frozen=True, slots=True)
class Quote:
    """What an application of one kind costs and how long it may take, on a date (QuoteCardApplication)."""

    fee_fen: int
    statutory_days: int
    statutory_deadline: date
    required_materials: tuple[str, ...]


def quote(
    kind: ApplicationKind,
    reason: RenewalReason | None,
    reduction: FeeReduction,
    on: date,
    policy: IdentityPolicy,
    *,
    cross_province: bool = False,
    under_16: bool = False,
) -> Quote:
    """The same fee, deadline and materials `new_application` fixes, for an application made on `on`.
    A cross-province quote for a kind not accepted cross-province is refused as the application would be."""
    case = fee_case(kind, reason)
    if cross_province and kind not in policy.cross_province.kinds:
        reason_code = (
            FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE
            if kind is ApplicationKind.FIRST_ISSUE
            else KIND_NOT_ACCEPTED_CROSS_PROVINCE
        )
        raise FailedPrecondition(reason_code, f"{kind.value} is not accepted cross-province.")
    return Quote(
        fee_fen=fee_fen(case, reduction, policy),
        statutory_days=policy.deadlines.statutory_days,
        statutory_deadline=statutory_deadline(on, policy),
        required_materials=required_materials(case, policy, cross_province=cross_province, under_16=under_16),
    )


# ----------------------------------------------------------------------------------------------------------
# Hukou facts (§2.3: no hukou record, no card), as the household register answers them
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HukouRecord:
    """What the household register (residence service, VerifyHukou) says about an ID number and a name.
    `status` is the register's person status: REGISTERED, MOVING_OUT or DEREGISTERED ("" if not found)."""

    found: bool
    name_matches: bool
    status: str = ""
    province_code: str = ""
    region_code: str = ""

    @property
    def confirms_identity(self) -> bool:
        return self.found and self.name_matches


@dataclass(frozen=True, slots=True)
class Deregistration:
    """A PersonDeregistered event of the household register, at its position in residence's stream
    (identity follows it: ``cancel_card``, ``cancel_for_deregistered_holder``)."""

    sequence: int
    id_number: str
    reason: str  # DEATH, CONSCRIPTION, ...
    occurred_on: date
    cancel_id_card: bool


def require_hukou(record: HukouRecord, *, active: bool = True) -> HukouRecord:
    """The record, if it confirms the person: ``HUKOU_RECORD_NOT_FOUND``, ``HUKOU_NAME_MISMATCH``, and
    (when `active`) ``HUKOU_NOT_ACTIVE`` for a person not currently registered as a permanent resident."""
    if not record.found:
        raise FailedPrecondition(
            HUKOU_RECORD_NOT_FOUND, "The household register has no entry for this person."
        )
    if not record.name_matches:
        raise FailedPrecondition(HUKOU_NAME_MISMATCH, "The name differs from the household register's.")
    if active and record.status != "REGISTERED":
        raise FailedPrecondition(HUKOU_NOT_ACTIVE, "The person is not registered as a permanent resident.")
    return record


# ----------------------------------------------------------------------------------------------------------
# Cross-province acceptance (§2.7-2.8)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidencePermit:
    """A 《上海市居住证》."""

    number: str
    valid_until: date


@dataclass(frozen=True, slots=True)
class CrossProvinceDecision:
    """An accepted cross-province application: where it is accepted, and whether the card may be posted."""

    hukou_province_code: str
    acceptance_province_code: str
    postal_delivery: bool


def _check_province(code: str, policy: IdentityPolicy) -> None:
    if code not in policy.mainland_province_codes:
        raise InvalidArgument.one(
            "hukou_province_code", "UNKNOWN_PROVINCE", "Not a mainland province code (docs/domain.md §6)."
        )


def is_cross_province(hukou_province_code: str, policy: IdentityPolicy) -> bool:
    _check_province(hukou_province_code, policy)
    return hukou_province_code != policy.cross_province.acceptance_province_code


def province_accepted(hukou_province_code: str, on: date, policy: IdentityPolicy) -> bool:
    """Whether the roll-out table accepts this hukou province on `on`."""
    for step in policy.cross_province.rollout:
        if step.effective <= on and (step.all_provinces or hukou_province_code in step.province_codes):
            return True
    return False


def postal_delivery_available(on: date, policy: IdentityPolicy) -> bool:
    start = policy.cross_province.postal_delivery_from
    return start is not None and on >= start


def assess_cross_province(
    kind: ApplicationKind,
    hukou_province_code: str,
    application_date: date,
    residence_permit: ResidencePermit | None,
    policy: IdentityPolicy,
    *,
    identity_confirmed: bool = True,
    bad_credit_record: bool = False,
    ethnic_minority: bool = False,
) -> CrossProvinceDecision:
    """Decide an application at the acceptance point (Shanghai) from a holder whose hukou is elsewhere.

    `hukou_province_code` comes from the household register (residence service), never from the ID
    number. Refusals, in the order checked: ``NOT_CROSS_PROVINCE`` (hukou in the acceptance province),
    ``FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE``, ``PROVINCE_NOT_YET_ACCEPTED`` (roll-out table),
    ``ETHNIC_MINORITY_NOT_YET_ACCEPTED``, ``RESIDENCE_PERMIT_REQUIRED``, ``RESIDENCE_PERMIT_EXPIRED``,
    ``IDENTITY_NOT_CONFIRMED``, ``BAD_CREDIT_RECORD``. An unknown province is ``InvalidArgument``.
    """
    rules = policy.cross_province
    if not is_cross_province(hukou_province_code, policy):
        raise FailedPrecondition(NOT_CROSS_PROVINCE, "The hukou is in this province: apply locally.")
    if kind not in rules.kinds:
        if kind is ApplicationKind.FIRST_ISSUE:
            raise FailedPrecondition(
                FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE,
                "A first card is issued only by the hukou public security bureau.",
            )
        raise FailedPrecondition(
            KIND_NOT_ACCEPTED_CROSS_PROVINCE, f"{kind.value} is not accepted cross-province."
        )
    if not province_accepted(hukou_province_code, application_date, policy):
        raise FailedPrecondition(
            PROVINCE_NOT_YET_ACCEPTED,
            f"Hukou province {hukou_province_code} is not accepted here on {application_date.isoformat()}.",
        )
    if ethnic_minority and (
        rules.ethnic_minority_from is None or application_date < rules.ethnic_minority_from
    ):
        raise FailedPrecondition(
            ETHNIC_MINORITY_NOT_YET_ACCEPTED,
            "Ethnic-minority applicants are not yet accepted cross-province.",
        )
    if rules.residence_permit_required:
        if residence_permit is None:
            raise FailedPrecondition(
                RESIDENCE_PERMIT_REQUIRED, "A valid Shanghai residence permit is required."
            )
        if residence_permit.valid_until < application_date:
            raise FailedPrecondition(RESIDENCE_PERMIT_EXPIRED, "The Shanghai residence permit has expired.")
    if not identity_confirmed:
        raise FailedPrecondition(IDENTITY_NOT_CONFIRMED, "The applicant's identity could not be confirmed.")
    if bad_credit_record:
        raise FailedPrecondition(BAD_CREDIT_RECORD, "The applicant has a bad-credit record.")
    return CrossProvinceDecision(
        hukou_province_code,
        rules.acceptance_province_code,
        postal_delivery_available(application_date, policy),
    )


# ----------------------------------------------------------------------------------------------------------
# Applications and their state machine (§2.3, §2.5)
# ----------------------------------------------------------------------------------------------------------


class ApplicationState(enum.Enum):
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CARD_PRODUCED = "CARD_PRODUCED"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    ISSUED = "ISSUED"
    CANCELLED = "CANCELLED"


class Action(enum.Enum):
    ACCEPT = "ACCEPT"
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    MARK_PRODUCED = "MARK_PRODUCED"
    MARK_READY = "MARK_READY"
    ISSUE = "ISSUE"
    CANCEL = "CANCEL"


S = ApplicationState
TRANSITIONS: Mapping[tuple[ApplicationState, Action], ApplicationState] = {
    (S.SUBMITTED, Action.ACCEPT): S.ACCEPTED,
    (S.SUBMITTED, Action.CANCEL): S.CANCELLED,
    (S.ACCEPTED, Action.APPROVE): S.APPROVED,
    (S.ACCEPTED, Action.REJECT): S.REJECTED,
    (S.ACCEPTED, Action.CANCEL): S.CANCELLED,
    (S.APPROVED, Action.MARK_PRODUCED): S.CARD_PRODUCED,
    (S.CARD_PRODUCED, Action.MARK_READY): S.READY_FOR_PICKUP,
    (S.READY_FOR_PICKUP, Action.ISSUE): S.ISSUED,
}
OPEN_STATES = frozenset({S.SUBMITTED, S.ACCEPTED, S.APPROVED, S.CARD_PRODUCED, S.READY_FOR_PICKUP})
FINAL_STATES = frozenset(ApplicationState) - OPEN_STATES
del S


def next_state(state: ApplicationState, action: Action) -> ApplicationState:
    """The state after `action`, or ``FailedPrecondition(ILLEGAL_TRANSITION)``."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise FailedPrecondition(
            ILLEGAL_TRANSITION,
            f"Cannot {action.value.lower().replace('_', ' ')} an application that is {state.value}.",
        ) from None


@dataclass(frozen=True, slots=True)
class CardApplication:
    id: str
    id_number: str
    name: str
    kind: ApplicationKind
    renewal_reason: RenewalReason | None
    hukou_province_code: str
    hukou_region_code: str
    accepting_region_code: str
    cross_province: bool
    application_date: date
    fee_reduction: FeeReduction
    fee_fen: int
    statutory_deadline: date
    required_materials: tuple[str, ...]
    residence_permit: ResidencePermit | None = None
    state: ApplicationState = ApplicationState.SUBMITTED
    rejection_reason: str = ""
    cancellation_reason: str = ""
    card_number: str = ""
    history: tuple[tuple[ApplicationState, date], ...] = field(default=())
    # A replacement's loss report: filed with it, or (loss_already_reported) earlier on its own.
    loss_report: LossReport | None = None
    loss_already_reported: bool = False
    rejection_code: str = ""

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def ready_on(self) -> date | None:
        """The day the card reached the collection point."""
        return next((on for s, on in self.history if s is ApplicationState.READY_FOR_PICKUP), None)

    def _to(self, action: Action, on: date, **changes: object) -> CardApplication:
        state = next_state(self.state, action)
        return replace(self, state=state, history=(*self.history, (state, on)), **changes)  # type: ignore[arg-type]

    def accept(self, on: date) -> CardApplication:
        return self._to(Action.ACCEPT, on)

    def approve(self, on: date) -> CardApplication:
        return self._to(Action.APPROVE, on)

    def reject(self, reason: str, on: date, code: str = OTHER_REJECTION) -> CardApplication:
        if not reason.strip():
            raise InvalidArgument.one("reason", "REQUIRED", "A rejection states its reason.")
        return self._to(Action.REJECT, on, rejection_reason=reason, rejection_code=code)

    def cancel(self, reason: str, on: date) -> CardApplication:
        return self._to(Action.CANCEL, on, cancellation_reason=reason)

    def mark_produced(self, card_number: str, on: date) -> CardApplication:
        if not card_number:
            raise InvalidArgument.one("card_number", "REQUIRED", "A produced card has a number.")
        return self._to(Action.MARK_PRODUCED, on, card_number=card_number)

    def mark_ready(self, on: date) -> CardApplication:
        return self._to(Action.MARK_READY, on)

    def issue(self, on: date, *, old_card_surrendered: bool) -> CardApplication:
        """Hand the card over. For a renewal the old card is surrendered at collection (Art. 11)."""
        next_state(self.state, Action.ISSUE)
        if self.kind is ApplicationKind.RENEWAL and not old_card_surrendered:
            raise FailedPrecondition(
                OLD_CARD_NOT_SURRENDERED, "The old card is handed in when the new one is collected."
            )
        return self._to(Action.ISSUE, on)


def ensure_no_open_application(existing: Iterable[CardApplication]) -> None:
    """One open application per person at a time (ALREADY_EXISTS otherwise)."""
    for application in existing:
        if application.is_open:
            raise AlreadyExists(f"Application {application.id} is still open.")


def new_application(
    *,
    id: str,
    id_number: str,
    name: str,
    birth_date: date,
    kind: ApplicationKind,
    renewal_reason: RenewalReason | None,
    hukou_province_code: str,
    hukou_region_code: str,
    accepting_region_code: str,
    application_date: date,
    fee_reduction: FeeReduction,
    policy: IdentityPolicy,
    residence_permit: ResidencePermit | None = None,
    current_card: Card | None = None,
    remote_area: bool = False,
    identity_confirmed: bool = True,
    bad_credit_record: bool = False,
    existing: Iterable[CardApplication] = (),
    accepting_province_code: str | None = None,
    report_loss: bool = False,
    require_cross_province: bool = False,
) -> CardApplication:
    """A submitted application with its fee, deadline and materials, after every rule that can refuse it.

    `id_number` must already be validated (``require_id_number``); the hukou facts come from the
    household register. A renewal for expiry needs `current_card` and respects the early-renewal window.
    The application is cross-province when the hukou province differs from `accepting_province_code`
    (default: the policy's acceptance province); cross-province applications are accepted only in the
    policy's acceptance province (``CROSS_PROVINCE_NOT_OFFERED_HERE``). A replacement while the register
    still holds the person's card as VALID or EXPIRED needs a loss report first (``LOSS_NOT_REPORTED``)
    unless `report_loss` (the report is filed with the application: ``take_loss_report``). With
    `require_cross_province` (the applicant chose cross-province acceptance) a hukou in the accepting
    province is refused with ``NOT_CROSS_PROVINCE``.
    """
    ensure_no_open_application(existing)
    case = fee_case(kind, renewal_reason)
    _check_province(hukou_province_code, policy)
    accepting = accepting_province_code or policy.cross_province.acceptance_province_code
    cross = hukou_province_code != accepting
    if require_cross_province and not cross:
        raise FailedPrecondition(
            NOT_CROSS_PROVINCE,
            f"The hukou is in province {accepting}: this is a local application, not a cross-province one.",
        )
    if report_loss and kind is not ApplicationKind.REPLACEMENT:
        raise InvalidArgument.one("report_loss", NOT_A_REPLACEMENT, "Only a replacement reports a loss.")
    if cross and accepting != policy.cross_province.acceptance_province_code:
        raise FailedPrecondition(
            CROSS_PROVINCE_NOT_OFFERED_HERE,
            f"Applications from other provinces' hukou holders are not accepted in province {accepting}.",
        )
    if (
        kind is ApplicationKind.REPLACEMENT
        and current_card is not None
        and current_card.status in (CardStatus.VALID, CardStatus.EXPIRED)
        and not report_loss
    ):
        raise FailedPrecondition(LOSS_NOT_REPORTED, "A replacement follows a loss report of the card.")
    if cross:
        assess_cross_province(
            kind,
            hukou_province_code,
            application_date,
            residence_permit,
            policy,
            identity_confirmed=identity_confirmed,
            bad_credit_record=bad_credit_record,
        )
    if renewal_reason is RenewalReason.EXPIRY and current_card is not None:
        check_expiry_renewal(current_card.valid_until, application_date, policy)
    return CardApplication(
        id=id,
        id_number=id_number,
        name=name,
        kind=kind,
        renewal_reason=renewal_reason,
        hukou_province_code=hukou_province_code,
        hukou_region_code=hukou_region_code,
        accepting_region_code=accepting_region_code,
        cross_province=cross,
        application_date=application_date,
        fee_reduction=fee_reduction,
        fee_fen=fee_fen(case, fee_reduction, policy),
        statutory_deadline=statutory_deadline(
            application_date, policy, remote_area=remote_area and not cross
        ),
        required_materials=required_materials(
            case, policy, cross_province=cross, under_16=age_on(birth_date, application_date) < 16
        ),
        residence_permit=residence_permit,
        history=((ApplicationState.SUBMITTED, application_date),),
    )


# ----------------------------------------------------------------------------------------------------------
# Card register (§2.1, §2.9)
# ----------------------------------------------------------------------------------------------------------


class CardStatus(enum.Enum):
    VALID = "VALID"
    REPORTED_LOST = "REPORTED_LOST"
    EXPIRED = "EXPIRED"
    SUPERSEDED = "SUPERSEDED"
    INVALIDATED = "INVALIDATED"
    CANCELLED = "CANCELLED"  # 注销 on the holder's death


@dataclass(frozen=True, slots=True)
class Card:
    card_number: str
    id_number: str
    valid_from: date
    valid_until: date | None  # inclusive; None = long-term
    status: CardStatus = CardStatus.VALID
    application_id: str = ""
    # The hukou address in the chip's machine-readable data (Art. 11), "" / None until one is recorded.
    address_region_code: str = ""
    address: str = ""
    address_recorded_on: date | None = None
    cancelled_on: date | None = None

    @property
    def long_term(self) -> bool:
        return self.valid_until is None


@dataclass(frozen=True, slots=True)
class CardVerification:
    """What `VerifyCard` may say: valid now or not, and why (no personal data)."""

    valid: bool
    reason: str  # VALID, NOT_YET_VALID, or a CardStatus value
    since: date | None = None  # for CANCELLED: the day it was cancelled


def verify(card: Card, today: date) -> CardVerification:
    if card.status is CardStatus.CANCELLED:
        return CardVerification(False, card.status.value, card.cancelled_on)
    if card.status is not CardStatus.VALID:
        return CardVerification(False, card.status.value)
    if today < card.valid_from:
        return CardVerification(False, "NOT_YET_VALID")
    if card.valid_until is not None and today > card.valid_until:
        return CardVerification(False, CardStatus.EXPIRED.value)
    return CardVerification(True, "VALID")


def produce_card(
    application: CardApplication, birth_date: date, issue_date: date, policy: IdentityPolicy
) -> Card:
    """The card of an application being issued, with its validity by age (§2.1)."""
    valid_from, valid_until = card_validity(birth_date, application.application_date, issue_date, policy)
    return Card(
        application.card_number,
        application.id_number,
        valid_from,
        valid_until,
        CardStatus.VALID,
        application.id,
    )


def issue_card(
    application: CardApplication,
    birth_date: date,
    issue_date: date,
    policy: IdentityPolicy,
    *,
    previous_card: Card | None,
    old_card_surrendered: bool,
) -> tuple[CardApplication, Card, Card | None]:
    """Issue: (application ISSUED, the new VALID card, the previous card updated). A previous card that
    was reported lost stays REPORTED_LOST (checkers must keep refusing it); any other becomes SUPERSEDED."""
    issued = application.issue(issue_date, old_card_surrendered=old_card_surrendered)
    card = produce_card(application, birth_date, issue_date, policy)
    if previous_card is not None and previous_card.status is not CardStatus.REPORTED_LOST:
        previous_card = replace(previous_card, status=CardStatus.SUPERSEDED)
    return issued, card, previous_card


def mark_expired(card: Card, today: date) -> Card:
    """The register's housekeeping: a VALID card past its end becomes EXPIRED."""
    if card.status is CardStatus.VALID and card.valid_until is not None and today > card.valid_until:
        return replace(card, status=CardStatus.EXPIRED)
    return card


def invalidate(card: Card) -> Card:
    """E.g. a card issued by mistake or on fraud: INVALIDATED for good."""
    return replace(card, status=CardStatus.INVALIDATED)


def cancel_on_death(card: Card, on: date) -> Card | None:
    """The household register deregistered the holder on death: the card is cancelled (注销) from `on`
    (the death date) and every check refuses it. None when nothing changes (already cancelled, or a card
    no longer in use: superseded or invalidated)."""
    if card.status in (CardStatus.CANCELLED, CardStatus.SUPERSEDED, CardStatus.INVALIDATED):
        return None
    return replace(card, status=CardStatus.CANCELLED, cancelled_on=on)


def check_card_address(region_code: str, address: str) -> tuple[str, str]:
    """The (region code, address) of a hukou address to record, stripped; InvalidArgument listing every
    problem: ``region_code`` REQUIRED / BAD_REGION_CODE (not six digits), ``address`` REQUIRED / TOO_LONG
    (over ``ADDRESS_MAX_LENGTH`` characters)."""
    v = ValidationCollector()
    region, text = region_code.strip(), address.strip()
    if not region:
        v.add("region_code", REQUIRED, "region_code is required")
    elif len(region) != 6 or not (region.isascii() and region.isdigit()):
        v.add("region_code", BAD_REGION_CODE, "a six-digit administrative division code")
    if not text:
        v.add("address", REQUIRED, "address is required")
    elif len(text) > ADDRESS_MAX_LENGTH:
        v.add("address", TOO_LONG, f"at most {ADDRESS_MAX_LENGTH} characters")
    v.raise_if_any()
    return region, text


def record_address(card: Card | None, region_code: str, address: str, on: date) -> Card:
    """A hukou move does not need a new card: the PSB records the new address in the card's
    machine-readable data (Law Art. 11, 2011 text; docs/domain.md §2.3). Only a card VALID on `on` is updated
    (``NO_CURRENT_CARD`` for none, or one reported lost, superseded, invalidated or past its end); the
    card's number, validity and status are unchanged."""
    region, text = check_card_address(region_code, address)
    if card is None or mark_expired(card, on).status is not CardStatus.VALID:
        raise FailedPrecondition(NO_CURRENT_CARD, "The person holds no valid card to record the address on.")
    return replace(card, address_region_code=region, address=text, address_recorded_on=on)


# ----------------------------------------------------------------------------------------------------------
# Loss reports and lost-and-found (§2.9)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LossReport:
    card_number: str
    id_number: str
    station_region_code: str
    reported_on: date
    # Inside the hukou area the replacement is applied for on the spot; outside it, only under the
    # cross-province conditions of §2.7 (`assess_cross_province`) or back in the hukou area.
    inside_hukou_area: bool
    id: str = ""
    # The card application it was filed with ("" for a report filed on its own): it stands or falls
    # with that application.
    application_id: str = ""
    withdrawn_on: date | None = None

    @property
    def standing(self) -> bool:
        return self.withdrawn_on is None


def report_lost(
    card: Card, station_region_code: str, hukou_region_code: str, reported_on: date
) -> tuple[Card, LossReport]:
    """A loss report at any station: the card is REPORTED_LOST at once."""
    if card.status is CardStatus.REPORTED_LOST:
        raise FailedPrecondition(CARD_ALREADY_REPORTED_LOST, "This card has already been reported lost.")
    if card.status not in (CardStatus.VALID, CardStatus.EXPIRED):
        raise FailedPrecondition(CARD_NOT_CURRENT, f"This card is {card.status.value}: nothing to report.")
    report = LossReport(
        card.card_number,
        card.id_number,
        station_region_code,
        reported_on,
        station_region_code == hukou_region_code,
    )
    return replace(card, status=CardStatus.REPORTED_LOST), report


def take_loss_report(
    app: CardApplication,
    current_card: Card | None,
    standing_report: LossReport | None,
    *,
    report_loss: bool,
    report_id: str,
    on: date,
) -> tuple[CardApplication, Card | None, LossReport | None]:
    """The loss report a new replacement application rests on (§2.9): (application, card changed, report
    filed). A card already reported lost brings its standing report, answered as "already reported"
    (`loss_already_reported`, the report's date). With `report_loss`, a card still VALID or EXPIRED is
    reported lost at the accepting station, filed with the application (its id on the report) and
    committed with it: a refused application leaves no report behind. Other kinds pass unchanged."""
    if app.kind is not ApplicationKind.REPLACEMENT or current_card is None:
        return app, None, None
    card = mark_expired(current_card, on)
    if card.status is CardStatus.REPORTED_LOST:
        if standing_report is None:
            return app, None, None
        return replace(app, loss_report=standing_report, loss_already_reported=True), None, None
    if not report_loss or card.status not in (CardStatus.VALID, CardStatus.EXPIRED):
        return app, None, None
    lost, report = report_lost(card, app.accepting_region_code, app.hukou_region_code, on)
    report = replace(report, id=report_id, application_id=app.id)
    return replace(app, loss_report=report), lost, report


def withdraw_loss_report(
    app: CardApplication, card: Card | None, on: date
) -> tuple[CardApplication, Card | None, LossReport | None]:
    """When an application is rejected or cancelled, the loss report filed with it goes with it: the
    report is withdrawn and the card, if still REPORTED_LOST on that report, is VALID again (the register
    reads it EXPIRED when past its end). A report filed on its own, or one taken over as "already
    reported", stays. Answers (application, card changed, report withdrawn), Nones when nothing changes."""
    report = app.loss_report
    if report is None or app.loss_already_reported or report.application_id != app.id or not report.standing:
        return app, None, None
    withdrawn = replace(report, withdrawn_on=on)
    restored = None
    if (
        card is not None
        and card.card_number == report.card_number
        and card.status is CardStatus.REPORTED_LOST
    ):
        restored = replace(card, status=CardStatus.VALID)
    return replace(app, loss_report=withdrawn), restored, withdrawn


class FoundCardStatus(enum.Enum):
    AWAITING_OWNER = "AWAITING_OWNER"
    DESTROYED = "DESTROYED"
    RETURNED = "RETURNED"


@dataclass(frozen=True, slots=True)
class FoundCard:
    id: str
    card_number: str
    id_number: str
    station_region_code: str
    found_place: str
    found_on: date
    registered_on: date
    status: FoundCardStatus
    notify_owner: bool
    claimant_photo_ref: str = ""
    closed_on: date | None = None


def register_found_card(
    *,
    id: str,
    card: Card,
    owner_current_card: Card | None,
    station_region_code: str,
    found_place: str,
    found_on: date,
    registered_on: date,
) -> FoundCard:
    """A found card is entered in the database. If its owner has already been issued a replacement it is
    logged and destroyed; otherwise it waits for the owner, who is notified (`notify_owner`)."""
    if found_on > registered_on:
        raise InvalidArgument.one("found_on", "IN_THE_FUTURE", "A card is found before it is registered.")
    replaced = owner_current_card is not None and owner_current_card.card_number != card.card_number
    return FoundCard(
        id=id,
        card_number=card.card_number,
        id_number=card.id_number,
        station_region_code=station_region_code,
        found_place=found_place,
        found_on=found_on,
        registered_on=registered_on,
        status=FoundCardStatus.DESTROYED if replaced else FoundCardStatus.AWAITING_OWNER,
        notify_owner=not replaced,
        closed_on=registered_on if replaced else None,
    )


def claim_found_card(
    found: FoundCard, claimant_id_number: str, *, identity_confirmed: bool, photo_ref: str, on: date
) -> FoundCard:
    """Return a found card to its owner after checking identity and keeping a photo of the claimant."""
    if found.status is not FoundCardStatus.AWAITING_OWNER:
        raise FailedPrecondition(FOUND_CARD_NOT_CLAIMABLE, f"This found card is {found.status.value}.")
    if claimant_id_number != found.id_number or not identity_confirmed:
        raise FailedPrecondition(IDENTITY_NOT_CONFIRMED, "The claimant's identity could not be confirmed.")
    if not photo_ref:
        raise InvalidArgument.one("photo_ref", "REQUIRED", "A photo of the claimant is kept on return.")
    return replace(found, status=FoundCardStatus.RETURNED, claimant_photo_ref=photo_ref, closed_on=on)


# ----------------------------------------------------------------------------------------------------------
# Temporary card (§2.6)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemporaryCard:
    id_number: str
    application_id: str
    applied_on: date
    issue_by: date
    fee_fen: int
    issued_on: date | None = None
    valid_until: date | None = None  # inclusive

    def issue(self, on: date, policy: IdentityPolicy) -> TemporaryCard:
        """Valid `validity_months` from issue, to the same day of the month (as cards, §2.1)."""
        until = add_months(on, policy.temporary_card.validity_months)
        return replace(self, issued_on=on, valid_until=until)


def apply_for_temporary_card(
    *,
    id_number: str,
    applications: Iterable[CardApplication],
    station_region_code: str,
    hukou_region_code: str,
    urgent_need: bool,
    applied_on: date,
    policy: IdentityPolicy,
) -> TemporaryCard:
    """Only while an application to issue, renew or replace is in progress, when the card is urgently
    needed, at the hukou police station; 10 yuan; to be issued within 3 days."""
    rules = policy.temporary_card
    in_progress = [a for a in applications if a.is_open and a.id_number == id_number]
    if not in_progress:
        raise FailedPrecondition(
            NO_APPLICATION_IN_PROGRESS, "A temporary card needs an application in progress."
        )
    if rules.urgent_need_required and not urgent_need:
        raise FailedPrecondition(URGENT_NEED_NOT_STATED, "A temporary card is for an urgent need.")
    if rules.hukou_station_only and station_region_code != hukou_region_code:
        raise FailedPrecondition(
            NOT_AT_HUKOU_STATION, "A temporary card is issued at the hukou police station."
        )
    return TemporaryCard(
        id_number=id_number,
        application_id=in_progress[0].id,
        applied_on=applied_on,
        issue_by=applied_on + timedelta(days=rules.issue_within_days),
        fee_fen=rules.fee_fen,
    )


# ----------------------------------------------------------------------------------------------------------
# Domain events: what the department publishes on WatchEvents (a contract: the gateway's saga and other
# departments read these types and payloads). `aggregate` names the field that is the event's aggregate id.
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityEvent(DomainEvent):
    aggregate: ClassVar[str] = ""

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate))


@dataclass(frozen=True, slots=True)
class ApplicationEvent(IdentityEvent):
    """What every event of a card application says about it."""

    aggregate: ClassVar[str] = "application_id"
    application_id: str
    id_number: str
    kind: ApplicationKind
    state: ApplicationState
    cross_province: bool
    fee_fen: int


def _about(app: CardApplication) -> dict[str, Any]:
    return {
        "application_id": app.id,
        "id_number": app.id_number,
        "kind": app.kind,
        "state": app.state,
        "cross_province": app.cross_province,
        "fee_fen": app.fee_fen,
    }


@dataclass(frozen=True, slots=True)
class CardApplicationSubmitted(ApplicationEvent):
    type: ClassVar[str] = "CardApplicationSubmitted"
    statutory_deadline: date
    loss_report_id: str | None  # a replacement's loss report (the loss_* fields only when there is one)
    loss_reported_on: date | None
    loss_already_reported: bool

    def payload(self) -> dict[str, Any]:
        payload = DomainEvent.payload(self)
        if self.loss_report_id is None:
            for key in ("loss_report_id", "loss_reported_on", "loss_already_reported"):
                del payload[key]
        return payload


@dataclass(frozen=True, slots=True)
class CardApplicationApproved(ApplicationEvent):
    type: ClassVar[str] = "CardApplicationApproved"


@dataclass(frozen=True, slots=True)
class CardApplicationRejected(ApplicationEvent):
    type: ClassVar[str] = "CardApplicationRejected"
    loss_report_withdrawn: bool
    rejection_reason: str
    rejection_code: str


@dataclass(frozen=True, slots=True)
class CardApplicationCancelled(ApplicationEvent):
    type: ClassVar[str] = "CardApplicationCancelled"
    loss_report_withdrawn: bool
    cancellation_reason: str


@dataclass(frozen=True, slots=True)
class CardProduced(ApplicationEvent):
    type: ClassVar[str] = "CardProduced"
    card_number: str


@dataclass(frozen=True, slots=True)
class CardReadyForPickup(ApplicationEvent):
    type: ClassVar[str] = "CardReadyForPickup"
    card_number: str
    ready_on: date | None
    collect_at_region_code: str


@dataclass(frozen=True, slots=True)
class CardIssued(ApplicationEvent):
    type: ClassVar[str] = "CardIssued"
    card_number: str
    valid_until: date | None
    previous_card_number: str | None


@dataclass(frozen=True, slots=True)
class CardReportedLost(IdentityEvent):
    type: ClassVar[str] = "CardReportedLost"
    aggregate: ClassVar[str] = "card_number"
    card_number: str
    id_number: str
    station_region_code: str
    inside_hukou_area: bool
    loss_report_id: str
    reported_on: date
    application_id: str | None  # the application it was filed with, None for a report of its own

    @classmethod
    def of(cls, report: LossReport) -> CardReportedLost:
        return cls(
            report.card_number,
            report.id_number,
            report.station_region_code,
            report.inside_hukou_area,
            report.id,
            report.reported_on,
            report.application_id or None,
        )


@dataclass(frozen=True, slots=True)
class CardLossReportWithdrawn(IdentityEvent):
    type: ClassVar[str] = "CardLossReportWithdrawn"
    aggregate: ClassVar[str] = "card_number"
    card_number: str
    id_number: str
    loss_report_id: str
    application_id: str
    withdrawn_on: date


@dataclass(frozen=True, slots=True)
class CardAddressUpdated(IdentityEvent):
    type: ClassVar[str] = "CardAddressUpdated"
    aggregate: ClassVar[str] = "card_number"
    id_number: str
    card_number: str
    region_code: str
    recorded_on: date


@dataclass(frozen=True, slots=True)
class CardCancelled(IdentityEvent):
    """The holder was deregistered (death and the other reasons the register cancels a card for)."""

    type: ClassVar[str] = "CardCancelled"
    aggregate: ClassVar[str] = "card_number"
    card_number: str
    id_number: str
    cancelled_on: date
    cause: str


@dataclass(frozen=True, slots=True)
class FoundCardEvent(IdentityEvent):
    aggregate: ClassVar[str] = "found_card_id"
    found_card_id: str
    card_number: str
    id_number: str


@dataclass(frozen=True, slots=True)
class FoundCardRegistered(FoundCardEvent):
    type: ClassVar[str] = "FoundCardRegistered"
    status: FoundCardStatus
    notify_owner: bool
    station_region_code: str


@dataclass(frozen=True, slots=True)
class FoundCardDestroyed(FoundCardEvent):
    type: ClassVar[str] = "FoundCardDestroyed"


@dataclass(frozen=True, slots=True)
class FoundCardClaimed(FoundCardEvent):
    type: ClassVar[str] = "FoundCardClaimed"


@dataclass(frozen=True, slots=True)
class TemporaryCardIssued(IdentityEvent):
    type: ClassVar[str] = "TemporaryCardIssued"
    aggregate: ClassVar[str] = "temporary_card_id"
    temporary_card_id: str
    application_id: str
    id_number: str
    valid_until: date | None


def aggregate_id(event: DomainEvent) -> str:
    """The id of the aggregate an identity event is about (the outbox's and WatchEvents' aggregate_id)."""
    if not isinstance(event, IdentityEvent):
        raise TypeError(f"not an identity event: {event.type}")
    return event.aggregate_id


EVENT_TYPES: tuple[type[IdentityEvent], ...] = (
    CardApplicationSubmitted,
    CardApplicationApproved,
    CardApplicationRejected,
    CardApplicationCancelled,
    CardProduced,
    CardReadyForPickup,
    CardIssued,
    CardReportedLost,
    CardLossReportWithdrawn,
    CardAddressUpdated,
    CardCancelled,
    FoundCardRegistered,
    FoundCardDestroyed,
    FoundCardClaimed,
    TemporaryCardIssued,
)


# ----------------------------------------------------------------------------------------------------------
# Operations: what the service layer calls. Each composes the rules above and returns the new state with
# the events it causes, in the order they are published.
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    """A new application, ACCEPTED; for a replacement, the card reported lost with it and the report."""

    application: CardApplication
    lost_card: Card | None
    loss_report: LossReport | None
    events: tuple[IdentityEvent, ...]


def submit_application(
    application: CardApplication,
    current_card: Card | None,
    standing_report: LossReport | None,
    *,
    report_loss: bool,
    report_id: str,
    on: date,
) -> Submitted:
    """Accept a new application (from ``new_application``) and take its loss report (``take_loss_report``):
    CardReportedLost when a report is filed with it, then CardApplicationSubmitted."""
    app, lost_card, report = take_loss_report(
        application.accept(on),
        current_card,
        standing_report,
        report_loss=report_loss,
        report_id=report_id,
        on=on,
    )
    events: list[IdentityEvent] = []
    if report is not None:
        events.append(CardReportedLost.of(report))
    taken = app.loss_report
    events.append(
        CardApplicationSubmitted(
            **_about(app),
            statutory_deadline=app.statutory_deadline,
            loss_report_id=taken.id if taken else None,
            loss_reported_on=taken.reported_on if taken else None,
            loss_already_reported=app.loss_already_reported,
        )
    )
    return Submitted(app, lost_card, report, tuple(events))


def approve_application(app: CardApplication, on: date) -> Changed[CardApplication]:
    approved = app.approve(on)
    return Changed(approved, (CardApplicationApproved(**_about(approved)),))


def mark_card_produced(app: CardApplication, card_number: str, on: date) -> Changed[CardApplication]:
    produced = app.mark_produced(card_number, on)
    return Changed(produced, (CardProduced(**_about(produced), card_number=produced.card_number),))


def mark_card_ready(app: CardApplication, on: date) -> Changed[CardApplication]:
    ready = app.mark_ready(on)
    event = CardReadyForPickup(
        **_about(ready),
        card_number=ready.card_number,
        ready_on=ready.ready_on,
        collect_at_region_code=ready.accepting_region_code,
    )
    return Changed(ready, (event,))


@dataclass(frozen=True, slots=True)
class Closed:
    """A rejected or cancelled application; the loss report filed with it withdrawn, and its card VALID
    again (None when nothing else changed)."""

    application: CardApplication
    restored_card: Card | None
    withdrawn_report: LossReport | None
    events: tuple[IdentityEvent, ...]


def _close(
    closed: CardApplication,
    card: Card | None,
    on: date,
    event: Callable[[CardApplication, bool], IdentityEvent],
) -> Closed:
    app, restored, withdrawn = withdraw_loss_report(closed, card, on)
    events = [event(app, withdrawn is not None)]
    if withdrawn is not None:
        events.append(
            CardLossReportWithdrawn(withdrawn.card_number, withdrawn.id_number, withdrawn.id, app.id, on)
        )
    return Closed(app, restored, withdrawn, tuple(events))


def reject_application(app: CardApplication, card: Card | None, reason: str, code: str, on: date) -> Closed:
    """Reject (`card`: the card of the application's loss report, if any): CardApplicationRejected, then
    CardLossReportWithdrawn for a report filed with it."""
    return _close(
        app.reject(reason, on, code),
        card,
        on,
        lambda a, withdrawn: CardApplicationRejected(
            **_about(a),
            loss_report_withdrawn=withdrawn,
            rejection_reason=a.rejection_reason,
            rejection_code=a.rejection_code,
        ),
    )


def cancel_application(app: CardApplication, card: Card | None, reason: str, on: date) -> Closed:
    """Cancel, as `reject_application`: CardApplicationCancelled, then CardLossReportWithdrawn."""
    return _close(
        app.cancel(reason, on),
        card,
        on,
        lambda a, withdrawn: CardApplicationCancelled(
            **_about(a), loss_report_withdrawn=withdrawn, cancellation_reason=a.cancellation_reason
        ),
    )


def cancel_for_deregistered_holder(app: CardApplication, reason: str, on: date) -> Closed:
    """The register deregistered the applicant: the application is cancelled and a loss report filed with
    it withdrawn, but the card stays cancelled, so no card is restored and no CardLossReportWithdrawn is
    published (CardApplicationCancelled says ``loss_report_withdrawn``)."""
    closed = _close(
        app.cancel(reason, on),
        None,
        on,
        lambda a, withdrawn: CardApplicationCancelled(
            **_about(a), loss_report_withdrawn=withdrawn, cancellation_reason=a.cancellation_reason
        ),
    )
    return replace(closed, events=closed.events[:1])


@dataclass(frozen=True, slots=True)
class Issued:
    """The application ISSUED, its new card, and the person's previous card when it changed."""

    application: CardApplication
    card: Card
    previous_card: Card | None
    events: tuple[IdentityEvent, ...]


def hand_over_card(
    app: CardApplication,
    birth_date: date,
    on: date,
    policy: IdentityPolicy,
    *,
    previous_card: Card | None,
    old_card_surrendered: bool,
) -> Issued:
    """``issue_card`` with its CardIssued event."""
    issued, card, previous_after = issue_card(
        app, birth_date, on, policy, previous_card=previous_card, old_card_surrendered=old_card_surrendered
    )
    event = CardIssued(
        **_about(issued),
        card_number=card.card_number,
        valid_until=card.valid_until,
        previous_card_number=previous_card.card_number if previous_card else None,
    )
    changed_previous = previous_after if previous_after != previous_card else None
    return Issued(issued, card, changed_previous, (event,))


@dataclass(frozen=True, slots=True)
class LossReported:
    card: Card
    report: LossReport
    events: tuple[IdentityEvent, ...]


def report_card_lost(
    card: Card, station_region_code: str, hukou_region_code: str, on: date, *, report_id: str
) -> LossReported:
    """A loss report filed on its own (``report_lost``, the register's expiry applied first)."""
    lost, report = report_lost(mark_expired(card, on), station_region_code, hukou_region_code, on)
    report = replace(report, id=report_id)
    return LossReported(lost, report, (CardReportedLost.of(report),))


def update_card_address(card: Card | None, region_code: str, address: str, on: date) -> Changed[Card]:
    """``record_address`` with its CardAddressUpdated event."""
    updated = record_address(card, region_code, address, on)
    event = CardAddressUpdated(updated.id_number, updated.card_number, updated.address_region_code, on)
    return Changed(updated, (event,))


def cancel_card(card: Card, on: date, cause: str) -> Changed[Card] | None:
    """``cancel_on_death`` (for `cause`, the register's deregistration reason) with its CardCancelled
    event; None when the card does not change."""
    cancelled = cancel_on_death(card, on)
    if cancelled is None:
        return None
    return Changed(cancelled, (CardCancelled(cancelled.card_number, cancelled.id_number, on, cause),))


def enter_found_card(
    *,
    id: str,
    card: Card,
    owner_current_card: Card | None,
    station_region_code: str,
    found_place: str,
    found_on: date,
    registered_on: date,
) -> Changed[FoundCard]:
    """``register_found_card``: FoundCardRegistered, and FoundCardDestroyed for a card already replaced."""
    found = register_found_card(
        id=id,
        card=card,
        owner_current_card=owner_current_card,
        station_region_code=station_region_code,
        found_place=found_place,
        found_on=found_on,
        registered_on=registered_on,
    )
    events: list[IdentityEvent] = [
        FoundCardRegistered(
            found.id,
            found.card_number,
            found.id_number,
            found.status,
            found.notify_owner,
            station_region_code,
        )
    ]
    if found.status is FoundCardStatus.DESTROYED:
        events.append(FoundCardDestroyed(found.id, found.card_number, found.id_number))
    return Changed(found, tuple(events))


def return_found_card(
    found: FoundCard, claimant_id_number: str, *, identity_confirmed: bool, photo_ref: str, on: date
) -> Changed[FoundCard]:
    """``claim_found_card`` with its FoundCardClaimed event."""
    claimed = claim_found_card(
        found, claimant_id_number, identity_confirmed=identity_confirmed, photo_ref=photo_ref, on=on
    )
    return Changed(claimed, (FoundCardClaimed(claimed.id, claimed.card_number, claimed.id_number),))


def issue_temporary_card(
    *,
    id: str,
    id_number: str,
    open_application: CardApplication | None,
    station_region_code: str,
    hukou_region_code: str,
    urgent_need: bool,
    on: date,
    policy: IdentityPolicy,
) -> Changed[TemporaryCard]:
    """Apply for a temporary card and issue it the same day (``apply_for_temporary_card``), under `id`."""
    card = apply_for_temporary_card(
        id_number=id_number,
        applications=[open_application] if open_application else [],
        station_region_code=station_region_code,
        hukou_region_code=hukou_region_code,
        urgent_need=urgent_need,
        applied_on=on,
        policy=policy,
    ).issue(on, policy)
    return Changed(card, (TemporaryCardIssued(id, card.application_id, card.id_number, card.valid_until),))
