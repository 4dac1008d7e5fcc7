"""Dibs settings: every knob read from the environment once, cast and validated.

Each setting is declared once, as a field of :class:`Settings` with its
environment variable, its parser, its default and a description.  A bad value
raises :class:`SettingsError` naming the variable, so the server refuses to
start with one clear line instead of misbehaving later.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any


class SettingsError(ValueError):
    """A setting in the environment has a value Dibs cannot use."""


def _setting(
    env: str, parse: Callable[[str], Any], default: Any, doc: str, hidden: bool = False
) -> Any:
    # A hidden setting's value never appears in an error message or a log line.
    return dataclasses.field(
        default=default,
        metadata={"env": env, "parse": parse, "doc": doc, "hidden": hidden},
    )


def parse_bool(text: str) -> bool:
    """Read ``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def parse_port(text: str) -> int:
    """Read a TCP port number."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError("expected a port between 0 and 65535")
    return port


def parse_positive(text: str) -> float:
    """Read a number of seconds greater than zero."""
    value = float(text)
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def parse_count(text: str) -> int:
    """Read a whole number of at least one."""
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def parse_list(text: str) -> tuple[str, ...]:
    """Read a comma-separated list, ignoring blanks around items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_choice(*choices: str) -> Callable[[str], str]:
    """Build a parser that accepts exactly one of ``choices``."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value

    return parse


def parse_paths(text: str) -> tuple[str, ...]:
    """Read a comma list of Socket.IO paths such as ``/socket.io,/dibs``."""
    paths = tuple(item.strip("/") for item in parse_list(text))
    if not paths or any(not path for path in paths):
        raise ValueError("expected paths such as /socket.io,/dibs")
    return paths


MIN_SECRET_LENGTH = 32
ORIGIN_PATTERN = re.compile(r"https?://[a-z0-9.\-\[\]:]+")


def parse_secret(text: str) -> str:
    """Read a token-signing secret: empty (no tokens) or at least 32 characters."""
    secret = text.strip()
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"expected at least {MIN_SECRET_LENGTH} characters (HS256 wants a "
            "256-bit key); try `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`"
        )
    return secret


def parse_origins(text: str) -> tuple[str, ...]:
    """Read a comma list of web origins such as ``https://backoffice.example.com``."""
    origins = []
    for item in parse_list(text):
        origin = item.rstrip("/").lower()
        if origin != "*" and not ORIGIN_PATTERN.fullmatch(origin):
            raise ValueError(
                f"{item!r} is not an origin: expected scheme://host[:port], "
                "such as https://backoffice.example.com"
            )
        origins.append(origin)
    return tuple(origins)


REDIS_SCHEMES = ("redis", "rediss", "unix")


def parse_redis_url(text: str) -> str:
    """Read a Redis URL such as ``redis://host:6379/0``; empty means no Redis."""
    url = text.strip()
    if url and url.split("://", 1)[0].lower() not in REDIS_SCHEMES:
        raise ValueError("expected a URL such as redis://127.0.0.1:6379/0")
    return url


