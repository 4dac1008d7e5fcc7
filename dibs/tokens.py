"""Identity tokens: minting and verifying the HS256 JWTs that name a user.

A token carries ``sub`` (the user id), an optional ``name`` (how others see
the user) and ``exp`` (when it stops being accepted).  The algorithm is fixed
here, never read from the token, so a token claiming ``alg: none`` or a
public-key algorithm is refused like any other forgery.  Pure functions: no
I/O, no state, nothing that yields.
"""

from __future__ import annotations

import dataclasses
import time

import jwt

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
MAX_USER = 100


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a verified token says: the user id and their display name."""

    user: str
    name: str


class TokenRefused(Exception):
    """A token Dibs does not accept; ``reason`` is a short stable word for logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def mint(
    secret: str, user: str, name: str | None = None, ttl_seconds: float = 8 * 3600
) -> str:
    """Return a token for ``user`` signed with ``secret``, valid ``ttl_seconds``."""
    if not secret:
        raise ValueError("a secret is needed to sign tokens")
    check_text("sub", user)
    if name is not None:
        check_text("name", name)

    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + int(ttl_seconds)}
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: object, secret: str) -> Claims:
    """Return the claims of ``token`` if ``secret`` signed it and it is current.

    :raises TokenRefused: the token is missing, malformed, forged, signed with
        another algorithm, expired, or lacks ``sub`` or ``exp``.
    """
    if token is None or token == "":
        raise TokenRefused("missing", "no token presented")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused("malformed", "the token is not a short string")

    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("expired", "the token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("bad_signature", "the signature does not match") from None
    except jwt.InvalidAlgorithmError:
        raise TokenRefused("bad_algorithm", f"only {ALGORITHM} is accepted") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenRefused("missing_claim", str(error)) from None
    except jwt.InvalidTokenError as error:
        raise TokenRefused("malformed", str(error)[:200]) from None

    user = payload["sub"]
    name = payload.get("name", user)
    try:
        check_text("sub", user)
        check_text("name", name)
    except ValueError as error:
        raise TokenRefused("bad_claim", str(error)) from None
    return Claims(user=user, name=name)


def check_text(claim: str, value: object) -> None:
    """Refuse a ``sub`` or ``name`` that is not a non-blank short string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{claim} must be a non-empty string")
    if len(value) > MAX_USER:
        raise ValueError(f"{claim} must be at most {MAX_USER} characters")
