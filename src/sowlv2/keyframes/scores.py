"""Change scores between frames, each defined once: all in [0, 1], higher = more changed.

* :func:`novelty_scores` (V-JEPA 2 ``"novelty"``): per spatial position ``p`` of two feature maps,
  ``(1 - cos(f_p, r_p)) / 2``; a frame's score is the mean of the largest ``ceil(topk_fraction * h * w)``
  values (5 % of the positions by default), so a change covering about 5 % of the frame registers
  fully and one noisy token does not decide.
* :func:`feature_variance` (V-JEPA 2 ``"variance"``): the variance of a feature map over positions and
  channels. The selector's score is its relative change against a reference,
  :func:`variance_change` ``= |v - v_ref| / (v + v_ref)``; the seed API's per-video score
  (``VJepa2VideoOptimizer.get_temporal_importance_scores``) is its :func:`minmax` over the video.
* :func:`pixel_difference` (``"pixel"``, no model): the mean absolute difference of two small
  grayscale maps (:func:`pixel_features`: the frame area-resized to ``PIXEL_SIDE`` square, in
  [0, 1]); the honest cheap baseline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

PIXEL_SIDE = 64


def novelty_scores(features: torch.Tensor, reference: torch.Tensor, topk_fraction: float = 0.05) -> torch.Tensor:
    """Novelty of each feature map with respect to a reference map.

    Args:
        features: (N, h, w, D) or (h, w, D) float feature maps.
        reference: (h, w, D) float, or (N, h, w, D) for one reference per map.
        topk_fraction: share of spatial positions whose novelty is averaged (at least one).

    Returns:
        (N,) float32 (or a 0-dim tensor for one map) in [0, 1]: the mean of the largest
        ``ceil(topk_fraction * h * w)`` per-position values of ``(1 - cos) / 2``.
    """
    single = features.dim() == 3
    feats = features.unsqueeze(0) if single else features
    feats = feats.float().flatten(1, 2)  # (N, hw, D)
    ref = reference.float()
    ref = ref.flatten(-3, -2) if ref.dim() == 4 else ref.flatten(0, 1).unsqueeze(0)
    cos = F.cosine_similarity(feats, ref, dim=-1, eps=1e-8)  # (N, hw)
    per_pos = ((1.0 - cos) * 0.5).clamp_(0.0, 1.0)
    k = max(1, math.ceil(topk_fraction * per_pos.shape[1]))
    score = per_pos.topk(k, dim=1).values.mean(dim=1)
    return score[0] if single else score


def feature_variance(features: torch.Tensor) -> torch.Tensor:
    """(N,) float32 variance of each (h, w, D) map of (N, h, w, D) ``features`` (one 0-dim for (h, w, D))."""
    if features.dim() == 3:
        return features.float().var()
    return features.float().flatten(1).var(dim=1)


def variance_change(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(N,) relative change in [0, 1] of the variance of (N, h, w, D) maps against a (h, w, D) or
    (N, h, w, D) reference: ``|v - v_ref| / (v + v_ref)``."""
    v = feature_variance(features)
    r = feature_variance(reference)
    r = r.expand_as(v) if r.dim() == 0 else r
    return ((v - r).abs() / (v + r).clamp_min(1e-12)).clamp(0, 1)


def minmax(values: torch.Tensor) -> list[float]:
    """``values`` scaled to [0, 1] over themselves (all 0.0 when they are all equal)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return [0.0] * int(values.numel())
    return ((values - lo) / (hi - lo)).clamp(0, 1).tolist()


def pixel_features(images: list[np.ndarray], side: int = PIXEL_SIDE) -> torch.Tensor:
    """(N, side, side, 1) float32 in [0, 1]: each (H, W, 3) uint8 RGB frame as grey, area-resized."""
    if not images:
        return torch.zeros((0, side, side, 1))
    out = []
    for img in images:  # frames of one stream share a size, but nothing requires it
        grey = torch.from_numpy(np.ascontiguousarray(img)).float().mean(dim=2)[None, None] / 255.0
        out.append(F.interpolate(grey, size=(side, side), mode="area")[0, 0, :, :, None])
    return torch.stack(out)


def pixel_difference(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(N,) mean absolute difference in [0, 1] of (N, h, w, 1) :func:`pixel_features` against a
    (h, w, 1) or (N, h, w, 1) reference."""
    return (features.float() - reference.float()).abs().flatten(1).mean(dim=1).clamp(0, 1)


__all__ = ["novelty_scores", "feature_variance", "variance_change", "minmax", "pixel_features",
           "pixel_difference", "PIXEL_SIDE"]
