"""Progress display that the caller can switch off: a tqdm bar on a terminal, sparse plain lines
otherwise (a pipe or a file gets one line every ``interval`` seconds and one at the end, not
thousands of carriage-return updates)."""

from __future__ import annotations

import sys
import time
from typing import Any


class PlainProgress:
    """A tqdm-like counter that writes ``name: done/total unit (pct), rate unit/s`` lines to ``file``.

    Args:
        total: expected count (None when unknown).
        desc: what is counted (an input's name).
        unit: the unit's name.
        interval: seconds between lines.
        file: where to write (default: stderr).
    """

    def __init__(self, total: int | None, desc: str, unit: str = "frame", interval: float = 10.0,
                 file: Any = None) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.postfix = ""
        self.t0 = self._last = time.monotonic()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}s{pct}, {self.n / elapsed:.2f} {self.unit}/s{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write()

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.n:
            self._write()

    def _write(self) -> None:
        self.file.write(self._line() + "\n")
        self.file.flush()


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "frame"):
    """A tqdm bar when ``enabled`` and stderr is a terminal; plain sparse lines when ``enabled`` and
    it is not; a disabled tqdm (no output) otherwise."""
    from tqdm.auto import tqdm

    if enabled and not sys.stderr.isatty():
        return PlainProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)
