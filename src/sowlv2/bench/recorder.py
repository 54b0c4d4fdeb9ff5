"""Timing samples: a recorder that wraps model methods and times named blocks, and their summaries."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SOWLv2Error

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One timed call: wall and process CPU seconds, the context it ran in, and tags."""

    wall: float
    cpu: float
    context: str
    tags: dict = field(default_factory=dict)


class Recorder:
    """Times calls of wrapped methods.

    Calls are grouped by family: inside a family only the outermost call is timed, so a model forward
    that calls another wrapped forward is counted once. ``context`` labels every sample taken while it
    is set (e.g. the name of a pipeline run).
    """

    def __init__(self, device=None) -> None:
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self.context = ""
        self._depth: dict[str, int] = defaultdict(int)
        self._cuda = device is not None and getattr(device, "type", str(device)).startswith("cuda")

    def sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def wrap(self, obj: Any, name: str, key: str, family: str = "forward",
             tags: Callable[..., dict] | None = None) -> None:
        """Replace ``obj.name`` (a bound method) by a timed version recording into ``samples[key]``."""
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            if self._depth[family]:
                return fn(*args, **kwargs)
            extra = tags(*args, **kwargs) if tags else {}
            self._depth[family] += 1
            self.sync()
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.samples[key].append(Sample(time.perf_counter() - w0, time.process_time() - c0,
                                                self.context, extra))
                self._depth[family] -= 1

        setattr(obj, name, timed)

    @contextlib.contextmanager
    def timing(self, key: str, **tags) -> Iterator[None]:
        """Time a block as one sample of ``key``."""
        self.sync()
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.sync()
            self.samples[key].append(Sample(time.perf_counter() - w0, time.process_time() - c0, self.context,
                                            tags))

    def select(self, key: str, context: str | None = None, prefix: str | None = None,
               where: Callable[[Sample], bool] | None = None) -> list[Sample]:
        out = self.samples.get(key, [])
        if context is not None:
            out = [s for s in out if s.context == context]
        if prefix is not None:
            out = [s for s in out if s.context.startswith(prefix)]
        if where is not None:
            out = [s for s in out if where(s)]
        return out


def summarize(samples: list[Sample], what: str, per: float = 1.0, unit: str = "s") -> dict:
    """Median / min / max of the samples' wall times (and the median CPU time), divided by ``per``."""
    if not samples:
        raise SOWLv2Error(f"bench: no samples for {what!r}")
    walls = np.array([s.wall for s in samples], float) / per
    cpus = np.array([s.cpu for s in samples], float) / per
    return {"median": _r(np.median(walls)), "min": _r(walls.min()), "max": _r(walls.max()), "n": len(samples),
            "cpu_median": _r(np.median(cpus)), "unit": unit, "what": what}


def _r(x: float, digits: int = 5) -> float:
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(digits, digits - int(math.floor(math.log10(abs(x)))) - 1))
