"""COCO run-length encoding of masks (pycocotools), with ``counts`` as a string for JSON."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> {"size": [H, W], "counts": str} (COCO compressed RLE)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict) -> np.ndarray:
    """{"size": [H, W], "counts": str | bytes} -> (H, W) bool."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


def area(rle: dict) -> int:
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return int(mask_utils.area({"size": list(rle["size"]), "counts": counts}))
