"""The pages' sessions, sign-in and forms, in-process on fake departments (no browser needed): the cookie
is sealed and scoped, development sign-in exists only with the development secret, every form that
changes something needs its CSRF token, a double submission makes one case, and no page carries inline
script or style."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.typedefs import departments_key
from services.common.clock import Clock
from tests.fakes import FakeDepartment, accepting_identity
from tests.service.gateway_support import TODAY, citizen, settings, token

PERSON = "11010519491231002X"
FORM = {
    "data.applicant.id_number": PERSON,
    "data.applicant.name": "测试甲",
    "data.renewal_reason": "EXPIRY",
    "data.accepting_region_code": "310104",
    "data.residence_permit.number": "SH310104201600001",
    "data.residence_permit.valid_until": "2017-06-30",
}
APPLY = "/hall/matters/id-card-renewal-cross-province/apply"


@pytest.fixture
async def web(aiohttp_client: Any, db_url: str, tmp_path: Path) -> TestClient:
    base = settings(db_url)
    configured = dataclasses.replace(base, common=dataclasses.replace(base.common, var_dir=tmp_path))
    departments = {
        "identity": accepting_identity(FakeDepartment("identity")),
        "residence": FakeDepartment("residence"),
        "permits": FakeDepartment("permits"),
    }
    app = create_app(configured, departments=departments, clock=Clock(TODAY), background=False)
    return await aiohttp_client(app)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def page(client: TestClient, path: str) -> str:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 200, (path, resp.status)
    return await resp.text()


async def sign_in_with_token(client: TestClient, bearer: str, area: str = "hall") -> Any:
    csrf = csrf_of(await page(client, f"/{area}/signin"))
    return await client.post(
        f"/{area}/signin?next=/{area}/",
        data={"csrf": csrf, "how": "token", "token": bearer},
        allow_redirects=False,
    )


async def my_case_count(client: TestClient) -> int:
    resp = await client.get("/api/v1/me/cases", headers=citizen(PERSON))
    return len((await resp.json())["cases"])


async def test_the_session_cookie_is_sealed_scoped_and_strict(web: TestClient) -> None:
    bearer = token("citizen", "citizen-002X", person=PERSON)
    resp = await sign_in_with_token(web, bearer)
    assert resp.status == 303 and resp.headers["Location"] == "/hall/"
    header = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith("govhub_hall="))
    attributes = header.lower()
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/hall" in attributes
    value = header.split(";")[0]
    claims = bearer.split(".")[1]
    assert PERSON not in value and claims not in value and bearer not in value
    assert base64.urlsafe_b64encode(PERSON.encode()).decode()[:12] not in value
    html = await page(web, "/hall/")
    assert "1101**********002X" in html and PERSON not in html  # the header shows the number masked
    assert (await web.get("/hall/cases", allow_redirects=False)).status == 200
    # the hall's cookie is not sent to the counter
    assert (await web.get("/counter/", allow_redirects=False)).status == 303


async def test_development_sign_in_is_absent_with_a_configured_secret(web: TestClient) -> None:
    html = await page(web, "/hall/signin")
    assert 'id="dev-signin"' not in html  # the test settings configure a secret file: production-like
    csrf = csrf_of(html)
    resp = await web.post(
        "/hall/signin", data={"csrf": csrf, "how": "dev", "id_number": PERSON}, allow_redirects=False
    )
    assert resp.status == 400
    after = await web.get("/hall/cases", allow_redirects=False)
    assert after.status == 303 and after.headers["Location"].startswith("/hall/signin")


async def test_a_token_of_another_role_or_a_forged_one_does_not_sign_in(web: TestClient) -> None:
    resp = await sign_in_with_token(web, token("counter", "staff-1", hall="310104"))
    assert resp.status == 400
    assert "此令牌的身份不能使用本页面" in await resp.text()
    forged = token("citizen", "x", person=PERSON)[:-4] + "AAAA"
    assert (await sign_in_with_token(web, forged)).status == 400
    assert (await web.get("/hall/cases", allow_redirects=False)).status == 303


async def test_a_form_without_its_csrf_token_changes_nothing(web: TestClient) -> None:
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert key
    for csrf in (None, "forged"):
        data = {**FORM, "idempotency_key": key.group(1)} | ({"csrf": csrf} if csrf else {})
        resp = await web.post(APPLY, data=data, allow_redirects=False)
        assert resp.status == 403
        assert "表单已过期" in await resp.text()
    assert await my_case_count(web) == 0
    # signing out is a state change too
    assert (await web.post("/hall/signout", data={}, allow_redirects=False)).status == 403


async def test_a_double_submission_makes_one_case_and_both_land_on_its_receipt(web: TestClient) -> None:
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    csrf = csrf_of(html)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert key
    data = {**FORM, "csrf": csrf, "idempotency_key": key.group(1)}
    first = await web.post(APPLY, data=data, allow_redirects=False)
    second = await web.post(APPLY, data=data, allow_redirects=False)
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert re.fullmatch(r"/hall/cases/GH20160915\w{6}/receipt", first.headers["Location"])
    assert await my_case_count(web) == 1
    receipt = await page(web, first.headers["Location"])
    assert re.search(r'id="query-code">[2-9A-HJ-NP-Z]{8}<', receipt)
    # the receipt says what the API says, and the next form gets a new key
    assert "2016-11-14" in receipt
    assert key.group(1) not in await page(web, APPLY)


async def test_field_errors_come_back_beside_their_fields_with_the_values_kept(web: TestClient) -> None:
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    data = {**FORM, "csrf": csrf_of(html), "data.residence_permit.valid_until": "30/06/2017"}
    del data["data.applicant.name"]
    resp = await web.post(APPLY, data=data, allow_redirects=False)
    assert resp.status == 400
    text = await resp.text()
    name = text[text.index('id="f-data-applicant-name-field"') :]
    assert name[: name.index("</div>")].count("此项必填") == 1
    until = text[text.index('id="f-data-residence_permit-valid_until-field"') :]
    assert "请填写日期" in until[: until.index("</div>")]
    number = text[text.index('id="f-data-residence_permit-number-field"') :]
    number = number[: number.index("</div>")]
    assert 'value="SH310104201600001"' in number and "error" not in number
    assert await my_case_count(web) == 0


async def test_a_department_refusal_about_a_field_is_shown_beside_it(web: TestClient) -> None:
    accepting_identity(web.app[departments_key]["identity"], refuse="RESIDENCE_PERMIT_EXPIRED")
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    resp = await web.post(APPLY, data={**FORM, "csrf": csrf_of(html)}, allow_redirects=False)
    assert resp.status in (400, 422)
    text = await resp.text()
    field = text.rindex("<div", 0, text.index('id="f-data-residence_permit-valid_until-field"'))
    until = text[field:]
    until = until[: until.index("</div>")]
    assert "has-error" in until and 'value="2017-06-30"' in until and "居住证已过有效期" in until, until
    assert "The application was refused" in text  # and the refusal itself above the form
    assert await my_case_count(web) == 0


async def test_pages_carry_no_inline_script_or_style(web: TestClient) -> None:
    paths = ["/hall/", "/hall/signin", "/hall/progress", "/counter/signin", "/backoffice/signin"]
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    paths += [APPLY, "/hall/cases"]
    for path in paths:
        resp = await web.get(path, allow_redirects=False)
        html = await resp.text()
        assert resp.status == 200, path
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html), path


async def test_withdrawal_needs_the_confirmation_and_then_withdraws(web: TestClient) -> None:
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    applied = await web.post(APPLY, data={**FORM, "csrf": csrf_of(html)}, allow_redirects=False)
    case_url = applied.headers["Location"].removesuffix("/receipt")
    case_page = await page(web, case_url)
    assert 'data-state="IN_REVIEW"' in case_page
    csrf = csrf_of(case_page)
    unconfirmed = await web.post(f"{case_url}/withdraw", data={"csrf": csrf}, allow_redirects=False)
    assert unconfirmed.status == 400
    assert 'data-state="IN_REVIEW"' in await unconfirmed.text()
    done = await web.post(
        f"{case_url}/withdraw", data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False
    )
    assert done.status == 303
    after = await page(web, done.headers["Location"])
    assert "已撤回。" in after and 'data-state="WITHDRAWN"' in after
    assert "/withdraw" not in after  # nothing left to withdraw


async def test_another_persons_case_is_not_found_on_the_page(web: TestClient) -> None:
    assert (await sign_in_with_token(web, token("citizen", "c", person=PERSON))).status == 303
    html = await page(web, APPLY)
    applied = await web.post(APPLY, data={**FORM, "csrf": csrf_of(html)}, allow_redirects=False)
    case_url = applied.headers["Location"].removesuffix("/receipt")
    web.session.cookie_jar.clear()
    assert (await sign_in_with_token(web, token("citizen", "d", person="310104198004020010"))).status == 303
    other = await web.get(case_url, allow_redirects=False)
    assert other.status == 404
    assert PERSON not in await other.text()
