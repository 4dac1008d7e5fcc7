"""Dibs: live presence and claims for internal-tool pages, over Socket.IO."""

from .app import create_app

__all__ = ["create_app"]
