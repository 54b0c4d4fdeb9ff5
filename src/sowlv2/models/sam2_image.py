"""SAM 2 box-to-mask segmenter for still images (transformers ``Sam2Model``).

One image encoding per image; all boxes decoded together in one batched call.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from .loading import load_model, load_pretrained, resolve_dtype

log = logging.getLogger(__name__)


class Sam2ImageSegmenter:
    """Turn boxes into masks on one image.

    Args:
        model: a ``Sam2Model`` in eval mode on ``device``.
        processor: a ``Sam2Processor`` (or the video processor of the same checkpoint).
    """

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.encodings = 0  # image encodings, for stats and tests

    # transformers classes; subclasses for SAM 2-style image models change only these (EdgeTAM:
    # ``sowlv2.models.sam_family``).
    model_class = "Sam2Model"
    processor_class = "Sam2Processor"

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: str = "float32") -> Sam2ImageSegmenter:
        import transformers
        from transformers.utils import logging as hf_logging

        torch_dtype = resolve_dtype(dtype, device)
        processor = load_pretrained(getattr(transformers, cls.processor_class).from_pretrained, name, "tracker")
        # The hub's sam2.1 (and EdgeTAM) checkpoints are video checkpoints; the image model loads them and warns.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = load_model(getattr(transformers, cls.model_class), name, "tracker", device, torch_dtype)
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(model, processor, device, torch_dtype)

    @torch.inference_mode()
    def segment(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment the object in each box.

        Args:
            image: (H, W, 3) uint8 RGB.
            boxes: (n, 4) float [x0, y0, x1, y1] in original pixels.

        Returns:
            masks: (n, H, W) bool at the original resolution.
            iou_scores: (n,) float32, SAM 2's predicted mask quality.
        """
        h, w = image.shape[:2]
        n = len(boxes)
        if n == 0:
            return np.zeros((0, h, w), bool), np.zeros((0,), np.float32)
        inputs = self.processor(images=image, input_boxes=[[list(map(float, b)) for b in boxes]],
                                return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        embeddings = self.model.get_image_embeddings(pixel_values)
        self.encodings += 1
        out = self.model(image_embeddings=embeddings, input_boxes=inputs["input_boxes"].to(self.device),
                         multimask_output=False)
        masks = self.processor.post_process_masks(out.pred_masks.float().cpu(), inputs["original_sizes"])[0]
        # masks: (n, 1, H, W) bool
        return masks[:, 0].numpy().astype(bool), out.iou_scores[0, :, 0].float().cpu().numpy()
