"""The pages Dibs serves to people: the test page, the monitoring board, the
health check, the browser Socket.IO client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    jsonify,
    make_response,
    render_template,
    send_file,
)

from .access import require_monitor_key
from .errors import Unauthorized, Unavailable
from .service import Service

ROOT = Path(__file__).resolve().parent.parent
SOCKETIO_CLIENT = (
    ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
)

blueprint = Blueprint("pages", __name__)


def service() -> Service:
    return current_app.extensions["dibs"]


@blueprint.get("/")
def test_page() -> Any:
    """Serve the manual test page."""
    return render_template("index.html")


@blueprint.get("/monitor")
def monitor() -> Any:
    """Serve the live monitoring board to holders of the API key."""
    key = require_monitor_key()
    response = make_response(render_template("monitor.html", key=key))
    # The page carries the key for its socket: keep it out of caches and
    # out of the Referer of links followed from it.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blueprint.errorhandler(Unauthorized)
def unauthorized(error: Unauthorized) -> Any:
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "WWW-Authenticate": "Bearer",
    }
    return f"401 Unauthorized: {error.message}\n", 401, headers


@blueprint.get("/healthz")
def health() -> Any:
    """Report that the process serves, and how many connections it has.

    Answers 503 naming the store while a shared registry cannot reach it.
    The count is this process's own, read from its Socket.IO server: a
    balancer's frequent checks cost no walk over a shared registry.
    """
    dibs = service()
    try:
        dibs.registry.check()
    except Unavailable as error:
        return jsonify({"status": "unavailable", "error": error.message}), 503
    connections = sum(1 for _ in dibs.sio.manager.get_participants("/", None))
    return jsonify({"status": "ok", "connections": connections})


@blueprint.get("/vendor/socket.io.min.js")
def socketio_client() -> Any:
    """Serve the official Socket.IO browser client installed by npm."""
    if not SOCKETIO_CLIENT.exists():
        message = "socket.io-client is not installed: run `npm ci` in the checkout"
        return message, 503, {"Content-Type": "text/plain; charset=utf-8"}
    return send_file(SOCKETIO_CLIENT, mimetype="text/javascript", max_age=3600)
