"""Logging set-up: the one place handlers are configured, at process start.

Lines go to stderr either as readable text or, with ``DIBS_LOG_FORMAT=json``,
as one JSON object per line for a log collector.  Library code only ever
calls ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import json
import logging
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIBRARY_LOGGERS = ("engineio.server", "socketio.server")


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    @staticmethod
    def timestamp(record: logging.LogRecord) -> str:
        """Return the record's time as UTC ISO 8601 with milliseconds."""
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def configure(level: str, log_format: str = "text") -> None:
    """Send Dibs's log lines to stderr at ``level``, unless a handler exists.

    :param log_format: ``text`` or ``json``.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("dibs").setLevel(level.upper())

    # python-socketio and python-engineio add a bare handler of their own to
    # a logger whose level is unset; setting it first keeps every line in one
    # format, written once.
    for library in LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(logging.ERROR)
