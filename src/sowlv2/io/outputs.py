"""The output sinks of a result folder: one class per output (``sowlv2.stages.Sink``).

``sinks_for(config, kind)`` builds the list a run writes: per-object and merged mask PNGs, overlay
PNGs, the H.264 videos, results.json and annotations.json (COCO for images, YouTube-VIS for videos).
Groups switched off by the config (``no_binary``, ``no_overlay``, ``no_merged``) get no sink, so
nothing is written and deleted. Adding an output format is one new class.

Derived per-frame data that several sinks need (the RLE of each mask, the merged mask, the merged
overlay) is computed once per frame and kept in ``FrameResult.extra`` (sinks run on one thread).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..stages import InputInfo, RunSummary
from ..types import FrameResult
from ..viz import draw_overlay
from . import rle
from .result_folder import atomic_write_json
from .video import VideoWriter

_MAX_LABEL = 40


def safe_name(text: str, max_len: int = _MAX_LABEL) -> str:
    """Make text safe for a file name: letters, digits, ``-`` and ``_`` only, no ``..``, bounded."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_-")[:max_len].strip("_-")
    return name or "object"


def safe_labels(prompts: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Map each prompt to a file-name-safe label, unique within the run (``cat``, ``cat_2``, ...).

    Each label is one path component of ``[A-Za-z0-9_-]`` characters, at most 40 long, and unique
    ignoring case (``Cat`` and ``cat`` would share a file on a case-insensitive disk).
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for p in prompts:
        if p in out:
            continue
        base = safe_name(p)
        name, k = base, 2
        while name.casefold() in used:
            suffix = f"_{k}"
            name = base[:_MAX_LABEL - len(suffix)] + suffix
            k += 1
        used.add(name.casefold())
        out[p] = name
    return out


def mask_u8(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) uint8 0/255, with one full-size array made (not two)."""
    return mask.view(np.uint8) * np.uint8(255)


def save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


# ---------------------------------------------------------------------- per-frame derived data (memoised)
def frame_rles(result: FrameResult) -> list[dict]:
    """COCO RLE of each object's mask, encoded once per frame."""
    if "rles" not in result.extra:
        result.extra["rles"] = [rle.encode(m) for m in result.masks]
    return result.extra["rles"]


def merged_mask_u8(result: FrameResult) -> np.ndarray:
    """(H, W) uint8 0/255 union of the objects, made once per frame."""
    if "merged_mask" not in result.extra:
        result.extra["merged_mask"] = mask_u8(result.merged_mask)
    return result.extra["merged_mask"]


def merged_overlay(result: FrameResult, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB overlay of every object, drawn once per frame."""
    if "merged_overlay" not in result.extra:
        result.extra["merged_overlay"] = draw_overlay(image, result)
    return result.extra["merged_overlay"]


def coco_categories(prompts) -> list[dict]:
    """COCO / YouTube-VIS categories: one per prompt, ids from 1 in prompt order."""
    return [{"id": k + 1, "name": p, "supercategory": "object"} for k, p in enumerate(prompts)]


def youtube_vis_opening(stem: str, size: tuple[int, int], frames: int, prompts) -> str:
    """The start of a YouTube-VIS ``annotations.json`` up to its open ``annotations`` list (the
    annotations are then written one by one): one video of ``frames`` frames named after ``stem``."""
    h, w = size
    video = {"id": 1, "width": w, "height": h, "length": frames,
             "file_names": [f"{stem}/{k:05d}.jpg" for k in range(frames)]}
    head = {"info": {"description": "SOWLv2 predictions (YouTube-VIS format)"}, "videos": [video],
            "categories": coco_categories(prompts)}
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "annotations": ['


def object_record(result: FrameResult, i: int, mask_rle: dict | None = None) -> dict:
    """One object of a frame as it appears in results.json."""
    mask_rle = mask_rle or rle.encode(result.masks[i])
    return {
        "id": int(result.ids[i]),
        "label": result.labels[i],
        "score": round(float(result.scores[i]), 5),
        "box": [round(float(v), 2) for v in result.boxes[i]],
        "area": int(result.masks[i].sum()),
        "mask": mask_rle,
    }


class _Base:
    """Defaults of the Sink protocol: nothing to close or abort."""

    folder: Path
    info: InputInfo

    def open(self, folder: Path, info: InputInfo) -> None:
        self.folder, self.info = folder, info
        self.labels = safe_labels(info.prompts)

    def close(self, summary: RunSummary) -> None:
        pass

    def abort(self) -> None:
        pass


# ---------------------------------------------------------------------- PNGs
class MaskPngSink(_Base):
    """``binary/frames/{frame:06d}_obj{id:02d}_{label}_mask.png`` (0/255) and, with ``merged``,
    ``binary/merged/{frame:06d}_merged_mask.png``."""

    def __init__(self, merged: bool = True) -> None:
        self.merged = merged

    def open(self, folder: Path, info: InputInfo) -> None:
        super().open(folder, info)
        (folder / "binary/frames").mkdir(parents=True, exist_ok=True)
        if self.merged:
            (folder / "binary/merged").mkdir(parents=True, exist_ok=True)

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        stem = f"{result.index:06d}"
        for i in range(len(result)):
            oid, label = int(result.ids[i]), self.labels[result.labels[i]]
            save_png(mask_u8(result.masks[i]), self.folder / "binary/frames" / f"{stem}_obj{oid:02d}_{label}_mask.png")
        if self.merged:
            save_png(merged_mask_u8(result), self.folder / "binary/merged" / f"{stem}_merged_mask.png")


class OverlayPngSink(_Base):
    """``overlay/frames/{frame:06d}_obj{id:02d}_{label}_overlay.png`` and, with ``merged``,
    ``overlay/merged/{frame:06d}_merged_overlay.png``."""

    def __init__(self, merged: bool = True) -> None:
        self.merged = merged

    def open(self, folder: Path, info: InputInfo) -> None:
        super().open(folder, info)
        (folder / "overlay/frames").mkdir(parents=True, exist_ok=True)
        if self.merged:
            (folder / "overlay/merged").mkdir(parents=True, exist_ok=True)

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        stem = f"{result.index:06d}"
        for i in range(len(result)):
            oid, label = int(result.ids[i]), self.labels[result.labels[i]]
            save_png(draw_overlay(image, result, which=[i]),
                     self.folder / "overlay/frames" / f"{stem}_obj{oid:02d}_{label}_overlay.png")
        if self.merged:
            save_png(merged_overlay(result, image), self.folder / "overlay/merged" / f"{stem}_merged_overlay.png")


# ---------------------------------------------------------------------- videos
class VideoSink(_Base):
    """``video/overlay.mp4`` (every object drawn) or ``video/binary.mp4`` (the merged mask), H.264."""

    def __init__(self, which: str) -> None:
        if which not in ("overlay", "binary"):
            raise ValueError(f"which must be 'overlay' or 'binary', got {which!r}")
        self.which = which
        self.writer: VideoWriter | None = None

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        if self.writer is None:
            self.writer = VideoWriter(self.folder / "video" / f"{self.which}.mp4", fps=self.info.fps or 25.0)
        if self.which == "binary":
            self.writer.write(np.repeat(merged_mask_u8(result)[..., None], 3, axis=2))
        else:
            self.writer.write(merged_overlay(result, image))

    def close(self, summary: RunSummary) -> None:
        if self.writer is not None:
            self.writer.close()

    abort = close


class ObjectMaskVideoSink(_Base):
    """``video/obj{id:02d}_{label}_mask.mp4``: one mask video per object (black before it appears)."""

    def open(self, folder: Path, info: InputInfo) -> None:
        super().open(folder, info)
        self.writers: dict[int, VideoWriter] = {}
        self.frames = 0

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        h, w = self.info.size
        blank = np.zeros((h, w, 3), np.uint8)
        present = {int(result.ids[i]): i for i in range(len(result))}
        for oid, i in present.items():
            if oid not in self.writers:
                label = self.labels[result.labels[i]]
                writer = VideoWriter(self.folder / "video" / f"obj{oid:02d}_{label}_mask.mp4",
                                     fps=self.info.fps or 25.0)
                for _ in range(self.frames):  # frames before the object appeared
                    writer.write(blank)
                self.writers[oid] = writer
        for oid, writer in self.writers.items():
            if oid in present:
                writer.write(np.repeat(mask_u8(result.masks[present[oid]])[..., None], 3, axis=2))
            else:
                writer.write(blank)
        self.frames += 1

    def close(self, summary: RunSummary) -> None:
        for writer in self.writers.values():
            writer.close()

    abort = close


# ---------------------------------------------------------------------- JSON
class ResultsJsonSink(_Base):
    """``results.json``: a header, one record per frame (streamed as frames arrive), then key frames,
    tracks and stats."""

    def open(self, folder: Path, info: InputInfo) -> None:
        super().open(folder, info)
        self.frames = 0
        self.file = open(folder / "results.json", "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        h, w = info.size
        header = {"input": info.name, "kind": info.kind, "width": w, "height": h, "fps": info.fps,
                  "prompts": list(info.prompts)}
        self.file.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "frames": [\n')

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        rles = frame_rles(result)
        records = [object_record(result, i, rles[i]) for i in range(len(result))]
        frame_rec = {"index": result.index, "time": round(result.time, 6), "source_index": result.source_index,
                     "keyframe": result.keyframe, "kind": result.kind, "objects": records}
        self.file.write(("" if self.frames == 0 else ",\n") + json.dumps(frame_rec, ensure_ascii=False))
        self.frames += 1

    def close(self, summary: RunSummary) -> None:
        tail = {"keyframes": summary.keyframes, "keyframe_scores": summary.keyframe_scores,
                "tracks": summary.tracks, "stats": summary.stats}
        self.file.write("\n], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n")
        self.file.close()

    def abort(self) -> None:
        self.file.close()


class AnnotationsSink(_Base):
    """``annotations.json``: COCO for an image, YouTube-VIS for a video (one annotation per track
    with one RLE per frame, ``null`` where absent), spooled to one small file per track so that no
    mask is held in memory, and assembled at the end."""

    def open(self, folder: Path, info: InputInfo) -> None:
        super().open(folder, info)
        self.spool = folder / ".spool"
        self.spool.mkdir()
        self.files: dict[int, Any] = {}
        self.coco: list[dict] = []
        self.frames = 0

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        rles = frame_rles(result)
        for i in range(len(result)):
            x0, y0, x1, y1 = (float(v) for v in result.boxes[i])
            bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
            area = int(result.masks[i].sum())
            if self.info.kind == "image":
                self.coco.append({"id": len(self.coco) + 1, "image_id": 1,
                                  "category_id": int(result.class_ids[i]) + 1, "segmentation": rles[i],
                                  "bbox": bbox, "area": area, "score": round(float(result.scores[i]), 5),
                                  "iscrowd": 0, "track_id": int(result.ids[i])})
                continue
            oid = int(result.ids[i])
            if oid not in self.files:
                self.files[oid] = open(self.spool / f"{oid}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
            self.files[oid].write(json.dumps([result.index, rles[i], bbox, area]) + "\n")
        self.frames += 1

    def abort(self) -> None:
        for f in self.files.values():
            f.close()

    def close(self, summary: RunSummary) -> None:
        path = self.folder / "annotations.json"
        h, w = self.info.size
        prompts, name, frames = list(self.info.prompts), self.info.name, self.frames
        categories = coco_categories(prompts)
        if self.info.kind == "image":
            data = {"info": {"description": "SOWLv2 predictions"},
                    "images": [{"id": 1, "file_name": name, "width": w, "height": h}],
                    "categories": categories, "annotations": self.coco}
            atomic_write_json(path, data)
            shutil.rmtree(self.spool)
            return
        for f in self.files.values():
            f.close()
        category = {p: k + 1 for k, p in enumerate(prompts)}
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(youtube_vis_opening(Path(name).stem, (h, w), frames, prompts))
            for n, track in enumerate(summary.tracks):
                oid = track["id"]
                seg: list = [None] * frames
                boxes: list = [None] * frames
                areas: list = [None] * frames
                spool = self.spool / f"{oid}.jsonl"
                if spool.exists():
                    with open(spool, encoding="utf-8") as f:
                        for line in f:
                            idx, m, b, a = json.loads(line)
                            seg[idx], boxes[idx], areas[idx] = m, b, a
                ann = {"id": oid, "video_id": 1, "category_id": category.get(track["label"], 0),
                       "score": track.get("best_score"), "iscrowd": 0, "height": h, "width": w,
                       "length": 1, "segmentations": seg, "bboxes": boxes, "areas": areas}
                out.write(("" if n == 0 else ",") + "\n" + json.dumps(ann, ensure_ascii=False))
            out.write("\n]}\n")
        tmp.replace(path)
        shutil.rmtree(self.spool)


def sinks_for(config, kind: str) -> list:
    """The sinks a run writes for an input of ``kind`` (``"image"`` or ``"video"``), in the order of
    today's layout: results.json and annotations first, then PNGs, then videos.

    Args:
        config: a PipelineBaseData (``no_binary``, ``no_overlay``, ``no_merged``, ``mask_videos``).
    """
    video = kind == "video"
    binary, overlay, merged = not config.no_binary, not config.no_overlay, not config.no_merged
    sinks: list = [ResultsJsonSink(), AnnotationsSink()]
    if binary:
        sinks.append(MaskPngSink(merged=merged))
    if overlay:
        sinks.append(OverlayPngSink(merged=merged))
    if video and binary:
        sinks.append(VideoSink("binary"))
    if video and overlay:
        sinks.append(VideoSink("overlay"))
    if video and config.mask_videos:
        sinks.append(ObjectMaskVideoSink())
    return sinks
