"""Progress of long work: a bar per epoch on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys


class Progress:
    """A bar per epoch on a terminal, one line per epoch otherwise, nothing when quiet."""

    def __init__(self, quiet: bool, stream=None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.bar = not quiet and self.stream.isatty()

    def step(self, epoch: int, epochs: int, done: int, steps: int) -> None:
        """Redraw the epoch's bar in place (terminals only)."""
        if self.bar:
            filled = 30 * done // max(steps, 1)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\repoch {epoch}/{epochs}  [{bar}]  {done}/{steps}")
            self.stream.flush()

    def line(self, text: str) -> None:
        if self.bar:
            self.stream.write("\r\x1b[K")  # the line replaces the finished bar
        if not self.quiet:
            print(text, file=self.stream, flush=True)
