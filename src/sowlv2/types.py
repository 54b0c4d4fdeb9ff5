"""The currency of SOWLv2: frames in, detections and per-frame results out.

Every array is a numpy array. Shapes and dtypes are checked on creation so that a stage that
produces a wrong shape fails where it is wrong, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _check(name: str, arr: np.ndarray, shape: tuple, dtype_kind: str) -> None:
    if arr.ndim != len(shape):
        raise ValueError(f"{name} must have {len(shape)} dims {shape}, got shape {arr.shape}")
    for axis, (want, got) in enumerate(zip(shape, arr.shape)):
        if want is not None and want != got:
            raise ValueError(f"{name} axis {axis} must be {want}, got shape {arr.shape}")
    if arr.dtype.kind not in dtype_kind:
        raise ValueError(f"{name} must be of kind {dtype_kind!r}, got dtype {arr.dtype}")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position among the *processed* frames (0, 1, 2, ...).
        time: presentation time in seconds (0.0 for a still image).
        image: (H, W, 3) uint8 RGB.
        source_index: position in the source video before any ``--fps`` subsampling.
    """

    index: int
    time: float
    image: np.ndarray
    source_index: int | None = None

    def __post_init__(self) -> None:
        _check("Frame.image", self.image, (None, None, 3), "u")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True)
class Detections:
    """Detector output for one image, in original pixel coordinates.

    Attributes:
        boxes: (n, 4) float32, [x0, y0, x1, y1] in pixels, clipped to the image.
        scores: (n,) float32 in [0, 1].
        class_ids: (n,) int64, index of the prompt each detection answers.
        labels: n prompt strings, exactly as the user wrote them.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.labels)
        _check("Detections.boxes", self.boxes, (n, 4), "f")
        _check("Detections.scores", self.scores, (n,), "f")
        _check("Detections.class_ids", self.class_ids, (n,), "iu")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, keep: np.ndarray | list[int] | slice) -> Detections:
        idx = np.arange(len(self))[keep]
        return Detections(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            class_ids=self.class_ids[idx],
            labels=tuple(self.labels[i] for i in idx),
        )

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            labels=(),
        )


@dataclass(frozen=True)
class TrackedMask:
    """One object's segmentation on one frame.

    Attributes:
        mask: (H, W) bool at the frame's original resolution (mask logits > 0).
        score: probability in [0, 1] that the object is present (sigmoid of SAM 2's object score logit).
    """

    mask: np.ndarray
    score: float


FRAME_KINDS = ("detected", "tracked", "filled")


@dataclass(frozen=True)
class FrameResult:
    """Segmented objects of one processed frame.

    Attributes:
        index: processed-frame index (0 for a still image).
        time: seconds from the start of the video (0.0 for an image).
        size: (height, width) of the frame.
        ids: (n,) int64 object ids, >= 1, unique within the frame and stable through a video.
        labels: n prompt strings.
        class_ids: (n,) int64 prompt indices.
        scores: (n,) float32 detection score of each object (for a tracked object: the score of
            the detection that last confirmed it).
        boxes: (n, 4) float32 [x0, y0, x1, y1] in pixels (for a mask: its tight bounding box,
            x1/y1 exclusive).
        masks: (n, H, W) bool.
        keyframe: whether the detector ran on this frame.
        source_index: frame index in the source video (before ``--fps`` subsampling).
        kind: ``"detected"`` (detector and tracker ran), ``"tracked"`` (tracker only) or ``"filled"``
            (neither: masks filled in from the processed frames around it, ``sowlv2.fill``); default
            from ``keyframe``.
    """

    index: int
    time: float
    size: tuple[int, int]
    ids: np.ndarray
    labels: tuple[str, ...]
    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    keyframe: bool = True
    source_index: int | None = None
    kind: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", "detected" if self.keyframe else "tracked")
        elif self.kind not in FRAME_KINDS:
            raise ValueError(f"FrameResult.kind must be one of {', '.join(FRAME_KINDS)}, got {self.kind!r}")
        n = len(self.labels)
        h, w = self.size
        _check("FrameResult.ids", self.ids, (n,), "iu")
        _check("FrameResult.class_ids", self.class_ids, (n,), "iu")
        _check("FrameResult.scores", self.scores, (n,), "f")
        _check("FrameResult.boxes", self.boxes, (n, 4), "f")
        _check("FrameResult.masks", self.masks, (n, h, w), "b")
        if len(set(self.ids.tolist())) != n:
            raise ValueError(f"FrameResult.ids must be unique within a frame, got {self.ids.tolist()}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def merged_mask(self) -> np.ndarray:
        """(H, W) bool union of all object masks."""
        if len(self) == 0:
            return np.zeros(self.size, bool)
        return self.masks.any(axis=0)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of a (H, W) bool mask as float32 [x0, y0, x1, y1] (x1, y1 exclusive); zeros if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return np.zeros(4, np.float32)
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float32)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(n, H, W) bool -> (n, 4) float32 tight boxes."""
    if len(masks) == 0:
        return np.zeros((0, 4), np.float32)
    return np.stack([mask_to_box(m) for m in masks])
