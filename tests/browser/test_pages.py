"""The hall, the counter and the back office as a person uses them, in a real browser against the real
processes on today's date: a citizen applies for a cross-province renewal, a back-office clerk approves
it, the counter hands the card over and the citizen rates the service; a counter clerk opens a newborn
registration and prints the receipt; a form error shows beside its field. Every page is audited with
axe-core (the WCAG 2 A and AA rules) and photographed at phone and desktop widths into var/screenshots/."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from services.residence.seed import DEMO_HOUSEHOLDS
from tests.browser.conftest import AXE, COMMAND_TIMEOUT, DESKTOP, PHONE, SCREENSHOTS
from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

TIANJIN = ("120101198503120115", "王津生")  # hukou in Tianjin, accepted in Shanghai from 2016-07-01
JIANGXI = ("360102199205200454", "刘赣平")  # hukou in Jiangxi, accepted in Shanghai from 2016-07-01
XUHUI = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310104" and len(h.members) == 3)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
WAIT = 60  # seconds an explicit wait gives its condition
SHOT_TRIES = 3  # a screenshot the renderer did not deliver is taken again (never an assertion)
AXE_TAGS = ["wcag2a", "wcag2aa"]


def by(how: str, what: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return ({"css": By.CSS_SELECTOR, "id": By.ID, "xpath": By.XPATH}[how], what)


def until(driver: Any, condition: Callable[[Any], Any], message: str, timeout: float = WAIT) -> Any:
    """Wait for `condition` (polled by WebDriverWait) and return what it returned."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition, message)


def hub_today(driver: Any) -> dt.date:
    """The hub's date, as every page's footer shows it."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", driver.find_element(*by("css", "footer")).text)
    assert found, driver.find_element(*by("css", "footer")).text
    return dt.date.fromisoformat(found.group())


@functools.cache
def axe_script() -> str:
    return AXE.read_text()


def audit(driver: Any, name: str) -> None:
    """axe-core's WCAG 2 A and AA rules on the page as it stands; any violation fails, named."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_script())
    violations = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' — ' + n.failureSummary)}))),
                e => done([{id: 'axe-failed', impact: 'error', help: String(e), nodes: []}]));""",
        AXE_TAGS,
    )
    assert not violations, f"{name}: axe found\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations
    )


@contextmanager
def viewport(driver: Any, width: int, height: int) -> Iterator[None]:
    """The page laid out at `width` (a phone's narrow one emulated as a phone), the window left as is."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def capture(driver: Any, path: Path, width: int, height: int) -> None:
    """The whole page (full height, at most 6000 px) through the DevTools protocol; a renderer that does
    not deliver gets another try, up to SHOT_TRIES (only the picture is retried, never a check)."""
    from selenium.common.exceptions import WebDriverException

    for attempt in range(1, SHOT_TRIES + 1):
        try:
            full = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
            clip = {"x": 0, "y": 0, "width": width, "height": min(max(height, int(full)), 6000), "scale": 1}
            shot = driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
            )
        except WebDriverException:
            if attempt == SHOT_TRIES:
                raise
        else:
            path.write_bytes(base64.b64decode(shot["data"]))
            return


