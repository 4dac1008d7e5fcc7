"""The application factory: a Flask app and a Socket.IO server in one WSGI app."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import socketio
from flask import Flask

from . import (
    api,
    heap,
    identity,
    legacy,
    metrics,
    monitor,
    notifications,
    origins,
    pages,
    protocol,
    sessions,
    sweeper,
    websocket,
)
from .errors import Unavailable
from .fanout import Fanout
from .frames import MAX_MESSAGE_BYTES
from .pubsub import RedisChannel
from .ratelimit import RateLimiter
from .registry import MemoryRegistry, RedisRegistry, Registry
from .service import Service
from .settings import Settings, SettingsError
from .sockets import DibsSocketServer, register_unknown_event_handler

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


class DibsApp(socketio.WSGIApp):
    """The WSGI app Dibs serves: Socket.IO on each configured path, Flask elsewhere.

    Old clients connect on ``/dibs`` and new ones on ``/socket.io``; every
    alias is rewritten to the first path before python-socketio sees it.
    """

    def __init__(self, service: Service, flask_app: Flask) -> None:
        paths = service.settings.socketio_paths
        super().__init__(service.sio, flask_app, socketio_path=paths[0])
        self.service = service
        self.flask_app = flask_app
        self.aliases = tuple(f"/{path}/" for path in paths[1:])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO") or ""
        for alias in self.aliases:
            if path.startswith(alias):
                environ["PATH_INFO"] = self.engineio_path + path[len(alias) :]
                break
        return super().__call__(environ, start_response)


def create_registry(settings: Settings) -> Registry:
    """Return the registry the settings ask for: in Redis when a URL is set.

    :raises SettingsError: Redis is set but unreachable at start.
    """
    limits = {
        "grace_seconds": settings.grace_seconds,
        "claim_ttl_seconds": settings.claim_ttl_seconds,
        "max_claims_per_user": settings.max_claims_per_user,
    }
    if not settings.redis_url:
        return MemoryRegistry(**limits)
    try:
        return RedisRegistry(
            settings.redis_url,
            process_timeout_seconds=settings.process_timeout_seconds,
            **limits,
        )
    except Unavailable as error:
        raise SettingsError(f"DIBS_REDIS_URL: {error.message}") from None


def create_socket_server(settings: Settings) -> DibsSocketServer:
    """Return the Socket.IO server, tuned from the settings."""
    sio = DibsSocketServer(
        async_mode="gevent",
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        # Events of one connection run in order, in its own greenlet: a claim
        # sent right after a visit must see that visit.
        async_handlers=False,
        rate_limiter=RateLimiter(settings.rate_per_second, settings.rate_burst),
        cors_allowed_origins=origins.origin_check(settings),
        client_manager=RedisChannel(settings.redis_url) if settings.redis_url else None,
    )
    websocket.install(sio.eio, max_message_size=MAX_MESSAGE_BYTES)
    sessions.start(sio, settings.connect_timeout)
    return sio


def resnapshot(service: Service) -> None:
    """Send every page its current view, after this process missed emits."""
    service.fanout.publish({view.page: view for view in service.registry.views()})


def create_app(
    settings: Settings | None = None, registry: Registry | None = None
) -> DibsApp:
    """Build the Dibs WSGI app.

    :param settings: the configuration; read from the environment if omitted.
    :param registry: where presence lives; built from the settings if omitted.
    """
    settings = settings or Settings.from_env()
    registry = registry or create_registry(settings)
    sio = create_socket_server(settings)
    service = Service(
        settings, registry, sio, Fanout(sio, registry, settings.legacy_scope)
    )

    protocol.register(service)
    legacy.register(service)
    notifications.register(service)
    monitor.register(service)
    register_unknown_event_handler(sio)

    flask_app = Flask(
        "dibs",
        root_path=str(ROOT),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    flask_app.extensions["dibs"] = service
    flask_app.register_blueprint(pages.blueprint)
    flask_app.register_blueprint(api.blueprint)
    flask_app.register_blueprint(metrics.blueprint)

    if isinstance(sio.manager, RedisChannel):
        sio.manager.on_resubscribe = lambda: resnapshot(service)
        sio.manager.on_page = service.fanout.deliver
        service.fanout.relay = sio.manager.relay_page

    metrics.watch(registry)
    identity.announce(settings)
    sweeper.start(service)
    heap.start(service)
    return DibsApp(service, flask_app)
