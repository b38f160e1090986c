"""Pages shared by the areas: sign-in and sign-out, the generated application form (online and at the
counter), the language switch and the package's static files."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from gateway.auth import DEPARTMENTS, mint, public
from gateway.catalogue import Matter
from gateway.problems import Problem
from gateway.typedefs import catalogue_key, settings_key, verifier_key
from gateway.web import forms
from gateway.web.i18n import translate
from gateway.web.pages import (
    AREA_ROLES,
    LANG_COOKIE,
    call,
    development,
    error_page,
    fail,
    language,
    masked,
    page,
    problem_text,
    redirect,
    render,
    safe_next,
)
from gateway.web.session import Session

routes = web.RouteTableDef()
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
STATIC: dict[str, tuple[bytes, str]] = {
    entry.name: (entry.read_bytes(), STATIC_TYPES[entry.name[entry.name.rfind(".") :]])
    for entry in resources.files("gateway.web").joinpath("static").iterdir()
    if entry.name[entry.name.rfind(".") :] in STATIC_TYPES
}


@routes.get("/static/web/{name}")
@public
async def static(request: web.Request) -> web.Response:
    """The pages' stylesheet and script, served from the package (nothing from elsewhere)."""
    found = STATIC.get(request.match_info["name"])
    if found is None:
        raise Problem(404, "not-found", "No such file")
    body, content_type = found
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(
        body=body, content_type=content_type, headers={"ETag": etag, "Cache-Control": "public, max-age=300"}
    )


@routes.get("/")
@public
async def home(request: web.Request) -> web.Response:
    return redirect("/hall/")


