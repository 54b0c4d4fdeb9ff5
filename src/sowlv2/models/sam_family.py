"""SAM 2-style trackers besides SAM 2: EdgeTAM and SAM 3's tracker, on SAM 2's bounded session code.

transformers gives ``EdgeTamVideoModel`` and ``Sam3TrackerVideoModel`` SAM 2's video API
(``init_video_session``, ``add_inputs_to_inference_session``, ``forward(inference_session=,
frame_idx=, frame=)``, the same session and output dicts), so :class:`~sowlv2.models.sam2_video.Sam2VideoTracker`
drives them unchanged: these subclasses only name the classes. The eviction rules of that module
(memory window, capped conditioning frames, one stored frame) hold for them too.

- EdgeTAM (``yonigozlan/EdgeTAM-hf``): RepViT-M1 image encoder (needs ``timm``), memory compressed by a
  spatial perceiver to 512 tokens per frame per object (SAM 2: 4,096), 2 memory-attention layers;
  ``EdgeTamModel`` is the image segmenter.
- SAM 3's tracker (``facebook/sam3``, a ``sam3_video`` checkpoint): ``Sam3TrackerVideoModel`` (1008 px,
  ViT backbone shared with SAM 3's detector, see ``sowlv2.models.sam3``). For still images the same
  video model decodes boxes on a one-frame session (:class:`TrackerImageSegmenter`): transformers'
  ``Sam3TrackerModel`` does not load the decoder of a ``sam3_video`` checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from ..types import Frame
from .sam2_image import Sam2ImageSegmenter
from .sam2_video import Sam2VideoTracker


class EdgeTamVideoTracker(Sam2VideoTracker):
    """EdgeTAM (``EdgeTamVideoModel`` + ``Sam2VideoProcessor``) with SAM 2's bounded streaming session."""

    model_class = "EdgeTamVideoModel"
    processor_class = "Sam2VideoProcessor"
    family = "EdgeTAM"
    example = "yonigozlan/EdgeTAM-hf"


class EdgeTamImageSegmenter(Sam2ImageSegmenter):
    """EdgeTAM for still images (``EdgeTamModel`` + ``Sam2Processor``): one encoding, boxes batched."""

    model_class = "EdgeTamModel"
    processor_class = "Sam2Processor"


class Sam3VideoTracker(Sam2VideoTracker):
    """SAM 3's tracker (``Sam3TrackerVideoModel`` + ``Sam3TrackerVideoProcessor``) with SAM 2's bounded
    streaming session. Loaded from a ``sam3_video`` checkpoint, its ViT backbone is shared with a SAM 3
    detector of the same checkpoint (``sowlv2.models.sam3.share_backbone``)."""

    model_class = "Sam3TrackerVideoModel"
    processor_class = "Sam3TrackerVideoProcessor"
    family = "SAM 3"
    example = "facebook/sam3"

    @classmethod
    def load(cls, name: str, device, dtype: str = "float32") -> Sam3VideoTracker:
        from .sam3 import share_backbone

        tracker = super().load(name, device, dtype)
        share_backbone(name, tracker.model, "tracker")
        return tracker


class TrackerImageSegmenter:
    """``sowlv2.stages.ImageSegmenter`` from a video tracker: each image is a one-frame video and its
    boxes are decoded together as initial prompts (one image encoding).

    Args:
        tracker: a :class:`Sam2VideoTracker` (or subclass).
    """

    def __init__(self, tracker: Sam2VideoTracker) -> None:
        self.tracker = tracker
        self.encodings = 0

    @classmethod
    def sam3(cls, name: str, device, dtype: str = "float32") -> TrackerImageSegmenter:
        """The registry's loader for SAM 3 checkpoints (``Sam3TrackerVideoModel``)."""
        return cls(Sam3VideoTracker.load(name, device, dtype))

    @torch.inference_mode()
    def segment(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Args: image (H, W, 3) uint8 RGB; boxes (n, 4) float pixels. Returns (masks (n, H, W) bool,
        predicted IoU (n,) float32)."""
        h, w = image.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros((0,), np.float32)
        self.tracker.reset()
        frame = Frame(index=0, time=0.0, image=image)
        self.tracker.track(frame)
        self.encodings += 1
        try:
            return self.tracker.decode_boxes(np.asarray(boxes, np.float32), frame)
        finally:
            self.tracker.reset()  # drop the frame and its features
