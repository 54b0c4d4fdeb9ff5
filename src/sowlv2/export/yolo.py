"""YOLO segmentation (ultralytics' ``yolo`` format): ``images/``, ``labels/*.txt``, ``data.yaml``.

Layout (under ``export/yolo/``)::

    data.yaml            ``train``/``val``: images, ``names: {0: prompt0, 1: prompt1, ...}`` (no ``path``:
                         the dataset root is the folder of data.yaml)
    images/000000.jpg    video frames as JPEG (an image input: a copy of the source file)
    labels/000000.txt    one line per object: ``class x1 y1 x2 y2 ...`` (normalised to [0, 1])

One polygon per object: its mask's holes are filled, each connected part is traced
(``skimage.measure.find_contours``) and simplified (``approximate_polygon``, 1 px tolerance), and the
parts are joined into one polygon by zero-width bridges (out to a part and back along the same
segment), which add no area under either fill rule. A frame without objects gets an empty label
file (a background image to YOLO).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..stages import RunSummary
from ..types import FrameResult
from ._base import ExportSink

TOLERANCE_PX = 1.0  # polygon simplification (Douglas-Peucker), in pixels


def mask_polygon(mask: np.ndarray, tolerance: float = TOLERANCE_PX) -> np.ndarray | None:
    """One simple-enough polygon covering a mask.

    Args:
        mask: (H, W) bool.
        tolerance: Douglas-Peucker tolerance in pixels (0 keeps every contour point).

    Returns:
        (k, 2) float64 ``[x, y]`` vertices in pixel-edge coordinates (pixel (r, c) covers
        [c, c+1] x [r, r+1]), k >= 3; None for an empty mask.
    """
    from scipy import ndimage
    from skimage.measure import approximate_polygon, find_contours

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    oy, ox = int(rows[0]), int(cols[0])  # work on the mask's box only
    filled = ndimage.binary_fill_holes(mask[oy:rows[-1] + 1, ox:cols[-1] + 1])
    labels, _ = ndimage.label(filled)
    parts = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = np.pad(labels[sl] == k, 1)  # padded so every contour closes
        contours = find_contours(comp.astype(np.float32), 0.5)
        contour = max(contours, key=len)  # holes are filled: the outer boundary
        simple = approximate_polygon(contour, tolerance) if tolerance > 0 else contour
        if len(simple) > 1 and np.array_equal(simple[0], simple[-1]):
            simple = simple[:-1]  # find_contours closes the loop by repeating the first point
        if len(simple) >= 3:
            # (row, col) in the padded crop -> (x, y) in the image; +0.5: pixel centres to pixel edges
            xy = np.stack([simple[:, 1] + ox + sl[1].start - 1 + 0.5, simple[:, 0] + oy + sl[0].start - 1 + 0.5],
                          axis=1)
        else:  # a part of a pixel or two: its pixel box
            y0, y1, x0, x1 = oy + sl[0].start, oy + sl[0].stop, ox + sl[1].start, ox + sl[1].stop
            xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        parts.append((int(comp.sum()), xy))
    if not parts:
        return None
    parts.sort(key=lambda p: -p[0])  # the largest part carries the bridges to the others
    return _bridge([xy for _, xy in parts])


def _bridge(parts: list[np.ndarray]) -> np.ndarray:
    """Join polygons into one: each other part is visited from the main part's nearest vertex and the
    walk comes back along the same segment (a zero-width bridge)."""
    main = parts[0]
    inserts: dict[int, list[np.ndarray]] = {}
    for part in parts[1:]:
        d = ((main[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([part[j:], part[:j], part[j:j + 1]])  # around the part, back to its start
        inserts.setdefault(int(i), []).append(loop)
    if not inserts:
        return main
    out = []
    for i, vertex in enumerate(main):
        out.append(vertex[None])
        for loop in inserts.get(i, []):
            out.append(loop)
            out.append(vertex[None])  # back to the main part
    return np.concatenate(out)


def label_line(class_id: int, polygon: np.ndarray, size: tuple[int, int]) -> str:
    """``class x1 y1 ...`` with coordinates divided by the image's width/height, clipped to [0, 1]."""
    h, w = size
    norm = np.clip(polygon / np.array([w, h], np.float64), 0.0, 1.0)
    return f"{class_id} " + " ".join(f"{v:.6f}" for v in norm.ravel())


class YoloSink(ExportSink):
    """YOLO-seg export (see the module docstring)."""

    format_name = "yolo"

    def _open(self) -> None:
        (self.dir / "images").mkdir()
        (self.dir / "labels").mkdir()

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        if self.is_video:
            stem = f"{result.index:06d}"
            self.frames.frame_jpeg(result.index, image, self.dir / "images" / f"{stem}.jpg")
        else:
            stem = Path(self.frames.still(self.info, image, self.dir / "images")).stem
        lines = []
        for i in range(len(result)):
            poly = mask_polygon(result.masks[i])
            if poly is not None:
                lines.append(label_line(int(result.class_ids[i]), poly, result.size))
        (self.dir / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    def close(self, summary: RunSummary) -> None:
        # No "path": ultralytics then takes the folder of data.yaml as the dataset root (a relative
        # "path" would be read under its own datasets folder).
        data = {"train": "images", "val": "images", "names": dict(enumerate(self.info.prompts))}
        (self.dir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")
