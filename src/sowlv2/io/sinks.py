"""Writers that save one input's results as frames arrive (nothing is held to the end).

An input's folder is written under a hidden ``.<name>.partial`` name and renamed into place only
when complete, so a result folder is either complete or absent. Groups switched off by the config
(``no_binary``, ``no_overlay``, ``no_merged``) are never written.

``InputWriter(..., background=True)`` does the per-frame work (RLE, PNG, overlays, H.264 encoding)
on one worker thread fed by a bounded queue, so the models go on with the next frames meanwhile;
memory stays bounded (the caller blocks when the writer is ``queue_size`` frames behind) and a
worker error is raised in the caller's thread at its next ``write`` or at ``close``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UsageError
from ..types import FrameResult
from ..viz import draw_overlay
from . import rle
from .video import VideoWriter

log = logging.getLogger(__name__)

_MAX_LABEL = 40
_STOP = object()  # the sentinel that ends a background writer's worker
_POLL_S = 0.1  # how often a caller blocked on a full queue checks that the worker is still alive


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


def _mask_u8(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) uint8 0/255, with one full-size array made (not two)."""
    return mask.view(np.uint8) * np.uint8(255)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to a temporary name, then rename it into place (readers never see half a file).

    Lone surrogates (undecodable bytes of a file name) are written as ``\\udcXX`` escapes, which is
    still valid JSON.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8", "backslashreplace"))
    os.replace(tmp, path)


def partial_dir(final_dir: Path) -> Path:
    """The hidden name an input's folder is written under until it is complete."""
    return final_dir.with_name(f".{final_dir.name}.partial")


def is_result_folder(path: Path) -> bool:
    """Whether ``path`` is a result folder a SOWLv2 run wrote (it holds a results.json)."""
    return path.is_dir() and (path / "results.json").is_file()


def check_replaceable(final_dir: Path) -> None:
    """Raise UsageError if ``final_dir`` exists and is not a SOWLv2 result folder: a run replaces
    only its own results and never deletes anything else."""
    if (final_dir.exists() or final_dir.is_symlink()) and (final_dir.is_symlink() or not is_result_folder(final_dir)):
        raise UsageError(f"output: {final_dir} exists and is not a SOWLv2 result folder (no results.json); "
                         "it is left alone: move it away or choose another --output")


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


