"""Cost of filling one object's mask between two processed frames (``sowlv2.fill.interpolate_mask``)
against the same formula on the whole frame (what it computed before it worked in a window).

A disc of radius r and a slightly larger, shifted one, at 320x240 (r 25) and 1280x720 (r 60); the
two results are checked to be equal. Prints one line per size: milliseconds per call, median of 5
rounds of 20 calls.

    python benchmarks/fill_cost.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sowlv2 import fill  # noqa: E402


def whole_frame(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The module docstring's formula, every step on the whole frame."""
    ca, cb = np.array(ndimage.center_of_mass(a)), np.array(ndimage.center_of_mass(b))
    c = (1 - t) * ca + t * cb

    def shift(m, offset):
        return ndimage.shift(m.astype(np.uint8), offset, order=0, mode="constant", cval=0).astype(bool)

    sa, sb = fill._signed_distance(shift(a, c - ca)), fill._signed_distance(shift(b, c - cb))
    with np.errstate(invalid="ignore"):
        return np.nan_to_num((1 - t) * sa + t * sb, nan=-1.0) > 0


def ms_per_call(f, a, b, calls: int = 20, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            f(a, b, 0.4)
        times.append((time.perf_counter() - t0) / calls * 1000)
    return statistics.median(times)


def main() -> None:
    for h, w, r in [(240, 320, 25), (720, 1280, 60)]:
        yy, xx = np.mgrid[0:h, 0:w]
        a = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 <= r * r
        b = (yy - h / 2 - 5) ** 2 + (xx - w / 3 - 12) ** 2 <= (r + 3) ** 2
        assert np.array_equal(fill.interpolate_mask(a, b, 0.4), whole_frame(a, b, 0.4))
        print(f"{w}x{h}, disc radius {r}: window {ms_per_call(fill.interpolate_mask, a, b):.2f} ms, "
              f"whole frame {ms_per_call(whole_frame, a, b):.2f} ms per call")


if __name__ == "__main__":
    main()
