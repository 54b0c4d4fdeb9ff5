"""The input-size rule every detector adapter applies to huge images.

An image much larger than the detector's input (OWLv2: a 960 px square) is first shrunk with Pillow so
that its longer side is at most twice that input: the model's own preprocessing (pad, anti-alias,
resize) costs far more than linear time on a 24-megapixel photo, and the model sees the same input
either way. Boxes are scaled back to the full image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from ..types import Detections


def shrink_for(image: np.ndarray, side: int | None) -> tuple[np.ndarray, float]:
    """Shrink (H, W, 3) uint8 RGB so that its longer side is at most ``2 * side`` (aspect kept).

    Returns:
        (image, scale): the possibly smaller image and the factor from its pixels back to the
        original's (1.0 when unchanged). Both sides scale by the longer-side ratio.
    """
    h, w = image.shape[:2]
    if not side or max(h, w) <= 2 * side:
        return image, 1.0
    limit = 2 * side
    ratio = limit / max(h, w)
    new_w, new_h = (limit, max(1, round(h * ratio))) if w >= h else (max(1, round(w * ratio)), limit)
    small = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.array(small), max(h, w) / limit  # a writable copy (torch.from_numpy warns on read-only)


def detect_shrunk(detect: Callable[[np.ndarray], Detections], image: np.ndarray, side: int | None) -> Detections:
    """Run ``detect`` on ``image`` shrunk for a model input of ``side`` and map boxes back to ``image``."""
    small, scale = shrink_for(image, side)
    dets = detect(small)
    if scale == 1.0 or len(dets) == 0:
        return dets
    h, w = image.shape[:2]
    boxes = dets.boxes * np.float32(scale)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return Detections(boxes=boxes.astype(np.float32), scores=dets.scores, class_ids=dets.class_ids,
                      labels=dets.labels)


def processor_side(processor) -> int | None:
    """Side of a square model input from a transformers processor's ``image_processor.size``."""
    size = getattr(getattr(processor, "image_processor", processor), "size", None)
    if size is None:
        return None
    side = size.get("height") if hasattr(size, "get") else getattr(size, "height", None)
    if side is None and hasattr(size, "get"):
        side = size.get("shortest_edge") or size.get("longest_edge")
    return int(side) if side else None
