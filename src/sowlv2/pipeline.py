"""The SOWLv2 pipeline: detect (OWLv2) -> segment / track (SAM 2) -> write.

    frames (PyAV, streaming) -> key-frame selector (cadence | V-JEPA 2) -> detector on key frames
        -> SAM 2 video session tracks every frame -> association (stable ids) -> writers

An image is a one-frame video: the detector, then one SAM 2 image encoding with all boxes decoded
together. ``process_image`` and ``track`` return results without writing; ``process_video`` and
``process`` write the output layout described in the README.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data.config import PipelineBaseData
from .engine import (
    STAGES,
    Engine,
    RunRecord,
    StageHook,
    VideoRunState,  # noqa: F401 - the name before the engine (sowlv2.pipeline.VideoRunState)
    frame_result,
)
from .errors import SOWLv2Error, UsageError
from .export import export_sinks
from .io.images import read_image, to_rgb
from .io.inputs import InputItem, discover_inputs, iter_frames, video_fps
from .io.sinks import InputWriter
from .io.video import probe_video
from .tracking.association import TrackManager
from .types import Detections, Frame, FrameResult

log = logging.getLogger(__name__)

WRITE_QUEUE_FRAMES = 8  # frames a video's background writer may fall behind before the models wait


@dataclass
class InputReport:
    name: str
    path: str
    kind: str
    status: str  # done | failed | skipped
    objects: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    output: str | None = None


def _as_image(image) -> tuple[np.ndarray, str]:
    if isinstance(image, (str, Path)):
        return read_image(image), Path(image).name
    if isinstance(image, Image.Image):
        return to_rgb(image), "image"
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise UsageError(f"image: expected (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3]), "image"


class SOWLv2Pipeline:
    """Text-prompted segmentation of images and videos.

    Args:
        config: all settings (``PipelineBaseData``); keyword overrides are applied on top.
        background_write: write a video's outputs on a background thread while the models process the
            next frames (the outputs are the same either way); False writes each frame before the next.
        detector: use this detector instead of loading ``config.owl_model``; anything with
            ``detect(image, prompts, threshold=, nms_iou=, max_objects=) -> Detections`` (see
            ``models.owlv2.Owlv2Detector``), e.g. another open-vocabulary detector.
        segmenter: instead of loading SAM 2 for images; ``segment(image, boxes) -> (masks, scores)``
            (see ``models.sam2_image.Sam2ImageSegmenter``).
        tracker: instead of loading SAM 2 for videos; the methods of ``models.sam2_video.Sam2VideoTracker``
            (``sowlv2.stages.VideoTracker``).
        selector: a function returning a fresh key-frame selector for each video (default: from the
            config, ``keyframes.make_selector``); see ``keyframes.CadenceSelector``.
        device: the torch device of injected models (default: from ``config.device``).
        association: the association stage's factory, called as ``association(match_iou=,
            max_lost=)`` once per video (default ``TrackManager``; a subclass can be passed as is).
        stage_hook: called as ``stage_hook(stage, seconds)`` each time the engine adds time to a
            stage (e.g. a benchmark's recorder); see ``engine.RunRecord``.

    Models are loaded on first use and kept for the pipeline's lifetime; injected ones are used as given.

    Example:
        >>> pipe = SOWLv2Pipeline(PipelineBaseData(device="cpu"))
        >>> result = pipe.process_image("cat.jpg", ["cat"])
        >>> result.masks.shape  # (n, H, W) bool
    """

    def __init__(self, config: PipelineBaseData | None = None, *, background_write: bool = True,
                 detector=None, segmenter=None, tracker=None, selector: Callable[[], Any] | None = None,
                 device=None, association: Callable[..., TrackManager] | None = None,
                 stage_hook: StageHook | None = None, **overrides) -> None:
        config = config or PipelineBaseData()
        self.config = config.replace(**overrides) if overrides else config
        self.background_write = background_write
        self._device = None
        if device is not None:
            from .models.loading import resolve_device

            self._device = resolve_device(str(device))
        self._detector = detector
        self._segmenter = segmenter
        self._tracker = tracker
        self._selector_factory = selector
        self._association = association or TrackManager
        self._vjepa2 = None
        self.stage_hook = stage_hook
        self.last_run: RunRecord | None = None

    # ------------------------------------------------------------------ models (lazy)
    @property
    def device(self):
        if self._device is None:
            from .models.loading import resolve_device

            self._device = resolve_device(self.config.device)
        return self._device

    def _load(self, role: str, name: str):
        from .models import registry
        from .models.loading import loading_bars

        log.info("loading the %s %s", role, name)
        with loading_bars(self.config.progress):
            return registry.load(role, name, self.device, self.config.dtype)

    @property
    def detector(self):
        """The detector (``sowlv2.stages.Detector``), loaded from ``config.detector`` on first use."""
        if self._detector is None:
            self._detector = self._load("detector", self.config.detector)
        return self._detector

    @property
    def segmenter(self):
        """The image segmenter (``sowlv2.stages.ImageSegmenter``) of ``config.tracker``."""
        if self._segmenter is None:
            self._segmenter = self._load("segmenter", self.config.tracker)
        return self._segmenter

    @property
    def tracker(self):
        """The video tracker (``sowlv2.stages.VideoTracker``) of ``config.tracker``."""
        if self._tracker is None:
            self._tracker = self._load("tracker", self.config.tracker)
        return self._tracker

    def _prompts(self, prompts) -> list[str]:
        if prompts is None:
            prompts = self.config.prompt
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise UsageError("prompt: give at least one text prompt, e.g. --prompt cat")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise UsageError("prompt: an empty prompt cannot be detected; give text such as 'cat'")
        return prompts

    def detect(self, image: np.ndarray, prompts: list[str]) -> Detections:
        """Run the detector on an (H, W, 3) uint8 RGB image; boxes in the image's pixels (the
        detector adapter shrinks huge images by its own input size, see ``models.sizing``)."""
        c = self.config
        return self.detector.detect(image, prompts, threshold=c.threshold, nms_iou=c.nms_iou,
                                    max_objects=c.max_objects)

    # ------------------------------------------------------------------ images
    def process_image(self, image, prompts=None) -> FrameResult:
        """Detect and segment the prompts in one image; nothing is written.

        Args:
            image: a path, a PIL image, or an (H, W, 3) uint8 RGB array.
            prompts: text prompts (default: the config's).

        Returns:
            FrameResult with ids 1..n by descending score; ``boxes`` are the detector's boxes.
        """
        arr, _ = _as_image(image)
        return self._segment_image(arr, self._prompts(prompts))

    def _segment_image(self, arr: np.ndarray, prompts: list[str], seconds: dict | None = None) -> FrameResult:
        t0 = time.perf_counter()
        dets = self.detect(arr, prompts)
        t1 = time.perf_counter()
        masks, _ = self.segmenter.segment(arr, dets.boxes)
        t2 = time.perf_counter()
        if seconds is not None:
            seconds["detect"] += t1 - t0
            seconds["track"] += t2 - t1
        n = len(dets)
        return FrameResult(index=0, time=0.0, size=arr.shape[:2], ids=np.arange(1, n + 1, dtype=np.int64),
                           labels=dets.labels, class_ids=dets.class_ids, scores=dets.scores,
                           boxes=dets.boxes, masks=masks, keyframe=True, source_index=0)

    # ------------------------------------------------------------------ videos
    @property
    def vjepa2(self):
        """The V-JEPA 2 encoder adapter (``models.vjepa2.VJepa2VideoOptimizer``) of ``config.vjepa2_model``:
        one per pipeline, so a run loads it once whatever the number of videos (lazily, on the first
        clip it encodes)."""
        if self._vjepa2 is None:
            from .models.vjepa2 import create_vjepa2_optimizer

            self._vjepa2 = create_vjepa2_optimizer(self.config, enable_vjepa2=True)
        return self._vjepa2

    def _selector(self):
        if self._selector_factory is not None:
            return self._selector_factory()
        from .keyframes import make_selector

        return make_selector(self.config, encoder=self.vjepa2 if self._needs_encoder() else None)

    def _needs_encoder(self) -> bool:
        c = self.config
        return (self._selector_factory is None and c.enable_vjepa2
                and c.keyframe_strategy not in ("uniform", "pixel"))

    def track(self, video, prompts=None, selector=None) -> Iterator[FrameResult]:
        """Track the prompts through a video, yielding one FrameResult per processed frame.

        Args:
            video: a video file, a folder of frames, an InputItem, or an iterable of Frame.
            prompts: text prompts (default: the config's).
            selector: a key-frame selector (default: from the config: ``--detect-every`` cadence,
                V-JEPA 2 with ``enable_vjepa2``, pixel differences with ``keyframe_strategy="pixel"``),
                deciding per frame detect, track or fill (``--track-budget``, ``--max-gap``).

        Nothing is written and nothing is kept: memory does not grow with the video's length.
        Key frames, tracks and timings of the run are in ``self.last_run`` as it goes.
        """
        for _, result in self._track_frames(video, prompts, selector):
            yield result

    def _track_frames(self, video, prompts=None, selector=None) -> Iterator[tuple[Frame, FrameResult]]:
        prompts = self._prompts(prompts)
        record = RunRecord(hook=self.stage_hook)
        self.last_run = record
        frames = self._frames(video, record)
        c = self.config
        engine = Engine(detector=self.detector, tracker=self.tracker, selector=selector or self._selector(),
                        prompts=prompts, record=record,
                        detect_options={"threshold": c.threshold, "nms_iou": c.nms_iou, "max_objects": c.max_objects},
                        association=lambda: self._association(match_iou=c.match_iou, max_lost=c.max_lost),
                        fill=c.fill)
        return engine.run(frames)

    def _frames(self, video, state: RunRecord) -> Iterable[Frame]:
        if isinstance(video, (str, Path)):
            items = discover_inputs(video, frames=Path(video).is_dir())
            video = items[0]
        if isinstance(video, InputItem):
            state.fps = video_fps(video, self.config.fps)
            return iter_frames(video, fps=self.config.fps)
        return video

    _frame_result = staticmethod(frame_result)

    def process_video(self, video_path, prompt=None, output_dir=None) -> Path:
        """Track a video and write its outputs under ``output_dir/<video name>/``. Returns that folder."""
        items = discover_inputs(video_path, frames=Path(video_path).is_dir())
        report = self._run_item(items[0], self._prompts(prompt), Path(output_dir or self.config.output))
        if report.status == "failed":
            raise SOWLv2Error(report.error or f"{video_path}: failed")
        return Path(report.output)

    def _write_video(self, item: InputItem, prompts: list[str], out_root: Path,
                     on_frame: Callable[[int, int | None], None] | None = None) -> InputReport:
        fps = video_fps(item, self.config.fps)
        total = None
        if item.kind == "video":
            info = probe_video(item.path)
            total = info.frames or None
            if self.config.fps and info.fps:
                fps = min(fps, info.fps)
                total = int(round(total * fps / info.fps)) if total else None
        writer = None
        # Models load before the bar starts: loading is not counted in the first frame (the ETA), and
        # its log lines are not printed onto the bar.
        _ = self.detector, self.tracker
        if self._needs_encoder():
            _ = self.vjepa2.is_available  # loads V-JEPA 2 now (or logs why it cannot, once)
        bar = _progress(total, item.name, self.config.progress)
        try:
            for frame, result in self._track_frames(item, prompts):
                if writer is None:
                    writer = InputWriter(out_root / item.name, item.path.name, "video", prompts,
                                         result.size, self.config, fps=fps, background=self.background_write,
                                         queue_size=WRITE_QUEUE_FRAMES,
                                         extra_sinks=export_sinks(self.config.export), source=item.path)
                writer.write(result, frame.image)  # with background_write: queued; raises a worker error
                bar.update(1)
                if on_frame is not None:
                    on_frame(self.last_run.frames, total)
                bar.set_postfix(objects=len(result), refresh=False)
            state = self.last_run
            out = writer.close(state.keyframes, state.keyframe_scores, state.tracks, state.stats())
            state.write_thread_seconds = writer.worker_seconds
            log.debug("%s: writer thread busy %.3f s, models waited %.3f s for it", item.name,
                      writer.worker_seconds, writer.seconds)
            writer = None
        finally:
            bar.close()
            if writer is not None:
                writer.abort()
        return InputReport(item.name, str(item.path), item.kind, "done", objects=len(state.tracks),
                           frames=state.frames, output=str(out))

    def _write_image(self, item: InputItem, prompts: list[str], out_root: Path,
                     on_frame: Callable[[int, int | None], None] | None = None) -> InputReport:
        seconds = dict.fromkeys(STAGES, 0.0)
        t0 = time.perf_counter()
        arr = read_image(item.path)
        seconds["decode"] = time.perf_counter() - t0
        result = self._segment_image(arr, prompts, seconds)
        if len(result) == 0:
            log.info("%s: nothing found for %s", item.path.name, ", ".join(repr(p) for p in prompts))
        writer = InputWriter(out_root / item.name, item.path.name, "image", prompts, result.size, self.config,
                             extra_sinks=export_sinks(self.config.export), source=item.path)
        try:
            writer.write(result, arr)
            seconds["total"] = time.perf_counter() - t0
            stats = {"frames": 1, "detector_calls": 1, "seconds": {k: round(v, 4) for k, v in seconds.items()}}
            tracks = [{"id": int(i), "label": lab, "first_frame": 0, "last_frame": 0,
                       "best_score": round(float(s), 5)}
                      for i, lab, s in zip(result.ids, result.labels, result.scores)]
            out = writer.close([0], [None], tracks, stats)
        except BaseException:
            writer.abort()
            raise
        if on_frame is not None:
            on_frame(1, 1)
        return InputReport(item.name, str(item.path), "image", "done", objects=len(result), frames=1,
                           output=str(out))

    def process_input(self, item: InputItem, prompts: list[str], out_root: Path,
                      on_frame: Callable[[int, int | None], None] | None = None) -> InputReport:
        """Process one input into ``out_root/<item.name>/`` (written atomically); the per-input
        function every engine calls (the local runner, Ray workers, the web UI).

        Args:
            item: the input (``io.inputs.discover_inputs`` makes them).
            prompts: the text prompts.
            out_root: the run's output folder.
            on_frame: called after each frame is handed to the writers as ``on_frame(done, total)``
                (``total`` None when unknown), e.g. for a progress display.

        Returns:
            The InputReport (status ``done``).

        Raises:
            InputError: the input cannot be read; UsageError / ModelLoadError: the run cannot go on.
            Nothing half-written is left in either case.
        """
        t0 = time.perf_counter()
        if item.is_video:
            report = self._write_video(item, prompts, Path(out_root), on_frame)
        else:
            report = self._write_image(item, prompts, Path(out_root), on_frame)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    _run_item = process_input  # the name before the engines

    # ------------------------------------------------------------------ whole runs
    def process(self, input=None, prompts=None, output_dir=None) -> list[InputReport]:  # noqa: A002
        """Do what the CLI does: every input under ``input`` into ``output_dir``, on ``config.engine``
        (``local``: here, one input after another; ``ray``: Ray workers, see ``sowlv2.runner``).

        Everything that can be checked is checked before anything is written: the inputs exist, the
        output folder is usable (empty unless ``overwrite`` / ``resume``), no result folder would
        replace something SOWLv2 did not write. A bad input (InputError, or an unexpected failure on
        that input) is logged as one error and skipped; the others go on. A model or setting error
        stops the run. ``OUTPUT/run.json`` records the settings, versions and each input's status as
        the run goes; a run that completes nothing in an output folder that was empty leaves nothing.

        Args:
            input: a file, a folder or a glob (default: ``config.input``, else ``config.input_list``).

        Returns:
            one InputReport per input (status ``done``, ``failed`` or ``skipped``).

        Raises:
            UsageError, ModelLoadError: the run cannot go on (nothing half-written is left).
            InputError: the only input is bad.
            KeyboardInterrupt: after marking run.json ``interrupted`` (unfinished results removed).
        """
        from .runner import run

        return run(self, input, prompts, output_dir)


def _progress(total: int | None, name: str, enabled: bool):
    from .progress import progress_bar

    return progress_bar(total, name, enabled)
