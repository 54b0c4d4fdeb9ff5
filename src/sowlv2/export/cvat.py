"""CVAT XML 1.1: "CVAT for video 1.1" for videos, "CVAT for images 1.1" for images.

Layout (under ``export/cvat/``)::

    annotations.xml      the annotations
    images/              the frames (``frame_000000.jpg``, ... for a video; the source file for an image)

Video: one ``<track id label source="auto">`` per object id (the id of results.json), holding one
``<mask>`` per frame where the object is present (``keyframe="1"``, ``outside="0"``) and, on the
first frame after each stretch where it is present (if the video goes on), a copy of its last mask
with ``outside="1"`` (CVAT's way to end a track). Frame numbers are the processed frames (0, 1, ...;
with ``--fps`` the CVAT task must be made from the same frames, e.g. from ``images/``). The meta holds
the labels (the prompts, in order), ``<size>``, ``<start_frame>``/``<stop_frame>`` and
``<original_size>``.

A mask's ``rle`` is CVAT's: comma-separated run lengths over the mask's own box (``left``, ``top``,
``width``, ``height``), row by row, starting with a run of 0s (possibly of length 0). Masks are
spooled per track to small files as frames arrive and the XML is assembled at the end.
"""

from __future__ import annotations

import os
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..stages import RunSummary
from ..types import FrameResult, mask_to_box
from ._base import ExportSink, TrackSpool


def box_rle(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]] | None:
    """CVAT's RLE of a mask within its tight box.

    Args:
        mask: (H, W) bool.

    Returns:
        (run lengths, (left, top, width, height)); the runs alternate 0s and 1s over the box's
        pixels in row-major order, starting with 0s. None for an empty mask.
    """
    x0, y0, x1, y1 = (int(v) for v in mask_to_box(mask))
    if x1 <= x0 or y1 <= y0:
        return None
    flat = mask[y0:y1, x0:x1].ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return runs, (x0, y0, x1 - x0, y1 - y0)


def _mask_el(rle: str, left: int, top: int, width: int, height: int, *, label: str | None = None,
             frame: int | None = None, outside: bool = False) -> str:
    attrs = []
    if frame is not None:
        attrs.append(f'frame="{frame}" keyframe="1" outside="{int(outside)}"')
    if label is not None:
        attrs.append(f"label={quoteattr(label)} source=\"auto\"")
    attrs.append(f'occluded="0" rle="{rle}" left="{left}" top="{top}" width="{width}" height="{height}" '
                 'z_order="0"')
    return f"    <mask {' '.join(attrs)}>\n    </mask>\n"


def _meta(name: str, mode: str, size: int, prompts, hw: tuple[int, int]) -> str:
    h, w = hw
    labels = "".join(f"        <label>\n          <name>{escape(p)}</name>\n          <type>any</type>\n"
                     "          <attributes>\n          </attributes>\n        </label>\n" for p in prompts)
    return ("  <meta>\n    <task>\n      <id>1</id>\n"
            f"      <name>{escape(name)}</name>\n      <size>{size}</size>\n      <mode>{mode}</mode>\n"
            f"      <overlap>0</overlap>\n      <start_frame>0</start_frame>\n"
            f"      <stop_frame>{max(size - 1, 0)}</stop_frame>\n      <frame_filter></frame_filter>\n"
            f"      <labels>\n{labels}      </labels>\n"
            f"      <original_size>\n        <width>{w}</width>\n        <height>{h}</height>\n"
            "      </original_size>\n    </task>\n"
            f"    <source>{escape(name)}</source>\n  </meta>\n")


class CvatSink(ExportSink):
    """CVAT for video 1.1 (videos) / CVAT for images 1.1 (images); see the module docstring."""

    format_name = "cvat"

    def _open(self) -> None:
        (self.dir / "images").mkdir()
        self._spool = TrackSpool(self.dir / ".spool") if self.is_video else None
        self._labels: dict[int, str] = {}
        self._image_xml: str | None = None

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        if self.is_video:
            self.frames.frame_jpeg(result.index, image, self.dir / "images" / f"frame_{result.index:06d}.jpg")
            for i in range(len(result)):
                enc = box_rle(result.masks[i])
                if enc is not None:
                    oid = int(result.ids[i])
                    self._labels.setdefault(oid, result.labels[i])
                    self._spool.add(oid, [result.index, ",".join(map(str, enc[0])), *enc[1]])
            return
        name = self.frames.still(self.info, image, self.dir / "images")
        h, w = result.size
        parts = [f'  <image id="0" name={quoteattr(name)} width="{w}" height="{h}">\n']
        for i in range(len(result)):
            enc = box_rle(result.masks[i])
            if enc is not None:
                parts.append(_mask_el(",".join(map(str, enc[0])), *enc[1], label=result.labels[i]))
        parts.append("  </image>\n")
        self._image_xml = "".join(parts)

    def close(self, summary: RunSummary) -> None:
        info = self.info
        path = self.dir / "annotations.xml"
        tmp = self.dir / ".annotations.xml.tmp"
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
            if not self.is_video:
                out.write(_meta(info.name, "annotation", 1, info.prompts, info.size))
                out.write(self._image_xml or "")
            else:
                out.write(_meta(info.name, "interpolation", self.count, info.prompts, info.size))
                self._spool.close()
                for oid in self._spool.ids:
                    out.write(f'  <track id="{oid}" label={quoteattr(self._labels[oid])} source="auto">\n')
                    prev = None
                    for frame, rle, *box in self._spool.records(oid):
                        if prev is not None and frame != prev[0] + 1:  # absent in between: end, then restart
                            out.write(_mask_el(prev[1], *prev[2:], frame=prev[0] + 1, outside=True))
                        out.write(_mask_el(rle, *box, frame=frame))
                        prev = [frame, rle, *box]
                    if prev is not None and prev[0] + 1 < self.count:
                        out.write(_mask_el(prev[1], *prev[2:], frame=prev[0] + 1, outside=True))
                    out.write("  </track>\n")
                self._spool.remove()
            out.write("</annotations>\n")
        os.replace(tmp, path)

    def abort(self) -> None:
        if getattr(self, "_spool", None) is not None:
            self._spool.close()


__all__ = ["CvatSink", "box_rle"]
