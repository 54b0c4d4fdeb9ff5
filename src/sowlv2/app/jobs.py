"""The web UI's logic without gradio: upload checks, job folders with a TTL, the model cache, running
one job through ``SOWLv2Pipeline.process_input`` and reading its results for the page."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.config import PipelineBaseData
from ..errors import SOWLv2Error, UsageError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 500.0
DEFAULT_TTL_S = 3600.0
MAX_EXTRA_MODELS = 2  # models typed in the page kept per role, besides the configured ones
VIDEO_ELEM_ID = "sowlv2-video"

class JobCancelled(Exception):
    """Raised from ``process_input``'s ``on_frame`` when the user presses Cancel: the input is
    abandoned and nothing half-written is left."""



def split_prompts(text: str | None) -> list[str]:
    """Prompts typed in the page: one per line or comma separated; blanks and repeats dropped.

    >>> split_prompts("red circle, blue square\\nbus")
    ['red circle', 'blue square', 'bus']
    """
    out: list[str] = []
    for part in re.split(r"[,\n;]", text or ""):
        p = " ".join(part.split())
        if p and p not in out:
            out.append(p)
    return out


# ---------------------------------------------------------------------- models
class ModelCache:
    """The models of the app: the configured ones (from the pipeline) and those typed in the page.

    ``get(role, name)`` returns the adapter of ``role`` (``detector``, ``segmenter``, ``tracker``) for
    the checkpoint ``name``; a checkpoint other than the configured one is loaded once and kept (the
    ``MAX_EXTRA_MODELS`` most recently used per role). Not thread-safe: the app calls it under its
    job lock.
    """

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self._extra: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._encoders: dict[tuple[str, int], Any] = {}

    def configured(self, role: str) -> str:
        return self.pipeline.config.detector if role == "detector" else self.pipeline.config.tracker

    def get(self, role: str, name: str):
        if name == self.configured(role):
            return getattr(self.pipeline, role)  # loaded on first use and kept by the pipeline
        key = (role, name)
        if key not in self._extra:
            from ..models import registry

            log.info("loading the %s %s", role, name)
            self._extra[key] = registry.load(role, name, self.pipeline.device, self.pipeline.config.dtype)
            while sum(1 for r, _ in self._extra if r == role) > MAX_EXTRA_MODELS:
                oldest = next(k for k in self._extra if k[0] == role)
                del self._extra[oldest]
        self._extra.move_to_end(key)
        return self._extra[key]

    def selector_factory(self, config: PipelineBaseData):
        """A factory of key-frame selectors for ``config``; the V-JEPA 2 encoder is made once per
        (model, frames per clip) and reused by every job."""
        if not config.enable_vjepa2:
            return None
        from ..keyframes import VJepa2Selector
        from ..optimizations import create_vjepa2_optimizer

        key = (config.vjepa2_model, config.vjepa2_frames_per_clip)
        if key not in self._encoders:
            self._encoders[key] = create_vjepa2_optimizer(config, enable_vjepa2=True)
        optimizer = self._encoders[key]
        return lambda: VJepa2Selector(optimizer, budget=config.keyframe_budget, strategy=config.keyframe_strategy,
                                      clips_per_pass=config.vjepa2_clips_per_pass)

    def preload(self) -> None:
        """Load the configured detector and video tracker now (the image segmenter on first use)."""
        _ = self.pipeline.detector
        _ = self.pipeline.tracker


# ---------------------------------------------------------------------- jobs
@dataclass
class JobView:
    """What the page shows of a finished job.

    Attributes:
        kind: ``"video"`` or ``"images"``.
        results: the result folder of each input, in order.
        frames: for a video, per frame, ``[(id, label, score), ...]``; for images, the same per image.
        fps: the video's frame rate (0.0 for images).
    """

    kind: str
    results: list[Path]
    frames: list[list[tuple[int, str, float]]]
    fps: float = 0.0


@dataclass
class Session:
    """One browser session's job: its folder, its Cancel flag and its result view."""

    cancel: threading.Event = field(default_factory=threading.Event)
    job_dir: Path | None = None
    view: JobView | None = None
    touched: float = field(default_factory=time.time)


