"""Label Studio: image tasks with brush masks, plus a video task with ``VideoRectangle`` tracks.

Layout (under ``export/labelstudio/``)::

    tasks.json           a list of image tasks, one per image / video frame: ``data.image`` is
                         ``images/<file>``; ``predictions[0].result`` holds one ``brushlabels`` result
                         per object (``value.rle``: Label Studio's brush RLE, ``value.brushlabels``:
                         [prompt]; ``id``: ``<frame>_<object id>``; ``score``)
    images/              the image (source file) or the video frames (``000000.jpg``, ...)
    label_config.xml     a labeling config that matches tasks.json (Image + BrushLabels)
    video_task.json      videos only: one task (``data.video``: the input's file name) whose
                         prediction holds one ``videorectangle`` result per object id, its ``sequence``
                         one box per frame (``frame`` 1-based in the source video, ``x/y/width/height``
                         in percent of the frame, ``enabled: false`` where the object ends)
    video_config.xml     videos only: Video + VideoRectangle + Labels

Label Studio video tasks hold boxes only (``VideoRectangle``): the masks of a video are in
tasks.json, one image task per frame. A warning says so once per video.

The brush RLE is Label Studio's bit-packed encoding of the flat (H, W, 4) RGBA image (each mask
pixel 0 or 255 in all four channels), encoded here with numpy; its bytes are those of
``label_studio_converter.brush.mask2rle`` and ``decode_rle`` reads it back (tests check both).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..stages import RunSummary
from ..types import FrameResult
from ._base import ExportSink, TrackSpool

log = logging.getLogger(__name__)

_HEADER_BITS = 32 + 5 + 16  # pixel-value count, word size - 1, four run-size fields


def brush_rle(mask: np.ndarray) -> list[int]:
    """Label Studio's brush RLE of a mask.

    Args:
        mask: (H, W) bool (or uint8: 0 / nonzero).

    Returns:
        The byte values (ints 0..255) of the bit stream Label Studio stores in ``value.rle``: a
        32-bit count of values (H*W*4), word size 8, run sizes 3/4/8/16 bits, then one token per run
        of equal RGBA values: ``1``, a 2-bit size index, the run length - 1, the 8-bit value (runs
        longer than 65536 are split); zero-padded to whole bytes (1 to 8 bits, as Label Studio does).
    """
    flat = np.asarray(mask).ravel() != 0
    n = flat.size
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [n]])).astype(np.int64) * 4  # 4 channels per pixel
    values = np.where(flat[starts], 255, 0).astype(np.int64)
    # Runs of more than 65536 values: 65536-long pieces, then the rest (Label Studio's split).
    pieces = np.maximum((lengths - 1) // 65536, 0)
    rest = lengths - pieces * 65536
    tok_len = np.concatenate([np.repeat(np.full(len(lengths), 65536), pieces), rest])
    tok_val = np.concatenate([np.repeat(values, pieces), values])
    order = np.concatenate([np.repeat(np.arange(len(lengths)), pieces), np.arange(len(lengths))])
    tok_len, tok_val = tok_len[np.argsort(order, kind="stable")], tok_val[np.argsort(order, kind="stable")]
    # size index and field width: <=8 -> (0, 3), <=16 -> (1, 4), <=256 -> (2, 8), longer -> (3, 16)
    idx = np.select([tok_len <= 8, tok_len <= 16, tok_len <= 256], [0, 1, 2], 3)
    nbits = np.array([3, 4, 8, 16])[idx]
    code = (((1 << 2 | idx) << nbits | (tok_len - 1)) << 8) | tok_val  # 1, idx, length - 1, value
    width = 1 + 2 + nbits + 8
    header = (n * 4 << 21) | (7 << 16) | (2 << 12) | (3 << 8) | (7 << 4) | 15
    codes = np.concatenate([[header], code]).astype(np.uint64)
    widths = np.concatenate([[_HEADER_BITS], width]).astype(np.int64)
    total = int(widths.sum())
    pad = 8 - total % 8
    bits = np.zeros(total + pad, np.uint8)
    starts_bits = np.cumsum(widths) - widths
    for b in range(int(widths.max())):
        sel = b < widths
        shift = (widths[sel] - 1 - b).astype(np.uint64)
        bits[starts_bits[sel] + b] = ((codes[sel] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits).tolist()


def _percent(v: float, total: int) -> float:
    return round(100.0 * float(v) / total, 4)


class LabelStudioSink(ExportSink):
    """Label Studio tasks (see the module docstring)."""

    format_name = "labelstudio"

    def _open(self) -> None:
        (self.dir / "images").mkdir()
        self._tasks = open(self.dir / ".tasks.json.tmp", "w", encoding="utf-8")  # noqa: SIM115
        self._tasks.write("[")
        self._spool = TrackSpool(self.dir / ".spool") if self.is_video else None
        self._labels: dict[int, str] = {}
        self._last_source = 0
        self._last_time = 0.0

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        if self.is_video:
            name = f"{result.index:06d}.jpg"
            self.frames.frame_jpeg(result.index, image, self.dir / "images" / name)
        else:
            name = self.frames.still(self.info, image, self.dir / "images")
        h, w = result.size
        results = []
        for i in range(len(result)):
            oid = int(result.ids[i])
            results.append({"id": f"{result.index}_{oid}", "type": "brushlabels", "from_name": "label",
                            "to_name": "image", "original_width": w, "original_height": h,
                            "image_rotation": 0, "score": round(float(result.scores[i]), 5),
                            "value": {"format": "rle", "rle": brush_rle(result.masks[i]),
                                      "brushlabels": [result.labels[i]]}})
            if self.is_video:
                self._labels.setdefault(oid, result.labels[i])
                x0, y0, x1, y1 = (float(v) for v in result.boxes[i])
                frame = (result.source_index if result.source_index is not None else result.index) + 1
                self._spool.add(oid, [result.index, frame, round(result.time, 6), _percent(x0, w), _percent(y0, h),
                                      _percent(x1 - x0, w), _percent(y1 - y0, h)])
        self._last_source = result.source_index if result.source_index is not None else result.index
        self._last_time = result.time
        task = {"data": {"image": f"images/{name}", "frame": result.index},
                "predictions": [{"model_version": "sowlv2", "result": results}]}
        self._tasks.write(("" if self.count == 0 else ",") + "\n" + json.dumps(task, ensure_ascii=False))

    def close(self, summary: RunSummary) -> None:
        self._tasks.write("\n]\n")
        self._tasks.close()
        os.replace(self.dir / ".tasks.json.tmp", self.dir / "tasks.json")
        labels = "".join(f"    <Label value={quoteattr(p)}/>\n" for p in self.info.prompts)
        (self.dir / "label_config.xml").write_text(
            '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
            f'  <BrushLabels name="label" toName="image">\n{labels}  </BrushLabels>\n</View>\n', encoding="utf-8")
        if not self.is_video:
            return
        log.warning("%s: a Label Studio video task holds boxes only (VideoRectangle); the masks are in "
                    "export/labelstudio/tasks.json as one image task per frame", self.info.name)
        self._spool.close()
        fps = self.info.fps or 25.0
        frames_count = self._last_source + 1
        results = []
        for oid in self._spool.ids:
            seq, prev = [], None
            for index, frame, t, x, y, bw, bh in self._spool.records(oid):
                if prev is not None and index != prev + 1:
                    seq[-1]["enabled"] = False  # absent on processed frames in between: off after prev
                seq.append({"frame": frame, "enabled": True, "rotation": 0, "x": x, "y": y, "width": bw,
                            "height": bh, "time": t})
                prev = index
            if seq:
                seq[-1]["enabled"] = False  # the track ends at its last frame
            results.append({"id": str(oid), "type": "videorectangle", "from_name": "box", "to_name": "video",
                            "origin": "prediction",
                            "value": {"framesCount": frames_count, "duration": round(frames_count / fps, 6),
                                      "sequence": seq, "labels": [self._labels[oid]]}})
        task = {"data": {"video": Path(self.info.name).name},
                "predictions": [{"model_version": "sowlv2", "result": results}]}
        tmp = self.dir / ".video_task.json.tmp"
        tmp.write_text(json.dumps([task], ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.dir / "video_task.json")
        (self.dir / "video_config.xml").write_text(
            f'<View>\n  <Labels name="videoLabels" toName="video">\n{labels}  </Labels>\n'
            f'  <Video name="video" value="$video" framerate="{fps:g}"/>\n'
            '  <VideoRectangle name="box" toName="video"/>\n</View>\n', encoding="utf-8")
        self._spool.remove()

    def abort(self) -> None:
        if getattr(self, "_tasks", None) is not None:
            self._tasks.close()
        if getattr(self, "_spool", None) is not None:
            self._spool.close()
