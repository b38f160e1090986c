"""What every page shares: the area's session, the language, CSRF on every form that changes state,
rendering, and the API's answers turned into what a person can act on."""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from gateway.auth import public
from gateway.typedefs import catalogue_key, clock_key, settings_key, verifier_key
from gateway.web import api
from gateway.web.i18n import LANGUAGES, place, reason_words, result_text, translate
from gateway.web.session import Session, Sessions

log = structlog.get_logger("govhub.web")
sessions_app_key: web.AppKey[Sessions] = web.AppKey("web_sessions", Sessions)
session_request_key: web.RequestKey[Session] = web.RequestKey("web_session")
LANG_COOKIE = "govhub_lang"
AREA_ROLES = {"hall": "citizen", "counter": "counter", "backoffice": "department"}

# Every page: scripts and styles only from the gateway itself (none inline), no framing, forms post only
# here, nothing cached. A stricter policy set by a later middleware replaces these.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

PageHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def language(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in LANGUAGES else "zh"


def safe_next(value: str | None, default: str) -> str:
    """A local path to go back to (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def masked(number: str) -> str:
    number = number.strip()
    return number[:4] + "*" * max(0, len(number) - 8) + number[-4:] if len(number) > 8 else "****"


def development(request: web.Request) -> bool:
    """The generated development secret is in use (no configured secret, no public keys)."""
    settings = request.app[settings_key]
    return (
        request.app[verifier_key].keys.development
        and settings.jwt_secret_file is None
        and settings.jwt_public_keys_file is None
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request[session_request_key]
    lang = language(request)
    base = {
        "lang": lang,
        "t": functools.partial(translate, lang),
        "session": session,
        "area": session.area,
        "path": request.path_qs,
        "path_only": request.path,
        "today": request.app[clock_key].today().isoformat(),
        "catalogue": request.app[catalogue_key],
        "title_of": lambda m: (m.title if lang == "en" else m.title_zh) if m else "",
        "matter_title": lambda mid: _matter_title(request, mid, lang),
        "step_title": lambda mid, key: _step_title(request, mid, key, lang),
        "field_title": lambda mid, path: _field_title(request, mid, path, lang),
        "yuan": lambda fen: f"{fen / 100:.2f}" if isinstance(fen, int) else "",
        "reason_words": functools.partial(reason_words, lang),
        "result_text": functools.partial(result_text, lang),
        "place": functools.partial(place, lang),
        "dev": development(request),
    }
    base.update(context)
    return aiohttp_jinja2.render_template(template, request, base, status=status)


def _matter_title(request: web.Request, matter_id: str, lang: str) -> str:
    matter = request.app[catalogue_key].get(matter_id)
    if matter is None:
        return matter_id
    return matter.title if lang == "en" else matter.title_zh


def _step_title(request: web.Request, matter_id: str, key: str, lang: str) -> str:
    matter = request.app[catalogue_key].get(matter_id)
    spec = next((s for s in matter.steps if s.key == key), None) if matter else None
    if spec is None:
        return key
    return spec.title if lang == "en" else spec.title_zh


def _field_title(request: web.Request, matter_id: str, path: str, lang: str) -> str:
    matter = request.app[catalogue_key].get(matter_id)
    spec = next((f for f in matter.fields if f.path == path), None) if matter else None
    if spec is None:
        return path
    return spec.title if lang == "en" else spec.title_zh


def error_page(request: web.Request, status: int, message: str, detail: str = "") -> web.Response:
    return render(request, "error.html", status=status, message=message, detail=detail)


def page(area: str, *, signed_in: bool = True) -> Callable[[PageHandler], Callable[..., Any]]:
    """A page of `area`: its session loaded (and saved if changed), sign-in required unless told
    otherwise, the CSRF token checked on every POST, the API's unavailability shown as such."""

    def wrap(handler: PageHandler) -> Callable[..., Any]:
        @public  # the page's own session check below; the API calls it makes are checked by the API
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            sessions = request.app[sessions_app_key]
            session = sessions.load(request, area)
            request[session_request_key] = session
            response = await _answer(request, session)
            sessions.save(response, session, secure=request.secure)  # sliding: each page renews it
            for name, value in PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        async def _answer(request: web.Request, session: Session) -> web.StreamResponse:
            lang = language(request)
            if request.method == "POST":
                try:
                    form = await request.post()
                except web.HTTPRequestEntityTooLarge:
                    return error_page(request, 413, translate(lang, "too_large"))
                sent = form.get("csrf")
                if not isinstance(sent, str) or not session.csrf_ok(sent):
                    return error_page(request, 403, translate(lang, "csrf_failed"))
            if signed_in and (not session.signed_in or session.role != AREA_ROLES[area]):
                back = request.path_qs if request.method == "GET" else f"/{area}/"
                return redirect(signin_url(area, back))
            try:
                return await handler(request, session)
            except api.Unreachable:
                return error_page(request, 503, translate(lang, "unavailable"))
            except SignedOut:
                session.sign_out()
                back = request.path_qs if request.method == "GET" else f"/{area}/"
                return redirect(signin_url(area, back, expired=True))
            except web.HTTPNotFound:
                return error_page(request, 404, translate(lang, "not_found"))
            except Exception:  # a page the person can read, never a trace; the log has it
                log.exception("page failed", page=request.path)
                return error_page(request, 500, translate(lang, "error"))

        return run

    return wrap


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs the result (a reload does not send it again)."""
    return web.Response(status=303, headers={"Location": location})


def signin_url(area: str, next_path: str, *, expired: bool = False) -> str:
    query = {"next": next_path}
    if expired:
        query["expired"] = "1"
    return f"/{area}/signin?" + urllib.parse.urlencode(query)


class SignedOut(Exception):
    """The API no longer accepts the session's token."""


async def call(request: web.Request, method: str, path: str, **kwargs: Any) -> api.Answer:
    """The API with the session's token; a 401 ends the session (sign in again)."""
    session = request[session_request_key]
    answer = await api.call(request, method, path, token=session.token, **kwargs)
    if answer.status == 401 and session.token:
        raise SignedOut()
    return answer


def problem_text(answer: api.Answer) -> str:
    """The API's problem as one line a person can read (title, detail, reason; never internals)."""
    body = answer.body
    parts = [str(body.get("title", ""))]
    if body.get("detail"):
        parts.append(str(body["detail"]))
    if body.get("reason"):
        parts.append(f"({body['reason']})")
    return " ".join(p for p in parts if p) or f"HTTP {answer.status}"


def fail(request: web.Request, answer: api.Answer) -> web.Response:
    lang = language(request)
    if answer.status == 404:
        return error_page(request, 404, translate(lang, "not_found"), problem_text(answer))
    if answer.status >= 500:
        return error_page(request, 503, translate(lang, "unavailable"))
    return error_page(request, answer.status, translate(lang, "error"), problem_text(answer))
