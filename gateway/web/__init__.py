"""The web pages: the online affairs hall (``/hall/``), the counter (``/counter/``) and the back office
(``/backoffice/``), server-rendered with Jinja2 on the gateway's own API (see ``gateway.web.api``)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.typedefs import settings_key
from gateway.web import api, common, counter, hall
from gateway.web.pages import sessions_app_key
from gateway.web.session import Sessions, load_key

PAGE_PREFIXES = ("/hall/", "/counter/", "/backoffice/", "/static/web/", "/lang/")


def is_page(path: str) -> bool:
    """A route of the pages (HTML for people), not of the API the OpenAPI document describes."""
    return path == "/" or path.startswith(PAGE_PREFIXES)


def setup(app: web.Application) -> None:
    """Mount the pages on the gateway `app` (its settings already set)."""
    settings = app[settings_key]
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("gateway.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app[sessions_app_key] = Sessions(load_key(settings.common.var_dir))
    app.cleanup_ctx.append(api.client_context(app))
    app.add_routes([*common.routes, *hall.routes, *counter.routes])
