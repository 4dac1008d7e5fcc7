"""Identity: deciding whom a connection speaks for.

Every connection gets its identity here and only here.  With a secret
configured, the identity comes from a signed token and from nothing else: a
``user`` in the handshake or a legacy client's ``username`` cannot change it.
Without a secret Dibs runs in the open development mode: it believes the
``user`` a client sends, and a connection that names nobody gets a generated
anonymous identity, so it can still see and be seen.  Pure functions: no
state, nothing that yields.
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from . import tokens
from .errors import InvalidRequest, Unauthorized
from .registry import Identity
from .settings import Settings
from .validation import MAX_NAME, text, text_field

logger = logging.getLogger(__name__)


def identify(auth: Any, environ: Mapping[str, Any], settings: Settings) -> Identity:
    """Return whom a new connection speaks for.

    :param auth: the Socket.IO ``auth`` payload of the handshake.
    :param environ: the WSGI environ of the handshake (for a query-string token).
    :raises Unauthorized: tokens are required and no valid one was presented;
        ``details["reason"]`` says why, in one word.
    :raises InvalidRequest: in the open mode, ``auth`` is not an object, or
        its ``user`` or ``name`` is not a short string.
    """
    if settings.secret:
        return token_identity(presented_token(auth, environ, settings), settings)
    return claimed_identity(auth)


def presented_token(auth: Any, environ: Mapping[str, Any], settings: Settings) -> Any:
    """Return the token a handshake carries: ``auth.token``, else the query's."""
    if isinstance(auth, dict) and auth.get("token") is not None:
        return auth["token"]

    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "token" not in query:
        return None
    if not settings.allow_query_token:
        raise Unauthorized(
            "a token in the URL is not accepted (see DIBS_ALLOW_QUERY_TOKEN)",
            reason="query_token_off",
        )
    return query["token"][0]


def token_identity(token: Any, settings: Settings) -> Identity:
    """Return the identity ``token`` proves, or refuse it."""
    try:
        claims = tokens.verify(token, settings.secret)
    except tokens.TokenRefused as refusal:
        raise Unauthorized(refusal.detail, reason=refusal.reason) from None
    return Identity(user=claims.user, name=claims.name)


def claimed_identity(auth: Any) -> Identity:
    """Return the identity an open-mode ``auth`` payload asks for."""
    if auth is None:
        return anonymous()
    if not isinstance(auth, dict):
        raise InvalidRequest("auth must be an object such as {user, name}")

    user = text_field(auth, "user", MAX_NAME, required=False)
    if user is None:
        return anonymous()
    name = text_field(auth, "name", MAX_NAME, required=False) or user
    return Identity(user=user, name=name)


def legacy_identity(username: Any, settings: Settings) -> Identity | None:
    """Return the identity a legacy ``PAGE_VISIT`` names, or None to keep the
    connection's own.

    With tokens required, every connection's identity came from its token, so
    the username an old client sends is ignored rather than believed.
    """
    if settings.secret:
        return None

    user = text(username, "username", MAX_NAME)
    return Identity(user=user, name=user)


def anonymous() -> Identity:
    """Return a fresh identity for a connection that named nobody."""
    tag = secrets.token_hex(3)
    return Identity(user=f"anonymous-{tag}", name=f"Anonymous {tag}")


def announce(settings: Settings) -> None:
    """Log, once at start, how identities are decided and what is left open."""
    if settings.secret:
        logger.info(
            "identity: tokens required (HS256); query-string tokens %s",
            "accepted" if settings.allow_query_token else "refused",
        )
    else:
        logger.warning(
            "OPEN DEVELOPMENT MODE: DIBS_SECRET is not set, so any client may "
            "connect as any user it names; set DIBS_SECRET before real use"
        )
    if not settings.api_key:
        logger.warning(
            "DIBS_API_KEY is not set: /api and /metrics answer anyone who can "
            "reach this port"
        )
