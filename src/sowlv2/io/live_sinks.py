"""Outputs that grow while a live stream runs, and stay readable after a crash (even ``kill -9``).

* ``JsonlSink``: ``results.jsonl``, one line per frame (the frame records of results.json, with the
  same per-object records, plus the frame's ``latency``), flushed per frame (and fsynced about once a
  second). At the end it writes ``results.json`` and ``annotations.json`` (YouTube-VIS) from the JSON
  Lines and small per-track spool files, streaming: the whole stream is never held in memory.
* ``SegmentedVideoSink``: the overlay video as ``video/overlay_00000.mp4``, ``overlay_00001.mp4``, ...,
  a new file every ``segment_seconds`` of stream time. Each segment is a fragmented MP4 (a fragment
  per key frame, about one a second, written through at once), so the segment being written when
  the process dies is playable up to its last fragment, and every earlier segment is complete.

Both implement ``sowlv2.stages.Sink`` (open / write / close / abort), called from one thread.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..stages import InputInfo, RunSummary
from ..types import FrameResult
from ..viz import draw_overlay
from . import rle
from .outputs import youtube_vis_opening
from .sinks import object_record
from .video import yuv420p_frame

log = logging.getLogger(__name__)

FSYNC_EVERY_S = 1.0  # results.jsonl reaches the disk at least this often (flushed to the OS every frame)
_OPEN_SPOOLS = 32  # per-track spool files kept open at once (least recently used ones are closed)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


class JsonlSink:
    """``results.jsonl`` as frames arrive; ``results.json`` and ``annotations.json`` at the end.

    Each line: ``{"index", "time", "source_index", "keyframe", "latency", "objects": [...]}`` where
    ``objects`` are results.json's records (``io.sinks.object_record``: id, label, score, box, area,
    RLE mask) and ``latency`` the seconds from capture to result (``result.extra["latency"]``, null
    when unknown).
    """

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.info: InputInfo | None = None
        self.frames = 0
        self._file = None
        self._last_sync = 0.0
        self._spools: OrderedDict[int, object] = OrderedDict()

    # ------------------------------------------------------------------ Sink
    def open(self, folder: Path, info: InputInfo) -> None:
        self.folder, self.info = Path(folder), info
        self._file = open(self.folder / "results.jsonl", "w", encoding="utf-8",  # noqa: SIM115
                          errors="backslashreplace")
        (self.folder / ".tracks").mkdir(exist_ok=True)
        self._last_sync = time.monotonic()

    def write(self, result: FrameResult, image: np.ndarray) -> None:  # noqa: ARG002 - Sink API
        """Append one line for ``result`` and flush it."""
        records = []
        for i in range(len(result)):
            mask_rle = rle.encode(result.masks[i])
            rec = object_record(result, i, mask_rle)
            records.append(rec)
            self._spool(int(result.ids[i])).write(json.dumps([result.index, mask_rle, _coco_box(rec["box"]),
                                                              rec["area"]]) + "\n")
        latency = result.extra.get("latency")
        line = {"index": result.index, "time": round(result.time, 6), "source_index": result.source_index,
                "keyframe": result.keyframe, "latency": None if latency is None else round(latency, 4),
                "objects": records}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        self.frames += 1
        now = time.monotonic()
        if now - self._last_sync >= FSYNC_EVERY_S:
            os.fsync(self._file.fileno())
            self._last_sync = now

    def close(self, summary: RunSummary) -> None:
        """Write results.json and annotations.json (each to a temporary name, then renamed)."""
        self._close_files()
        self._write_results(summary)
        self._write_annotations(summary)
        tracks = self.folder / ".tracks"
        for f in tracks.iterdir():
            f.unlink()
        tracks.rmdir()

    def abort(self) -> None:
        """Close the files; results.jsonl stays (a live run keeps what it wrote)."""
        self._close_files()

    # ------------------------------------------------------------------ helpers
    def _spool(self, oid: int):
        f = self._spools.pop(oid, None)
        if f is None:
            if len(self._spools) >= _OPEN_SPOOLS:
                _, old = self._spools.popitem(last=False)
                old.close()
            f = open(self.folder / ".tracks" / f"{oid}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._spools[oid] = f
        return f

    def _close_files(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        for f in self._spools.values():
            f.close()
        self._spools.clear()

    def _write_results(self, summary: RunSummary) -> None:
        info = self.info
        h, w = info.size
        header = {"input": info.name, "kind": "video", "width": w, "height": h, "fps": info.fps,
                  "prompts": list(info.prompts)}
        path = self.folder / "results.json"
        with open(_tmp(path), "w", encoding="utf-8", errors="backslashreplace") as out, \
                open(self.folder / "results.jsonl", encoding="utf-8") as lines:
            out.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "frames": [\n')
            for n, line in enumerate(lines):
                rec = json.loads(line)
                rec.pop("latency", None)
                out.write(("" if n == 0 else ",\n") + json.dumps(rec, ensure_ascii=False))
            tail = {"keyframes": summary.keyframes, "keyframe_scores": summary.keyframe_scores,
                    "tracks": summary.tracks, "stats": summary.stats}
            out.write("\n], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n")
        os.replace(_tmp(path), path)

    def _write_annotations(self, summary: RunSummary) -> None:
        """YouTube-VIS: one annotation per track with one entry per frame (null where absent),
        written entry by entry from the track's spool file."""
        info = self.info
        h, w = info.size
        frames = self.frames
        category = {p: k + 1 for k, p in enumerate(info.prompts)}
        path = self.folder / "annotations.json"
        with open(_tmp(path), "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(youtube_vis_opening(info.name, (h, w), frames, info.prompts))
            for n, track in enumerate(summary.tracks):
                oid = track["id"]
                ann = {"id": oid, "video_id": 1, "category_id": category.get(track["label"], 0),
                       "score": track.get("best_score"), "iscrowd": 0, "height": h, "width": w, "length": 1}
                out.write(("" if n == 0 else ",") + "\n" + json.dumps(ann, ensure_ascii=False)[:-1])
                spool = self.folder / ".tracks" / f"{oid}.jsonl"
                for key, part in (("segmentations", 1), ("bboxes", 2), ("areas", 3)):
                    out.write(f', "{key}": [')
                    nxt = 0
                    if spool.exists():
                        with open(spool, encoding="utf-8") as f:
                            for line in f:
                                entry = json.loads(line)
                                idx = entry[0]
                                if idx < nxt or idx >= frames:
                                    continue
                                comma = "," if idx + 1 < frames else ""
                                out.write("null," * (idx - nxt) + json.dumps(entry[part]) + comma)
                                nxt = idx + 1
                    out.write(",".join(["null"] * (frames - nxt)) + "]")
                out.write("}")
            out.write("\n]}\n")
        os.replace(_tmp(path), path)


def _coco_box(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


class _FragmentedMp4:
    """One H.264 (yuv420p) fragmented MP4, written through to the file fragment by fragment.

    Timestamps come from the frames' stream times (millisecond time base), so a stream with dropped
    frames or a gap plays at its real pace.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        h, w = size
        self.path = path
        self.frames = 0
        self._last_pts = -1
        self._container = av.open(str(path), mode="w", format="mp4", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w + (w % 2), h + (h % 2)
        stream.pix_fmt = "yuv420p"
        gop = max(1, round(float(rate)))  # a key frame (so a fragment) about every second
        stream.options = {"crf": "23", "preset": "veryfast", "tune": "zerolatency", "g": str(gop)}
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        self._stream = stream

    def write(self, rgb: np.ndarray, t: float) -> None:
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = yuv420p_frame(rgb)
        pts = max(int(round(t * 1000)), self._last_pts + 1)
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class SegmentedVideoSink:
    """The overlay video in segments: ``video/overlay_00000.mp4``, ... of ``segment_seconds`` each.

    Args:
        segment_seconds: stream seconds per file (a new segment starts at the first frame at or
            after the limit).

    Attributes:
        segments: one dict per segment written: ``file`` (relative to the result folder), ``frames``,
            ``start`` and ``end`` (stream times of its first and last frame).
    """

    def __init__(self, segment_seconds: float = 60.0) -> None:
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        self.segment_seconds = float(segment_seconds)
        self.segments: list[dict] = []
        self.folder: Path | None = None
        self.fps: float | None = None
        self._writer: _FragmentedMp4 | None = None
        self._t0 = 0.0

    def open(self, folder: Path, info: InputInfo) -> None:
        self.folder = Path(folder)
        (self.folder / "video").mkdir(exist_ok=True)
        self.fps = info.fps

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        """Draw the frame's overlay (every object) and append it to the current segment."""
        if self._writer is not None and result.time - self._t0 >= self.segment_seconds:
            self._close_segment()
        if self._writer is None:
            name = f"video/overlay_{len(self.segments):05d}.mp4"
            self._writer = _FragmentedMp4(self.folder / name, self.fps or 25.0, image.shape[:2])
            self._t0 = result.time
            self.segments.append({"file": name, "frames": 0, "start": round(result.time, 3),
                                  "end": round(result.time, 3)})
        self._writer.write(draw_overlay(image, result), result.time - self._t0)
        seg = self.segments[-1]
        seg["frames"] += 1
        seg["end"] = round(result.time, 3)

    def _close_segment(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def close(self, summary: RunSummary) -> None:  # noqa: ARG002 - Sink API
        self._close_segment()

    def abort(self) -> None:
        try:
            self._close_segment()
        except Exception:  # noqa: BLE001 - best effort while failing anyway
            log.debug("closing a video segment failed during abort", exc_info=True)


__all__ = ["JsonlSink", "SegmentedVideoSink", "FSYNC_EVERY_S"]
