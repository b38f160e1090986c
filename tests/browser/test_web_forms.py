"""The generated forms (pure): every declared field of every matter gets a labelled control named by the
API's path, and the posted form becomes the API's submission."""

from __future__ import annotations

from multidict import MultiDict, MultiDictProxy

from gateway.catalogue import load_catalogue
from gateway.web import forms

CATALOGUE = load_catalogue()
LABELS = {"phone": "phone", "email": "email", "notify_language": "language"}


def test_every_declared_field_has_a_control_named_by_its_api_path() -> None:
    for matter in CATALOGUE.values():
        fields, uploads, _ = forms.controls(matter, "zh", labels=LABELS)
        assert [c.name for c in fields] == [f"data.{f.path}" for f in matter.fields]
        assert [c.label for c in fields] == [f.title_zh for f in matter.fields]
        assert [c.name for c in uploads] == [f"materials.{m.key}" for m in matter.materials if m.upload]
        for control, spec in zip(fields, matter.fields, strict=True):
            if spec.kind == "choice":
                assert [v for v, _ in control.choices] == list(spec.choices)
            assert len({c.id for c in fields}) == len(fields)  # every label points at one control


def test_every_choice_is_offered_in_words_in_both_languages() -> None:
    """A person picks "有效期满" or "Validity ended or ending", never the code EXPIRY (which is still the
    value sent)."""
    for matter in CATALOGUE.values():
        for lang in ("zh", "en"):
            fields, _, _ = forms.controls(matter, lang, labels=LABELS)
            for control in fields:
                for value, label in control.choices:
                    assert label != value, f"{matter.id} {control.name}: {value} has no words ({lang})"
    renewal = CATALOGUE["id-card-renewal-cross-province"]
    fields, _, _ = forms.controls(renewal, "zh", labels=LABELS)
    reason = next(c for c in fields if c.name == "data.renewal_reason")
    assert ("EXPIRY", "有效期满") in reason.choices


def test_errors_go_to_the_field_they_name() -> None:
    matter = CATALOGUE["id-card-renewal-cross-province"]
    errors = {"data.applicant.id_number": ["bad"], "contact.phone": ["phone"]}
    fields, _, contact = forms.controls(matter, "en", errors=errors, labels=LABELS)
    assert {c.name: c.errors for c in fields if c.errors} == {"data.applicant.id_number": ("bad",)}
    assert {c.name: c.errors for c in contact if c.errors} == {"contact.phone": ("phone",)}


def test_the_posted_form_becomes_the_submission() -> None:
    matter = CATALOGUE["newborn-registration"]
    form = MultiDictProxy(
        MultiDict(
            {
                "data.guardian.id_number": " 310104198004020010 ",
                "data.guardian.name": "张沪生",
                "data.newborn.sex": "FEMALE",
                "data.newborn.birth_date": "2016-09-01",
                "data.newborn.name": "",  # empty: left out, so the API names it as missing
                "contact.phone": "13800000000",
                "contact.language": "en",
            }
        )
    )
    body = forms.submission(matter, form, {"birth_certificate": "a" * 64})
    assert body["matter"] == "newborn-registration"
    assert body["data"]["guardian"] == {"id_number": "310104198004020010", "name": "张沪生"}
    assert body["data"]["newborn"] == {"sex": "FEMALE", "birth_date": "2016-09-01"}
    assert body["data"]["first_id_card"] is False  # an unticked box is a no
    assert body["materials"] == {"birth_certificate": "a" * 64}
    assert body["contact"] == {"phone": "13800000000", "language": "en"}
    no_contact = forms.submission(matter, MultiDictProxy(MultiDict({"contact.language": "zh"})), {})
    assert "contact" not in no_contact and "materials" not in no_contact


def test_several_choices_are_a_multiple_select_posted_as_a_list() -> None:
    matter = CATALOGUE["foreigner-employment"]
    posted = MultiDict(
        [
            ("data.category.special_criteria", "TALENT_PROGRAMME"),
            ("data.category.special_criteria", "YOUNG_TALENT"),
        ]
    )
    fields, _, _ = forms.controls(matter, "en", MultiDictProxy(posted), labels=LABELS)
    [control] = [c for c in fields if c.name == "data.category.special_criteria"]
    assert control.kind == "multiselect" and control.value == "TALENT_PROGRAMME,YOUNG_TALENT"
    body = forms.submission(matter, MultiDictProxy(posted), {})
    assert body["data"]["category"]["special_criteria"] == ["TALENT_PROGRAMME", "YOUNG_TALENT"]
    none = forms.submission(matter, MultiDictProxy(MultiDict()), {})
    assert "special_criteria" not in none["data"].get("category", {})
