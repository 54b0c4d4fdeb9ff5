"""Cost of filling one object's mask between two processed frames (``sowlv2.fill.interpolate_mask``)
against the same formula on the whole frame (what it computed before it worked in a window).

A disc of radius r and a slightly larger, shifted one, at 320x240 (r 25) and 1280x720 (r 60); the
two results are checked to be equal. Prints one line per size: milliseconds per call, median of 5
rounds of 20 calls.

    python benchmarks/fill_cost.py
    python benchmarks/fill_cost.py --masks-of ~/.cache/sowlv2/bench-models/sam2-hiera-tiny

``--masks-of SAM_FOLDER`` also prints the extent of that SAM 2's masks for the true boxes of world
video 0's first frame (the bench's random-weight models give masks that span the frame, so their
fills cannot use a small window).
"""

from __future__ import annotations

import argparse
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


def mask_extent(sam_folder: str) -> None:
    import torch

    from sowlv2.eval.world import iter_world_video
    from sowlv2.models.sam2_image import Sam2ImageSegmenter

    video = iter_world_video(0, 1, (320, 240))
    rgb, ids = next(iter(video))
    boxes = []
    for oid in video.categories:
        ys, xs = np.nonzero(ids == oid)
        if len(ys):
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    masks, _ = Sam2ImageSegmenter.from_pretrained(sam_folder, torch.device("cpu")).segment(
        rgb, np.array(boxes, np.float32))
    for (x0, y0, x1, y1), m in zip(boxes, masks):
        edges = m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()
        print(f"box of {(x1 - x0) * (y1 - y0)} px: mask of {int(m.sum())} of {m.size} px, "
              f"touches all four edges: {bool(edges)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks-of", metavar="SAM_FOLDER")
    args = ap.parse_args()
    if args.masks_of:
        mask_extent(args.masks_of)
    for h, w, r in [(240, 320, 25), (720, 1280, 60)]:
        yy, xx = np.mgrid[0:h, 0:w]
        a = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 <= r * r
        b = (yy - h / 2 - 5) ** 2 + (xx - w / 3 - 12) ** 2 <= (r + 3) ** 2
        assert np.array_equal(fill.interpolate_mask(a, b, 0.4), whole_frame(a, b, 0.4))
        print(f"{w}x{h}, disc radius {r}: window {ms_per_call(fill.interpolate_mask, a, b):.2f} ms, "
              f"whole frame {ms_per_call(whole_frame, a, b):.2f} ms per call")


if __name__ == "__main__":
    main()
