"""The seed document's optimisation API: V-JEPA 2 chooses the frames where the detector runs.

    >>> vjepa2_optimizer = create_vjepa2_optimizer(config, enable_vjepa2=True)
    >>> pipeline = OptimizedSOWLv2Pipeline(config)
    >>> pipeline.vjepa2_optimizer = vjepa2_optimizer
    >>> pipeline.process_video("input_video.mp4", "person", "output_dir/")

Importing this package does not import the pipeline: ``OptimizedSOWLv2Pipeline`` is built on first
access (``sowlv2.keyframes`` and ``sowlv2.models.vjepa2`` hold the code).
"""

from __future__ import annotations

from typing import Any

from .vjepa2 import VJepa2VideoOptimizer, create_vjepa2_optimizer

__all__ = ["OptimizedSOWLv2Pipeline", "VJepa2VideoOptimizer", "create_vjepa2_optimizer"]


def __getattr__(name: str) -> Any:
    if name == "OptimizedSOWLv2Pipeline":
        from .pipeline import OptimizedSOWLv2Pipeline

        globals()[name] = OptimizedSOWLv2Pipeline
        return OptimizedSOWLv2Pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
