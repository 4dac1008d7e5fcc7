"""Access to the HTTP API and the monitor: the API key check, in one place."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import current_app, request

from .errors import Unauthorized

logger = logging.getLogger(__name__)


def presented_key() -> str:
    """Return the bearer key of the current request, or an empty string."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return key.strip()


def require_api_key() -> None:
    """Refuse the current request unless it carries the configured API key.

    With no ``DIBS_API_KEY`` configured every request passes, as it does in
    the open development mode.
    """
    if is_api_key(presented_key(), current_app.extensions["dibs"].settings.api_key):
        return
    refuse("send the API key as 'Authorization: Bearer <key>'")


def is_api_key(presented: Any, api_key: str) -> bool:
    """Return whether ``presented`` opens the API: it is ``api_key``, compared in
    constant time, or no key is configured."""
    if not api_key:
        return True
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), api_key.encode())


def require_monitor_key() -> str:
    """Return the key the monitor page was asked with, refusing a wrong one.

    A browser cannot easily send a header when opening a page, so the key may
    also come as the ``key`` query argument; the page then hands it to its
    socket.
    """
    key = presented_key() or request.args.get("key", "")
    if is_api_key(key, current_app.extensions["dibs"].settings.api_key):
        return key
    refuse("open the monitor as /monitor?key=<API key>")


def refuse(advice: str) -> None:
    """Log the current request's refusal once and raise :class:`Unauthorized`."""
    logger.warning(
        "refused %s %s from %s: bad or missing API key",
        request.method,
        request.path,
        request.remote_addr,
    )
    raise Unauthorized(advice)


def monitor_allowed(auth: Any, api_key: str) -> bool:
    """Return whether a monitor socket's ``auth`` payload, ``{monitor: KEY}``,
    carries the API key."""
    key = auth.get("monitor") if isinstance(auth, dict) else None
    return is_api_key(key, api_key)