@routes.get("/lang/{lang}")
@public
async def switch_language(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    response = redirect(safe_next(request.query.get("next"), "/hall/"))
    if lang in ("zh", "en"):
        response.set_cookie(
            LANG_COOKIE, lang, path="/", max_age=365 * 86400, samesite="Strict", httponly=True
        )
    return response


# -- signing in ------------------------------------------------------------------------------------------


def _label(role: str, claims: dict[str, str]) -> str:
    if role == "citizen":
        return masked(claims.get("person", ""))
    if role == "counter":
        return f"{claims.get('sub', '')} · {claims.get('hall', '')}"
    return f"{claims.get('sub', '')} · {claims.get('dept', '')}"


async def signin(request: web.Request, session: Session) -> web.StreamResponse:
    area = session.area
    lang = language(request)
    role = AREA_ROLES[area]
    next_path = safe_next(request.query.get("next"), f"/{area}/")
    errors: dict[str, list[str]] = {}
    message = translate(lang, "session_expired") if request.query.get("expired") else ""
    values: dict[str, str] = {}
    if request.method == "POST":
        form = await request.post()
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf" and k != "token"}
        token = str(form.get("token", "")).strip()
        verifier = request.app[verifier_key]
        if form.get("how") == "dev" and development(request):
            claims = _dev_claims(area, form, errors, lang)
            if not errors:
                settings = request.app[settings_key]
                secret = verifier.keys.secret
                assert secret is not None
                try:
                    token = mint(
                        secret,
                        role=role,
                        sub=claims["sub"],
                        issuer=settings.jwt_issuer,
                        audience=settings.jwt_audience,
                        person=claims.get("person", ""),
                        hall=claims.get("hall", ""),
                        dept=claims.get("dept", ""),
                        ttl=dt.timedelta(hours=8),
                    )
                except ValueError as exc:
                    errors.setdefault("id_number", []).append(str(exc))
        elif form.get("how") == "token":
            if not token:
                errors.setdefault("token", []).append(translate(lang, "required"))
        else:
            errors.setdefault("token", []).append(translate(lang, "required"))
        if token and not errors:
            try:
                who = verifier.verify(token)
            except Problem as problem:
                errors.setdefault("token", []).append(problem.detail or problem.title)
            else:
                if who.role != role:
                    errors.setdefault("token", []).append(translate(lang, "wrong_role"))
                else:
                    claims = {
                        "sub": who.subject,
                        "person": who.person,
                        "hall": who.hall,
                        "dept": who.department,
                    }
                    session.sign_in(token, role, _label(role, claims))
                    return redirect(next_path)
    return render(
        request,
        "signin.html",
        status=400 if errors else 200,
        next_path=next_path,
        errors=errors,
        message=message,
        values=values,
        departments=DEPARTMENTS,
    )


def _dev_claims(area: str, form: Any, errors: dict[str, list[str]], lang: str) -> dict[str, str]:
    if area == "hall":
        number = str(form.get("id_number", "")).strip().upper()
        if not number:
            errors.setdefault("id_number", []).append(translate(lang, "required"))
        key = hashlib.sha256(number.encode()).hexdigest()[:12]
        return {"sub": f"citizen-{key}", "person": number}
    staff = str(form.get("staff", "")).strip()
    if not staff or len(staff) > 40:
        errors.setdefault("staff", []).append(translate(lang, "required"))
    if area == "counter":
        hall = str(form.get("hall", "")).strip()
        if not (len(hall) == 6 and hall.isdigit()):
            errors.setdefault("hall", []).append("6 位数字 / six digits")
        return {"sub": staff, "hall": hall}
    dept = str(form.get("dept", ""))
    if dept not in DEPARTMENTS:
        errors.setdefault("dept", []).append(translate(lang, "required"))
    return {"sub": staff, "dept": dept}


async def signout(request: web.Request, session: Session) -> web.StreamResponse:
    session.sign_out()
    return redirect(f"/{session.area}/")


def area_routes(area: str) -> list[web.RouteDef]:
    handler_in = page(area, signed_in=False)(signin)
    handler_out = page(area, signed_in=False)(signout)
    return [
        web.get(f"/{area}/signin", handler_in),
        web.post(f"/{area}/signin", handler_in),
        web.post(f"/{area}/signout", handler_out),
    ]


# -- the application form --------------------------------------------------------------------------------


def form_page(
    request: web.Request,
    matter: Matter,
    *,
    action: str,
    values: Any = None,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
    status: int = 200,
) -> web.Response:
    lang = language(request)
    labels = {k: translate(lang, k) for k in ("phone", "email", "notify_language")}
    fields, uploads, contact = forms.controls(matter, lang, values, errors, labels=labels)
    known = {c.name for c in (*fields, *uploads, *contact)}
    # errors the form has no field for (e.g. a department's finding on a step) go to the summary
    others = [
        f"{name}: {text}" if name else text
        for name, texts in (errors or {}).items()
        if name not in known
        for text in texts
    ]
    invalid = [c for c in (*fields, *uploads, *contact) if c.errors]
    return render(
        request,
        "apply.html",
        status=status,
        matter=matter,
        public=matter.public(),
        fields=fields,
        uploads=uploads,
        contact=contact,
        invalid=invalid,
        others=others,
        message=message,
        action=action,
        idempotency_key=str(uuid.uuid4()),  # a new key per form shown: a double click sends the same one
    )


async def submit_form(
    request: web.Request, session: Session, matter: Matter, *, endpoint: str, action: str, receipt_url: str
) -> web.StreamResponse:
    """Upload the chosen documents (each once), then submit the application with the form's
    Idempotency-Key; field errors go back beside their fields."""
    form = await request.post()
    errors: dict[str, list[str]] = {}
    materials: dict[str, str] = {}
    kept: dict[str, str] = {}
    for spec in matter.materials:
        if not spec.upload:
            continue
        name = f"materials.{spec.key}"
        upload = form.get(name)
        if isinstance(upload, web.FileField) and upload.filename:
            data = aiohttp.FormData()
            data.add_field(
                "file", upload.file.read(), filename=upload.filename, content_type=upload.content_type
            )
            answer = await call(request, "POST", "/api/v1/materials", data=data)
            if answer.ok:
                materials[spec.key] = str(answer.body["sha256"])
            else:
                errors.setdefault(name, []).extend(
                    [t for texts in answer.field_errors(language(request)).values() for t in texts]
                    or [problem_text(answer)]
                )
        else:
            previous = form.get(f"{name}.sha256")
            if isinstance(previous, str) and forms.SHA256.match(previous):
                materials[spec.key] = previous
        if spec.key in materials:
            kept[f"{name}.sha256"] = materials[spec.key]
    values = {k: v for k, v in form.items() if isinstance(v, str)} | kept
    if errors:
        return form_page(request, matter, action=action, values=values, errors=errors, status=400)
    key = str(form.get("idempotency_key", "")) or str(uuid.uuid4())
    answer = await call(
        request,
        "POST",
        endpoint,
        json_body=forms.submission(matter, form, materials),
        headers={"Idempotency-Key": key[:128]},
    )
    if answer.status == 201:
        session.receipt = {
            "case_no": str(answer.body["case_no"]),
            "query_code": str(answer.body["query_code"]),
        }
        session.changed = True
        return redirect(receipt_url.format(case_no=answer.body["case_no"]))
    if answer.status in (400, 403, 422) and answer.body.get("errors"):
        # invalid fields, or a department's refusal about one field (an expired residence permit)
        return form_page(
            request,
            matter,
            action=action,
            values=values,
            errors=answer.field_errors(language(request)),
            message=problem_text(answer) if answer.status == 422 else "",
            status=answer.status if answer.status == 422 else 400,
        )
    if answer.status in (403, 409, 422):
        return form_page(
            request, matter, action=action, values=values, message=problem_text(answer), status=answer.status
        )
    return fail(request, answer)


def application_routes(area: str, verb: str, endpoint: str) -> list[web.RouteDef]:
    """``/{area}/matters/{matter_id}/{verb}``: GET shows the matter's generated form, POST submits it to
    the API's `endpoint` and goes on to ``/{area}/cases/{case_no}/receipt``. In the hall the form starts
    with the signed-in person's own number (online one applies only for oneself)."""
    receipt_url = f"/{area}/cases/{{case_no}}/receipt"

    @page(area)
    async def application(request: web.Request, session: Session) -> web.StreamResponse:
        matter = matter_or_404(request)
        action = f"/{area}/matters/{matter.id}/{verb}"
        if request.method == "GET":
            values = {f"data.{matter.applicant_field}": _person(request, session)} if area == "hall" else {}
            return form_page(request, matter, action=action, values=values)
        return await submit_form(
            request, session, matter, endpoint=endpoint, action=action, receipt_url=receipt_url
        )

    path = f"/{area}/matters/{{matter_id}}/{verb}"
    return [web.get(path, application), web.post(path, application)]


def _person(request: web.Request, session: Session) -> str:
    """The signed-in citizen's own ID or passport number, from the session's token ("" if it is no
    longer valid: the API's answer to the form then says so)."""
    try:
        return request.app[verifier_key].verify(session.token).person
    except Problem:
        return ""


def page_query(request: web.Request, size: int, **extra: str) -> dict[str, str]:
    """A listing's query to the API: its page size, the page token the person followed, and `extra`."""
    params = {"page_size": str(size), **extra}
    if request.query.get("page_token"):
        params["page_token"] = request.query["page_token"][:200]
    return params


def matter_or_404(request: web.Request) -> Matter:
    matter = request.app[catalogue_key].get(request.match_info["matter_id"])
    if matter is None:
        raise web.HTTPNotFound()
    return matter


__all__ = ["application_routes", "area_routes", "error_page", "matter_or_404", "page_query", "routes"]