def shoot(driver: Any, name: str) -> None:
    """Check the page, then photograph it at phone and desktop widths: the browser refused nothing under
    the pages' Content-Security-Policy (no inline script or style anywhere), and axe finds no WCAG 2 A
    or AA violation at either width."""
    refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused
    assert "default-src 'self'" in driver.execute_script(
        "return fetch(location.href).then(r => r.headers.get('Content-Security-Policy'))"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in (("phone", PHONE), ("desktop", DESKTOP)):
        with viewport(driver, width, height):
            audit(driver, f"{name} ({label})")
            capture(driver, SCREENSHOTS / f"{name}-{label}.png", width, height)


@contextmanager
def command_timeout(driver: Any, seconds: float) -> Iterator[None]:
    """Every WebDriver command inside gives up after `seconds` (a clear failure, never a hang)."""
    config = driver.command_executor.client_config
    config.timeout = seconds
    try:
        yield
    finally:
        config.timeout = COMMAND_TIMEOUT


def permit_valid_until(today: dt.date) -> str:
    """A Shanghai residence permit still valid for most of a year."""
    return (today + dt.timedelta(days=300)).isoformat()


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

    old = driver.find_element(*by("css", "html"))
    button.click()
    until(driver, expected_conditions.staleness_of(old), "the form was not sent")


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


def result_of(driver: Any, key: str) -> str:
    """One of the steps' results as the case page shows it (the first step that has it)."""
    return str(driver.find_element(*by("css", f"#results [data-result={key}]")).text)


def state_of(driver: Any) -> str:
    return driver.find_element(*by("id", "case-state")).get_attribute("data-state")


def wait_state(driver: Any, url: str, state: str) -> None:
    """Reload `url` until the case shows `state` (the saga moves it on in the background)."""

    def shows(d: Any) -> bool:
        d.get(url)
        return bool(state_of(d) == state)

    until(driver, shows, f"{url} never showed {state}")


def back_office_decides(driver: Any, base: str, case_no: str, decision: str, state: str) -> None:
    """The department's clerk takes `decision` on the case's step from the back office's list of steps in
    `state` (the button is there only while the step allows it); the event moves the step on."""
    action = f"form[action$='/{decision}'] button"

    def button(d: Any) -> Any:
        d.get(f"{base}/backoffice/?state={state}")
        sections = d.find_elements(*by("xpath", f"//section[.//a[text()='{case_no}']]"))
        found = sections[0].find_elements(*by("css", action)) if sections else []
        return found[0] if found else False

    press(driver, until(driver, button, f"no '{decision}' for {case_no} among the {state} steps"))
    assert case_no in driver.find_element(*by("css", ".notice")).text


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
    assert "持有有效上海市居住证" in driver.find_element(*by("css", "p.description")).text  # 中文说明
    shoot(driver, "hall-matter")

    driver.get(f"{base}/hall/signin")
    shoot(driver, "hall-signin")
    sign_in(driver, base, "hall", id_number=TIANJIN[0])
    driver.get(f"{base}/hall/matters/id-card-renewal-cross-province/apply")
    today = hub_today(driver)
    deadline = (today + dt.timedelta(days=60)).isoformat()  # the statutory deadline: 60 days
    # online one applies for oneself: the form starts with the signed-in person's number
    assert driver.find_element(*by("id", "f-data-applicant-id_number")).get_attribute("value") == TIANJIN[0]
    fill(
        driver,
        {
            "data.applicant.id_number": TIANJIN[0],
            "data.applicant.name": TIANJIN[1],
            "data.renewal_reason": "EXPIRY",
            "data.accepting_region_code": "310104",
            "data.residence_permit.number": "SH3101042016000123",
            "data.residence_permit.valid_until": permit_valid_until(today),
        },
    )
    shoot(driver, "hall-apply")
    submit(driver, "form.apply")
    assert "/receipt" in driver.current_url, driver.find_element(*by("css", "main")).text
    case_no = driver.find_element(*by("css", ".case-no")).text
    code = driver.find_element(*by("id", "query-code")).text
    assert case_no.startswith("GH" + today.strftime("%Y%m%d")) and re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", code)
    assert state_of(driver) == "IN_REVIEW"
    assert deadline in driver.page_source
    assert "原居民身份证" in driver.find_element(*by("id", "next")).text  # what to bring to the counter next
    shoot(driver, "hall-receipt")
    driver.refresh()  # the query code is shown once per submission, and the page survives a reload
    assert driver.find_element(*by("css", ".case-no")).text == case_no

    # The hukou PSB's clerk approves in the back office.
    driver.get(f"{base}/backoffice/signin")
    shoot(driver, "backoffice-signin")
    sign_in(driver, base, "backoffice", staff="psb-0042", dept="identity")
    section = driver.find_element(*by("xpath", f"//section[.//a[text()='{case_no}']]"))
    shoot(driver, "backoffice-steps")
    press(driver, section.find_element(*by("css", "form[action$='/approve'] button")))
    assert case_no in driver.find_element(*by("css", ".notice")).text

    # The citizen sees it approved, with its step and deadline.
    case_url = f"{base}/hall/cases/{case_no}"
    wait_state(driver, case_url, "APPROVED")
    assert deadline in driver.find_element(*by("css", "table.steps")).text
    assert result_of(driver, "fee_fen").startswith("¥")  # the fee the department fixed on approval
    assert driver.find_element(*by("id", "case-hall")).text == "上海市徐汇区（310104）"
    shoot(driver, "hall-case-approved")

    # The department's clerk marks the card produced, then ready for pickup, in the back office (each
    # button only in its turn); handed over at the counter of the accepting district, old card in.
    sign_in(driver, base, "backoffice", staff="psb-0042", dept="identity")
    back_office_decides(driver, base, case_no, "produced", "APPROVED")
    shoot(driver, "backoffice-produced")
    back_office_decides(driver, base, case_no, "ready-for-pickup", "APPROVED")
    sign_in(driver, base, "counter", staff="window-07", hall="310104")
    wait_state(driver, f"{base}/counter/cases/{case_no}", "READY_FOR_PICKUP")
    assert result_of(driver, "collect_at_region_code") == "上海市徐汇区（310104）"  # pickup place and date
    assert dt.date.fromisoformat(result_of(driver, "ready_on")) >= today
    assert result_of(driver, "card_number")
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
    listed = driver.find_element(*by("css", f"#steps-{case_no} [data-step=card]"))  # its steps in short
    assert listed.get_attribute("data-state") == "DONE" and "已完成" in listed.text
    assert listed.find_element(*by("css", "[data-result=card_number]")).text
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
    driver.get(f"{base}/hall/card")  # (the page answering the report is a POST's: photographed as a GET)
    shoot(driver, "hall-card-reported")
    driver.delete_all_cookies()
    driver.get(f"{base}/hall/progress")
    shoot(driver, "hall-progress-form")
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
    driver.get(f"{base}/counter/signin")
    shoot(driver, "counter-signin")
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
            "data.newborn.birth_date": (hub_today(driver) - dt.timedelta(days=14)).isoformat(),
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
    with command_timeout(driver, 90):
        printed = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})
    pdf = base64.b64decode(printed["data"])
    assert pdf.startswith(b"%PDF-")
    (SCREENSHOTS / "counter-receipt.pdf").write_bytes(pdf)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    # The household register booklet, shown at the window, is recorded as checked.
    driver.get(f"{base}/counter/cases/{case_no}")
    driver.find_element(*by("id", "f-mat-household_register")).click()
    press(driver, driver.find_element(*by("css", "form[action$='/materials-checked'] button")))
    assert driver.find_element(*by("id", "f-mat-household_register")).get_attribute("disabled")
    # the newborn's ID number, assigned at once by the household registration, on the counter's case page
    until(
        driver,
        lambda d: (
            d.get(f"{base}/counter/cases/{case_no}"),
            d.find_elements(*by("css", "[data-result=id_number]")),
        )[1],
        "the newborn's ID number never showed",
    )
    number = result_of(driver, "id_number")
    assert re.fullmatch(r"310104\d{11}[\dX]", number), number
    shoot(driver, "counter-case-newborn")


