"""SAM 3 as a text-prompted detector on key frames (transformers ``Sam3Model`` + ``Sam3Processor``).

SAM 3's own video model (``Sam3VideoModel``) runs its detector on every frame and keeps every frame
in its session. Here the detector is an ordinary ``sowlv2.stages.Detector``: the engine calls it on
the key-frame selector's frames only, SOWLv2's association and duplicate suppression match its boxes
to tracks, and the tracker is SAM 3's own (``sowlv2.models.sam_family.Sam3VideoTracker``) in SOWLv2's
bounded session.

Per call: the image is encoded by the ViT (1008 px) and the detector's FPN neck; the text features
of the prompts are computed once per prompt set (``get_text_features``; its whole output is passed as
``text_embeds``: the forward reads ``.pooler_output``); the DETR encoder/decoder runs once with the
prompts as the batch (the image features are expanded, not copied). A query's score is
``sigmoid(logit) * sigmoid(presence)`` (transformers' post-processing); boxes are normalised
``[x0, y0, x1, y1]`` of the resized square input, so they scale to the image by width and height.
SAM 3's own mask NMS (which needs the ``kernels`` package and a hub download) is not used: per-prompt
box NMS (``--nms-iou``) and the engine's mask-overlap duplicate suppression do that job.

One image encoding per frame: a detector and a tracker loaded from the same ``sam3_video``
checkpoint (``--detector facebook/sam3 --tracker facebook/sam3``) share one ViT backbone module
(:func:`share_backbone`), wrapped in a cache of its last call. On a key frame the tracker encodes the
frame, then the detector's call with the same pixels (both processors resize and normalise alike)
reuses that backbone output: the ViT runs once, only the two small FPN necks run twice. Sharing
also keeps one copy of the 454 M backbone weights in memory instead of two.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..types import Detections
from .caching import LastCallCache
from .detections import finish
from .loading import load_model, load_pretrained, resolve_dtype
from .sizing import detect_shrunk, processor_side

log = logging.getLogger(__name__)

# (checkpoint, device, dtype) -> the cached backbone module the detector and tracker of that checkpoint share
_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _key(name: str, model) -> tuple[str, str, str]:
    p = next(model.parameters())
    path = Path(name).expanduser()
    return (str(path.resolve()) if path.is_dir() else str(name), str(p.device), str(p.dtype))


def share_backbone(name: str, model, role: str) -> LastCallCache:
    """Make ``model``'s ViT backbone the one shared by every SAM 3 model of checkpoint ``name``.

    The first model loaded for a (checkpoint, device, dtype) registers its backbone, wrapped in a
    :class:`LastCallCache`; a later one (the tracker after the detector, or the other way round)
    drops its own copy and uses the registered module. Both load the same weights from a
    ``sam3_video`` checkpoint (transformers maps ``detector_model.vision_encoder.backbone`` onto the
    tracker's backbone).

    Args:
        name: the checkpoint (hub id or folder) both were loaded from.
        model: a ``Sam3Model`` or ``Sam3TrackerVideoModel`` (its ``vision_encoder.backbone`` is replaced).
        role: ``"detector"`` or ``"tracker"`` (logging only).

    Returns:
        the shared cached backbone.
    """
    encoder = model.vision_encoder
    key = _key(name, model)
    shared = _SHARED.get(key)
    if isinstance(encoder.backbone, LastCallCache):
        return encoder.backbone
    if shared is None:
        shared = LastCallCache(encoder.backbone)
        _SHARED[key] = shared
    else:
        log.info("SAM 3 %s shares the ViT backbone already loaded for %s", role, name)
    encoder.backbone = shared
    return shared


class Sam3Detector:
    """Detect objects named by text prompts with SAM 3's detector (``Sam3Model``).

    Args:
        model: a ``Sam3Model`` in eval mode on ``device``.
        processor: its ``Sam3Processor`` (CLIP tokenizer, 1008 px image processor).
        device, dtype: where and in what precision the model runs.
    """

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.calls = 0  # image forward passes, for stats
        self.text_encodings = 0  # text encoder passes (one per prompt set)
        self._prompts: tuple[str, ...] | None = None
        self._text = None
        self._mask: torch.Tensor | None = None
        self.backbone: LastCallCache | None = None

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device, dtype: str = "float32") -> Sam3Detector:
        from transformers import Sam3Model, Sam3Processor

        torch_dtype = resolve_dtype(dtype, device)
        processor = load_pretrained(Sam3Processor.from_pretrained, name, "detector")
        model = load_model(Sam3Model, name, "detector", device, torch_dtype).requires_grad_(False)
        detector = cls(model, processor, device, torch_dtype)
        detector.backbone = share_backbone(name, model, "detector")
        return detector

    @property
    def input_side(self) -> int | None:
        """Side of the model's square input (the processor's ``size``: 1008 for the release)."""
        return processor_side(self.processor)

    @torch.inference_mode()
    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Encode the prompts' text (one batch through the CLIP text encoder); a no-op if unchanged."""
        prompts = tuple(prompts)
        if prompts == self._prompts:
            return
        tok = self.processor.tokenizer(list(prompts), padding="max_length", truncation=True,
                                       max_length=int(self.model.config.text_config.max_position_embeddings),
                                       return_tensors="pt")
        ids, mask = tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
        self._text = self.model.get_text_features(input_ids=ids, attention_mask=mask)
        self._mask = mask
        self.text_encodings += 1
        self._prompts = prompts

    @torch.inference_mode()
    def forward(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W, 3) uint8 RGB -> (scores (n_prompts, Q) float32 in [0, 1], boxes (n_prompts, Q, 4)
        normalised [x0, y0, x1, y1])."""
        if self._text is None:
            raise RuntimeError("call set_prompts(prompts) before forward()")
        pix = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        vision = self.model.get_vision_features(pixel_values=pix.to(self.device, self.dtype))
        self.calls += 1
        n = self._mask.shape[0]
        vision = type(vision)(
            fpn_hidden_states=tuple(x.expand(n, *x.shape[1:]) for x in vision.fpn_hidden_states),
            fpn_position_encoding=tuple(x.expand(n, *x.shape[1:]) for x in vision.fpn_position_encoding),
            last_hidden_state=vision.last_hidden_state.expand(n, *vision.last_hidden_state.shape[1:]))
        out = self.model(vision_embeds=vision, text_embeds=self._text, attention_mask=self._mask)
        scores = out.pred_logits.float().sigmoid()
        if out.presence_logits is not None:
            scores = scores * out.presence_logits.float().sigmoid()
        return scores, out.pred_boxes.float()

    def detect(self, image: np.ndarray, prompts: Sequence[str], threshold: float = 0.1, nms_iou: float = 0.5,
               max_objects: int | None = None) -> Detections:
        """Detect every prompt in one image (``sowlv2.stages.Detector``).

        Args:
            image: (H, W, 3) uint8 RGB; shrunk first if over twice the model's input side.
            prompts: the user's prompts; each is one batch row, so a box belongs to exactly one prompt.
            threshold: minimum score (query probability x presence probability) in [0, 1].
            nms_iou: per-prompt NMS IoU (1.0 disables); max_objects: keep the best N.

        Returns:
            Detections sorted by score, boxes (n, 4) float32 in the original image's pixels.
        """
        return detect_shrunk(lambda img: self._detect(img, prompts, threshold, nms_iou, max_objects), image,
                             self.input_side)

    def _detect(self, image, prompts, threshold, nms_iou, max_objects) -> Detections:
        self.set_prompts(prompts)
        h, w = image.shape[:2]
        scores, boxes = self.forward(image)  # (n, Q), (n, Q, 4)
        n, q = scores.shape
        class_ids = torch.arange(n, device=scores.device).repeat_interleave(q)
        xyxy = boxes.reshape(-1, 4) * torch.tensor([w, h, w, h], dtype=torch.float32, device=boxes.device)
        return finish(xyxy, scores.reshape(-1), class_ids, prompts, (h, w), threshold, nms_iou, max_objects)
