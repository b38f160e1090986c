"""The gateway's HTTP bodies, once: every request body a handler decodes and every answer it gives, as
msgspec structs. Handlers decode requests through them (``decode``: a bad field is a 400 naming its path
and the reason declared here); the OpenAPI document (gateway/openapi.py) is generated from them.

A field's reason and detail for the client travel in its ``Meta(extra=...)`` (``why``), so the check and
the words that explain it are declared together."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from gateway.saga.model import BLOCKER_REASONS, CaseState, StepState
from services.common.errors import FieldViolation

T = TypeVar("T", bound=Struct)

Department = Literal["identity", "residence", "permits"]
DATE = Annotated[str, Meta(extra_json_schema={"format": "date"})]  # an ISO date, as the answers write it
NONBLANK = r"\S"  # at least one character that is not white space (the value is stripped)
# A region code's name beside it (gateway/regions.toml; the code itself where it has none)
HallName = Annotated[str, Meta(description="The hall's region in English (else its code)")]
HallNameZh = Annotated[str, Meta(description="The hall's region in Chinese (else its code)")]


def why(reason: str, detail: str) -> dict[str, Any]:
    """The reason code and words a client gets when a field fails its check."""
    return {"reason": reason, "detail": detail}


def _meta(annotated: Any) -> dict[str, Any]:
    """The ``why`` of a field's declared type (the outermost Meta that has one; for an optional field,
    ``X | None``, the one on X)."""
    return _why(msgspec.inspect.type_info(annotated))


def _why(info: msgspec.inspect.Type) -> dict[str, Any]:
    while isinstance(info, msgspec.inspect.Metadata):
        if info.extra and "reason" in info.extra:
            return info.extra
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            declared = _why(member)
            if declared:
                return declared
    return {}


_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


class Invalid(ValueError):
    """A body that does not fit its struct: the first field at fault, with its reason and detail."""

    def __init__(self, violation: FieldViolation) -> None:
        super().__init__(violation.field)
        self.violation = violation


def decode(body: dict[str, Any], model: type[T]) -> T:
    """`body` (an already parsed JSON object) as `model`; raises Invalid naming the field path (a
    list item as ``reasons[0]``), with the reason the model declares for that field."""
    try:
        return msgspec.convert(body, model, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        at = _AT.search(message)
        path = at.group(1) if at else ""
        missing = _MISSING.match(message)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        fields = {f.name: f for f in msgspec.structs.fields(model)}
        declared = _meta(fields[top].type) if top in fields else {}
        reason = declared.get("reason", "INVALID")
        detail = declared.get("detail") or _AT.sub("", message)
        raise Invalid(FieldViolation(path or top or "body", reason, detail)) from None


# -- request bodies -------------------------------------------------------------------------------------


class ReportLost(Struct):
    """POST /api/v1/me/card/report-lost."""

    name: Annotated[
        str,
        Meta(min_length=1, max_length=60, pattern=NONBLANK, extra=why("REQUIRED", "your name as registered")),
    ]
    station_region_code: Annotated[
        str, Meta(pattern="^[0-9]{6}$", extra=why("NOT_A_REGION_CODE", "six digits"))
    ]
    request_id: (
        Annotated[uuid.UUID, Meta(extra=why("NOT_A_UUID", "a UUID you choose, to retry safely"))] | None
    ) = None


MAX_COMMENT = 500


class Rating(Struct):
    """POST /api/v1/cases/{case_no}/feedback (好差评)."""

    rating: Annotated[int, Meta(ge=1, le=5, extra=why("OUT_OF_RANGE", "a whole number from 1 to 5"))]
    comment: Annotated[
        str, Meta(max_length=MAX_COMMENT, extra=why("TOO_LONG", f"at most {MAX_COMMENT} characters"))
    ] = ""


MAX_REASONS, MAX_REASON_LENGTH, MAX_CODE_LENGTH = 10, 500, 64
Reason = Annotated[str, Meta(min_length=1, max_length=MAX_REASON_LENGTH, pattern=NONBLANK)]
ReasonCode = Annotated[str, Meta(min_length=1, max_length=MAX_CODE_LENGTH, pattern=NONBLANK)]


class StepRejection(Struct):
    """POST …/steps/{step_key}/reject: the reasons the applicant will read, and their codes."""

    reasons: Annotated[
        list[Reason],
        Meta(
            min_length=1,
            max_length=MAX_REASONS,
            extra=why("REQUIRED", f"1 to {MAX_REASONS} reasons the applicant will read"),
        ),
    ]
    reason_codes: Annotated[
        list[ReasonCode],
        Meta(
            description="The department's machine code of each reason, in the same order (its quote lists "
            "them); OTHER when left out",
            extra=why("NOT_A_LIST", "the department's code of each reason, in order"),
        ),
    ] = []


class Reply(Struct):
    """POST /api/v1/cases/{case_no}/feedback/replies."""

    text: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_REASON_LENGTH,
            pattern=NONBLANK,
            extra=why("REQUIRED", f"1 to {MAX_REASON_LENGTH} characters"),
        ),
    ]


class MaterialsChecked(Struct):
    """POST /api/v1/counter/cases/{case_no}/materials-checked."""

    materials: Annotated[
        list[Annotated[str, Meta(max_length=64)]],
        Meta(min_length=1, extra=why("REQUIRED", "a list of material keys")),
    ]


class Pickup(Struct):
    """POST /api/v1/counter/cases/{case_no}/pickup."""

    old_card_surrendered: Annotated[
        bool,
        Meta(
            description="The applicant handed in the old card (required for a renewal)",
            extra=why("NOT_A_BOOLEAN", "true or false"),
        ),
    ] = False


class Withdrawal(Struct):
    """POST /api/v1/cases/{case_no}/withdraw: the query code, unless the applicant's own token is sent."""

    code: Annotated[str, Meta(max_length=16, extra=why("MALFORMED", "the case's query code"))] | None = None


