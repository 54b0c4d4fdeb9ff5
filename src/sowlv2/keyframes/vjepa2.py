"""Key frames (and tracked / filled frames) from V-JEPA 2 encoder features."""

from __future__ import annotations

import numpy as np
import torch

from ..data.config import KEYFRAME_STRATEGIES
from ..errors import UsageError
from .adaptive import ClipSelector
from .budget import DEFAULT_MAX_GAP
from .scores import novelty_scores, variance_change


class VJepa2Selector(ClipSelector):
    """Detect / track / fill decided clip by clip from V-JEPA 2 features (rule: ``keyframes.adaptive``).

    Frames are buffered until ``clips_per_pass`` clips of ``optimizer.frames_per_clip`` frames are
    full (or the stream ends), encoded in one forward pass, decided clip by clip, and yielded in
    order, so at most ``clips_per_pass`` clips of frames and of features are held (one by default).

    If the optimizer is unavailable (it logs one warning with the reason) or ``strategy`` is
    ``"uniform"``, key frames are evenly spaced at the budget (frame 0, then every ``1 / budget``).

    Args:
        optimizer: the V-JEPA 2 encoder adapter (``models.vjepa2.VJepa2VideoOptimizer``, owned by the
            pipeline and shared by every video); ``frames_per_clip`` sets the lookahead.
        budget: share of frames the detector may run on, in (0, 1].
        strategy: ``"novelty"`` (``scores.novelty_scores`` of the spatial feature map), ``"variance"``
            (``scores.variance_change``) or ``"uniform"``.
        clips_per_pass, max_credit, min_novelty, sensitivity, track_budget, max_gap, min_motion: see
            ``keyframes.adaptive.ClipSelector``. On a GPU the encoder's cost per pass is mostly fixed
            overhead, so 2-4 clips per pass cost little more than one.
    """

    def __init__(self, optimizer, budget: float = 0.25, strategy: str = "novelty", *, clips_per_pass: int = 1,
                 max_credit: int = 3, min_novelty: float = 0.05, sensitivity: float = 3.0,
                 track_budget: float = 1.0, max_gap: int = DEFAULT_MAX_GAP, min_motion: float = 0.02) -> None:
        if strategy not in KEYFRAME_STRATEGIES or strategy == "pixel":
            raise UsageError(f"keyframe_strategy must be one of {', '.join(KEYFRAME_STRATEGIES)} ('pixel' is "
                             f"keyframes.PixelSelector), got {strategy!r}")
        super().__init__(budget, clips_per_pass=clips_per_pass, max_credit=max_credit, min_novelty=min_novelty,
                         sensitivity=sensitivity, track_budget=track_budget, max_gap=max_gap,
                         min_motion=min_motion)
        self.optimizer = optimizer
        self.strategy = strategy
        self.uniform = strategy == "uniform"

    @property
    def frames_per_clip(self) -> int:  # type: ignore[override]
        return max(1, int(self.optimizer.frames_per_clip))

    @property
    def tubelet(self) -> int:  # type: ignore[override]
        return max(1, int(getattr(self.optimizer, "tubelet_size", 2)))

    def _features(self, images: list[np.ndarray]) -> torch.Tensor | None:
        if not self.optimizer.is_available:
            return None
        return self.optimizer.extract_video_features(images, batch_size=self.clips_per_pass)

    def _change(self, feats: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if self.strategy == "variance":
            return variance_change(feats, ref)
        return novelty_scores(feats, ref, getattr(self.optimizer, "topk_fraction", 0.05))