class InputWriter:
    """Write everything for one input (an image or a video) into ``out_dir``.

    Args:
        out_dir: final folder (``OUTPUT/<input name>``); written as ``.<name>.partial`` first.
        name: the input's file name (recorded in the JSON).
        kind: ``"image"`` or ``"video"``.
        prompts: the prompts, in order (category ids are positions + 1).
        size: (height, width) of the frames.
        fps: processing frame rate (videos).
        config: a PipelineBaseData (output switches).
        background: write on one worker thread (frames keep their order): ``write`` only queues the
            frame, blocking while ``queue_size`` frames wait. ``close`` or ``abort`` must be called
            (they end the thread). False: ``write`` does the work before it returns.
        queue_size: frames that may wait for the worker (with ``background``); at most
            ``queue_size + 1`` frames are held by the writer at any time.

    Attributes:
        seconds: time the caller spent in ``write`` and ``close`` (with ``background``: waiting for a
            place in the queue, for the worker to finish, and finalising). Saved as
            ``stats.seconds.write`` in results.json.
        worker_seconds: time the worker thread spent writing frames (0.0 without ``background``).
    """

    def __init__(self, out_dir: Path, name: str, kind: str, prompts: list[str], size: tuple[int, int],
                 config, fps: float | None = None, background: bool = False, queue_size: int = 8) -> None:
        from .inputs import result_name

        if background and queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.final_dir = Path(out_dir)
        if result_name(self.final_dir.name) != self.final_dir.name:
            raise ValueError(f"{self.final_dir.name!r} is not a safe result-folder name (see io.inputs.result_name)")
        check_replaceable(self.final_dir)
        self.dir = partial_dir(self.final_dir)
        if self.dir.exists():
            shutil.rmtree(self.dir)  # our own leftovers from an interrupted run
        self.dir.mkdir(parents=True)
        self.name, self.kind, self.prompts, self.size, self.fps = name, kind, list(prompts), size, fps
        self.labels = safe_labels(prompts)
        self.binary = not config.no_binary
        self.overlay = not config.no_overlay
        self.merged = not config.no_merged
        self.mask_videos = config.mask_videos and kind == "video"
        self.seconds = 0.0
        self.frames = 0
        for sub, on in (("binary/frames", self.binary), ("binary/merged", self.binary and self.merged),
                        ("overlay/frames", self.overlay), ("overlay/merged", self.overlay and self.merged)):
            if on:
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._videos: dict[str, VideoWriter] = {}
        self._object_videos: dict[int, VideoWriter] = {}
        self._results = open(self.dir / "results.json", "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        h, w = size
        header = {"input": name, "kind": kind, "width": w, "height": h, "fps": fps, "prompts": self.prompts}
        self._results.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "frames": [\n')
        self._annotations = _AnnotationSpool(self.dir / ".spool", kind)
        self.worker_seconds = 0.0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
            self._discard = threading.Event()
            self._thread = threading.Thread(target=self._work, name=f"sowlv2-writer[{self.final_dir.name}]",
                                            daemon=True)
            self._thread.start()

    @property
    def background(self) -> bool:
        """Whether frames are written on a worker thread."""
        return self._thread is not None

    # ------------------------------------------------------------------ per frame
    def write(self, result: FrameResult, image: np.ndarray) -> None:
        """Write (or, with ``background``, queue) one frame's masks, overlays, video frames and records.

        Args:
            result: the frame's result; its arrays must not change afterwards (the worker reads them).
            image: (H, W, 3) uint8 RGB frame the overlays are drawn on (not modified, kept until written).

        Raises:
            Whatever the worker raised on an earlier frame (the original exception), with ``background``.
        """
        t0 = time.perf_counter()
        if self._thread is None:
            self._write_frame(result, image)
        else:
            self._raise_worker_error()
            if not self._offer((result, image)):
                self._raise_worker_error()
                raise RuntimeError(f"{self.final_dir}: the writer thread has stopped (write after close or abort)")
        self.seconds += time.perf_counter() - t0

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _offer(self, item: Any) -> bool:
        """Put ``item`` on the queue, waiting while it is full; False if the worker is no longer alive
        (a caller never blocks on a queue that nobody empties)."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        """The worker: write queued frames in order until the sentinel; stop at the first error."""
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._discard.is_set():
                continue
            t0 = time.perf_counter()
            try:
                self._write_frame(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
                log.debug("writer thread of %s failed", self.final_dir, exc_info=True)
                self._error = exc
                return
            finally:
                item = None  # do not hold the frame while waiting for the next one
                self.worker_seconds += time.perf_counter() - t0

    def _stop_worker(self, discard: bool) -> None:
        """End the worker and wait for it; with ``discard``, frames still queued are dropped."""
        if self._thread is None:
            return
        if discard:
            self._discard.set()
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._offer(_STOP)
        self._thread.join()

    def _write_frame(self, result: FrameResult, image: np.ndarray) -> None:
        """Do the work of ``write`` for one frame (on the worker thread with ``background``)."""
        stem = f"{result.index:06d}"
        records = []
        for i in range(len(result)):
            mask_rle = rle.encode(result.masks[i])
            records.append(object_record(result, i, mask_rle))
            self._annotations.add(result, i, mask_rle)
        frame_rec = {"index": result.index, "time": round(result.time, 6), "source_index": result.source_index,
                     "keyframe": result.keyframe, "kind": result.kind, "objects": records}
        self._results.write(("" if self.frames == 0 else ",\n") + json.dumps(frame_rec, ensure_ascii=False))

        for i in range(len(result)):
            oid, label = int(result.ids[i]), self.labels[result.labels[i]]
            if self.binary:
                _save_png(_mask_u8(result.masks[i]),
                          self.dir / "binary/frames" / f"{stem}_obj{oid:02d}_{label}_mask.png")
            if self.overlay:
                _save_png(draw_overlay(image, result, which=[i]),
                          self.dir / "overlay/frames" / f"{stem}_obj{oid:02d}_{label}_overlay.png")
        video = self.kind == "video"
        # Merged images are made only when something is written from them (full-size work on big images).
        if self.binary and (self.merged or video):
            merged_mask = _mask_u8(result.merged_mask)
            if self.merged:
                _save_png(merged_mask, self.dir / "binary/merged" / f"{stem}_merged_mask.png")
            if video:
                self._video("binary").write(np.repeat(merged_mask[..., None], 3, axis=2))
        if self.overlay and (self.merged or video):
            merged_overlay = draw_overlay(image, result)
            if self.merged:
                _save_png(merged_overlay, self.dir / "overlay/merged" / f"{stem}_merged_overlay.png")
            if video:
                self._video("overlay").write(merged_overlay)
        if video and self.mask_videos:
            self._write_object_videos(result)
        self.frames += 1

    def _video(self, which: str) -> VideoWriter:
        if which not in self._videos:
            self._videos[which] = VideoWriter(self.dir / "video" / f"{which}.mp4", fps=self.fps or 25.0)
        return self._videos[which]

    def _write_object_videos(self, result: FrameResult) -> None:
        h, w = self.size
        blank = np.zeros((h, w, 3), np.uint8)
        present = {int(result.ids[i]): i for i in range(len(result))}
        for oid, i in present.items():
            if oid not in self._object_videos:
                label = self.labels[result.labels[i]]
                writer = VideoWriter(self.dir / "video" / f"obj{oid:02d}_{label}_mask.mp4", fps=self.fps or 25.0)
                for _ in range(self.frames):  # frames before the object appeared
                    writer.write(blank)
                self._object_videos[oid] = writer
        for oid, writer in self._object_videos.items():
            if oid in present:
                writer.write(np.repeat(_mask_u8(result.masks[present[oid]])[..., None], 3, axis=2))
            else:
                writer.write(blank)

    # ------------------------------------------------------------------ end
    def close(self, keyframes: list[int], keyframe_scores: list[float | None], tracks: list[dict],
              stats: dict) -> Path:
        """Finish every file and move the folder into place. Returns the final folder.

        With ``background``, first waits until the worker has written every queued frame.

        Raises:
            Whatever the worker raised (the original exception); the folder stays ``.partial`` and the
            caller is expected to call ``abort``.
        """
        t0 = time.perf_counter()
        self._stop_worker(discard=False)
        self._raise_worker_error()
        for writer in [*self._videos.values(), *self._object_videos.values()]:
            writer.close()
        tail = {"keyframes": keyframes, "keyframe_scores": keyframe_scores, "tracks": tracks}
        waited = time.perf_counter() - t0
        self.seconds += waited
        stats = dict(stats)
        seconds = stats["seconds"] = dict(stats.get("seconds", {}))
        seconds["write"] = round(self.seconds, 4)
        if "total" in seconds:  # the run is not over until the last frame is written
            seconds["total"] = round(seconds["total"] + waited, 4)
        tail["stats"] = stats
        self._results.write("\n], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n")
        self._results.close()
        self._annotations.finish(self.dir / "annotations.json", self.name, self.size, self.prompts,
                                 self.frames, tracks)
        if self.final_dir.exists() or self.final_dir.is_symlink():
            check_replaceable(self.final_dir)
            shutil.rmtree(self.final_dir)  # --overwrite: replaced only once the new one is complete
        os.replace(self.dir, self.final_dir)
        return self.final_dir

    def abort(self) -> None:
        """Drop everything written for this input (it never reaches its final name).

        With ``background``, frames still queued are discarded and the worker is ended first (after
        the frame it is writing, if any). Safe after a worker error and after a failed ``close``.
        """
        self._stop_worker(discard=True)
        for writer in [*self._videos.values(), *self._object_videos.values()]:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                log.debug("closing a video writer failed during abort", exc_info=True)
        self._results.close()
        self._annotations.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _AnnotationSpool:
    """Collects what annotations.json needs without holding masks in memory.

    Images: COCO (one image, one annotation per object). Videos: YouTube-VIS (one annotation per
    track with one RLE per frame, ``null`` where the track is absent), spooled to one small file per
    track and assembled at the end.
    """

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind = folder, kind
        folder.mkdir()
        self._files: dict[int, Any] = {}
        self._coco: list[dict] = []

    def add(self, result: FrameResult, i: int, mask_rle: dict) -> None:
        x0, y0, x1, y1 = (float(v) for v in result.boxes[i])
        bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        area = int(result.masks[i].sum())
        if self.kind == "image":
            self._coco.append({"id": len(self._coco) + 1, "image_id": 1,
                               "category_id": int(result.class_ids[i]) + 1, "segmentation": mask_rle,
                               "bbox": bbox, "area": area, "score": round(float(result.scores[i]), 5),
                               "iscrowd": 0, "track_id": int(result.ids[i])})
            return
        oid = int(result.ids[i])
        if oid not in self._files:
            self._files[oid] = open(self.folder / f"{oid}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._files[oid].write(json.dumps([result.index, mask_rle, bbox, area]) + "\n")

    def close(self) -> None:
        """Close the spool files (when a run is abandoned)."""
        for f in self._files.values():
            f.close()

    def finish(self, path: Path, name: str, size: tuple[int, int], prompts: list[str], frames: int,
               tracks: list[dict]) -> None:
        h, w = size
        categories = [{"id": k + 1, "name": p, "supercategory": "object"} for k, p in enumerate(prompts)]
        if self.kind == "image":
            data = {"info": {"description": "SOWLv2 predictions"},
                    "images": [{"id": 1, "file_name": name, "width": w, "height": h}],
                    "categories": categories, "annotations": self._coco}
            atomic_write_json(path, data)
            shutil.rmtree(self.folder)
            return
        for f in self._files.values():
            f.close()
        category = {p: k + 1 for k, p in enumerate(prompts)}
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as out:
            video = {"id": 1, "width": w, "height": h, "length": frames,
                     "file_names": [f"{Path(name).stem}/{k:05d}.jpg" for k in range(frames)]}
            head = {"info": {"description": "SOWLv2 predictions (YouTube-VIS format)"}, "videos": [video],
                    "categories": categories}
            out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "annotations": [')
            for n, track in enumerate(tracks):
                oid = track["id"]
                seg: list = [None] * frames
                boxes: list = [None] * frames
                areas: list = [None] * frames
                spool = self.folder / f"{oid}.jsonl"
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
        os.replace(tmp, path)
        shutil.rmtree(self.folder)
