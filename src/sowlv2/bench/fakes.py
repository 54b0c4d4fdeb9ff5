"""The two documented fakes that make random weights measurable, and the naive baseline."""

from __future__ import annotations

import logging
import math

import numpy as np

from ..tracking.association import TrackManager
from ..types import Detections

log = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------- fakes
class FixedBoxesDetector:
    """Bench fake at the detector's output.

    Runs the real detector on every call (pre-processing, forward and post-processing cost what they
    cost), then returns ``boxes`` instead of what it found: random weights detect garbage, and runs
    that track different numbers of objects could not be compared.

    Args:
        detector: the real ``Owlv2Detector``.
        boxes: (n, 4) float32 [x0, y0, x1, y1] in pixels (ground truth of the synthetic world).
        class_ids: (n,) int, index of each box's prompt.
    """

    def __init__(self, detector, boxes: np.ndarray, class_ids: np.ndarray) -> None:
        self.detector = detector
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        self.calls = 0

    def __getattr__(self, name: str):  # calls, device, model, ... of the real detector
        return getattr(self.detector, name)

    def detect(self, image: np.ndarray, prompts, threshold: float = 0.1, nms_iou: float = 0.5,
               max_objects: int | None = None) -> Detections:
        self.detector.detect(image, prompts, threshold=threshold, nms_iou=nms_iou, max_objects=max_objects)
        self.calls += 1
        h, w = image.shape[:2]
        boxes = self.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        n = len(boxes)
        return Detections(boxes=boxes, scores=np.linspace(0.9, 0.8, n, dtype=np.float32),
                          class_ids=self.class_ids.copy(), labels=tuple(prompts[i] for i in self.class_ids))


class ForcedTrackManager(TrackManager):
    """The association the bench injects (``SOWLv2Pipeline(association=ForcedTrackManager)``): it keeps
    exactly the detected objects as tracks.

    Every detection of the first key frame starts a track (none is taken for a duplicate), later
    detections all match (with the pipeline config's ``match_iou=0``), no match re-prompts (the well
    tracked case: key frames cost a detection and a decoding, not a re-prompt), no track is ended as
    another's duplicate, and no track ends (with ``max_lost`` large). Random weights would otherwise
    decide how many objects are tracked.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cover_new = math.inf
        self.reprompt_iou = 0.0
        self.dup_iou = math.inf  # random weights may give two objects one mask: keep both tracks


def naive_segment(segmenter, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The old tool's way to segment an image: one SAM 2 image encoding per box.

    Returns:
        (n, H, W) bool masks.
    """
    h, w = image.shape[:2]
    masks = [segmenter.segment(image, np.asarray(b, np.float32)[None])[0][0] for b in boxes]
    return np.stack(masks) if masks else np.zeros((0, h, w), bool)


# ---------------------------------------------------------------------------------------------- world
def world_boxes(world) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Iterate a synthetic world video once.

    Returns:
        boxes: (K, 4) float32, each object's ground-truth box on the first frame it is visible (a
            box in the middle of the frame for an object never visible).
        frames: every (H, W, 3) uint8 RGB frame (only call this for short videos).
        id_maps: every (H, W) uint8 id map.
    """
    w, h = world.size
    ids = sorted(world.categories)
    boxes: dict[int, np.ndarray] = {}
    frames, id_maps = [], []
    for rgb, id_map in world:
        frames.append(rgb)
        id_maps.append(id_map)
        for k in ids:
            if k in boxes:
                continue
            ys, xs = np.nonzero(id_map == k)
            if len(xs):
                boxes[k] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    centre = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4], np.float32)
    return np.stack([boxes.get(k, centre) for k in ids]), frames, id_maps
