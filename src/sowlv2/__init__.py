"""SOWLv2: text-prompted segmentation and tracking in images and videos (OWLv2 + SAM 2 + V-JEPA 2).

Importing the package changes no global state and loads no model.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["PipelineBaseData", "SOWLv2Pipeline", "FrameResult", "Detections", "Frame", "__version__"]


def __getattr__(name: str):
    # Lazy: `import sowlv2` stays cheap (no torch import until a pipeline is used).
    if name == "SOWLv2Pipeline":
        from .pipeline import SOWLv2Pipeline

        return SOWLv2Pipeline
    if name == "PipelineBaseData":
        from .data.config import PipelineBaseData

        return PipelineBaseData
    if name in ("FrameResult", "Detections", "Frame"):
        from . import types

        return getattr(types, name)
    raise AttributeError(f"module 'sowlv2' has no attribute {name!r}")
