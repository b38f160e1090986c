"""Every HTTP route of the one window (see gateway/api/ for each kind of caller)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import backoffice, citizen, counter
from gateway.api import public as public_routes

routes: list[web.AbstractRouteDef] = [
    *public_routes.routes,
    *citizen.routes,
    *counter.routes,
    *backoffice.routes,
]