class JobStore:
    """Job folders under ``workdir``: one per job, removed after ``ttl_s`` or on the session's next job."""

    def __init__(self, workdir: Path, ttl_s: float) -> None:
        self.workdir = Path(workdir)
        self.ttl_s = float(ttl_s)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sessions: dict[str, Session] = {}
        self.running: Path | None = None  # the job folder being written (never swept)
        self._lock = threading.Lock()

    def session(self, key: str) -> Session:
        with self._lock:
            s = self.sessions.setdefault(key, Session())
            s.touched = time.time()
            return s

    def new_job(self, session: Session) -> Path:
        """Remove the session's previous job folder and make a new one (``job-<time>-<hex>``)."""
        self.remove(session)
        job = self.workdir / f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        job.mkdir()
        session.job_dir = job
        return job

    def remove(self, session: Session) -> None:
        if session.job_dir is not None:
            shutil.rmtree(session.job_dir, ignore_errors=True)
        session.job_dir, session.view = None, None

    def clear(self) -> None:
        """Remove every job folder (the server is stopping), and the work folder itself when empty."""
        for job in self.workdir.glob("job-*"):
            shutil.rmtree(job, ignore_errors=True)
        try:
            self.workdir.rmdir()
        except OSError:
            pass  # the user's folder holds other things: left as it is

    def sweep(self, now: float | None = None) -> int:
        """Remove job folders older than the TTL (and forget idle sessions). Returns how many folders."""
        now = time.time() if now is None else now
        removed = 0
        for job in self.workdir.glob("job-*"):
            try:
                age = now - job.stat().st_mtime
            except OSError:
                continue
            if age > self.ttl_s and job != self.running:
                shutil.rmtree(job, ignore_errors=True)
                removed += 1
        with self._lock:
            for key, s in list(self.sessions.items()):
                if s.job_dir is not None and not s.job_dir.exists():
                    s.job_dir, s.view = None, None
                if s.job_dir is None and now - s.touched > self.ttl_s:
                    del self.sessions[key]
        return removed


def _check_uploads(paths: list[Path], max_upload_mb: float) -> str:
    """Check the uploaded files; return the job's kind (``"video"`` or ``"images"``).

    Raises:
        UsageError: nothing uploaded, a file over the limit, a file that is neither an image nor a
            video (by name and by content), or a video together with other files.
    """
    from PIL import Image, UnidentifiedImageError

    from ..errors import InputError
    from ..io.images import IMAGE_SUFFIXES
    from ..io.video import VIDEO_SUFFIXES, probe_video

    if not paths:
        raise UsageError("upload an image, several images or a video first")
    videos = []
    for p in paths:
        size_mb = p.stat().st_size / 2**20
        if size_mb > max_upload_mb:
            raise UsageError(f"{p.name} is {size_mb:.1f} MB, over this server's upload limit of {max_upload_mb:g} MB")
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES and suffix != ".gif":
            try:
                info = probe_video(p)
            except InputError:
                raise UsageError(f"{p.name} is not a video that can be read (is it really a video file?)") from None
            if info.width <= 0 or info.height <= 0:
                raise UsageError(f"{p.name} is not a video that can be read")
            videos.append(p)
        elif suffix in IMAGE_SUFFIXES:
            try:
                with Image.open(p) as im:
                    im.verify()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                raise UsageError(f"{p.name} is not an image that can be read (is it really an image?)") from None
        else:
            raise UsageError(f"{p.name} is neither an image nor a video; upload images ("
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}) or one video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    if videos and len(paths) > 1:
        raise UsageError("upload one video at a time, or one or more images (not both)")
    return "video" if videos else "images"


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip every file under ``folder`` (paths relative to it); media are stored, JSON deflated."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                compress = zipfile.ZIP_STORED if f.suffix.lower() in (".png", ".mp4", ".jpg") else zipfile.ZIP_DEFLATED
                zf.write(f, f.relative_to(folder).as_posix(), compress_type=compress)
    return zip_path


