"""The matter catalogue (事项): each matter is declared as data in ``gateway/matters/*.toml`` — what it
needs from the applicant, which materials, and its steps (each one department action, with the steps
it depends on). Loaded and checked once at start: a bad file stops the gateway with its name."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from gateway.quotes import FeeSpec, MatterQuote, TimeLimitSpec, parse_quote
from services.common.errors import FieldViolation, ValidationCollector
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem
from services.common.idnumber import check_id_number

if TYPE_CHECKING:
    from gateway.departments.base import Action

FIELD_KINDS = (
    "string",
    "id_number",
    "date",
    "datetime",
    "choice",
    "region_code",
    "bool",
    "int",
    "passport_number",
    "country",
    "choices",  # a list of distinct choices (none or several)
)

# Cross-field rules a matter declares (``[[rules]]``), checked at submission before anything is sent:
#   not_before            `later` is on or after `earlier` (dates or date-times; a contract that ends
#                         before it starts)
#   not_after_today       `field` is not a date after the application date (a birth, an arrival)
#   exactly_one_of        exactly one of `fields` is given (a date of entry, or the permit held)
#   within_days_of_entry  `field` (a date of entry) is within the days permits quotes before the
#                         application date, and not after it
RULE_CHECKS = ("not_before", "not_after_today", "exactly_one_of", "within_days_of_entry")


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ChoiceSpec:
    code: str  # the value sent
    title: str
    title_zh: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    path: str  # dotted path in the submission's "data", e.g. "applicant.id_number"
    kind: str
    title: str
    title_zh: str
    required: bool = True
    choices: tuple[str, ...] = ()
    max_length: int = 200
    personal: bool = False  # personal data: never shown on public progress pages
    minimum: int | None = None  # for "int"
    maximum: int | None = None
    hall: bool = False  # the hall that accepts it: at a counter, the counter's own hall only
    choice_titles: tuple[ChoiceSpec, ...] = ()  # each of `choices` in words, in the same order


@dataclass(frozen=True, slots=True)
class MaterialSpec:
    key: str
    title: str
    title_zh: str
    required: bool = True
    upload: bool = True  # False: shown to the applicant and checked at the counter, not uploaded
    # evidence of a claim: required when this field is set (true, or a non-empty list), e.g. the proof of
    # a talent programme when the applicant claims one
    required_when: str | None = None


@dataclass(frozen=True, slots=True)
class StepSpec:
    key: str
    department: str
    action: str
    title: str
    title_zh: str
    depends_on: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    when: str | None = None  # a bool field: the step runs only when the applicant set it true
    # "approved": start once the dependencies are approved (or beyond); "accepted": once the departments
    # hold them (e.g. a temporary card while the card application is in progress).
    starts_when: str = "approved"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    check: str
    fields: tuple[str, ...]  # not_before: (earlier, later); others: the fields named


@dataclass(frozen=True, slots=True)
class Matter:
    id: str
    title: str
    title_zh: str
    description: str
    description_zh: str
    fields: tuple[FieldSpec, ...]
    materials: tuple[MaterialSpec, ...]
    steps: tuple[StepSpec, ...]
    fees: tuple[FeeSpec, ...]  # each quoted by its department (gateway/quotes.py)
    time_limits: tuple[TimeLimitSpec, ...]
    applicant_field: str  # the field whose value identifies the applicant
    available_from: dt.date  # the first day it can be applied for
    available_until: dt.date | None = None  # the last day, if it is withdrawn
    rules: tuple[RuleSpec, ...] = ()

    def available_on(self, day: dt.date) -> bool:
        return self.available_from <= day and (self.available_until is None or day <= self.available_until)

    def availability(self) -> str:
        """For people: "from 2016-07-01" or "from 2016-07-01 to 2019-12-31"."""
        until = f" to {self.available_until.isoformat()}" if self.available_until else ""
        return f"from {self.available_from.isoformat()}{until}"

    def public(self, quote: MatterQuote | None = None) -> dict[str, Any]:
        """Everything a citizen needs to know up front (GET /api/v1/matters/{id}); fees and time limits
        as the departments quoted them (`quote`), or ``null`` with ``quote_unavailable`` when they could
        not be asked."""
        return {
            "id": self.id,
            "title": self.title,
            "title_zh": self.title_zh,
            "description": self.description,
            "description_zh": self.description_zh,
            "fields": [
                {
                    "path": f.path,
                    "kind": f.kind,
                    "title": f.title,
                    "title_zh": f.title_zh,
                    "required": f.required,
                    **({"choices": list(f.choices)} if f.choices else {}),
                    **(
                        {
                            "choice_titles": [
                                {"code": c.code, "title": c.title, "title_zh": c.title_zh}
                                for c in f.choice_titles
                            ]
                        }
                        if f.choice_titles
                        else {}
                    ),
                }
                for f in self.fields
            ],
            "materials": [
                {
                    "key": m.key,
                    "title": m.title,
                    "title_zh": m.title_zh,
                    "required": m.required,
                    "how": "upload" if m.upload else "in person",
                    **({"required_when": m.required_when} if m.required_when else {}),
                }
                for m in self.materials
            ],
            "steps": [
                {
                    "key": s.key,
                    "department": s.department,
                    "title": s.title,
                    "title_zh": s.title_zh,
                    "depends_on": list(s.depends_on),
                    **({"only_when": s.when} if s.when else {}),
                }
                for s in self.steps
            ],
            **(quote.public() if quote else {"fees": None, "time_limits": None, "quote_unavailable": ""}),
            "available_from": self.available_from.isoformat(),
            "available_until": self.available_until.isoformat() if self.available_until else None,
        }


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def validate_submission(
    matter: Matter, data: Any, today: dt.date, *, entry_within_days: int | None = None
) -> dict[str, Any]:
    """Check a submission against every field the matter's steps need, then against the matter's
    cross-field rules; report all problems at once (InvalidArgument with one violation per field, paths
    prefixed ``data.``). `entry_within_days`: the days from entry permits quotes for today (None: not
    known, the department checks). Returns the data with values normalised (ID numbers upper-cased and
    upgraded)."""
    errors = ValidationCollector()
    if data is None:
        errors.add("data", "REQUIRED", "data is required: an object with the matter's fields")
    elif not isinstance(data, dict):
        errors.add("data", "NOT_AN_OBJECT", "data must be an object with the matter's fields")
    errors.raise_if_any()
    assert isinstance(data, dict)
    normalised: dict[str, Any] = {}
    for spec in matter.fields:
        value = _get(data, spec.path)
        where = f"data.{spec.path}"
        if value is None or value == "":
            if spec.required:
                errors.add(where, "REQUIRED", f"{spec.title} is required")
            continue
        if spec.kind == "choices":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.add(where, "NOT_A_LIST", f"{spec.title} must be a list of: {', '.join(spec.choices)}")
                continue
            wrong = [v for v in value if v not in spec.choices]
            if wrong or len(set(value)) != len(value):
                errors.add(
                    where, "NOT_ALLOWED", f"{spec.title}: each once, one of: {', '.join(spec.choices)}"
                )
                continue
            if not value:
                continue
        elif spec.kind == "bool":
            if not isinstance(value, bool):
                errors.add(where, "NOT_A_BOOLEAN", f"{spec.title} must be true or false")
                continue
        elif spec.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                errors.add(where, "NOT_AN_INTEGER", f"{spec.title} must be a whole number")
                continue
            if spec.minimum is not None and value < spec.minimum:
                errors.add(where, "TOO_SMALL", f"{spec.title} must be at least {spec.minimum}")
                continue
            if spec.maximum is not None and value > spec.maximum:
                errors.add(where, "TOO_LARGE", f"{spec.title} must be at most {spec.maximum}")
                continue
        elif not isinstance(value, str):
            errors.add(where, "NOT_A_STRING", f"{spec.title} must be a string")
            continue
        elif len(value) > spec.max_length:
            errors.add(where, "TOO_LONG", f"{spec.title} is longer than {spec.max_length} characters")
            continue
        if spec.kind == "id_number":
            check = check_id_number(value)
            if not check.valid:
                for problem in check.problems:
                    errors.add(where, problem, f"{spec.title} is not a valid ID number ({problem.lower()})")
                continue
            value = check.normalised
        elif spec.kind == "passport_number" and not passport_number_problem(value):
            value = normalise_passport_number(value)
        elif spec.kind == "date":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                errors.add(where, "NOT_A_DATE", f"{spec.title} must be an ISO date (YYYY-MM-DD)")
                continue
        elif spec.kind == "datetime":
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                errors.add(
                    where, "NOT_A_DATETIME", f"{spec.title} must be an ISO date-time with its UTC offset"
                )
                continue
        elif spec.kind == "passport_number" and (fault := passport_number_problem(value)):
            errors.add(where, fault, f"{spec.title} is not a passport number")
            continue
        elif spec.kind == "country" and (fault := nationality_problem(value)):
            errors.add(where, fault, f"{spec.title} must be an ISO 3166 alpha-3 code of another country")
            continue
        elif spec.kind == "choice" and value not in spec.choices:
            errors.add(where, "NOT_ALLOWED", f"{spec.title} must be one of: {', '.join(spec.choices)}")
            continue
        elif spec.kind == "region_code" and not (len(value) == 6 and value.isdigit()):
            errors.add(where, "NOT_A_REGION_CODE", f"{spec.title} must be a six-digit region code")
            continue
        elif spec.kind == "string" and not value.strip():
            errors.add(where, "REQUIRED", f"{spec.title} is required")
            continue
        _set(normalised, spec.path, value)
    errors.raise_if_any()
    _check_rules(matter, normalised, today, entry_within_days, errors)
    errors.raise_if_any()
    return normalised


def _as_date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).date() if "T" in value else dt.date.fromisoformat(value)
    except ValueError:
        return None


def _title(matter: Matter, path: str) -> str:
    return next((f.title for f in matter.fields if f.path == path), path)


def _check_rules(
    matter: Matter,
    data: dict[str, Any],
    today: dt.date,
    entry_within_days: int | None,
    errors: ValidationCollector,
) -> None:
    """The matter's cross-field rules, over fields that are each valid on their own; every error names
    the submitted path."""
    for rule in matter.rules:
        values = [_get(data, path) for path in rule.fields]
        if rule.check == "not_before":
            earlier, later = (_as_date(v) for v in values)
            if earlier and later and later < earlier:
                errors.add(
                    f"data.{rule.fields[1]}",
                    "BEFORE_START",
                    f"{_title(matter, rule.fields[1])} is before {_title(matter, rule.fields[0])}",
                )
        elif rule.check == "not_after_today":
            for path, value in zip(rule.fields, values, strict=True):
                day = _as_date(value)
                if day and day > today:
                    errors.add(f"data.{path}", "IN_THE_FUTURE", f"{_title(matter, path)} is after today")
        elif rule.check == "exactly_one_of":
            given = [path for path, value in zip(rule.fields, values, strict=True) if value not in (None, "")]
            if len(given) != 1:
                names = " or ".join(_title(matter, p) for p in rule.fields)
                for path in given[1:] or rule.fields:
                    errors.add(
                        f"data.{path}",
                        "ONE_OF_REQUIRED" if not given else "NOT_WITH_OTHER",
                        f"give exactly one: {names}",
                    )
        elif rule.check == "within_days_of_entry":
            entry = _as_date(values[0])
            if entry is None:
                continue
            if entry > today:
                errors.add(f"data.{rule.fields[0]}", "IN_THE_FUTURE", "the date of entry is after today")
            elif entry_within_days is not None and (today - entry).days > entry_within_days:
                errors.add(
                    f"data.{rule.fields[0]}",
                    "TOO_LONG_AFTER_ENTRY",
                    f"the residence permit is applied for within {entry_within_days} days of entry; "
                    f"today is {(today - entry).days} days after it",
                )


def validate_materials(
    matter: Matter, materials: Any, data: dict[str, Any] | None = None
) -> tuple[dict[str, str], list[FieldViolation]]:
    """Check the submission's ``materials`` ({kind: sha256}) against the matter's list: every required
    kind present (evidence of a claim in `data` too), no unknown kind, each value a SHA-256. Returns the
    well-formed choices and every problem; whether each was uploaded is the caller's check."""
    errors = ValidationCollector()
    if materials is None:
        materials = {}
    if not isinstance(materials, dict):
        errors.add("materials", "NOT_AN_OBJECT", "materials must map each material to its sha256")
        return {}, errors.violations
    known = {m.key: m for m in matter.materials if m.upload}
    chosen: dict[str, str] = {}
    for kind in materials:
        if kind not in known:
            errors.add(f"materials.{kind}", "UNKNOWN_MATERIAL", f"{matter.id} does not take {kind!r}")
    for spec in known.values():
        value = materials.get(spec.key)
        if value is None or value == "":
            claimed = spec.required_when is not None and _get(data or {}, spec.required_when) not in _UNSET
            if spec.required:
                errors.add(f"materials.{spec.key}", "REQUIRED", f"{spec.title} is required")
            elif claimed:
                errors.add(
                    f"materials.{spec.key}",
                    "EVIDENCE_REQUIRED",
                    f"{spec.title} is required with data.{spec.required_when}",
                )
            continue
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            errors.add(f"materials.{spec.key}", "NOT_A_SHA256", "give the sha256 that the upload answered")
            continue
        chosen[spec.key] = value
    return chosen, errors.violations


