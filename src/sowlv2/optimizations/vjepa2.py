"""The seed's module path of the V-JEPA 2 encoder API; the code lives in ``sowlv2.models.vjepa2``
(the encoder adapter) and ``sowlv2.keyframes.scores`` (the scores)."""

from ..keyframes.scores import novelty_scores
from ..models.vjepa2 import (
    DEFAULT_MODEL,
    STRATEGIES,
    VJepa2VideoOptimizer,
    create_vjepa2_optimizer,
    resolve_device,
    resolve_dtype,
    uniform_indices,
)

__all__ = ["DEFAULT_MODEL", "STRATEGIES", "VJepa2VideoOptimizer", "create_vjepa2_optimizer", "novelty_scores",
           "resolve_device", "resolve_dtype", "uniform_indices"]
