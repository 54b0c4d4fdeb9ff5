"""The seed document's optimisation API: V-JEPA 2 chooses the frames where the detector runs.

    >>> vjepa2_optimizer = create_vjepa2_optimizer(config, enable_vjepa2=True)
    >>> pipeline = OptimizedSOWLv2Pipeline(config)
    >>> pipeline.vjepa2_optimizer = vjepa2_optimizer
    >>> pipeline.process_video("input_video.mp4", "person", "output_dir/")
"""

from __future__ import annotations

from ..pipeline import SOWLv2Pipeline
from .vjepa2 import VJepa2VideoOptimizer, create_vjepa2_optimizer

__all__ = ["OptimizedSOWLv2Pipeline", "VJepa2VideoOptimizer", "create_vjepa2_optimizer"]


class OptimizedSOWLv2Pipeline(SOWLv2Pipeline):
    """A SOWLv2Pipeline whose video key frames come from ``self.vjepa2_optimizer`` when it is set.

    ``vjepa2_optimizer`` starts as ``create_vjepa2_optimizer(config, config.enable_vjepa2)`` (None when
    disabled, so ``--detect-every`` applies); assign an optimizer to switch V-JEPA 2 key frames on.
    The budget and strategy come from the config (``keyframe_budget``, ``keyframe_strategy``).
    """

    def __init__(self, config=None, **overrides) -> None:
        super().__init__(config, **overrides)
        self.vjepa2_optimizer: VJepa2VideoOptimizer | None = create_vjepa2_optimizer(
            self.config, enable_vjepa2=self.config.enable_vjepa2)

    def _selector(self):
        from ..keyframes import VJepa2Selector

        if self.vjepa2_optimizer is None:
            return super()._selector()
        return VJepa2Selector(self.vjepa2_optimizer, budget=self.config.keyframe_budget,
                              strategy=self.config.keyframe_strategy,
                              clips_per_pass=self.config.vjepa2_clips_per_pass)
