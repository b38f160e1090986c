"""Cross-field rules a person can get wrong on the form are checked at submission, each error naming the
submitted ``data....`` path; fees and time limits are quoted, not written in matter files (except the
residence register's own days)."""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from importlib import resources

import pytest

from gateway.catalogue import load_catalogue, validate_submission
from services.common.errors import InvalidArgument

TODAY = dt.date(2016, 10, 8)
DATA = {
    "applicant": {
        "passport_number": "E12345678",
        "nationality": "GBR",
        "surname": "Testperson",
        "given_names": "Alex",
        "birth_date": "1985-04-02",
        "sex": "MALE",
    },
    "employer_uscc": "91310000MA1FL0000X",
    "position": "Engineer",
    "work_region": "310115",
    "contract": {"start_date": "2016-10-01", "end_date": "2018-09-30"},
    "annual_salary_yuan": 400000,
    "education": "MASTER",
    "experience_years": 6,
    "entry_date": "2016-09-10",
    "accommodation": {
        "address": "上海市浦东新区测试路1号",
        "police_station_code": "310115001",
        "host_kind": "HOTEL",
        "host_name": "测试酒店",
        "host_identifier": "HOTEL-0001",
        "arrived_at": "2016-09-10T21:00:00+08:00",
        "from_date": "2016-09-10",
        "to_date": "2016-12-31",
    },
}


def errors(data: dict, within: int | None = 30) -> dict[str, str]:
    matter = load_catalogue()["foreigner-employment"]
    with pytest.raises(InvalidArgument) as raised:
        validate_submission(matter, data, TODAY, entry_within_days=within)
    return {v.field: v.reason for v in raised.value.violations}


def test_a_valid_submission_passes() -> None:
    matter = load_catalogue()["foreigner-employment"]
    assert validate_submission(matter, DATA, TODAY, entry_within_days=30)["entry_date"] == "2016-09-10"


def test_dates_in_the_wrong_order_name_the_submitted_path() -> None:
    data = copy.deepcopy(DATA)
    data["contract"]["end_date"] = "2016-09-30"
    data["accommodation"]["to_date"] = "2016-09-01"
    assert errors(data) == {
        "data.contract.end_date": "BEFORE_START",
        "data.accommodation.to_date": "BEFORE_START",
    }


def test_entry_more_than_the_quoted_days_before_the_application_is_refused_up_front() -> None:
    data = {**DATA, "entry_date": "2016-08-31"}  # 38 days before
    assert errors(data) == {"data.entry_date": "TOO_LONG_AFTER_ENTRY"}
    data = {**DATA, "entry_date": "2016-10-09"}
    assert errors(data) == {"data.entry_date": "IN_THE_FUTURE"}
    matter = load_catalogue()["foreigner-employment"]
    # when permits could not be asked, the department checks the days itself
    assert validate_submission(matter, {**DATA, "entry_date": "2016-08-31"}, TODAY, entry_within_days=None)


def test_entry_date_or_the_held_permit_exactly_one() -> None:
    both = {**DATA, "held_residence_permit_number": "RP-1"}
    assert errors(both) == {"data.held_residence_permit_number": "NOT_WITH_OTHER"}
    neither = {k: v for k, v in DATA.items() if k != "entry_date"}
    assert errors(neither) == {
        "data.entry_date": "ONE_OF_REQUIRED",
        "data.held_residence_permit_number": "ONE_OF_REQUIRED",
    }
    job_change = {**neither, "held_residence_permit_number": "RP-1"}
    matter = load_catalogue()["foreigner-employment"]
    assert validate_submission(matter, job_change, TODAY, entry_within_days=30)


def test_special_criteria_are_a_list_of_known_codes() -> None:
    assert errors({**DATA, "category": {"special_criteria": ["NOBEL"]}}) == {
        "data.category.special_criteria": "NOT_ALLOWED"
    }
    assert errors({**DATA, "category": {"special_criteria": "TALENT_PROGRAMME"}}) == {
        "data.category.special_criteria": "NOT_A_LIST"
    }


def test_matter_files_hold_no_fees_and_no_days_of_a_department_that_quotes() -> None:
    for entry in resources.files("gateway.matters").iterdir():
        if not entry.name.endswith(".toml"):
            continue
        raw = tomllib.loads(entry.read_text(encoding="utf-8"))
        assert "statutory_days" not in raw, entry.name
        for fee in raw.get("fees", []):
            assert "amount_fen" not in fee and "quote" in fee, entry.name
        for limit in raw["time_limits"]:
            assert "quote" in limit or "residence" in {s["department"] for s in raw["steps"]}, entry.name
