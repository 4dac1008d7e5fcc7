"""Validation of client payloads: shapes, types and lengths, with clear errors."""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidRequest
from .registry import STATES

MAX_HREF = 2048
MAX_PAGE_KEY = 512
MAX_NAME = 100
ACTION_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def payload(data: Any, event: str) -> dict[str, Any]:
    """Return ``data`` if it is an object, as every modern event requires."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest(f"{event} expects an object, got {type(data).__name__}")
    return data


def text_field(
    data: dict[str, Any], field: str, limit: int, required: bool = True
) -> str | None:
    """Return ``data[field]`` as a non-blank string of at most ``limit`` characters."""
    value = data.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise InvalidRequest(f"{field} must be at most {limit} characters")
    return value


def page_field(data: dict[str, Any]) -> str:
    """Return the ``page`` of a payload: a URL or a key, within its length."""
    page = text_field(data, "page", MAX_HREF)
    return page


def state_field(data: dict[str, Any], default: str | None = "viewing") -> str:
    """Return the ``state`` of a payload, one of :data:`STATES`."""
    state = data.get("state", default)
    if state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}, got {state!r}")
    return state


def action_field(data: dict[str, Any]) -> str:
    """Return the ``action`` of a payload: letters, digits and ``_-.:``, 1-64 long."""
    action = data.get("action")
    if not isinstance(action, str) or not ACTION_PATTERN.fullmatch(action):
        raise InvalidRequest(
            "action must be 1 to 64 letters, digits or _-.: characters, "
            f"got {action!r}"[:200]
        )
    return action


def key_length(key: str) -> str:
    """Refuse a page key longer than :data:`MAX_PAGE_KEY` characters."""
    if len(key) > MAX_PAGE_KEY:
        raise InvalidRequest(f"page key must be at most {MAX_PAGE_KEY} characters")
    return key
