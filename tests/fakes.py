"""Fakes of the stage protocols (``sowlv2.stages``) over a ground-truth world, for logic tests.

A ``World`` knows each object's mask per frame; frames carry their index in pixel (0, 0, channel 0)
(lossless inputs only), so the fake detector knows which frame it sees. ``FakeDetector`` finds every
object present with its exact box; ``FakeTracker`` is a perfect tracker: an id follows the object its
prompt box landed on. Written against the protocols only: no model, no pipeline internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sowlv2.types import Detections, Frame, TrackedMask, mask_to_box

COLOURS = [(200, 40, 40), (200, 140, 40), (40, 200, 60), (60, 60, 220), (220, 220, 40)]


class World:
    """Ground truth: object name -> function frame index -> (H, W) bool mask, or None when absent.

    Args:
        objects: the objects, in drawing order.
        size: (H, W) of the frames.
        labels: the prompt each object answers (default: its name).
        background: grey level of the frames.
    """

    def __init__(self, objects: dict[str, Callable[[int], np.ndarray | None]], size: tuple[int, int],
                 labels: dict[str, str] | None = None, background: int = 60) -> None:
        self.objects, self.size, self.background = objects, size, background
        self.labels = {name: (labels or {}).get(name, name) for name in objects}

    def masks(self, t: int) -> dict[str, np.ndarray]:
        """{name: (H, W) bool} of the objects present at frame ``t``."""
        return {k: m for k, f in self.objects.items() if (m := f(t)) is not None}

    def image(self, t: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB: each object in its own colour, the frame index in pixel (0, 0)."""
        img = np.full((*self.size, 3), self.background, np.uint8)
        for name, m in self.masks(t).items():
            img[m] = COLOURS[list(self.objects).index(name) % len(COLOURS)]
        img[0, 0, 0] = t
        return img

    def frames(self, n: int, fps: float = 25.0) -> Iterator[Frame]:
        for t in range(n):
            yield Frame(index=t, time=t / fps, image=self.image(t), source_index=t)


def box_mask(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = np.zeros(size, bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m[max(y0, 0):y1, max(x0, 0):x1] = True
    return m


class FakeDetector:
    """A perfect detector (``sowlv2.stages.Detector``): every object present, its exact box.

    Attributes:
        calls: the frame indices it was called on.
    """

    def __init__(self, world: World, score: float = 0.9) -> None:
        self.world, self.score, self.calls = world, score, []

    def detect(self, image, prompts, *, threshold=0.1, nms_iou=0.5, max_objects=None) -> Detections:
        t = int(image[0, 0, 0])
        self.calls.append(t)
        found = [(self.world.labels[k], m) for k, m in self.world.masks(t).items()
                 if self.world.labels[k] in prompts]
        if not found:
            return Detections.empty()
        n = len(found)
        return Detections(boxes=np.stack([mask_to_box(m) for _, m in found]),
                          scores=np.linspace(self.score, self.score - 0.1, n).astype(np.float32),
                          class_ids=np.array([list(prompts).index(lab) for lab, _ in found], np.int64),
                          labels=tuple(lab for lab, _ in found))


class FakeTracker:
    """A perfect tracker (``sowlv2.stages.VideoTracker``): an id follows the object its box hit best.

    Attributes:
        frames: frames passed to ``track``; removed: ids passed to ``remove``.
    """

    def __init__(self, world: World) -> None:
        self.world, self.bound, self.removed, self.t, self.frames = world, {}, [], None, 0

    def reset(self) -> None:
        self.bound.clear()

    def _object_for(self, box) -> str:
        bm = box_mask(box, self.world.size)

        def iou(m):
            return (m & bm).sum() / max((m | bm).sum(), 1)

        return max(self.world.masks(self.t).items(), key=lambda kv: iou(kv[1]))[0]

    def track(self, frame: Frame) -> dict[int, TrackedMask]:
        self.t, self.frames = frame.index, self.frames + 1
        gt = self.world.masks(self.t)
        empty = np.zeros(self.world.size, bool)
        return {oid: TrackedMask(gt.get(k, empty), 1.0) for oid, k in self.bound.items()}

    def masks_for_boxes(self, boxes, frame: Frame) -> np.ndarray:
        return np.stack([self.world.masks(self.t)[self._object_for(b)] for b in boxes])

    def prompt(self, boxes, frame: Frame) -> dict[int, TrackedMask]:
        for oid, box in boxes.items():
            self.bound[oid] = self._object_for(box)
        return {oid: TrackedMask(self.world.masks(self.t)[self.bound[oid]], 1.0) for oid in boxes}

    def remove(self, ids) -> None:
        self.removed += list(ids)
        for i in ids:
            self.bound.pop(i, None)


class FakeSegmenter:
    """``sowlv2.stages.ImageSegmenter``: each box's mask is the world object it hits best at frame 0."""

    def __init__(self, world: World) -> None:
        self.tracker = FakeTracker(world)

    def segment(self, image, boxes):
        self.tracker.t = int(image[0, 0, 0])
        if len(boxes) == 0:
            return np.zeros((0, *self.tracker.world.size), bool), np.zeros(0, np.float32)
        return self.tracker.masks_for_boxes(boxes, None), np.ones(len(boxes), np.float32)


# ---------------------------------------------------------------------- fake checkpoints for the registry
def walking_world(size: tuple[int, int] = (40, 56)) -> World:
    """A square walking right in every frame and a disc that appears at frame 5."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]

    def square(t):
        return (yy >= 5) & (yy < 17) & (xx >= 2 + 2 * t) & (xx < 14 + 2 * t)

    def disc(t):
        return ((yy - 28) ** 2 + (xx - 40) ** 2 < 36) if t >= 5 else None

    return World({"square": square, "disc": disc}, size)


def load_detector(folder, device, dtype):
    """Registry loader of a checkpoint folder whose config.json has ``model_type: fake_detector``."""
    return FakeDetector(walking_world())


def load_tracker(folder, device, dtype):
    """Registry loader for ``model_type: fake_tracker`` (the video tracker role)."""
    return FakeTracker(walking_world())


def load_segmenter(folder, device, dtype):
    """Registry loader for ``model_type: fake_tracker`` (the image segmenter role)."""
    return FakeSegmenter(walking_world())
