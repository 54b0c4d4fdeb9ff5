"""The stage protocols: what a detector, segmenter, tracker, key-frame selector and output sink are.

Every stage of SOWLv2 is one of these; the engine (``sowlv2.engine``) and the runner only call these
methods, so a new backend is one adapter that satisfies a protocol plus one entry in
``sowlv2.models.registry``, and tests can inject fakes (``tests/fakes.py``) written against this
module alone. The protocols are structural (``typing.Protocol``): adapters need not inherit.

Arrays follow ``sowlv2.types``: images are (H, W, 3) uint8 RGB, boxes (n, 4) float32
``[x0, y0, x1, y1]`` in the image's pixels, masks (n, H, W) or (H, W) bool at the image's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .types import Detections, Frame, FrameResult, TrackedMask


@runtime_checkable
class Detector(Protocol):
    """Finds objects from text prompts in one image.

    The adapter owns its input-size rule: an image much larger than the model's input is shrunk by
    the adapter itself (see ``models.sizing.shrink_for``), and boxes come back in the original pixels.
    """

    def detect(self, image: np.ndarray, prompts: Sequence[str], *, threshold: float = 0.1,
               nms_iou: float = 0.3, max_objects: int | None = None) -> Detections:
        """Args: image (H, W, 3) uint8 RGB; prompts as the user wrote them. Returns Detections whose
        ``labels`` are the user's prompts and ``class_ids`` their positions in ``prompts``."""
        ...


@runtime_checkable
class ImageSegmenter(Protocol):
    """Turns boxes into masks on a still image (all boxes decoded from one image encoding)."""

    def segment(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns (masks (n, H, W) bool, scores (n,) float32)."""
        ...


@runtime_checkable
class VideoTracker(Protocol):
    """Follows box-prompted objects through a streamed video with a bounded session.

    Call order per video: ``reset``; then per frame ``track`` (once), and on key frames
    ``masks_for_boxes`` / ``prompt`` on the same frame; ``remove`` ends objects.
    """

    def reset(self) -> None:
        """Start a new video (drop every object and all memory)."""
        ...

    def track(self, frame: Frame) -> dict[int, TrackedMask]:
        """Propagate every known object onto ``frame`` (the next processed frame)."""
        ...

    def masks_for_boxes(self, boxes: np.ndarray, frame: Frame) -> np.ndarray:
        """Masks (n, H, W) bool of ``boxes`` on the current frame, without adding objects (used to
        match detections to tracks). ``frame`` must be the frame last passed to ``track``."""
        ...

    def prompt(self, boxes: dict[int, np.ndarray], frame: Frame) -> dict[int, TrackedMask]:
        """Add (or re-prompt) objects ``{id: box}`` on the current frame; returns their masks."""
        ...

    def remove(self, obj_ids: Iterable[int]) -> None:
        """Forget these objects (their memory is freed)."""
        ...


@dataclass(frozen=True)
class KeyframeDecision:
    """What the engine does with one frame.

    Attributes:
        is_key: run the detector on this frame (and the tracker).
        score: the frame's change score in [0, 1] with respect to the last key frame (1.0 for frame
            0), or None where no model scored it (cadence and uniform schedules, fallback).
        process: run the tracker on this frame; False means *fill*: neither model runs and the
            frame's masks are filled in from the processed frames around it. A key frame is always
            processed.
    """

    is_key: bool
    score: float | None = None
    process: bool = True

    def __post_init__(self) -> None:
        if self.is_key and not self.process:
            raise ValueError("a key frame is always processed (is_key=True needs process=True)")

    @property
    def action(self) -> str:
        """``"detect"`` (detector and tracker), ``"track"`` (tracker only) or ``"fill"`` (neither)."""
        return "detect" if self.is_key else ("track" if self.process else "fill")


@runtime_checkable
class KeyframeSelector(Protocol):
    """Decides per frame what runs on it, reading at most a bounded lookahead of frames.

    Attributes:
        seconds: wall time spent selecting (encoding and deciding) during the last ``select`` run,
            not counting the time the caller or the frame source spend between frames.
    """

    seconds: float

    def select(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, KeyframeDecision]]:
        """Yield every frame of ``frames`` once, in order, with its decision."""
        ...


@dataclass(frozen=True)
class InputInfo:
    """What a sink knows about the input it writes before the first frame.

    Attributes:
        name: the input's file name (recorded in the JSON outputs).
        kind: ``"image"`` or ``"video"``.
        prompts: the prompts in order (category id = position + 1).
        size: (height, width) of the frames.
        fps: processing frame rate (videos; None for images).
        source: path of the input (image file, video file or frame folder), or None for a stream.
    """

    name: str
    kind: str
    prompts: tuple[str, ...]
    size: tuple[int, int]
    fps: float | None = None
    source: Path | None = None


@dataclass
class RunSummary:
    """What a sink receives at the end of an input (everything besides the frames)."""

    keyframes: list[int] = field(default_factory=list)
    keyframe_scores: list[float | None] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)  # id, label, first_frame, last_frame, best_score
    stats: dict = field(default_factory=dict)
    frames: int = 0


@runtime_checkable
class Sink(Protocol):
    """One output of an input (PNGs, a video, a JSON file, an export format), written as frames arrive.

    A sink writes under the folder it is given (the input's ``.partial`` result folder); the
    ``ResultFolder`` moves the whole folder into place once every sink has closed, or removes it.
    Sinks are called from one thread, in frame order; ``result`` arrays must not be modified.
    """

    def open(self, folder: Path, info: InputInfo) -> None:
        """Prepare to write into ``folder`` (which exists)."""
        ...

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        """Write one frame: its result and its (H, W, 3) uint8 RGB image."""
        ...

    def close(self, summary: RunSummary) -> None:
        """Finish every file (the folder is then moved into place by the caller)."""
        ...

    def abort(self) -> None:
        """Release files after a failure (the folder is then removed by the caller)."""
        ...


__all__ = ["Detector", "ImageSegmenter", "VideoTracker", "KeyframeDecision", "KeyframeSelector",
           "InputInfo", "RunSummary", "Sink", "TrackedMask"]
