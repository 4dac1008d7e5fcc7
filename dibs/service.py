"""The running service: the parts every protocol handler and HTTP view shares."""

from __future__ import annotations

import dataclasses
import time

import socketio

from .fanout import Fanout
from .pagekeys import page_key
from .registry import Registry
from .rooms import Places
from .settings import Settings
from .validation import key_length


@dataclasses.dataclass
class Service:
    """Settings, registry, Socket.IO server and fan-out of one Dibs process."""

    settings: Settings
    registry: Registry
    sio: socketio.Server
    fanout: Fanout
    places: Places = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.places = Places(self.sio)

    def key_of(self, raw: str) -> str:
        """Return the page key of a URL or key a client or backend sent."""
        return key_length(page_key(raw, self.settings.tracking_params))

    @staticmethod
    def now() -> float:
        """Return the time, in seconds since the epoch, the registry works in."""
        return time.time()