def _read_view(kind: str, results: list[Path]) -> JobView:
    """Read the results.json of each result folder into the page's view (the RLE masks are dropped)."""
    frames: list[list[tuple[int, str, float]]] = []
    fps = 0.0
    for r in results:
        data = json.loads((r / "results.json").read_text(encoding="utf-8"))
        if kind == "video":
            fps = float(data.get("fps") or 0.0)
        for fr in data["frames"]:
            frames.append([(int(o["id"]), str(o["label"]), float(o["score"])) for o in fr["objects"]])
    return JobView(kind, results, frames, fps)


def _track_rows(results: list[Path]) -> list[list]:
    """Rows of the tracks table: input, id, label, first frame, last frame, best score."""
    rows = []
    for r in results:
        data = json.loads((r / "results.json").read_text(encoding="utf-8"))
        for t in data.get("tracks", []):
            rows.append([r.name, int(t["id"]), t["label"], int(t["first_frame"]), int(t["last_frame"]),
                         round(float(t["best_score"]), 3)])
    return rows


TRACK_HEADERS = ["input", "id", "label", "first frame", "last frame", "best score"]


class WebApp:
    """The page's logic, independent of gradio's components (each method is one event handler).

    Args:
        pipeline: the SOWLv2Pipeline whose configured models serve every job.
        workdir: the folder of the job folders.
        max_upload_mb: largest upload accepted, per file.
        ttl_s: a job folder's lifetime.
    """

    def __init__(self, pipeline, workdir: Path, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 ttl_s: float = DEFAULT_TTL_S) -> None:
        self.pipeline = pipeline
        self.models = ModelCache(pipeline)
        self.jobs = JobStore(workdir, ttl_s)
        self.max_upload_mb = float(max_upload_mb)
        self.lock = threading.Lock()  # one job on the models at a time, whatever the queue does

    # ------------------------------------------------------------------ settings of a job
    def job_config(self, detector: str, tracker: str, threshold: float, keyframes: str, every: int,
                   budget: float) -> PipelineBaseData:
        base = self.pipeline.config
        return base.replace(owl_model=(detector or base.detector).strip(), sam_model=(tracker or base.tracker).strip(),
                            threshold=float(threshold), enable_vjepa2=keyframes.startswith("V-JEPA"),
                            detect_every=int(every), keyframe_budget=float(budget), no_merged=False,
                            no_binary=False, no_overlay=False, progress=False, overwrite=False, resume=False,
                            input=None, prompt=[])

    def check(self, files: list[str] | None, prompts_text: str, settings: dict) -> tuple[str, list[str]]:
        """Validate a request before it is queued. Returns (kind, prompts); raises UsageError."""
        prompts = split_prompts(prompts_text)
        if not prompts:
            raise UsageError("type at least one prompt (one per line, or comma separated), e.g. 'red circle'")
        self.job_config(**settings)  # range errors of the settings
        kind = _check_uploads([Path(f) for f in files or []], self.max_upload_mb)
        return kind, prompts

    # ------------------------------------------------------------------ running
    def run(self, session: Session, files: list[str], prompts: list[str], settings: dict,
            progress=None) -> JobView:
        """Run one job: copy the uploads into a new job folder, process each, zip the results.

        Args:
            session: the caller's session (its previous job is removed; its Cancel flag is watched).
            files: the uploaded files (already checked).
            prompts: the prompts.
            settings: keyword arguments of :meth:`job_config`.
            progress: ``progress(done, total, desc)`` for the page, or None.

        Returns:
            The job's view (also kept in ``session.view``).

        Raises:
            JobCancelled: Cancel was pressed (the job folder is removed).
            SOWLv2Error: the input or a setting is wrong (the job folder is removed).
        """
        from ..io.inputs import discover_inputs, result_name
        from ..pipeline import SOWLv2Pipeline

        def report(done, total, desc):
            if progress is not None:
                progress(done, total, desc)

        if session.cancel.is_set():
            raise JobCancelled()
        report(0, None, "waiting for the models")
        with self.lock:
            self.jobs.sweep()
            job = self.jobs.running = self.jobs.new_job(session)
            try:
                inputs = job / "inputs"
                inputs.mkdir()
                for k, f in enumerate(files):
                    src = Path(f)
                    name = result_name(src.stem) + src.suffix.lower()
                    if (inputs / name).exists():
                        name = f"{k:03d}_{name}"
                    shutil.copyfile(src, inputs / name)
                items = discover_inputs(inputs)
                kind = "video" if any(it.is_video for it in items) else "images"
                config = self.job_config(**settings)
                report(0, None, "loading the models")
                detector = self.models.get("detector", config.detector)
                role = "tracker" if kind == "video" else "segmenter"
                models = {role: self.models.get(role, config.tracker)}
                pipe = SOWLv2Pipeline(config, detector=detector, selector=self.models.selector_factory(config),
                                      device=self.pipeline.device, **models)
                out_root = job / "results"
                out_root.mkdir()
                t0 = time.perf_counter()
                results = []
                for n, item in enumerate(items):
                    def on_frame(done, total, _n=n):
                        if session.cancel.is_set():
                            raise JobCancelled()
                        if kind == "images":
                            done, total = _n + done, len(items)
                        last = pipe.last_run
                        stage = ("detect + track" if last and last.keyframes and last.keyframes[-1] == done - 1
                                 else "track") if kind == "video" else "detect + segment"
                        if total and done >= total:
                            stage = "writing the results"
                        elapsed = time.perf_counter() - t0
                        eta = f", about {elapsed / done * (total - done):.0f} s left" if total and done else ""
                        unit = "frames" if kind == "video" else "images"
                        report(done, total, f"{stage}: {done}/{total or '?'} {unit}, {elapsed:.0f} s{eta}")

                    report(n if kind == "images" else 0, len(items) if kind == "images" else None,
                           f"{item.name}: starting")
                    results.append(Path(pipe.process_input(item, prompts, out_root, on_frame=on_frame).output))
                if session.cancel.is_set():
                    raise JobCancelled()
                report(1, 1, "packing the zip")
                _zip_folder(out_root, job / f"sowlv2_{items[0].name if len(items) == 1 else 'results'}.zip")
                shutil.rmtree(inputs, ignore_errors=True)
                view = _read_view(kind, results)
                session.view = view
                return view
            except BaseException:
                self.jobs.remove(session)
                raise
            finally:
                self.jobs.running = None

    def zip_path(self, session: Session) -> Path | None:
        if session.job_dir is None:
            return None
        found = sorted(session.job_dir.glob("sowlv2_*.zip"))
        return found[0] if found else None

    # ------------------------------------------------------------------ viewing
    @staticmethod
    def frame_files(view: JobView, index: int) -> tuple[Path | None, list[tuple[str, str]]]:
        """The merged overlay of frame (video) or image ``index`` and its objects' overlays with captions.

        Returns:
            ``(merged overlay PNG or None, [(object overlay PNG, "id label score"), ...])``.
        """
        if not view.frames:
            return None, []
        index = max(0, min(int(index), len(view.frames) - 1))
        folder, frame = (view.results[0], index) if view.kind == "video" else (view.results[index], 0)
        stem = f"{frame:06d}"
        merged = folder / "overlay/merged" / f"{stem}_merged_overlay.png"
        scores = {oid: (label, score) for oid, label, score in view.frames[index]}
        objects = []
        for p in sorted((folder / "overlay/frames").glob(f"{stem}_obj*_overlay.png")):
            m = re.match(rf"{stem}_obj(\d+)_", p.name)
            oid = int(m.group(1)) if m else -1
            label, score = scores.get(oid, ("?", float("nan")))
            objects.append((str(p), f"#{oid} {label} ({score:.2f})"))
        return (merged if merged.is_file() else None), objects


def _clean_message(exc: BaseException, *folders: Path | None) -> str:
    """The user-facing line of an error, without the server's folder names."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for folder in folders:
        if folder is not None:
            text = text.replace(str(folder) + os.sep, "").replace(str(folder), "")
    if not isinstance(exc, SOWLv2Error):
        text = f"internal error: {type(exc).__name__}: {text}"
    return text
