"""The engine loop: frames in, one FrameResult per frame out, over pluggable stages.

    frames -> selector (KeyframeDecision per frame: detect | track | fill)
        detect: tracker.track, detector, association (stable ids), tracker.prompt for new objects
        track:  tracker.track only
        fill:   neither model runs; the frame's masks are filled in (``sowlv2.fill``)

The engine knows nothing about files, inputs or run logs: the runner (``SOWLv2Pipeline``) gives it
the stages and a frame stream and writes what it yields. Everything a run gathers besides the
per-frame results (key frames, tracks, stage seconds, model call counts) is in its :class:`RunRecord`.

Filling: with ``fill="interpolate"`` (default) a filled frame is held until the next processed frame
is known and then interpolated between the processed frames before and after it, so the output lags
the tracker by at most the selector's ``max_gap`` frames (memory is bounded by that many frames);
with ``fill="carry"`` a filled frame copies the last processed frame at once (no lag). Filled frames
at the end of a stream (nothing processed after them) are carried. The tracker's session only sees
the processed frames, as consecutive frames.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import fill as filling
from .fill import FILL_MODES
from .stages import KeyframeDecision, KeyframeSelector, VideoTracker
from .tracking.association import TrackManager
from .types import Detections, Frame, FrameResult, masks_to_boxes

STAGES = ("decode", "select", "detect", "track", "write")  # "fill" is added when a frame is filled

StageHook = Callable[[str, float], None]
"""Called as ``hook(stage, seconds)`` each time a stage's timer stops (e.g. the bench's recorder)."""


@dataclass
class RunRecord:
    """What one video run gathered besides its per-frame results (filled in while the engine runs).

    Attributes:
        keyframes: indices of the frames the detector ran on, in order.
        keyframe_scores: the selector's score of each key frame (None where nothing scored it).
        manager: the association stage (tracks and ids) of the run.
        seconds: wall seconds per stage (``decode``, ``select``, ``detect``, ``track``, ``write``,
            ``fill`` once a frame was filled) and ``total`` (since the engine started).
        frames: frames yielded so far (processed and filled).
        detector_calls, tracker_calls, fills: frames the detector ran on, frames the tracker
            processed (key frames included), frames filled.
        fps: the input's processing frame rate, when known.
        write_thread_seconds: busy time of the background writer (``seconds["write"]``: waiting on it).
        hook: optional ``hook(stage, seconds)`` called each time a stage's time is added.
    """

    keyframes: list[int] = field(default_factory=list)
    keyframe_scores: list[float | None] = field(default_factory=list)
    manager: TrackManager | None = None
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    detector_calls: int = 0
    tracker_calls: int = 0
    fills: int = 0
    fps: float | None = None
    write_thread_seconds: float = 0.0
    hook: StageHook | None = field(default=None, repr=False, compare=False)

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` of wall time to ``stage`` (and tell the hook)."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        if self.hook is not None:
            self.hook(stage, seconds)

    @contextlib.contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        """Time the block into ``stage`` (the one way the engine times its stages)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    @property
    def tracks(self) -> list[dict]:
        """Every track of the run so far (id, label, first/last frame, best score)."""
        return [t.to_dict() for t in self.manager.all_tracks()] if self.manager else []

    def stats(self) -> dict:
        """The ``stats`` of results.json: frame and model-call counts, seconds per stage."""
        return {"frames": self.frames, "detector_calls": self.detector_calls, "tracker_calls": self.tracker_calls,
                "fills": self.fills, "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}


VideoRunState = RunRecord  # the name before the engine


class _Timed:
    """Wrap an iterator and time each ``next()`` into ``record``'s ``stage``."""

    def __init__(self, it: Iterable, record: RunRecord, stage: str) -> None:
        self.it, self.record, self.stage = iter(it), record, stage

    def __iter__(self):
        return self

    def __next__(self):
        with self.record.timer(self.stage):
            return next(self.it)


class Engine:
    """One video's loop over the stages.

    Args:
        detector: ``sowlv2.stages.Detector``.
        tracker: ``sowlv2.stages.VideoTracker`` (reset at the start of ``run``).
        selector: ``sowlv2.stages.KeyframeSelector`` (decides detect / track / fill per frame).
        prompts: the text prompts.
        detect_options: keyword arguments of ``detector.detect`` (threshold, nms_iou, max_objects).
        association: a zero-argument factory of the association stage (default ``TrackManager()``);
            its ``associate``, ``update``, ``deduplicate``, ``tracks`` and ``all_tracks`` are used.
        fill: ``"interpolate"`` or ``"carry"`` (see the module docstring).
        record: the RunRecord to fill (default: a new one, ``self.record``).
    """

    def __init__(self, *, detector, tracker: VideoTracker, selector: KeyframeSelector, prompts: list[str],
                 detect_options: dict | None = None, association: Callable[[], TrackManager] = TrackManager,
                 fill: str = "interpolate", record: RunRecord | None = None) -> None:
        if fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, got {fill!r}")
        self.detector, self.tracker, self.selector = detector, tracker, selector
        self.prompts = list(prompts)
        self.detect_options = dict(detect_options or {})
        self.association = association
        self.fill = fill
        self.record = record if record is not None else RunRecord()

    def run(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, FrameResult]]:
        """Yield ``(frame, result)`` for every frame of ``frames``, in order.

        Memory: at most the selector's lookahead plus, with ``fill="interpolate"``, the frames of one
        fill gap are held.
        """
        rec = self.record
        manager = rec.manager = self.association()
        self.tracker.reset()
        t_start = time.perf_counter()
        selected = 0.0
        pending: list[Frame] = []  # filled frames waiting for the next processed frame
        last: FrameResult | None = None
        for frame, decision in self.selector.select(_Timed(frames, rec, "decode")):
            now = getattr(self.selector, "seconds", 0.0)
            rec.add("select", now - selected)
            selected = now
            if not getattr(decision, "process", True) and last is not None:
                if self.fill == "carry":
                    with rec.timer("fill"):
                        result = filling.carry(last, frame)
                    yield from self._emit(frame, result, t_start)
                else:
                    pending.append(frame)
                continue
            result = self._process(frame, decision, manager)
            for i, held in enumerate(pending):
                with rec.timer("fill"):
                    filled = filling.interpolate(last, result, held, (i + 1) / (len(pending) + 1))
                yield from self._emit(held, filled, t_start)
            pending.clear()
            last = result
            yield from self._emit(frame, result, t_start)
        for held in pending:  # the stream ended inside a gap: nothing after it to interpolate towards
            with rec.timer("fill"):
                filled = filling.carry(last, held)
            yield from self._emit(held, filled, t_start)
        rec.seconds["total"] = time.perf_counter() - t_start

    def _emit(self, frame: Frame, result: FrameResult, t_start: float) -> Iterator[tuple[Frame, FrameResult]]:
        rec = self.record
        rec.frames += 1
        rec.fills += result.kind == "filled"
        rec.seconds["total"] = time.perf_counter() - t_start
        yield frame, result

    def _process(self, frame: Frame, decision: KeyframeDecision, manager: TrackManager) -> FrameResult:
        """Track (and on a key frame detect and associate) one frame; its FrameResult."""
        rec, tracker = self.record, self.tracker
        with rec.timer("track"):
            tracked = {oid: tm.mask for oid, tm in tracker.track(frame).items()}
        rec.tracker_calls += 1
        if decision.is_key:
            rec.keyframes.append(frame.index)
            rec.keyframe_scores.append(None if decision.score is None else round(float(decision.score), 5))
            with rec.timer("detect"):
                dets: Detections = self.detector.detect(frame.image, self.prompts, **self.detect_options)
            rec.detector_calls += 1
            with rec.timer("track"):
                det_masks = (tracker.masks_for_boxes(dets.boxes, frame) if len(dets)
                             else np.zeros((0, *frame.size), bool))
                assoc = manager.associate(frame.index, tracked, dets, det_masks)
                boxes = {tid: dets.boxes[c] for tid, c in [*assoc.new, *assoc.reprompt]}
                if boxes:
                    for oid, tm in tracker.prompt(boxes, frame).items():
                        tracked[oid] = tm.mask
        ended = manager.update(frame.index, tracked) + manager.deduplicate(tracked)
        if ended:
            tracker.remove(ended)
        return frame_result(frame, tracked, manager, decision.is_key)


def frame_result(frame: Frame, tracked: dict[int, np.ndarray], manager: TrackManager, keyframe: bool) -> FrameResult:
    """The FrameResult of a processed frame: the live tracks with a non-empty mask, by id."""
    ids = [oid for oid in sorted(tracked) if oid in manager.tracks and tracked[oid].any()]
    masks = np.stack([tracked[i] for i in ids]) if ids else np.zeros((0, *frame.size), bool)
    tracks = [manager.tracks[i] for i in ids]
    return FrameResult(
        index=frame.index, time=frame.time, size=frame.size, ids=np.array(ids, np.int64),
        labels=tuple(t.label for t in tracks), class_ids=np.array([t.class_id for t in tracks], np.int64),
        scores=np.array([t.score for t in tracks], np.float32), boxes=masks_to_boxes(masks),
        masks=masks, keyframe=keyframe, source_index=frame.source_index,
        kind="detected" if keyframe else "tracked")


__all__ = ["Engine", "RunRecord", "VideoRunState", "STAGES", "FILL_MODES", "StageHook", "frame_result"]
