"""The last step every detector adapter shares: threshold, clip, per-class NMS, top-k, Detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import batched_nms

from ..types import Detections


def finish(boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, prompts: Sequence[str],
           size: tuple[int, int], threshold: float, nms_iou: float, max_objects: int | None) -> Detections:
    """Candidate boxes -> the adapter's Detections.

    Args:
        boxes: (n, 4) float ``[x0, y0, x1, y1]`` in the image's pixels (any float dtype, any device).
        scores: (n,) float in [0, 1].
        class_ids: (n,) int, positions in ``prompts``.
        prompts: the user's prompts (labels are these strings).
        size: (height, width) of the image; boxes are clipped to it.
        threshold: minimum score; nms_iou: per-class NMS IoU (1.0 disables); max_objects: top-k after NMS.

    Returns:
        Detections sorted by score (highest first): boxes (k, 4) float32, scores (k,) float32,
        class_ids (k,) int64, labels the prompts. Boxes smaller than a pixel are dropped.
    """
    h, w = size
    boxes, scores, class_ids = boxes.float(), scores.float(), class_ids.long()
    keep = scores >= threshold
    boxes, scores, class_ids = boxes[keep].clone(), scores[keep], class_ids[keep]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    boxes, scores, class_ids = boxes[valid], scores[valid], class_ids[valid]
    if nms_iou < 1.0 and len(scores):
        order = batched_nms(boxes, scores, class_ids, nms_iou)
    else:
        order = torch.argsort(scores, descending=True)
    if max_objects is not None:
        order = order[:max_objects]
    boxes, scores, class_ids = boxes[order].cpu(), scores[order].cpu(), class_ids[order].cpu()
    return Detections(boxes=boxes.numpy().astype(np.float32), scores=scores.numpy().astype(np.float32),
                      class_ids=class_ids.numpy().astype(np.int64),
                      labels=tuple(prompts[i] for i in class_ids.tolist()))


def cxcywh_to_xyxy(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """(n, 4) normalised ``[cx, cy, w, h]`` -> (n, 4) ``[x0, y0, x1, y1]`` in pixels of a width x height image."""
    cx, cy, bw, bh = boxes.float().unbind(-1)
    xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    return xyxy * torch.tensor([width, height, width, height], dtype=xyxy.dtype, device=xyxy.device)
