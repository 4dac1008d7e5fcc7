"""Access to the HTTP API and the monitor: the API key check, in one place."""

from __future__ import annotations

import hmac
import logging

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
    expected = current_app.extensions["dibs"].settings.api_key
    if not expected:
        return
    if hmac.compare_digest(presented_key().encode(), expected.encode()):
        return
    logger.warning(
        "refused %s %s from %s: bad or missing API key",
        request.method,
        request.path,
        request.remote_addr,
    )
    raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
