"""Identity: deciding whom a new connection speaks for.

Every connection gets its identity here and only here, from the Socket.IO
``auth`` payload of the handshake.  A connection that names nobody gets a
generated anonymous identity, so it can still see and be seen.
"""

from __future__ import annotations

import secrets
from typing import Any

from .errors import InvalidRequest
from .registry import Identity
from .validation import text_field


def identify(auth: Any) -> Identity:
    """Return the identity a connection's ``auth`` payload asks for.

    :raises InvalidRequest: ``auth`` is not an object, or its ``user`` or
        ``name`` is not a short string.
    """
    if auth is None:
        return anonymous()
    if not isinstance(auth, dict):
        raise InvalidRequest("auth must be an object such as {user, name}")

    user = text_field(auth, "user", 100, required=False)
    if user is None:
        return anonymous()
    name = text_field(auth, "name", 100, required=False) or user
    return Identity(user=user, name=name)


def legacy_identity(username: Any) -> Identity:
    """Return the identity named by a legacy ``PAGE_VISIT``'s username."""
    if not isinstance(username, str) or not username.strip():
        raise InvalidRequest("username must be a non-empty string")
    if len(username) > 100:
        raise InvalidRequest("username must be at most 100 characters")
    return Identity(user=username, name=username)


def anonymous() -> Identity:
    """Return a fresh identity for a connection that named nobody."""
    tag = secrets.token_hex(3)
    return Identity(user=f"anonymous-{tag}", name=f"Anonymous {tag}")
