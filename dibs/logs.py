"""Logging set-up: the one place handlers are configured, at process start."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    """Send Dibs's log lines to stderr at ``level``, unless a handler exists."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("dibs").setLevel(level.upper())
