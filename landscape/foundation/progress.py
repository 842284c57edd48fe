"""What long work prints: a title per phase and one progress bar per phase.

On a terminal a phase is a tqdm bar redrawn in place. When the stream is not a terminal (a log file, a pipe, a
job scheduler's output), redrawn bars would become hundreds of lines, so a phase prints its title once, then at
most :data:`LOG_LINES` lines as it passes each fifth of its total, and a last line with the final values when it
closes: ``title: done/total unit [elapsed s] key=value ...``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from tqdm.auto import tqdm

LOG_LINES = 5   # progress lines per phase when the stream is not a terminal (the final line included)
REDRAW_SECONDS = 0.5   # a terminal bar redraws for new postfix values at most this often


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def phase(title: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
    """Print one line above any open bar: the ``title`` of a phase without a bar of its own (``pruning round
    2/3``), or a phase's summary."""
    if enabled:
        tqdm.write(title, file=stream or sys.stderr)


class Progress:
    """One phase's progress: ``with Progress("dense training", total=500) as bar: bar.update(1)``.

    ``set_postfix`` values are shown with the bar and in the final line, so the bar ends with the values it was
    last given (set them after the last update to end on the final step's values).
    """

    def __init__(self, title: str, total: int, *, enabled: bool = True, initial: int = 0, unit: str = "it",
                 stream: TextIO | None = None):
        self.title, self.total, self.done, self.unit = title, int(total), int(initial), unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.postfix: dict[str, str] = {}
        self._began = self._redrawn = time.perf_counter()
        self._bar = None
        self._printed = 0            # progress lines printed (not a terminal)
        self._last_line = ""
        if not enabled:
            return
        if _is_terminal(self.stream):
            self._bar = tqdm(total=self.total, initial=self.done, desc=title, unit=unit, file=self.stream,
                             dynamic_ncols=True)
        else:
            self._write(f"{title} ({self.total} {unit})")

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        before, self.done = self.done, self.done + n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self.total > 0 and self._printed < LOG_LINES - 1:
            step = self.total / LOG_LINES
            if int(self.done // step) > int(before // step) and self.done < self.total:
                self._line()

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """The values shown after the bar (formatted with ``str``): on a terminal redrawn at most every
        :data:`REDRAW_SECONDS`, so they may follow work inside one unit (products inside an instrument); in a
        log printed only with the progress lines."""
        self.postfix = {k: str(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)
            if time.perf_counter() - self._redrawn >= REDRAW_SECONDS:
                self._bar.refresh()
                self._redrawn = time.perf_counter()

    def close(self) -> None:
        """End the phase: the bar's final state, or the final line with the last postfix values."""
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self._line()
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> None:
        values = "".join(f" {k}={v}" for k, v in self.postfix.items())
        line = (f"{self.title}: {self.done}/{self.total} {self.unit} "
                f"[{time.perf_counter() - self._began:.0f} s]{values}")
        if line != self._last_line:
            self._write(line)
            self._printed += 1
            self._last_line = line

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
