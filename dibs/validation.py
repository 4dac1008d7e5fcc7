"""Validation of client payloads: shapes, types and lengths, with clear errors.

Every message quotes at most a few dozen characters of the bad value, so a
refusal never echoes a large payload back or into the log.  Pure functions.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidRequest
from .pagekeys import MAX_KEY_LENGTH
from .registry import STATES

MAX_HREF = 2048
MAX_PAGE_KEY = MAX_KEY_LENGTH
MAX_NAME = 100
MAX_TIMESTAMP = 64
ACTION_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Control characters break log lines and displays; lone surrogates cannot be
# encoded as UTF-8 by anything downstream (Redis, a log file).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(value: Any, limit: int = 40) -> str:
    """Return ``repr(value)``, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def payload(data: Any, event: str) -> dict[str, Any]:
    """Return ``data`` if it is an object, as every modern event requires."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest(f"{event} expects an object, got {type(data).__name__}")
    return data


def text(value: Any, field: str, limit: int) -> str:
    """Return ``value`` if it is a non-blank printable string of at most ``limit``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a non-empty string, got {shown(value)}")
    if len(value) > limit:
        raise InvalidRequest(f"{field} must be at most {limit} characters")
    if UNPRINTABLE.search(value):
        raise InvalidRequest(f"{field} must not contain control characters")
    return value


def text_field(
    data: dict[str, Any], field: str, limit: int, required: bool = True
) -> str | None:
    """Return ``data[field]`` as a non-blank string of at most ``limit`` characters."""
    value = data.get(field)
    if value is None and not required:
        return None
    return text(value, field, limit)


def page_field(data: dict[str, Any]) -> str:
    """Return the ``page`` of a payload: a URL or a key, within its length."""
    return text_field(data, "page", MAX_HREF)


def state_field(data: dict[str, Any], default: str | None = "viewing") -> str:
    """Return the ``state`` of a payload, one of :data:`STATES`."""
    state = data.get("state", default)
    if not isinstance(state, str) or state not in STATES:
        raise InvalidRequest(
            f"state must be one of {', '.join(STATES)}, got {shown(state)}"
        )
    return state


def action_field(data: dict[str, Any]) -> str:
    """Return the ``action`` of a payload: letters, digits and ``_-.:``, 1-64 long."""
    action = data.get("action")
    if not isinstance(action, str) or not ACTION_PATTERN.fullmatch(action):
        raise InvalidRequest(
            "action must be 1 to 64 letters, digits or _-.: characters, "
            f"got {shown(action)}"
        )
    return action


def timestamp(value: Any) -> Any:
    """Return a legacy ``visitTimestamp``: absent, a number, or a short string."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_TIMESTAMP:
        return value
    raise InvalidRequest(
        f"visitTimestamp must be a number such as Date.now(), got {shown(value)}"
    )


def key_length(key: str) -> str:
    """Refuse a page key longer than :data:`MAX_PAGE_KEY` characters."""
    if len(key) > MAX_PAGE_KEY:
        raise InvalidRequest(f"page key must be at most {MAX_PAGE_KEY} characters")
    return key
