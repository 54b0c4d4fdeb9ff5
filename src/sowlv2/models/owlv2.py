"""OWLv2 text-prompted detector (transformers ``Owlv2ForObjectDetection``).

preprocess (CPU: pad to a square at the bottom/right, resize) -> forward (device, no gradients;
image tower once per image, text tower once per prompt set) -> postprocess (threshold on the
device, boxes mapped from the padded square back to original pixels, per-class NMS, top-k).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..types import Detections
from .detections import cxcywh_to_xyxy, finish
from .loading import load_model, load_pretrained, resolve_dtype
from .sizing import detect_shrunk, processor_side

log = logging.getLogger(__name__)


class Owlv2Detector:
    """Detect objects named by text prompts.

    Args:
        model: an ``Owlv2ForObjectDetection`` in eval mode on ``device``.
        processor: its ``Owlv2Processor``.
        device, dtype: where and in what precision the model runs.

    Text embeddings are computed once per prompt list and reused for every image.
    """

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self._prompts: tuple[str, ...] | None = None
        self._query_embeds: torch.Tensor | None = None
        self._query_mask: torch.Tensor | None = None
        self.calls = 0  # image forward passes, for stats

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: str = "float32") -> Owlv2Detector:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        torch_dtype = resolve_dtype(dtype, device)
        processor = load_pretrained(Owlv2Processor.from_pretrained, name, "detector")
        model = load_model(Owlv2ForObjectDetection, name, "detector", device, torch_dtype)
        return cls(model, processor, device, torch_dtype)

    # ------------------------------------------------------------------ text
    @torch.inference_mode()
    def set_prompts(self, prompts: list[str] | tuple[str, ...]) -> None:
        """Embed the prompts (one batch through the text tower); a no-op if they are unchanged."""
        prompts = tuple(prompts)
        if prompts == self._prompts:
            return
        tok = self.processor.tokenizer
        max_len = getattr(tok, "model_max_length", 16) or 16
        for p in prompts:
            n = len(tok(p)["input_ids"])
            if n > max_len:
                log.warning("prompt %r is %d tokens; the text model reads only the first %d", p, n, max_len)
        text = tok(list(prompts), padding="max_length", truncation=True, max_length=max_len,
                   return_tensors="pt")
        input_ids = text["input_ids"].to(self.device)
        out = self.model.owlv2.get_text_features(input_ids=input_ids,
                                                 attention_mask=text["attention_mask"].to(self.device))
        embeds = out.pooler_output
        embeds = embeds / torch.linalg.norm(embeds, ord=2, dim=-1, keepdim=True)
        self._query_embeds = embeds[None]  # (1, n_prompts, dim)
        self._query_mask = (input_ids[:, 0] > 0)[None]
        self._prompts = prompts

    # ------------------------------------------------------------------ image
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, S, S) pixel values (padded to a square, resized)."""
        pixel_values = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        return pixel_values.to(self.device, self.dtype)

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits (1, patches, n_prompts), boxes (1, patches, 4) normalised cx, cy, w, h)."""
        if self._query_embeds is None:
            raise RuntimeError("call set_prompts(prompts) before detect()")
        self.calls += 1
        feature_map, _ = self.model.image_embedder(pixel_values=pixel_values)
        b, h, w, d = feature_map.shape
        image_feats = feature_map.reshape(b, h * w, d)
        logits, _ = self.model.class_predictor(image_feats, self._query_embeds.to(feature_map.dtype),
                                               self._query_mask)
        boxes = self.model.box_predictor(image_feats, feature_map)
        return logits, boxes

    @property
    def input_side(self) -> int | None:
        """Side of the model's square input (the processor's ``size``)."""
        return processor_side(self.processor)

    def detect(self, image: np.ndarray, prompts: list[str] | tuple[str, ...], threshold: float = 0.1,
               nms_iou: float = 0.5, max_objects: int | None = None) -> Detections:
        """Detect every prompt in one image.

        An image larger than twice the model's input side is shrunk first (``models.sizing``); boxes
        are in the original image's pixels either way.

        Args:
            image: (H, W, 3) uint8 RGB.
            prompts: text queries; each detection's label is the prompt text as given.
            threshold: minimum score (sigmoid of the class logit) in [0, 1].
            nms_iou: per-class NMS IoU; 1.0 disables NMS.
            max_objects: keep the best N detections (after NMS).

        Returns:
            Detections sorted by score (highest first), boxes in original pixels, clipped to the image.
        """
        return detect_shrunk(lambda img: self._detect(img, prompts, threshold, nms_iou, max_objects), image,
                             self.input_side)

    def _detect(self, image: np.ndarray, prompts, threshold: float, nms_iou: float,
                max_objects: int | None) -> Detections:
        self.set_prompts(prompts)
        h, w = image.shape[:2]
        logits, boxes = self.forward(self.preprocess(image))
        probs = torch.sigmoid(logits[0].float())  # (patches, n_prompts)
        scores, class_ids = probs.max(dim=-1)
        # The processor padded the image to a square of side max(h, w) at the bottom/right.
        side = float(max(h, w))
        xyxy = cxcywh_to_xyxy(boxes[0], side, side)
        return finish(xyxy, scores, class_ids, prompts, (h, w), threshold, nms_iou, max_objects)
