"""The HTTP API for backends: presence of a page, who holds a claim, every
page at once, and publishing notifications.

Every answer is JSON, errors included: ``{"error": CODE, "message": TEXT}``
with a matching status, never an HTML page or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from . import monitor, notifications
from .access import require_api_key
from .errors import DibsError, InvalidRequest, NotClaimed, NotHolder
from .service import Service
from .validation import MAX_HREF, action_field, text_field

logger = logging.getLogger(__name__)

MAX_JSON_BODY = 4 * notifications.MAX_DATA_BYTES
"""Largest request body accepted, leaving room for escapes and whitespace."""

blueprint = Blueprint("api", __name__, url_prefix="/api")
blueprint.before_request(require_api_key)


def service() -> Service:
    """Return the Dibs service of the current Flask app."""
    return current_app.extensions["dibs"]


def page_argument() -> str:
    """Return the page key named by the ``page`` query argument."""
    raw = text_field(request.args, "page", MAX_HREF)
    return service().key_of(raw)


def action_argument() -> str:
    """Return the validated ``action`` query argument."""
    return action_field(request.args)


def find_claim(page: str, action: str) -> dict[str, Any]:
    """Return the claim on ``action`` of ``page``, or raise :class:`NotClaimed`."""
    for claim in service().registry.view(page).claims:
        if claim["action"] == action:
            return claim
    raise NotClaimed(f"nobody holds {action!r} on {page!r}")


@blueprint.get("/presence")
def presence() -> Any:
    """Return PRESENCE of the page named by ``page``."""
    return jsonify(service().registry.view(page_argument()).presence())


@blueprint.get("/claims")
def get_claim() -> Any:
    """Return the claim on ``action`` of ``page``; with ``user`` (and ``token``),
    answer whether that user holds it (with that token)."""
    page = page_argument()
    action = action_argument()
    user = request.args.get("user")
    token = request.args.get("token")
    if token is not None and not token.isdigit():
        raise InvalidRequest(f"token must be a whole number, got {token[:40]!r}")

    claim = find_claim(page, action)
    if user is not None and claim["user"] != user:
        raise NotHolder(f"{action!r} is held by {claim['name']}", claim=claim)
    if token is not None and claim["token"] != int(token):
        raise NotHolder(f"token {token} is not the current one", claim=claim)
    return jsonify(claim)


@blueprint.delete("/claims")
def force_release() -> Any:
    """Release a claim whoever holds it, and tell the page."""
    page = page_argument()
    action = action_argument()
    dibs = service()

    claim, changes = dibs.registry.force_release(page, action, dibs.now())
    dibs.fanout.publish(changes)
    logger.info("force-release %s on %s held by %s", action, page, claim["user"])
    return jsonify({"ok": True, "released": claim})


@blueprint.get("/pages")
def every_page() -> Any:
    """Return PRESENCE of every page that has viewers or claims, with counts."""
    pages = [view.presence() for view in service().registry.views()]
    counts = monitor.counts(pages)
    return jsonify({"at": monitor.millis(), "counts": counts, "pages": pages})


@blueprint.post("/publish")
def publish() -> Any:
    """Send ``{topic, event, data}`` to every subscriber of the topic; answer 202."""
    notice = notifications.notification(json_body(), service().now())
    notifications.publish(service().sio, notice)
    return jsonify({"ok": True, "topic": notice["topic"], "at": notice["at"]}), 202


def json_body() -> Any:
    """Return the request's decoded JSON body, refusing anything else."""
    # Bounded before reading, so an oversized body is refused with 413
    # instead of being parsed into memory.
    request.max_content_length = MAX_JSON_BODY
    if not request.is_json:
        raise InvalidRequest("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequest("the body must be a JSON object such as {topic, event}")
    return body


@blueprint.errorhandler(DibsError)
def dibs_error(error: DibsError) -> Any:
    body = error.reply()
    del body["ok"]
    return jsonify(body), error.status


@blueprint.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    # Registered app-wide because an unknown path under /api never reaches
    # the blueprint; everywhere else Flask's own pages stay as they are.
    if not request.path.startswith(blueprint.url_prefix + "/"):
        return error
    code = (error.name or "error").lower().replace(" ", "_")
    return jsonify({"error": code, "message": error.description}), error.code