class Contact(Struct, forbid_unknown_fields=True):
    phone: Annotated[str, Meta(max_length=20)] = ""
    email: Annotated[str, Meta(max_length=200)] = ""
    language: Literal["zh", "en"] = "zh"


class Submission(Struct):
    """POST /api/v1/cases and /api/v1/counter/cases. ``data`` is checked against the matter's own fields
    (the ``Data.<matter>`` schemas), all at once, every error naming ``data.<path>``."""

    matter: Annotated[str, Meta(max_length=64)]
    data: dict[str, Any]
    materials: Annotated[
        dict[str, str], Meta(description="Each uploaded material's key and the sha256 the upload answered")
    ] = {}
    contact: Contact | None = None


# -- answers --------------------------------------------------------------------------------------------


class FieldError(Struct, omit_defaults=True):
    field: str
    reason: str
    detail: str = ""


class Problem(Struct, omit_defaults=True):
    """RFC 9457 application/problem+json; ``errors`` name each field at fault."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    errors: list[FieldError] = []


class Blocker(Struct):
    key: Annotated[str, Meta(description="The step that stops the withdrawal")]
    reason: Annotated[
        str,
        Meta(
            description="; ".join(f"{k}: {v}" for k, v in BLOCKER_REASONS.items()),
            extra_json_schema={"enum": list(BLOCKER_REASONS)},
        ),
    ]
    state: StepState
    department_state: str
    detail: str


class WithdrawalRefused(Struct):
    """409, type /problems/withdrawal-refused: a department holds a step it can no longer undo; nothing
    was cancelled. ``steps`` say which and why (``detail`` joins them for people)."""

    type: Literal["/problems/withdrawal-refused"]
    title: str
    status: Literal[409]
    detail: str
    state: CaseState
    steps: list[Blocker]
    instance: str = ""


class Rejection(Struct):
    """A department's reasons for refusing: its words (masked of ID, passport and phone numbers on the
    public progress view) and its machine codes, in the same order."""

    reasons: list[str]
    codes: list[str]


class StepResults(Struct, omit_defaults=True):
    """What a department produced on a step, shown to the applicant and staff only."""

    fee_fen: int | None = None
    id_number: Annotated[str | None, Meta(description="A newborn's, assigned at once")] = None
    name: str | None = None
    region_code: str | None = None
    registration_number: str | None = None
    household_number: str | None = None
    certificate_number: str | None = None
    card_number: str | None = None
    ready_on: DATE | None = None
    collect_at_region_code: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    permit_number: str | None = None
    category: str | None = None
    cancellation_cause: str | None = None
    cancellation_reason: str | None = None
    rejection_code: str | None = None
    late: bool | None = None
    loss_report: Annotated[
        dict[str, Any] | None,
        Meta(description="{already_reported, reported_on}, or {withdrawn: true} when none was left"),
    ] = None


class Step(Struct):
    key: str
    title: str
    title_zh: str
    department: Department
    state: StepState
    department_state: str
    statutory_deadline: DATE | None = None
    overdue: bool | None = None
    reason: str | None = None
    rejection: Rejection | None = None
    message: Annotated[
        str | None,
        Meta(description="What a step staff must look at, or one that stays in force, means for you"),
    ] = None
    message_zh: str | None = None
    in_force: Annotated[
        bool | None,
        Meta(
            description="The case failed but the department keeps this step's record (e.g. an accommodation "
            "registration, which stands on its own): it stays in force, it was not undone"
        ),
    ] = None
    results: StepResults | None = None
    department_message: Annotated[
        str | None,
        Meta(
            description="A refused step: the department's own words (ID, passport and phone numbers "
            "masked); not on the public progress view"
        ),
    ] = None


class Case(Struct):
    """The one status. Without a bearer token (the query code) no personal data: no ``results``,
    ``applicant``, ``materials``, ``hall`` or ``expected_date``, and rejection reasons masked."""

    case_no: str
    matter: str
    matter_title: str
    matter_title_zh: str
    state: CaseState
    submitted_on: DATE
    updated_at: str
    steps: list[Step]
    reason: str | None = None
    rejection: Annotated[
        Rejection | None, Meta(description="Every step's rejection reasons and codes together")
    ] = None
    fee_fen: int | None = None
    in_force: Annotated[
        list[str], Meta(description="A failed case's steps whose records stay in force, by key")
    ] = []
    query_code: Annotated[
        str, Meta(pattern="^[2-9A-HJ-NP-Z]{8}$", description="Given once, when the case is opened")
    ] = ""
    applicant: Annotated[
        dict[str, Any], Meta(description="The applicant's personal fields, by their dotted path")
    ] = {}
    materials: list[MaterialReceived] = []
    hall: str | None = None
    hall_name: HallName | None = None
    hall_name_zh: HallNameZh | None = None
    expected_date: DATE | None = None
    opened_by: str | None = None


class StepSummary(Struct, omit_defaults=True):
    """A step as the applicant's case list shows it."""

    key: str
    title: str
    title_zh: str
    department: Department
    state: StepState
    results: Annotated[
        StepResults | None, Meta(description="What the department produced (the applicant's own list only)")
    ] = None


