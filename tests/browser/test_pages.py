"""The hall, the counter and the back office as a person uses them, in a real browser against the real
processes: a citizen applies for a cross-province renewal, a back-office clerk approves it, the counter
hands the card over and the citizen rates the service; a counter clerk opens a newborn registration and
prints the receipt; a form error shows beside its field. Each page is photographed at phone and desktop
widths into var/screenshots/."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as ipb
from govhub.identity.v1 import identity_pb2_grpc
from services.residence.seed import DEMO_HOUSEHOLDS
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

TIANJIN = ("120101198503120115", "王津生")  # hukou in Tianjin, accepted in Shanghai from 2016-07-01
XUHUI = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310104" and len(h.members) == 3)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def by(how: str, what: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return ({"css": By.CSS_SELECTOR, "id": By.ID, "xpath": By.XPATH}[how], what)


def shoot(driver: Any, name: str) -> None:
    """The page at phone and desktop widths (full height), after checking that the browser refused
    nothing under the pages' Content-Security-Policy (no inline script or style anywhere)."""
    refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused
    assert "default-src 'self'" in driver.execute_script(
        "return fetch(location.href).then(r => r.headers.get('Content-Security-Policy'))"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in (("phone", PHONE), ("desktop", DESKTOP)):
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, full + 120), 6000))
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


def fill(driver: Any, values: dict[str, str]) -> None:
    """Type into the generated fields (named by the API's paths); dates and selects set as a person would."""
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        element = driver.find_element(*by("id", "f-" + name.replace(".", "-")))
        kind = element.get_attribute("type")
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        elif kind == "date":
            driver.execute_script("arguments[0].value = arguments[1]", element, value)
        elif kind == "checkbox":
            if element.is_selected() != (value == "true"):
                element.click()
        elif kind == "file":
            element.send_keys(value)
        else:
            element.clear()
            element.send_keys(value)


