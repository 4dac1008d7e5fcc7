"""Registries: where presence and claims live, behind one interface."""

from .base import STATES, Changes, Identity, PageView, Registry, Stats
from .memory import MemoryRegistry
from .redis import RedisRegistry

__all__ = [
    "STATES",
    "Changes",
    "Identity",
    "MemoryRegistry",
    "PageView",
    "RedisRegistry",
    "Registry",
    "Stats",
]