class CaseSummary(Struct):
    case_no: str
    matter: str
    state: CaseState
    submitted_on: DATE
    updated_at: str | None = None
    opened_by: str | None = None
    steps: Annotated[list[StepSummary], Meta(description="Each step in short (my cases)")] = []


class MaterialReceived(Struct):
    key: str
    title_zh: str
    how: Literal["upload", "in person"]
    sha256: str | None = None
    checked_on: DATE | None = None


class Fee(Struct):
    item: str
    amount_fen: int


class Receipt(Struct):
    """受理回执."""

    case_no: str
    matter: str
    matter_title_zh: str
    state: CaseState
    hall: str | None
    opened_by: str | None
    submitted_on: DATE
    materials_received: list[MaterialReceived]
    fees: list[Fee]
    fee_fen: int | None
    expected_date: DATE | None
    query_code: str = ""
    hall_name: HallName | None = None
    hall_name_zh: HallNameZh | None = None


class OpenedAtCounter(Case):
    receipt: Receipt | None = None


class Choice(Struct):
    code: Annotated[str, Meta(description="The value sent")]
    title: str
    title_zh: str


class MatterField(Struct):
    path: str
    kind: str
    title: str
    title_zh: str
    required: bool
    choices: list[str] = []
    choice_titles: Annotated[list[Choice], Meta(description="Each of choices in words, in order")] = []


class MatterMaterial(Struct):
    key: str
    title: str
    title_zh: str
    required: bool
    how: Literal["upload", "in person"]
    required_when: str | None = None


class MatterStep(Struct):
    key: str
    department: Department
    title: str
    title_zh: str
    depends_on: list[str]
    only_when: str | None = None


