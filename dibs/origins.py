"""Origins: which web pages may open a socket to Dibs.

A browser names the page that opens a socket in the ``Origin`` header, and a
script cannot forge it.  Dibs accepts its own origin (so its test page works),
each origin in ``DIBS_ALLOWED_ORIGINS``, and requests without the header
(backends, scripts and other non-browser clients, which a foreign page cannot
impersonate).  The check runs inside python-engineio on every request, before
any session exists.  Pure functions: no state, nothing that yields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import metrics
from .settings import Settings

logger = logging.getLogger(__name__)

OriginCheck = Callable[[str | None, Mapping[str, Any]], bool]


def own_origins(environ: Mapping[str, Any]) -> set[str]:
    """Return the origins of the request's own host, as served and as proxied."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = {f"{scheme}://{host}".lower()}

    # Behind a TLS-terminating proxy the browser's origin is the proxy's.
    # These headers cannot be set by a foreign page on a WebSocket handshake,
    # and a cross-origin request that sets them is stopped at its preflight.
    proxied_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0]
    proxied_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0]
    origins.add(f"{proxied_scheme.strip()}://{proxied_host.strip()}".lower())
    return origins


def is_allowed(
    origin: str | None, environ: Mapping[str, Any], settings: Settings
) -> bool:
    """Return whether a request from ``origin`` may reach the Socket.IO server."""
    if origin is None or "*" in settings.allowed_origins:
        return True
    origin = origin.lower()
    return origin in settings.allowed_origins or origin in own_origins(environ)


def origin_check(settings: Settings) -> OriginCheck | str:
    """Return what python-engineio's ``cors_allowed_origins`` should be."""
    if "*" in settings.allowed_origins:
        return "*"

    def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None:
            return False  # asked only for CORS headers, with nothing to allow
        if is_allowed(origin, environ, settings):
            return True
        logger.warning(
            "refused handshake from %s: origin %r is not allowed "
            "(see DIBS_ALLOWED_ORIGINS)",
            environ.get("REMOTE_ADDR", "?"),
            origin[:200],
        )
        metrics.record_refusal("origin")
        return False

    return check