_UNSET: tuple[Any, ...] = (None, False, "", [], 0)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def get_value(data: dict[str, Any], path: str) -> Any:
    return _get(data, path)


def _choice(raw: Any) -> ChoiceSpec:
    """One choice as declared: ``{ code = "EXPIRY", title = "…", title_zh = "…" }``."""
    if not isinstance(raw, dict):
        raise ValueError("each choice is a table with code, title and title_zh")
    return ChoiceSpec(str(raw["code"]), str(raw["title"]), str(raw["title_zh"]))


def _matter(raw: dict[str, Any], source: str, known_actions: Mapping[str, Action[Any, Any]]) -> Matter:
    try:
        fields = []
        for f in raw.get("fields", []):
            choices = tuple(_choice(c) for c in f.get("choices", ()))
            fields.append(
                FieldSpec(
                    path=f["path"],
                    kind=f["kind"],
                    title=f["title"],
                    title_zh=f["title_zh"],
                    required=f.get("required", True),
                    choices=tuple(c.code for c in choices),
                    choice_titles=choices,
                    max_length=f.get("max_length", 200),
                    personal=f.get("personal", False),
                    minimum=f.get("min"),
                    maximum=f.get("max"),
                    hall=f.get("hall", False),
                )
            )
        materials = tuple(
            MaterialSpec(
                m["key"],
                m["title"],
                m["title_zh"],
                m.get("required", "required_when" not in m),
                m.get("upload", True),
                m.get("required_when"),
            )
            for m in raw.get("materials", [])
        )
        steps = tuple(
            StepSpec(
                key=s["key"],
                department=s["department"],
                action=s["action"],
                title=s["title"],
                title_zh=s["title_zh"],
                depends_on=tuple(s.get("depends_on", ())),
                materials=tuple(s.get("materials", ())),
                when=s.get("when"),
                starts_when=s.get("starts_when", "approved"),
            )
            for s in raw["steps"]
        )
        matter = Matter(
            id=raw["id"],
            title=raw["title"],
            title_zh=raw["title_zh"],
            description=raw.get("description", ""),
            description_zh=raw.get("description_zh", ""),
            fields=tuple(fields),
            materials=materials,
            steps=steps,
            fees=tuple(
                FeeSpec(fee["item"], fee["item_zh"], parse_quote(fee["quote"]), fee.get("only_when"))
                for fee in raw.get("fees", [])
            ),
            time_limits=tuple(
                TimeLimitSpec(
                    t["item"],
                    t["item_zh"],
                    parse_quote(t["quote"]) if "quote" in t else None,
                    int(t["days"]) if "days" in t else None,
                )
                for t in raw["time_limits"]
            ),
            rules=tuple(
                RuleSpec(
                    r["check"],
                    (r["earlier"], r["later"]) if r["check"] == "not_before" else tuple(r["fields"]),
                )
                for r in raw.get("rules", [])
            ),
            applicant_field=raw["applicant_field"],
            available_from=_toml_date(raw["available_from"], "available_from"),
            available_until=(
                _toml_date(raw["available_until"], "available_until") if "available_until" in raw else None
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"{source}: missing or malformed entry ({exc})") from None
    _check(matter, source, known_actions)
    return matter


def _toml_date(value: Any, key: str) -> dt.date:
    """A TOML date (``available_from = 2016-07-01``), not a string or a date-time."""
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError(f"{key} must be a TOML date like 2016-07-01")
    return value


def _check(matter: Matter, source: str, known_actions: Mapping[str, Action[Any, Any]]) -> None:
    if matter.available_until is not None and matter.available_until < matter.available_from:
        raise CatalogueError(f"{source}: available_until is before available_from")
    paths = {f.path for f in matter.fields}
    if matter.applicant_field not in paths:
        raise CatalogueError(f"{source}: applicant_field {matter.applicant_field!r} is not a field")
    for f in matter.fields:
        if f.kind not in FIELD_KINDS:
            raise CatalogueError(f"{source}: field {f.path}: unknown kind {f.kind!r}")
        if f.hall and f.kind != "region_code":
            raise CatalogueError(f"{source}: field {f.path}: only a region_code names the hall")
        if f.kind in ("choice", "choices") and not f.choices:
            raise CatalogueError(f"{source}: field {f.path}: a choice needs choices")
        untitled = any(not (c.title and c.title_zh) for c in f.choice_titles)
        if len(set(f.choices)) != len(f.choices) or untitled:
            raise CatalogueError(f"{source}: field {f.path}: each choice once, with its title and title_zh")
    for rule in matter.rules:
        if rule.check not in RULE_CHECKS:
            raise CatalogueError(f"{source}: rule {rule.check!r}: one of {', '.join(RULE_CHECKS)}")
        for path in rule.fields:
            if path not in paths:
                raise CatalogueError(f"{source}: rule {rule.check}: {path!r} is not a field")
    for fee in matter.fees:
        if fee.only_when is not None and fee.only_when not in paths:
            raise CatalogueError(f"{source}: fee {fee.item!r}: only_when {fee.only_when!r} is not a field")
    if not matter.time_limits:
        raise CatalogueError(f"{source}: a matter needs its time_limits")
    for limit in matter.time_limits:
        if (limit.quote is None) == (limit.days is None):
            raise CatalogueError(f"{source}: time limit {limit.item!r}: a quote or days, not both")
        if limit.days is not None and not any(s.department == "residence" for s in matter.steps):
            raise CatalogueError(
                f"{source}: time limit {limit.item!r}: only the residence register's are written here; "
                "ask the other departments (quote)"
            )
    keys = [s.key for s in matter.steps]
    if len(set(keys)) != len(keys) or not keys:
        raise CatalogueError(f"{source}: step keys must be present and unique")
    material_keys = {m.key for m in matter.materials}
    for m in matter.materials:
        if m.required_when is not None and m.required_when not in paths:
            raise CatalogueError(
                f"{source}: material {m.key}: required_when {m.required_when!r} is not a field"
            )
    seen: set[str] = set()
    for step in matter.steps:
        if step.action not in known_actions:
            raise CatalogueError(f"{source}: step {step.key}: unknown action {step.action!r}")
        action = known_actions[step.action]
        if action.department != step.department:
            raise CatalogueError(f"{source}: step {step.key}: {step.action} belongs to {action.department}")
        undeclared = sorted(action.reads - paths)
        if undeclared:
            raise CatalogueError(
                f"{source}: step {step.key}: {step.action} reads undeclared fields {', '.join(undeclared)}"
            )
        for dep in step.depends_on:
            if dep not in seen:
                raise CatalogueError(
                    f"{source}: step {step.key} depends on {dep!r}, which is not an earlier step"
                )
        if step.starts_when not in ("approved", "accepted"):
            raise CatalogueError(f"{source}: step {step.key}: starts_when must be 'approved' or 'accepted'")
        if step.when is not None and not any(f.path == step.when and f.kind == "bool" for f in matter.fields):
            raise CatalogueError(f"{source}: step {step.key}: 'when' must name a bool field")
        for material in (m.partition("=")[0] for m in step.materials):
            if material not in material_keys:
                raise CatalogueError(f"{source}: step {step.key} needs undeclared material {material!r}")
        seen.add(step.key)


def load_catalogue(known_actions: Mapping[str, Action[Any, Any]] | None = None) -> dict[str, Matter]:
    """Every ``gateway/matters/*.toml``, checked against the department adapters' actions (by default
    all of them): each step names a known action of its department, reading only the matter's fields."""
    if known_actions is None:
        from gateway.departments import ACTIONS

        known_actions = ACTIONS
    catalogue: dict[str, Matter] = {}
    for entry in sorted(resources.files("gateway.matters").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            raw = tomllib.loads(entry.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{entry.name}: {exc}") from None
        matter = _matter(raw, entry.name, known_actions)
        if matter.id != entry.name.removesuffix(".toml"):
            raise CatalogueError(f"{entry.name}: id {matter.id!r} must match the file name")
        catalogue[matter.id] = matter
    return catalogue
