"""Grounding DINO and MM Grounding DINO detectors (transformers ``GroundingDinoForObjectDetection``,
``MMGroundingDinoForObjectDetection``; both with ``GroundingDinoProcessor``, a BERT tokenizer).

The model reads one caption ("car. red car. a b.") and scores every query box against every caption
token; transformers' post-processing returns the decoded words above a text threshold, not which
prompt a box belongs to. This adapter keeps the character span of each prompt in the caption it
builds, assigns caption tokens to prompts by their offsets, and scores a box for a prompt as the
mean of its token probabilities (mmdetection's normalised positive maps), so each box maps to
exactly one prompt even when prompts share words ("car" and "red car": a box whose "red" token is
cold scores higher for "car"). A "." inside a prompt would end a phrase for the model (its text
self-attention is split at "."), so it is replaced by a space in the caption; the label stays the
user's prompt.

Text: the caption is tokenized once per prompt set, and the BERT text backbone's output is cached
(the model has no text-embedding input: a wrapper around its text backbone returns the cached
output while the caption is unchanged).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import torch

from ..types import Detections
from .caching import LastCallCache
from .detections import cxcywh_to_xyxy, finish
from .loading import load_model, load_pretrained, resolve_dtype
from .sizing import detect_shrunk, processor_side

log = logging.getLogger(__name__)


def build_caption(prompts: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The caption the model reads and each prompt's character span in it.

    Prompts are lower-cased and stripped, "." inside a prompt becomes a space, and the phrases are
    joined as ``"a. b."``.

    Returns:
        (caption, spans): ``spans[k] = (start, end)`` of prompt ``k``'s phrase in ``caption``.
    """
    parts, spans, pos = [], [], 0
    for p in prompts:
        phrase = re.sub(r"\s+", " ", p.replace(".", " ")).strip().lower()
        spans.append((pos, pos + len(phrase)))
        parts.append(phrase)
        pos += len(phrase) + 2  # ". "
    return ". ".join(parts) + ".", spans


def token_map(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], length: int) -> torch.Tensor:
    """(n_prompts, length) float: row k has 1/m on the m caption tokens inside prompt k's span.

    Args:
        offsets: per token (start, end) character offsets (special tokens have start == end).
        spans: per prompt (start, end) from :func:`build_caption`.
        length: the model's text length (logits' last dimension).
    """
    pos = torch.zeros(len(spans), length)
    for k, (s, e) in enumerate(spans):
        for i, (a, b) in enumerate(offsets[:length]):
            if b > a and a >= s and b <= e:
                pos[k, i] = 1.0
    counts = pos.sum(dim=1, keepdim=True)
    return pos / counts.clamp(min=1.0)


class GroundingDinoDetector:
    """Detect objects named by text prompts with (MM) Grounding DINO.

    Args:
        model: a ``GroundingDinoForObjectDetection`` or ``MMGroundingDinoForObjectDetection`` in eval
            mode on ``device``.
        processor: its ``GroundingDinoProcessor``.
        device, dtype: where and in what precision the model runs.
    """

    model_class = "GroundingDinoForObjectDetection"

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.calls = 0  # image forward passes, for stats
        self._prompts: tuple[str, ...] | None = None
        self._text: dict[str, torch.Tensor] = {}
        self._map: torch.Tensor | None = None
        inner = getattr(model, "model", None)
        self.text_cache: LastCallCache | None = None
        if inner is not None and isinstance(getattr(inner, "text_backbone", None), torch.nn.Module):
            self.text_cache = LastCallCache(inner.text_backbone)
            inner.text_backbone = self.text_cache

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: str = "float32") -> GroundingDinoDetector:
        import transformers
        from transformers import GroundingDinoProcessor

        torch_dtype = resolve_dtype(dtype, device)
        processor = load_pretrained(GroundingDinoProcessor.from_pretrained, name, "detector")
        model = load_model(getattr(transformers, cls.model_class), name, "detector", device, torch_dtype)
        return cls(model, processor, device, torch_dtype)

    @property
    def input_side(self) -> int | None:
        """Shortest side of the model input (the processor's ``size``)."""
        return processor_side(self.processor)

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Tokenize the caption of ``prompts`` and map tokens to prompts; a no-op if unchanged."""
        prompts = tuple(prompts)
        if prompts == self._prompts:
            return
        caption, spans = build_caption(prompts)
        tok = self.processor.tokenizer(caption, return_offsets_mapping=True, return_tensors="pt")
        max_len = int(self.model.config.max_text_len)
        offsets = [tuple(o) for o in tok.pop("offset_mapping")[0].tolist()]
        self._map = token_map(offsets, spans, max_len).to(self.device)
        for k, p in enumerate(prompts):
            if not self._map[k].any():
                log.warning("prompt %r has no tokens within the model's %d-token text (it is never detected)",
                            p, max_len)
        self._text = {k: v[:, :max_len].to(self.device) for k, v in tok.items()}
        self._prompts = prompts

    @torch.inference_mode()
    def forward(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W, 3) uint8 RGB -> (token probabilities (Q, text_len) float32, boxes (Q, 4) normalised
        cx, cy, w, h relative to the image)."""
        if self._map is None:
            raise RuntimeError("call set_prompts(prompts) before forward()")
        pix = self.processor.image_processor(images=image, return_tensors="pt")
        self.calls += 1
        out = self.model(pixel_values=pix["pixel_values"].to(self.device, self.dtype),
                         pixel_mask=pix["pixel_mask"].to(self.device), **self._text)
        return torch.sigmoid(out.logits[0].float()), out.pred_boxes[0].float()

    def detect(self, image: np.ndarray, prompts: Sequence[str], threshold: float = 0.1, nms_iou: float = 0.5,
               max_objects: int | None = None) -> Detections:
        """Detect every prompt in one image (``sowlv2.stages.Detector``).

        Args:
            image: (H, W, 3) uint8 RGB; shrunk first if over twice the model's input side.
            prompts: the user's prompts; a detection's label is exactly one of them.
            threshold: minimum score (mean token probability of the prompt) in [0, 1].
            nms_iou: per-prompt NMS IoU (1.0 disables); max_objects: keep the best N.

        Returns:
            Detections sorted by score, boxes (n, 4) float32 in the original image's pixels.
        """
        return detect_shrunk(lambda img: self._detect(img, prompts, threshold, nms_iou, max_objects), image,
                             self.input_side)

    def _detect(self, image, prompts, threshold, nms_iou, max_objects) -> Detections:
        self.set_prompts(prompts)
        h, w = image.shape[:2]
        probs, boxes = self.forward(image)
        per_prompt = probs[:, : self._map.shape[1]] @ self._map.T  # (Q, n_prompts) mean token probability
        scores, class_ids = per_prompt.max(dim=-1)
        return finish(cxcywh_to_xyxy(boxes, w, h), scores, class_ids, prompts, (h, w), threshold, nms_iou,
                      max_objects)


class MMGroundingDinoDetector(GroundingDinoDetector):
    """MM Grounding DINO (``MMGroundingDinoForObjectDetection``): same processor and outputs."""

    model_class = "MMGroundingDinoForObjectDetection"
