"""Application forms generated from a matter's field declarations (the catalogue, the same source as the
API's validation and the OpenAPI document), the posted form turned back into the API's submission, and
the API's field errors put beside the fields they name."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from multidict import MultiDictProxy

from gateway.catalogue import FieldSpec, MaterialSpec, Matter

BEIJING = dt.timezone(dt.timedelta(hours=8))
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CONTACT_FIELDS = ("contact.phone", "contact.email", "contact.language")


def input_id(name: str) -> str:
    return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


@dataclass
class Control:
    """One form control: its name (the API's field path), label, HTML input and current value."""

    name: str
    label: str
    kind: str  # text | date | datetime-local | number | select | multiselect | checkbox | file | email | tel
    required: bool
    value: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    inputmode: str = ""
    autocomplete: str = "off"
    hint: str = ""
    uploaded: str = ""  # file: the sha256 already uploaded for it
    errors: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return input_id(self.name)


def _kind(spec: FieldSpec) -> tuple[str, str, str]:
    """(input type, inputmode, hint) of a field kind."""
    return {
        "date": ("date", "", "YYYY-MM-DD"),
        "datetime": ("datetime-local", "", "北京时间 / Beijing time"),
        "int": ("number", "numeric", ""),
        "bool": ("checkbox", "", ""),
        "choice": ("select", "", ""),
        "choices": ("multiselect", "", ""),
        "region_code": ("text", "numeric", "6 位 / 6 digits, e.g. 310104"),
        "id_number": ("text", "", "18 位 / 18 characters"),
        "country": ("text", "", "ISO 3166 alpha-3, e.g. DEU"),
    }.get(spec.kind, ("text", "", ""))


def controls(
    matter: Matter,
    lang: str,
    values: MultiDictProxy[Any] | dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    *,
    labels: dict[str, str],
) -> tuple[list[Control], list[Control], list[Control]]:
    """The matter's field controls, its upload controls and the contact controls, filled with `values`
    and the API's `errors` (keyed by the API's paths: ``data.<path>``, ``materials.<key>``, ``contact.*``)."""
    values = values or {}
    errors = errors or {}
    fields = []
    for spec in matter.fields:
        name = f"data.{spec.path}"
        kind, mode, hint = _kind(spec)
        choices = tuple((c.code, c.title if lang == "en" else c.title_zh) for c in spec.choice_titles)
        fields.append(
            Control(
                name=name,
                label=spec.title if lang == "en" else spec.title_zh,
                kind=kind,
                required=spec.required and spec.kind != "bool",
                value=_value(values, name, spec.kind),
                choices=choices,
                max_length=spec.max_length if kind == "text" else None,
                minimum=spec.minimum,
                maximum=spec.maximum,
                inputmode=mode,
                hint=hint,
                errors=tuple(errors.get(name, ())),
            )
        )
    uploads = [_upload(m, lang, values, errors) for m in matter.materials if m.upload]
    contact = [
        Control("contact.phone", labels["phone"], "tel", False, str(values.get("contact.phone", "") or ""),
                inputmode="tel", autocomplete="tel", errors=tuple(errors.get("contact.phone", ()))),
        Control("contact.email", labels["email"], "email", False, str(values.get("contact.email", "") or ""),
                autocomplete="email", errors=tuple(errors.get("contact.email", ()))),
        Control("contact.language", labels["notify_language"], "select", False,
                str(values.get("contact.language", "") or lang), choices=(("zh", "中文"), ("en", "English")),
                errors=tuple(errors.get("contact.language", ()))),
    ]  # fmt: skip
    return fields, uploads, contact


def _value(values: MultiDictProxy[Any] | dict[str, Any], name: str, kind: str) -> str:
    """The control's current value; for several choices, the chosen ones comma-separated."""
    if kind == "choices":
        chosen = values.getall(name, []) if hasattr(values, "getall") else values.get(name) or []
        return ",".join(str(c) for c in (chosen if isinstance(chosen, list | tuple) else [chosen]))
    return str(values.get(name, "") or "")


def _upload(
    spec: MaterialSpec, lang: str, values: MultiDictProxy[Any] | dict[str, Any], errors: dict[str, list[str]]
) -> Control:
    name = f"materials.{spec.key}"
    uploaded = str(values.get(f"{name}.sha256", "") or "")
    return Control(
        name=name,
        label=spec.title if lang == "en" else spec.title_zh,
        kind="file",
        required=spec.required and not uploaded,
        uploaded=uploaded if SHA256.match(uploaded) else "",
        errors=tuple(errors.get(name, ())),
    )


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def submission(matter: Matter, form: MultiDictProxy[Any], materials: dict[str, str]) -> dict[str, Any]:
    """The API's submission body from the posted form: each declared field at its path (empty fields
    left out, so the API names the missing ones), checkboxes as booleans, whole numbers as numbers,
    date-times as Beijing time with its offset."""
    data: dict[str, Any] = {}
    for spec in matter.fields:
        raw = form.get(f"data.{spec.path}")
        if spec.kind == "bool":
            _set(data, spec.path, raw == "true")
            continue
        if spec.kind == "choices":
            chosen = [
                c.strip() for c in form.getall(f"data.{spec.path}", []) if isinstance(c, str) and c.strip()
            ]
            if chosen:
                _set(data, spec.path, chosen)
            continue
        if not isinstance(raw, str) or raw.strip() == "":
            continue
        value: Any = raw.strip()
        if spec.kind == "int":
            with contextlib.suppress(ValueError):  # else the API answers NOT_AN_INTEGER beside the field
                value = int(value)
        elif spec.kind == "datetime":
            with contextlib.suppress(ValueError):  # else the API names the field
                value = dt.datetime.fromisoformat(value).replace(tzinfo=BEIJING).isoformat()
        _set(data, spec.path, value)
    body: dict[str, Any] = {"matter": matter.id, "data": data}
    if materials:
        body["materials"] = materials
    contact: dict[str, str] = {}
    for name in CONTACT_FIELDS:
        raw = form.get(name)
        if isinstance(raw, str) and raw.strip():
            contact[name.removeprefix("contact.")] = raw.strip()
    if contact.get("phone") or contact.get("email"):
        body["contact"] = contact
    return body
