"""Overlays: each object in its own colour, with an outline and a label."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from .types import FrameResult, mask_to_box


def color_for(obj_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per object id (golden-ratio hue steps)."""
    hue = (obj_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        try:
            _FONT = ImageFont.load_default(size=12)
        except TypeError:  # Pillow < 10.1
            _FONT = ImageFont.load_default()
    return _FONT


def draw_overlay(image: np.ndarray, result: FrameResult, which: list[int] | None = None,
                 alpha: float = 0.45) -> np.ndarray:
    """Draw objects of ``result`` over ``image``.

    Args:
        image: (H, W, 3) uint8 RGB.
        result: the frame's objects.
        which: positions (into result) to draw; None draws all.
        alpha: fill opacity.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = image.copy()
    idx = range(len(result)) if which is None else which
    labels = []
    h, w = out.shape[:2]
    for i in idx:
        labels.append(i)
        mask = result.masks[i]
        x0, y0, x1, y1 = (int(v) for v in mask_to_box(mask))
        if x1 <= x0:
            continue
        # Work on the object's box (plus a margin for the erosion), not on the whole image.
        x0, y0, x1, y1 = max(x0 - 3, 0), max(y0 - 3, 0), min(x1 + 3, w), min(y1 + 3, h)
        sub, m = out[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        color = np.array(color_for(int(result.ids[i])), np.float32)
        sub[m] = (sub[m] * (1 - alpha) + color * alpha).astype(np.uint8)
        sub[m & ~ndimage.binary_erosion(m, iterations=2)] = color.astype(np.uint8)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for i in labels:
        x0, y0 = float(result.boxes[i][0]), float(result.boxes[i][1])
        text = f"{result.labels[i]} #{int(result.ids[i])} {float(result.scores[i]):.2f}"
        left, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = (r - left) + 4, (b - t) + 4
        # Above the box where there is room, else at its top; always moved inside the image (a label of
        # an object at the right or bottom edge is shifted left / up instead of being cut off).
        ty = min(max(0.0, y0 - th), max(0.0, h - th))
        tx = min(max(0.0, x0), max(0.0, w - tw))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=color_for(int(result.ids[i])))
        draw.text((tx + 2, ty + 2 - t), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
