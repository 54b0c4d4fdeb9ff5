"""OmDet-Turbo detector (transformers ``OmDetTurboForObjectDetection`` + ``OmDetTurboProcessor``).

The model takes a list of labels (one CLIP text encoding each) and a task sentence ("Detect car, red
car."); every query gets a score per label, so a box maps to one prompt by the label index (no text
spans to untangle). The labels and task are tokenized once per prompt set; their embeddings are
kept by the model's own LRU caches (``language_cache_class`` / ``language_cache_prompt``, keyed by
the token ids), so the text encoder runs once per prompt set. The released backbone is a timm Swin
(``pip install timm``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..types import Detections
from .detections import cxcywh_to_xyxy, finish
from .loading import load_model, load_pretrained, resolve_dtype
from .sizing import detect_shrunk, processor_side

log = logging.getLogger(__name__)


class OmDetTurboDetector:
    """Detect objects named by text prompts with OmDet-Turbo.

    Args:
        model: an ``OmDetTurboForObjectDetection`` in eval mode on ``device``.
        processor: its ``OmDetTurboProcessor`` (CLIP tokenizer, ``DetrImageProcessor``).
        device, dtype: where and in what precision the model runs.
    """

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.calls = 0
        self._prompts: tuple[str, ...] | None = None
        self._text: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: str = "float32") -> OmDetTurboDetector:
        from transformers import OmDetTurboForObjectDetection, OmDetTurboProcessor

        torch_dtype = resolve_dtype(dtype, device)
        processor = load_pretrained(OmDetTurboProcessor.from_pretrained, name, "detector")
        model = load_model(OmDetTurboForObjectDetection, name, "detector", device, torch_dtype)
        return cls(model, processor, device, torch_dtype)

    @property
    def input_side(self) -> int | None:
        """Side of the model input (the image processor's ``size``: 640 for the release)."""
        return processor_side(self.processor)

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Tokenize the labels and the task sentence (as the processor does); a no-op if unchanged."""
        prompts = tuple(prompts)
        if prompts == self._prompts:
            return
        tok = self.processor.tokenizer
        max_len = min(77, int(getattr(tok, "model_max_length", 77) or 77))
        kw = dict(padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
        task = tok([f"Detect {', '.join(prompts)}."], **kw)
        classes = tok(list(prompts), **kw)
        self._text = {"tasks_input_ids": task["input_ids"], "tasks_attention_mask": task["attention_mask"],
                      "classes_input_ids": classes["input_ids"], "classes_attention_mask": classes["attention_mask"],
                      "classes_structure": torch.tensor([len(prompts)], dtype=torch.long)}
        self._text = {k: v.to(self.device) for k, v in self._text.items()}
        self._prompts = prompts

    @torch.inference_mode()
    def forward(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
        """(H, W, 3) uint8 RGB -> (scores (Q, n_prompts) float32, boxes (Q, 4) normalised cx, cy, w, h of
        the model input, (fx, fy): the fraction of the input's width / height the image covers)."""
        if not self._text:
            raise RuntimeError("call set_prompts(prompts) before forward()")
        pix = self.processor.image_processor(images=image, return_tensors="pt")
        self.calls += 1
        out = self.model(pixel_values=pix["pixel_values"].to(self.device, self.dtype), **self._text)
        cover = (1.0, 1.0)
        if "pixel_mask" in pix:  # padded at the bottom/right: boxes are relative to the padded input
            mask = pix["pixel_mask"][0].bool()
            hp, wp = mask.shape
            cover = (float(mask.any(0).sum()) / wp, float(mask.any(1).sum()) / hp)
        return torch.sigmoid(out.decoder_class_logits[0].float()), out.decoder_coord_logits[0].float(), cover

    def detect(self, image: np.ndarray, prompts: Sequence[str], threshold: float = 0.1, nms_iou: float = 0.5,
               max_objects: int | None = None) -> Detections:
        """Detect every prompt in one image (``sowlv2.stages.Detector``).

        Args:
            image: (H, W, 3) uint8 RGB; shrunk first if over twice the model's input side.
            prompts: the user's prompts (labels); a box's label is the prompt of its best score.
            threshold: minimum score in [0, 1]; nms_iou: per-prompt NMS IoU (1.0 disables);
            max_objects: keep the best N.

        Returns:
            Detections sorted by score, boxes (n, 4) float32 in the original image's pixels.
        """
        return detect_shrunk(lambda img: self._detect(img, prompts, threshold, nms_iou, max_objects), image,
                             self.input_side)

    def _detect(self, image, prompts, threshold, nms_iou, max_objects) -> Detections:
        self.set_prompts(prompts)
        h, w = image.shape[:2]
        probs, boxes, (fx, fy) = self.forward(image)
        scores, class_ids = probs[:, : len(prompts)].max(dim=-1)
        return finish(cxcywh_to_xyxy(boxes, w / fx, h / fy), scores, class_ids, prompts, (h, w), threshold,
                      nms_iou, max_objects)
