"""``sowlv2 serve``: a Gradio web page over ``SOWLv2Pipeline.process_input``.

Upload an image, several images or a video, type prompts, run, and look at the result in the page:
the overlay image or the overlay video (H.264, plays in the browser) with a frame slider, a table of
the tracks, the objects of the chosen frame, and a zip of the whole result folder.

Serving rules:

* the models are loaded once, at start, and kept (a model typed in the page is loaded once and cached);
* one job runs at a time (Gradio's queue with ``concurrency_limit=1`` plus a lock around the models);
  the others wait in the queue, which shows their position;
* each job has its own folder under the work folder, removed when the same browser session starts a
  new job, when it is cancelled or fails, or ``ttl_s`` seconds after it was made;
* uploads over the limit, files that are neither an image nor a video, and empty prompts get a
  message in the page; a failing job is reported and the server goes on.

Only the command line (:func:`serve_main`) prints; gradio is imported lazily, so importing this module
needs only the core dependencies. ``pip install 'sowlv2[app]'`` installs gradio.
"""

# No "from __future__ import annotations": gradio reads the handlers' annotations (gr.Request) at runtime.

import argparse
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.config import PipelineBaseData
from .errors import SOWLv2Error, UsageError

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


def import_gradio():
    """Import gradio with its analytics off; a clear SOWLv2Error when it is not installed."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SOWLv2Error("the web UI needs gradio, which is not installed: pip install 'sowlv2[app]'") from None
    return gr


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
            from .models import registry

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
        from .keyframes import VJepa2Selector
        from .optimizations import create_vjepa2_optimizer

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

    from .errors import InputError
    from .io.images import IMAGE_SUFFIXES
    from .io.video import VIDEO_SUFFIXES, probe_video

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
        from .io.inputs import discover_inputs, result_name
        from .pipeline import SOWLv2Pipeline

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


# ---------------------------------------------------------------------- the page
def build_app(pipeline_or_config=None, *, workdir: str | Path | None = None,
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, ttl_s: float = DEFAULT_TTL_S, preload: bool = True):
    """Build the Gradio page (``gr.Blocks``) around a pipeline, for ``launch()`` or embedding.

    Args:
        pipeline_or_config: a ``SOWLv2Pipeline`` (its models serve every job), a ``PipelineBaseData``,
            or None (the default settings).
        workdir: folder of the job folders (default: a new temporary folder).
        max_upload_mb: largest upload accepted per file, in MB (also pass it to ``launch(max_file_size=)``,
            as :func:`serve` does, so the browser refuses it before uploading).
        ttl_s: seconds a job folder is kept.
        preload: load the configured detector and tracker now rather than at the first job.

    Returns:
        The ``gr.Blocks``; its ``sowlv2`` attribute is the :class:`WebApp` behind it.

    Raises:
        SOWLv2Error: gradio is not installed; ModelLoadError: a configured model cannot be loaded.
    """
    gr = import_gradio()
    from .pipeline import SOWLv2Pipeline

    if isinstance(pipeline_or_config, SOWLv2Pipeline):
        pipeline = pipeline_or_config
    else:
        config = pipeline_or_config if pipeline_or_config is not None else PipelineBaseData()
        pipeline = SOWLv2Pipeline(config.replace(progress=False))
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="sowlv2-serve-")
    web = WebApp(pipeline, Path(workdir), max_upload_mb=max_upload_mb, ttl_s=ttl_s)
    if preload:
        web.models.preload()
    _start_sweeper(web.jobs)
    cfg = pipeline.config
    det_choices = list(dict.fromkeys([cfg.detector, "demo"]))
    trk_choices = list(dict.fromkeys([cfg.tracker, "demo"]))

    with gr.Blocks(title="SOWLv2", analytics_enabled=False, delete_cache=(int(max(60, ttl_s)), int(ttl_s))) as blocks:
        gr.Markdown("## SOWLv2 — text-prompted segmentation and tracking\n"
                    "Upload an image, several images or a video, say what to find, and run.")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="Image(s) or a video", file_count="multiple", file_types=["image", "video"],
                                elem_id="sowlv2-files")
                prompts = gr.Textbox(label="Prompts (one per line, or comma separated)", lines=3,
                                     placeholder="red circle\nblue square", elem_id="sowlv2-prompts")
                with gr.Accordion("Models and settings", open=False):
                    detector = gr.Dropdown(det_choices, value=cfg.detector, allow_custom_value=True,
                                           label="Detector (hub id, folder or 'demo')", elem_id="sowlv2-detector")
                    tracker = gr.Dropdown(trk_choices, value=cfg.tracker, allow_custom_value=True,
                                          label="Tracker (hub id, folder or 'demo')", elem_id="sowlv2-tracker")
                    threshold = gr.Slider(0.0, 1.0, value=cfg.threshold, step=0.01, label="Detection threshold",
                                          elem_id="sowlv2-threshold")
                    keyframes = gr.Radio(["every N frames", "V-JEPA 2 (budget)"],
                                         value="V-JEPA 2 (budget)" if cfg.enable_vjepa2 else "every N frames",
                                         label="Key frames (where the detector runs)")
                    every = gr.Number(value=cfg.detect_every, precision=0, minimum=1, label="N (every N frames)",
                                      elem_id="sowlv2-every")
                    budget = gr.Slider(0.01, 1.0, value=cfg.keyframe_budget, step=0.01,
                                       label="V-JEPA 2 budget (share of frames)")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="sowlv2-run")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="sowlv2-cancel")
                status = gr.Markdown("", elem_id="sowlv2-status")
            with gr.Column(scale=2):
                video = gr.Video(label="Overlay video", visible=False, interactive=False, elem_id=VIDEO_ELEM_ID,
                                 buttons=["download"], height=360)
                frame_image = gr.Image(label="Overlay", type="filepath", interactive=False, visible=False,
                                       elem_id="sowlv2-frame", height=360)
                slider = gr.Slider(0, 1, value=0, step=1, label="Frame", visible=False, elem_id="sowlv2-slider")
                fps = gr.Number(value=0.0, visible=False)
                gallery = gr.Gallery(label="Objects of this frame", columns=4, height=260, visible=False,
                                     object_fit="contain", elem_id="sowlv2-gallery")
                tracks = gr.Dataframe(headers=TRACK_HEADERS, label="Tracks", interactive=False, visible=False,
                                      elem_id="sowlv2-tracks")
                download = gr.File(label="Download the results (zip)", visible=False, elem_id="sowlv2-zip")

        settings_inputs = [detector, tracker, threshold, keyframes, every, budget]

        def _settings(det, trk, thr, kf, ev, bud) -> dict:
            return {"detector": det, "tracker": trk, "threshold": thr, "keyframes": kf,
                    "every": int(ev) if ev is not None else 1, "budget": bud}

        def arm(file_list, text, det, trk, thr, kf, ev, bud, request: gr.Request):
            """Checks before queueing (a visible error, nothing queued) and arms the Cancel flag."""
            session = web.jobs.session(request.session_hash)
            session.cancel.clear()
            try:
                web.check(file_list, text, _settings(det, trk, thr, kf, ev, bud))
            except SOWLv2Error as exc:
                raise gr.Error(_clean_message(exc), print_exception=False) from None
            return "Queued…"

        def run(file_list, text, det, trk, thr, kf, ev, bud, request: gr.Request,
                progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress tracker
            session = web.jobs.session(request.session_hash)

            def report(done, total, desc):
                progress((done, total) if total else None, desc=desc, unit="frames")

            hidden = [gr.update(visible=False)] * 6
            try:
                _, prompt_list = web.check(file_list, text, _settings(det, trk, thr, kf, ev, bud))
                t0 = time.perf_counter()
                view = web.run(session, list(file_list), prompt_list, _settings(det, trk, thr, kf, ev, bud),
                               progress=report)
            except JobCancelled:
                gr.Warning("Cancelled: nothing was kept.")
                return ["Cancelled: nothing was kept.", *hidden, gr.update(value=0.0)]
            except SOWLv2Error as exc:
                raise gr.Error(_clean_message(exc, web.jobs.workdir), print_exception=False) from None
            except Exception as exc:  # noqa: BLE001 - the server goes on; the page gets one line
                log.exception("a job failed")
                raise gr.Error(_clean_message(exc, web.jobs.workdir), print_exception=False) from None
            seconds = time.perf_counter() - t0
            rows = _track_rows(view.results)
            merged, objects = web.frame_files(view, 0)
            n = len(view.frames)
            what = f"{n} frames" if view.kind == "video" else f"{n} image(s)"
            text_out = f"Done: {len(rows)} object(s) in {what}, {seconds:.1f} s."
            return [
                text_out,
                gr.update(value=str(view.results[0] / "video/overlay.mp4"), visible=True) if view.kind == "video"
                else gr.update(value=None, visible=False),
                gr.update(value=str(merged) if merged else None, visible=True,
                          label="Overlay of the chosen frame" if view.kind == "video" else "Overlay"),
                gr.update(maximum=max(1, n - 1), value=0, visible=n > 1,
                          label="Frame" if view.kind == "video" else "Image"),
                gr.update(value=objects, visible=True),
                gr.update(value=rows, visible=True),
                gr.update(value=str(web.zip_path(session)), visible=True),
                gr.update(value=view.fps),
            ]

        def show(index, fps_value, request: gr.Request):
            session = web.jobs.session(request.session_hash)
            if session.view is None:
                return gr.update(), gr.update()
            merged, objects = web.frame_files(session.view, index)
            return gr.update(value=str(merged) if merged else None), gr.update(value=objects)

        def cancel(request: gr.Request):
            web.jobs.session(request.session_hash).cancel.set()
            gr.Info("Cancelling: the job stops after the current frame.")

        outputs = [status, video, frame_image, slider, gallery, tracks, download, fps]
        run_btn.click(arm, [files, prompts, *settings_inputs], [status], concurrency_limit=None,
                      show_progress="hidden").success(
            run, [files, prompts, *settings_inputs], outputs, concurrency_limit=1, concurrency_id="models")
        cancel_btn.click(cancel, None, None, concurrency_limit=None, show_progress="hidden")
        seek = (f"(f, fps) => {{ const v = document.querySelector('#{VIDEO_ELEM_ID} video'); "
                "if (v && fps > 0) { v.pause(); v.currentTime = (f + 0.5) / fps; } return [f, fps]; }")
        slider.change(show, [slider, fps], [frame_image, gallery], js=seek, concurrency_limit=None,
                      show_progress="hidden")
    blocks.sowlv2 = web
    return blocks


def _start_sweeper(jobs: JobStore) -> None:
    """Remove expired job folders in the background (a daemon thread per store)."""
    period = max(1.0, min(60.0, jobs.ttl_s / 4))

    def loop():
        while True:
            time.sleep(period)
            try:
                jobs.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping
                log.debug("sweeping job folders failed", exc_info=True)

    threading.Thread(target=loop, name="sowlv2-job-sweeper", daemon=True).start()


def serve(pipeline_or_config=None, *, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
          workdir: str | Path | None = None, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          ttl_s: float = DEFAULT_TTL_S, share: bool = False, block: bool = True, quiet: bool = False):
    """Build the page and serve it on ``host:port`` (loopback by default; ``share`` makes a public
    gradio.live link and is off by default).

    Args:
        block: wait until the server stops (Ctrl-C); False returns at once.

    Returns:
        ``(blocks, local_url)``; ``blocks.close()`` stops a server started with ``block=False``.
    """
    blocks = build_app(pipeline_or_config, workdir=workdir, max_upload_mb=max_upload_mb, ttl_s=ttl_s)
    blocks.queue(default_concurrency_limit=1)
    _, url, _ = blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                              max_file_size=f"{max_upload_mb:g}mb", allowed_paths=[str(blocks.sowlv2.jobs.workdir)],
                              ssr_mode=False, mcp_server=False, quiet=quiet, footer_links=[])
    if block:
        wait(blocks)
    return blocks, url


def wait(blocks) -> None:
    """Wait until the server stops; Ctrl-C (or SIGTERM under ``sowlv2``) closes it, removes the job
    folders, and returns."""
    try:
        while blocks.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        blocks.close()
        web = getattr(blocks, "sowlv2", None)
        if web is not None:
            web.jobs.clear()


# ---------------------------------------------------------------------- command line
SERVER_KEYS = ("host", "port", "workdir", "max_upload_mb", "share", "ttl")


def serve_parser() -> argparse.ArgumentParser:
    """``sowlv2 serve``: the server's flags plus the main command's model, detection and video flags."""
    from .cli import _Parser, build_parser

    p = _Parser(prog="sowlv2 serve", argument_default=argparse.SUPPRESS,
                description="Serve the SOWLv2 web page (Gradio): upload images or a video, type prompts, "
                            "look at and download the results.")
    s = p.add_argument_group("server")
    s.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860; 0: any free port)")
    s.add_argument("--workdir", default=None, metavar="DIR", help="folder of the job folders (default: a temp folder)")
    s.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="largest upload accepted, per file (default 500)")
    s.add_argument("--ttl", type=float, default=DEFAULT_TTL_S, metavar="SECONDS",
                   help="remove a job's folder this long after it ran (default 3600)")
    s.add_argument("--share", action="store_true", default=False,
                   help="also serve on a public gradio.live link (off by default)")
    s.add_argument("--config", dest="config_file", metavar="FILE.yaml",
                   help="YAML file of settings, as for the main command (input/prompt keys are ignored)")
    s.add_argument("-v", "--verbose", action="store_true", help="more logging; tracebacks on errors")
    s.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    for group in build_parser()._action_groups:
        if group.title in ("models", "detection", "video"):
            target = p.add_argument_group(group.title)
            for action in group._group_actions:
                target._add_action(action)
    return p


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_main(argv: list[str]) -> int:
    """``sowlv2 serve ...``: parse, load the models, serve until Ctrl-C. Returns the exit code."""
    from .cli import _setup_logging, config_from_args

    ns = serve_parser().parse_args(argv)
    verbose, quiet = getattr(ns, "verbose", False), getattr(ns, "quiet", False)
    _setup_logging(verbose, quiet)
    server = {k: getattr(ns, k) for k in SERVER_KEYS}
    for k in SERVER_KEYS:
        delattr(ns, k)
    if not 0 <= server["port"] <= 65535:
        raise UsageError(f"--port: must be in 0..65535, got {server['port']}")
    if not server["max_upload_mb"] > 0:
        raise UsageError(f"--max-upload-mb: must be positive, got {server['max_upload_mb']:g}")
    if not server["ttl"] > 0:
        raise UsageError(f"--ttl: must be positive, got {server['ttl']:g}")
    config = config_from_args(ns).replace(input=None, prompt=[], progress=False)
    import_gradio()  # before loading models: a missing gradio is reported at once
    from .pipeline import SOWLv2Pipeline

    pipeline = SOWLv2Pipeline(config)
    port = server["port"] or _free_port(server["host"])
    blocks, url = serve(pipeline, host=server["host"], port=port, workdir=server["workdir"],
                        max_upload_mb=server["max_upload_mb"], ttl_s=server["ttl"], share=server["share"],
                        block=False, quiet=True)
    print(f"sowlv2 serve: {url} (models {config.detector}, {config.tracker} on {pipeline.device}; "
          f"jobs in {blocks.sowlv2.jobs.workdir}; Ctrl-C stops)", flush=True)
    wait(blocks)
    print("sowlv2 serve: stopped", flush=True)
    return 0