DEFAULT_TRACKING_PARAMS = (
    "fbclid",
    "gclid",
    "dclid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "ref",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated configuration of one Dibs process."""

    host: str = _setting(
        "DIBS_HOST", str, "127.0.0.1", "Address to listen on with `python wsgi.py`."
    )
    port: int = _setting(
        "PORT", parse_port, 3000, "TCP port to listen on with `python wsgi.py`."
    )
    socketio_paths: tuple[str, ...] = _setting(
        "DIBS_SOCKETIO_PATHS",
        parse_paths,
        ("socket.io", "dibs"),
        "Comma list of URL paths that serve Socket.IO.",
    )
    grace_seconds: float = _setting(
        "DIBS_GRACE_SECONDS",
        parse_positive,
        5.0,
        "How long a user who lost every connection to a page stays present and "
        "keeps their claims there (covers a reload or a network blip).",
    )
    claim_ttl_seconds: float = _setting(
        "DIBS_CLAIM_TTL_SECONDS",
        parse_positive,
        1800.0,
        "Longest life of a claim; after it the claim lapses and the page is told.",
    )
    max_claims_per_user: int = _setting(
        "DIBS_MAX_CLAIMS_PER_USER",
        parse_count,
        16,
        "Most claims one user may hold on one page at a time.",
    )
    redis_url: str = _setting(
        "DIBS_REDIS_URL",
        parse_redis_url,
        "",
        "When set (e.g. `redis://127.0.0.1:6379/0`), presence, claims and emits "
        "go through this Redis, so several processes or hosts serve as one; when "
        "empty, one process keeps everything in its memory.",
        # It may carry a password.
        hidden=True,
    )
    process_timeout_seconds: float = _setting(
        "DIBS_PROCESS_TIMEOUT_SECONDS",
        parse_positive,
        10.0,
        "With Redis: a process beats a heartbeat at least once a second; one "
        "silent this long (by Redis's clock) is taken for dead, and another "
        "process removes its connections and frees their claims.",
    )
    max_subscriptions: int = _setting(
        "DIBS_MAX_SUBSCRIPTIONS",
        parse_count,
        32,
        "Most notification topics one connection may subscribe to at a time.",
    )
    legacy_scope: str = _setting(
        "DIBS_LEGACY_SCOPE",
        parse_choice("page", "all"),
        "page",
        "`page`: a legacy client gets only its own page's visitors; `all`: every "
        "legacy client gets the whole map on every change (the old server's way).",
    )
    tracking_params: tuple[str, ...] = _setting(
        "DIBS_TRACKING_PARAMS",
        parse_list,
        DEFAULT_TRACKING_PARAMS,
        "Query parameters ignored when two URLs are compared (utm_* always is).",
    )
    ping_interval: float = _setting(
        "DIBS_PING_INTERVAL",
        parse_positive,
        8.0,
        "Seconds between Engine.IO pings.",
    )
    ping_timeout: float = _setting(
        "DIBS_PING_TIMEOUT",
        parse_positive,
        10.0,
        "Seconds to wait for a pong before a silent client is dropped. A client "
        "that vanished without closing is gone from its pages within ping "
        "interval + ping timeout + grace + 1 s (24 s by default).",
    )
    connect_timeout: float = _setting(
        "DIBS_CONNECT_TIMEOUT",
        parse_positive,
        10.0,
        "Seconds a new connection gets to complete the Socket.IO connect after "
        "its handshake; a connection that has not is closed.",
    )
    rate_per_second: float = _setting(
        "DIBS_RATE_PER_SECOND",
        parse_positive,
        20.0,
        "Events one connection may send per second, on average; the ones beyond "
        "are answered `rate_limited` and dropped.",
    )
    rate_burst: int = _setting(
        "DIBS_RATE_BURST",
        parse_count,
        40,
        "Events one connection may send at once, before the rate applies.",
    )
    api_key: str = _setting(
        "DIBS_API_KEY",
        str,
        "",
        "When set, the HTTP API, `/metrics` and the monitor require "
        "`Authorization: Bearer <key>`; when empty they are open (development only).",
    )
    secret: str = _setting(
        "DIBS_SECRET",
        parse_secret,
        "",
        "Secret that signs identity tokens (HS256, at least 32 characters). When "
        "set, every connection must present a valid token; when empty Dibs runs "
        "in the open development mode and believes any name a client sends.",
        hidden=True,
    )
    allow_query_token: bool = _setting(
        "DIBS_ALLOW_QUERY_TOKEN",
        parse_bool,
        False,
        "Also accept the token as `?token=...` in the connection URL, for old "
        "clients that cannot send `auth`. Off by default: URLs end up in logs.",
    )
    allowed_origins: tuple[str, ...] = _setting(
        "DIBS_ALLOWED_ORIGINS",
        parse_origins,
        (),
        "Comma list of web origins (`https://host[:port]`) whose pages may open "
        "a socket, besides Dibs's own origin; `*` allows any. Handshakes without "
        "an `Origin` header (non-browser clients) are always allowed.",
    )
    log_level: str = _setting(
        "DIBS_LOG_LEVEL",
        parse_choice("debug", "info", "warning", "error"),
        "info",
        "Lowest level of log lines written.",
    )
    log_format: str = _setting(
        "DIBS_LOG_FORMAT",
        parse_choice("text", "json"),
        "text",
        "`text`: one readable line per event; `json`: one JSON object per line.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``).

        :raises SettingsError: naming the first variable whose value is bad.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            env = field.metadata["env"]
            if env not in environ:
                continue
            try:
                values[field.name] = field.metadata["parse"](environ[env])
            except ValueError as error:
                shown = "<hidden>" if field.metadata["hidden"] else repr(environ[env])
                raise SettingsError(f"{env}={shown} is not valid: {error}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations of values that cannot work together."""
        if self.ping_interval + self.ping_timeout > 60:
            raise SettingsError(
                "DIBS_PING_INTERVAL + DIBS_PING_TIMEOUT must be at most 60 seconds"
            )
        if self.allow_query_token and not self.secret:
            raise SettingsError(
                "DIBS_ALLOW_QUERY_TOKEN is on but DIBS_SECRET is empty: set the "
                "secret, or tokens are not checked at all"
            )

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied and checked."""
        settings = dataclasses.replace(self, **changes)
        settings.check()
        return settings


def describe() -> list[tuple[str, str, str]]:
    """List ``(variable, default, description)`` for every setting."""
    rows = []
    for field in dataclasses.fields(Settings):
        default = field.default
        if isinstance(default, tuple):
            default = ",".join(default)
        rows.append((field.metadata["env"], str(default), field.metadata["doc"]))
    return rows
