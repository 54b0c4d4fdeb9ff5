"""Online frame selection: what runs on each frame of a stream (detect, track or fill).

A selector wraps a stream of :class:`~sowlv2.types.Frame` and yields each frame, in order, with a
:class:`~sowlv2.stages.KeyframeDecision`. Modules:

* ``budget``: the detector and tracker budgets (prefix invariants) and ``TrackSchedule``;
* ``scores``: each change score, defined once (V-JEPA 2 novelty and variance, pixel difference);
* ``cadence``: :class:`CadenceSelector`, the detector every N frames (tracker on a uniform stride);
* ``adaptive``: the content rule shared by the two content-driven selectors;
* ``vjepa2``: :class:`VJepa2Selector` (V-JEPA 2 encoder features);
* ``pixel``: :class:`PixelSelector` (mean absolute frame difference, no model);
* ``factory``: :func:`make_selector`, from the settings.

Strategies (``--keyframe-strategy``): ``data.config.KEYFRAME_STRATEGIES``, the one list.
"""

from __future__ import annotations

from ..data.config import KEYFRAME_STRATEGIES
from ..stages import KeyframeDecision, KeyframeSelector
from .budget import Bucket, TrackSchedule, budget_fraction
from .cadence import CadenceSelector
from .factory import make_selector
from .pixel import PixelSelector
from .vjepa2 import VJepa2Selector

SELECTOR_STRATEGIES = KEYFRAME_STRATEGIES
_Bucket, _budget_fraction = Bucket, budget_fraction  # the names before the package

__all__ = ["KeyframeDecision", "KeyframeSelector", "CadenceSelector", "VJepa2Selector", "PixelSelector",
           "TrackSchedule", "make_selector", "SELECTOR_STRATEGIES"]
