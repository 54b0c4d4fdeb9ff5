"""MOTS (multi-object tracking and segmentation): the PNG layout datumaro reads, and the text layout.

Layout (under ``export/mots/``)::

    instances/<seq>/000000.png  uint16 PNG, one value per pixel: class * 1000 + object id
                                (class = prompt position + 1; 0 is background)
    instances/labels.txt        the prompts, one per line (class k is line k)
    images/<seq>/000000.jpg     the frame (an image input: one frame)
    instances.txt               one line per object and frame: ``frame id class h w rle`` with
                                id = class * 1000 + object id, ``rle`` the COCO compressed RLE of the
                                object's pixels in the PNG (frame numbers from 0)

``<seq>`` is the input's file stem. MOTS masks never overlap: where they do, the pixel goes to the
object with the highest score (ties: the lower id), in the PNGs and in instances.txt alike. Ids are
below 1000 in MOTS: objects with an id of 1000 or more are left out, with one warning per input.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from ..io import rle
from ..stages import RunSummary
from ..types import FrameResult
from ._base import ExportSink, id_map, seq_name

log = logging.getLogger(__name__)

MAX_INSTANCES = 1000


class MotsSink(ExportSink):
    """MOTS PNG + text (see the module docstring)."""

    format_name = "mots"

    def _open(self) -> None:
        self.seq = seq_name(self.info)
        self._ann = self.dir / "instances" / self.seq
        self._img = self.dir / "images" / self.seq
        self._ann.mkdir(parents=True)
        self._img.mkdir(parents=True)
        (self.dir / "instances" / "labels.txt").write_text("\n".join(self.info.prompts) + "\n", encoding="utf-8")
        self._txt = open(self.dir / "instances.txt", "w", encoding="utf-8")  # noqa: SIM115
        self._warned = False

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        stem = f"{result.index:06d}"
        self.frames.frame_jpeg(result.index, image, self._img / f"{stem}.jpg")
        ids = [int(v) for v in result.ids]
        if not self._warned and any(v >= MAX_INSTANCES for v in ids):
            log.warning("%s: MOTS ids are below %d; objects with larger ids are left out of export/mots",
                        self.info.name, MAX_INSTANCES)
            self._warned = True
        values = [(int(c) + 1) * MAX_INSTANCES + v if v < MAX_INSTANCES else 0
                  for c, v in zip(result.class_ids, ids)]
        index = id_map(result, values, np.uint16)
        Image.fromarray(index).save(self._ann / f"{stem}.png")  # uint16 -> 16-bit greyscale PNG
        h, w = result.size
        for v in values:
            mask = index == v if v else None
            if mask is not None and mask.any():  # an object wholly covered by higher scores is absent
                enc = rle.encode(mask)
                self._txt.write(f"{result.index} {v} {v // MAX_INSTANCES} {h} {w} {enc['counts']}\n")

    def close(self, summary: RunSummary) -> None:
        self._txt.close()

    def abort(self) -> None:
        if getattr(self, "_txt", None) is not None:
            self._txt.close()