def press(driver: Any, button: Any) -> None:
    """Click a button that sends a form, and wait until the browser has left the page."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(*by("css", "html"))
    button.click()
    WebDriverWait(driver, 60).until(expected_conditions.staleness_of(old))


def submit(driver: Any, form_css: str = "main form") -> None:
    press(driver, driver.find_element(*by("css", f"{form_css} button[type=submit]")))


def sign_in(driver: Any, base: str, area: str, **fields: str) -> None:
    driver.get(f"{base}/{area}/signin")
    for name, value in fields.items():
        element = driver.find_element(*by("id", f"f-{name}"))
        if element.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    submit(driver, "#dev-signin")
    assert "/signin" not in driver.current_url, driver.find_element(*by("css", "main")).text


def state_of(driver: Any) -> str:
    return driver.find_element(*by("id", "case-state")).get_attribute("data-state")


def wait_state(driver: Any, url: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        driver.get(url)
        current = state_of(driver)
        if current == state:
            return
        assert time.monotonic() < deadline, f"{url}: still {current}, wanted {state}"
        time.sleep(0.5)


def produce_card(hub: Hub, id_number: str) -> None:
    """The identity department's own system marks the card produced and ready (not a web page's job)."""
    with grpc.insecure_channel(hub.targets["identity"]) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        [application] = [
            a
            for a in stub.ListCardApplications(
                ipb.ListCardApplicationsRequest(id_number=id_number), timeout=10
            ).card_applications
            if a.state == ipb.CARD_APPLICATION_STATE_APPROVED
        ]
        stub.MarkCardProduced(ipb.MarkCardProducedRequest(request_id=str(uuid.uuid4()), id=application.id))
        stub.MarkCardReadyForPickup(
            ipb.MarkCardReadyForPickupRequest(request_id=str(uuid.uuid4()), id=application.id), timeout=10
        )


def test_citizen_applies_clerk_approves_citizen_rates(hub: Hub, driver: Any) -> None:
    base = hub.base_url
    assert f"{base}/hall/" in hub.log() and f"{base}/counter/" in hub.log()  # make run says where they are
    driver.get(f"{base}/hall/")
    assert "居民身份证异地换领" in driver.page_source
    shoot(driver, "hall-catalogue")
    driver.get(f"{base}/lang/en?next=/hall/")
    assert "Cross-province ID card renewal" in driver.find_element(*by("css", "main")).text
    shoot(driver, "hall-catalogue-en")
    driver.get(f"{base}/lang/zh?next=/hall/matters/id-card-renewal-cross-province")
    shoot(driver, "hall-matter")

    sign_in(driver, base, "hall", id_number=TIANJIN[0])
    driver.get(f"{base}/hall/matters/id-card-renewal-cross-province/apply")
    fill(
        driver,
        {
            "data.applicant.id_number": TIANJIN[0],
            "data.applicant.name": TIANJIN[1],
            "data.renewal_reason": "EXPIRY",
            "data.accepting_region_code": "310104",
            "data.residence_permit.number": "SH3101042016000123",
            "data.residence_permit.valid_until": "2017-08-31",
        },
    )
    shoot(driver, "hall-apply")
    submit(driver, "form.apply")
    assert "/receipt" in driver.current_url, driver.find_element(*by("css", "main")).text
    case_no = driver.find_element(*by("css", ".case-no")).text
    code = driver.find_element(*by("id", "query-code")).text
    assert case_no.startswith("GH20160915") and re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", code)
    assert state_of(driver) == "IN_REVIEW"
    assert "2016-11-14" in driver.page_source  # the statutory deadline: 60 days
    shoot(driver, "hall-receipt")
    driver.refresh()  # the query code is shown once per submission, and the page survives a reload
    assert driver.find_element(*by("css", ".case-no")).text == case_no

    # The hukou PSB's clerk approves in the back office.
    sign_in(driver, base, "backoffice", staff="psb-0042", dept="identity")
    section = driver.find_element(*by("xpath", f"//section[.//a[text()='{case_no}']]"))
    shoot(driver, "backoffice-steps")
    press(driver, section.find_element(*by("css", "form[action$='/approve'] button")))
    assert case_no in driver.find_element(*by("css", ".notice")).text

    # The citizen sees it approved, with its step and deadline.
    case_url = f"{base}/hall/cases/{case_no}"
    wait_state(driver, case_url, "APPROVED")
    assert "2016-11-14" in driver.find_element(*by("css", "table.steps")).text
    shoot(driver, "hall-case-approved")

    # Produced by the department, handed over at the counter of the accepting district, old card in.
    produce_card(hub, TIANJIN[0])
    sign_in(driver, base, "counter", staff="window-07", hall="310104")
    wait_state(driver, f"{base}/counter/cases/{case_no}", "READY_FOR_PICKUP")
    shoot(driver, "counter-pickup")
    driver.find_element(*by("id", "f-surrendered")).click()
    press(driver, driver.find_element(*by("css", "form[action$='/pickup'] button")))
    assert state_of(driver) == "COMPLETED"

    # The citizen rates the completed case.
    wait_state(driver, case_url, "COMPLETED")
    driver.find_element(*by("css", "label[for=f-rating-5]")).click()
    driver.find_element(*by("id", "f-comment")).send_keys("窗口服务很好")
    press(driver, driver.find_element(*by("css", "form[action$='/feedback'] button")))
    assert "5/5" in driver.find_element(*by("id", "my-rating")).text
    shoot(driver, "hall-case-rated")

    # My cases, the access log, public progress without signing in.
    driver.get(f"{base}/hall/cases")
    assert case_no in driver.page_source
    shoot(driver, "hall-my-cases")
    driver.get(f"{base}/hall/access-log")
    shoot(driver, "hall-access-log")
    driver.get(f"{base}/hall/card")
    assert driver.find_element(*by("id", "card-status")).get_attribute("data-status") == "VALID"
    shoot(driver, "hall-card")
    fill(driver, {"name": TIANJIN[1], "station_region_code": "310104"})
    submit(driver, "form[action$='/report-lost']")
    assert driver.find_element(*by("id", "lost-reported")).is_displayed()
    assert driver.find_element(*by("id", "card-status")).get_attribute("data-status") == "REPORTED_LOST"
    driver.delete_all_cookies()
    driver.get(f"{base}/hall/progress")
    fill(driver, {"case_no": case_no, "code": code})
    submit(driver)
    assert state_of(driver) == "COMPLETED"
    assert TIANJIN[1] not in driver.page_source  # the public view has no personal data
    shoot(driver, "hall-progress")


def test_counter_opens_newborn_registration_and_prints_receipt(hub: Hub, driver: Any, tmp_path: Path) -> None:
    base = hub.base_url
    head = XUHUI.members[0]
    certificate = tmp_path / "birth-certificate.pdf"
    certificate.write_bytes(PDF)
    sign_in(driver, base, "counter", staff="window-03", hall="310104")
    shoot(driver, "counter-queue")
    driver.get(f"{base}/counter/matters/newborn-registration/open")
    fill(
        driver,
        {
            "data.guardian.id_number": head.id_number,
            "data.guardian.name": head.name,
            "data.household_number": XUHUI.number,
            "data.newborn.name": "张小玉",
            "data.newborn.sex": "FEMALE",
            "data.newborn.birth_date": "2016-09-01",
            "data.newborn.birth_place": "上海市徐汇区",
            "data.newborn.ethnicity": "汉",
            "data.newborn.native_place": "上海",
            "data.relationship_code": "31",
            "data.first_id_card": "true",
            "data.station_region_code": "310104",
            "materials.birth_certificate": str(certificate),
        },
    )
    shoot(driver, "counter-open")
    submit(driver, "form.apply")
    assert "/counter/cases/" in driver.current_url and "/receipt" in driver.current_url, driver.find_element(
        *by("css", "main")
    ).text
    case_no = driver.find_element(*by("css", ".case-no")).text
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", driver.find_element(*by("id", "query-code")).text)
    assert "window-03" in driver.page_source  # who served the person
    assert driver.find_element(*by("css", "[data-print]")).is_displayed()
    shoot(driver, "counter-receipt")

    # Printed: the page's chrome goes, the receipt stays.
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not driver.find_element(*by("css", "header.top")).is_displayed()
    assert not driver.find_element(*by("css", "[data-print]")).is_displayed()
    assert driver.find_element(*by("css", ".receipt .case-no")).text == case_no
    import base64

    pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})["data"])
    assert pdf.startswith(b"%PDF-")
    (SCREENSHOTS / "counter-receipt.pdf").write_bytes(pdf)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    # The household register booklet, shown at the window, is recorded as checked.
    driver.get(f"{base}/counter/cases/{case_no}")
    driver.find_element(*by("id", "f-mat-household_register")).click()
    press(driver, driver.find_element(*by("css", "form[action$='/materials-checked'] button")))
    assert driver.find_element(*by("id", "f-mat-household_register")).get_attribute("disabled")


def test_a_form_error_shows_beside_its_field(hub: Hub, driver: Any) -> None:
    base = hub.base_url
    sign_in(driver, base, "hall", id_number=TIANJIN[0])
    driver.get(f"{base}/hall/matters/id-card-renewal-cross-province/apply")
    fill(
        driver,
        {
            "data.applicant.id_number": "120101198503120116",  # wrong check digit
            "data.applicant.name": TIANJIN[1],
            "data.renewal_reason": "EXPIRY",
            "data.accepting_region_code": "310104",
            "data.residence_permit.number": "SH3101042016000123",
            "data.residence_permit.valid_until": "2017-08-31",
        },
    )
    submit(driver, "form.apply")
    field = driver.find_element(*by("id", "f-data-applicant-id_number-field"))
    assert "校验码不正确" in field.find_element(*by("css", ".error")).text  # BAD_CHECK_DIGIT, in words
    assert field.find_element(*by("css", "input")).get_attribute("aria-invalid") == "true"
    # the other fields keep what was typed and carry no error
    name = driver.find_element(*by("id", "f-data-applicant-name-field"))
    assert not name.find_elements(*by("css", ".error"))
    assert name.find_element(*by("css", "input")).get_attribute("value") == TIANJIN[1]
    # the summary at the top links to the field, and has the focus
    summary = driver.find_element(*by("id", "error-summary"))
    assert summary.find_element(*by("css", "a")).get_attribute("href").endswith("#f-data-applicant-id_number")
    assert driver.switch_to.active_element == summary
    shoot(driver, "hall-apply-error")