class QuotedFee(Struct):
    item: str
    amount_fen: int
    item_zh: str | None = None
    only_when: str | None = None


class TimeLimit(Struct):
    item: str
    days: int
    working_days: bool
    item_zh: str | None = None
    provisional: Annotated[
        bool | None,
        Meta(
            description="Working days counted on a provisional calendar (the year's holiday notice is "
            "not published yet); may change"
        ),
    ] = None


class Matter(Struct):
    """A matter and what it needs, up front; its ``data`` is described by the ``Data.<id>`` schema."""

    id: str
    title: str
    title_zh: str
    description: str
    description_zh: str
    fields: list[MatterField]
    materials: list[MatterMaterial]
    steps: list[MatterStep]
    fees: Annotated[
        list[QuotedFee] | None,
        Meta(description="As the departments quote them today; null when they cannot be asked now"),
    ]
    time_limits: Annotated[
        list[TimeLimit] | None, Meta(description="Statutory time limits as the departments quote them")
    ]
    available_from: Annotated[DATE, Meta(description="The first day the matter can be applied for")]
    available_until: Annotated[
        DATE | None, Meta(description="The last day it can be applied for; null: no end")
    ]
    quoted_on: DATE | None = None
    quote_unavailable: Annotated[
        str | None, Meta(description="The department that could not quote just now")
    ] = None


class Matters(Struct):
    matters: list[Matter]


class Material(Struct):
    sha256: str
    media_type: str
    size_bytes: int


class FeedbackReply(Struct):
    by: str
    role: str
    text: str
    at: str


class Feedback(Struct):
    case_no: str
    rating: int
    comment: str
    flagged: bool
    replies: list[FeedbackReply]
    created_at: str | None = None
    matter: str | None = None
    hall: str | None = None
    hall_name: str | None = None
    hall_name_zh: str | None = None


class Decided(Struct):
    """A back-office decision sent to the department (202)."""

    case_no: str
    step: str
    decision: str
    department_state: str | None = None


class DepartmentStep(Struct):
    case_no: str
    matter: str
    step: str
    state: StepState
    department_state: str
    statutory_deadline: DATE | None
    submitted_on: DATE
    decisions: Annotated[list[str], Meta(description="The decisions open now, by route word")]


class Card(Struct):
    card_number: str
    status: str
    valid_from: DATE | None
    valid_until: DATE | None
    long_term: bool


class LossReport(Struct):
    loss_report_id: str
    card_number: str
    reported_on: DATE | None
    inside_hukou_area: bool


class FoundCard(Struct):
    id: str
    card_number: str
    found_on: DATE | None
    status: str
    station_region_code: str
    station_region_name: str = ""
    station_region_name_zh: str = ""


class Household(Struct):
    number: str
    address: str
    region_code: str
    head_name: str
    region_name: str = ""
    region_name_zh: str = ""


class Member(Struct):
    name: str
    relationship_code: str
    status: str


class MyHousehold(Struct):
    household: Household
    members: list[Member]


class AccessEntry(Struct):
    time: str
    department: str
    organisation: str
    system: str
    role: str
    purpose: str
    action: str
    outcome: str


class NotificationSent(Struct):
    case_no: str
    milestone: str
    channel: str
    language: str
    text: str
    sent_at: str


class Health(Struct):
    status: str


class Readiness(Struct):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    event_consumers: dict[str, str]


class DepartmentsStatus(Struct):
    departments: dict[str, dict[str, Any]]


class Stats(Struct):
    cases: dict[str, Any]
    on_time: dict[str, Any]
    working_days: dict[str, Any]
    satisfaction: dict[str, Any]


# Pages: the items, and the token of the next page ("" on the last).


class CasePage(Struct):
    cases: list[CaseSummary]
    next_page_token: str


class FoundCardPage(Struct):
    found_cards: list[FoundCard]
    next_page_token: str


class NotificationPage(Struct):
    notifications: list[NotificationSent]
    next_page_token: str


class AccessLog(Struct):
    entries: list[AccessEntry]
    next_page_token: str


class DepartmentStepPage(Struct):
    steps: list[DepartmentStep]
    next_page_token: str


class FeedbackPage(Struct):
    feedback: list[Feedback]
    next_page_token: str


MODELS: tuple[type[Any], ...] = (Problem,)  # the schemas named even when no operation refers to them
