"""``OptimizedSOWLv2Pipeline``: the seed's name for a pipeline whose V-JEPA 2 encoder is assignable."""

from __future__ import annotations

from ..models.vjepa2 import VJepa2VideoOptimizer, create_vjepa2_optimizer
from ..pipeline import SOWLv2Pipeline


class OptimizedSOWLv2Pipeline(SOWLv2Pipeline):
    """A SOWLv2Pipeline whose video key frames come from ``self.vjepa2_optimizer`` when it is set.

    ``vjepa2_optimizer`` starts as ``create_vjepa2_optimizer(config, config.enable_vjepa2)`` (None when
    disabled, so ``--detect-every`` applies); assign an optimizer to switch V-JEPA 2 key frames on.
    The budgets and strategy come from the config (``keyframe_budget``, ``track_budget``,
    ``max_gap``, ``keyframe_strategy``).
    """

    def __init__(self, config=None, **overrides) -> None:
        super().__init__(config, **overrides)
        self.vjepa2_optimizer: VJepa2VideoOptimizer | None = create_vjepa2_optimizer(
            self.config, enable_vjepa2=self.config.enable_vjepa2)

    def _selector(self):
        from ..keyframes import make_selector

        if self.vjepa2_optimizer is None:
            return super()._selector()
        return make_selector(self.config.replace(enable_vjepa2=True), encoder=self.vjepa2_optimizer)
