"""``make_selector``: the selector the settings ask for."""

from __future__ import annotations

from typing import Any

from ..data.config import KEYFRAME_STRATEGIES, check_budgets
from ..errors import UsageError
from ..stages import KeyframeSelector
from .budget import DEFAULT_MAX_GAP, budget_fraction


def _get(config: Any, key: str, default: Any) -> Any:
    value = getattr(config, key, None)
    return default if value is None else value


def make_selector(config: Any, encoder: Any = None) -> KeyframeSelector:
    """The selector the settings ask for.

    Reads (each optional): ``enable_vjepa2`` (False), ``detect_every`` (1), ``keyframe_budget``
    (0.25), ``keyframe_strategy`` ("novelty"), ``track_budget`` (1.0), ``max_gap`` (4),
    ``vjepa2_model``, ``vjepa2_frames_per_clip`` (16), ``vjepa2_clips_per_pass`` (1), ``device``,
    ``dtype``.

    Args:
        config: the settings (``PipelineBaseData`` or any object with those attributes).
        encoder: the V-JEPA 2 encoder adapter to use (the pipeline passes the one it owns, so a run
            loads it once whatever the number of videos); default: a new one from the settings.

    Returns:
        ``keyframe_strategy`` ``"pixel"``: :class:`PixelSelector` (no model; ``--enable-vjepa2`` not
        needed); else with ``enable_vjepa2``: :class:`VJepa2Selector`; else :class:`CadenceSelector`
        (``detect_every``, tracker on a uniform stride at ``track_budget``).

    Raises:
        UsageError: a setting is out of range (the message names it).
    """
    from .cadence import CadenceSelector

    strategy = _get(config, "keyframe_strategy", "novelty")
    if strategy not in KEYFRAME_STRATEGIES:
        raise UsageError(f"keyframe_strategy must be one of {', '.join(KEYFRAME_STRATEGIES)}, got {strategy!r}")
    track_budget = _get(config, "track_budget", 1.0)
    max_gap = _get(config, "max_gap", DEFAULT_MAX_GAP)
    budget = _get(config, "keyframe_budget", 0.25)
    clips = _get(config, "vjepa2_clips_per_pass", 1)
    if strategy == "pixel" or getattr(config, "enable_vjepa2", False):
        check_budgets(float(budget_fraction(budget)), track_budget, max_gap)
    if strategy == "pixel":
        from .pixel import PixelSelector

        return PixelSelector(budget, frames_per_clip=_get(config, "vjepa2_frames_per_clip", 16),
                             clips_per_pass=clips, track_budget=track_budget, max_gap=max_gap)
    if getattr(config, "enable_vjepa2", False):
        from .vjepa2 import VJepa2Selector

        if encoder is None:
            from ..models.vjepa2 import create_vjepa2_optimizer

            encoder = create_vjepa2_optimizer(config, enable_vjepa2=True)
        return VJepa2Selector(encoder, budget=budget, strategy=strategy, clips_per_pass=clips,
                              track_budget=track_budget, max_gap=max_gap)
    every = _get(config, "detect_every", 1)
    if int(every) < 1:
        raise UsageError(f"detect_every must be >= 1, got {every}")
    check_budgets(1 / int(every), track_budget, max_gap, key="detect_every")
    return CadenceSelector(every, track_budget=track_budget, max_gap=max_gap)
