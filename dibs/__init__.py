"""Dibs: live presence and claims for internal-tool pages, over Socket.IO."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that gunicorn can load dibs.workers before
    # gevent patches the standard library, without importing the whole app.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
