"""The progress bar the benchmark draws on stderr while a run goes on.

On a terminal it redraws one line in place; elsewhere (CI, pytest) it prints
a plain line at most every few seconds, so logs stay short.
"""

from __future__ import annotations

import sys
import time

WIDTH = 30


class Progress:
    """A one-line bar: what is running, which phase, how far along."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last_line = ""
        self.last_print = 0.0

    def show(self, phase: str, done: float, total: float, note: str = "") -> None:
        """Draw ``done`` out of ``total`` for ``phase``."""
        share = min(1.0, done / total) if total else 1.0
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        line = f"{self.label} {phase:<9} [{bar}] {done:>7.0f}/{total:<7.0f} {note}"
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(len(self.last_line)))
            sys.stderr.flush()
        elif now - self.last_print >= 5:
            sys.stderr.write(line + "\n")
            self.last_print = now
        self.last_line = line

    def done(self, summary: str) -> None:
        """Replace the bar with the run's one-line summary."""
        if self.tty:
            sys.stderr.write("\r" + " " * len(self.last_line[:160]) + "\r")
        sys.stderr.write(f"{self.label} {summary}\n")
        sys.stderr.flush()
