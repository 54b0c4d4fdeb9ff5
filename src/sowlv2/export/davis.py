"""DAVIS semi-supervised layout: indexed PNG annotations with the DAVIS palette.

Layout (under ``export/davis/``)::

    Annotations/<seq>/00000.png   mode "P" (uint8 indices, the DAVIS / PASCAL VOC palette): 0 is
                                  background, k the object whose id (results.json) is k
    JPEGImages/<seq>/00000.jpg    the frame (an image input: one frame)

``<seq>`` is the input's file stem. One id per pixel: where masks overlap, the pixel goes to the
object with the highest score (ties: the lower id). A PNG index holds 255 ids at most: objects with
an id above 255 are left out of the PNGs, with one warning per input.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from ..stages import RunSummary
from ..types import FrameResult
from ._base import ExportSink, id_map, seq_name

log = logging.getLogger(__name__)

MAX_ID = 255


def davis_palette() -> list[int]:
    """The 768-value DAVIS palette (``sowlv2.eval.world.davis_palette``)."""
    from ..eval.world import davis_palette as palette

    return palette()


class DavisSink(ExportSink):
    """DAVIS Annotations/JPEGImages (see the module docstring)."""

    format_name = "davis"

    def _open(self) -> None:
        self.seq = seq_name(self.info)
        self._ann = self.dir / "Annotations" / self.seq
        self._img = self.dir / "JPEGImages" / self.seq
        self._ann.mkdir(parents=True)
        self._img.mkdir(parents=True)
        self._palette = davis_palette()
        self._warned = False

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        stem = f"{result.index:05d}"
        self.frames.frame_jpeg(result.index, image, self._img / f"{stem}.jpg")
        ids = [int(v) for v in result.ids]
        if not self._warned and any(v > MAX_ID for v in ids):
            log.warning("%s: DAVIS PNGs hold ids 1..%d; objects with larger ids are left out of "
                        "export/davis", self.info.name, MAX_ID)
            self._warned = True
        index = id_map(result, [v if v <= MAX_ID else 0 for v in ids], np.uint8)
        png = Image.fromarray(index)  # mode "L"; putpalette makes it "P"
        png.putpalette(self._palette)
        png.save(self._ann / f"{stem}.png")

    def close(self, summary: RunSummary) -> None:
        pass