def test_a_rejection_shows_its_reasons(hub: Hub, driver: Any) -> None:
    """A back-office clerk rejects an application with reasons; the applicant reads them on the case page."""
    base = hub.base_url
    sign_in(driver, base, "hall", id_number=JIANGXI[0])
    shoot(driver, "hall-signed-in")
    driver.get(f"{base}/hall/matters/id-card-renewal-cross-province/apply")
    fill(
        driver,
        {
            "data.applicant.id_number": JIANGXI[0],
            "data.applicant.name": JIANGXI[1],
            "data.renewal_reason": "EXPIRY",
            "data.accepting_region_code": "310104",
            "data.residence_permit.number": "SH3101042016000456",
            "data.residence_permit.valid_until": permit_valid_until(hub_today(driver)),
        },
    )
    submit(driver, "form.apply")
    case_no = driver.find_element(*by("css", ".case-no")).text

    sign_in(driver, base, "backoffice", staff="psb-0043", dept="identity")
    section = until(
        driver,
        lambda d: (
            d.get(f"{base}/backoffice/"),
            d.find_elements(*by("xpath", f"//section[.//a[text()='{case_no}']]")),
        )[1],
        f"{case_no} never waited in the back office",
    )[0]
    section.find_element(*by("css", "textarea")).send_keys("居住证照片不清晰\n请重新上传居住证")
    press(driver, section.find_element(*by("css", "form[action$='/reject'] button")))
    driver.get(f"{base}/backoffice/cases/{case_no}")
    shoot(driver, "backoffice-case")

    sign_in(driver, base, "hall", id_number=JIANGXI[0])
    wait_state(driver, f"{base}/hall/cases/{case_no}", "REJECTED")
    reasons = driver.find_element(*by("id", "rejection")).text
    assert "居住证照片不清晰" in reasons and "请重新上传居住证" in reasons
    shoot(driver, "hall-case-rejected")


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
            "data.residence_permit.valid_until": permit_valid_until(hub_today(driver)),
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


def test_the_audit_fails_a_page_with_violations(driver: Any) -> None:
    """The check every page passes can fail: an unlabelled field and an image without text are named."""
    driver.get("data:text/html,<html><body><main><img src='x.png'><input type='text'></main></body></html>")
    with pytest.raises(AssertionError) as failed:
        audit(driver, "probe")
    assert "image-alt" in str(failed.value) and "label" in str(failed.value)
