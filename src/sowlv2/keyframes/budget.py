"""Budgets: how many frames the detector and the tracker may run on, as prefix invariants.

A budget ``b`` in (0, 1] is a share of frames, taken as the decimal the user wrote (``0.1`` is exactly
one tenth). It holds for every prefix of the stream, so it holds for a video of unknown length and a
live stream: after any ``m`` frames at most ``floor(b * m) + 1`` of them were used; over ``N`` frames
that is at most ``ceil(b * N) + 1``. Frame 0 is always used (a key frame).

Two budgets: ``keyframe_budget`` (detector frames, chosen by the key-frame rule of each selector) and
``track_budget`` (tracker frames, key frames included). :class:`TrackSchedule` turns the key-frame
wishes and "this frame moved" wishes into detect / track / fill decisions within ``track_budget`` and
``max_gap`` (a fill never spans more than ``max_gap`` consecutive frames).
"""

from __future__ import annotations

from fractions import Fraction

from ..data.config import check_budgets
from ..errors import UsageError
from ..stages import KeyframeDecision

DEFAULT_MAX_GAP = 4

__all__ = ["budget_fraction", "check_budgets", "Bucket", "TrackSchedule", "DEFAULT_MAX_GAP"]


def budget_fraction(budget: float, key: str = "keyframe_budget") -> Fraction:
    """``budget`` as an exact fraction in (0, 1] (UsageError naming ``key`` otherwise)."""
    try:
        b = Fraction(str(budget))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{key} must be a number in (0, 1], got {budget!r}") from exc
    if not 0 < b <= 1:
        what = "detector" if key == "keyframe_budget" else "tracker"
        raise UsageError(f"{key} must be in (0, 1] (share of frames the {what} may run on), got {budget!r}")
    return b


class Bucket:
    """Credit of a budget: ``floor(budget * (n + 1)) + 1 - used`` at frame ``n`` (0-based)."""

    def __init__(self, budget: Fraction) -> None:
        self.budget = budget
        self.keys = 0  # frames used so far

    def allowance(self, n: int) -> int:
        return (self.budget.numerator * (n + 1)) // self.budget.denominator + 1

    def credit(self, n: int) -> int:
        return self.allowance(n) - self.keys

    def uniform_due(self, n: int) -> bool:
        """Evenly spaced schedule at the budget: frame 0, then where ``floor(budget * n)`` steps up."""
        if n == 0:
            return True
        b = self.budget
        return (b.numerator * n) // b.denominator > (b.numerator * (n - 1)) // b.denominator


class TrackSchedule:
    """Detect / track / fill per frame within ``track_budget`` and ``max_gap``.

    Per frame ``n`` (in order), given ``key`` (the key-frame rule wants the detector here) and
    ``wants`` (the frame changed enough since the last processed frame to be worth tracking):

    * a key frame is processed when the tracker credit allows (credit >= 1); otherwise it waits and
      goes to the next frame that has credit (the detector budget is prefix-counted where it was
      wished, so moving it later keeps both budgets);
    * a frame that would make a fill longer than ``max_gap`` is tracked (its credit is >= 1 whenever
      ``track_budget >= 1 / (max_gap + 1)``, see :func:`check_budgets`);
    * a frame that ``wants`` tracking is tracked when credit >= 2, so one credit always stays in
      reserve for the next key frame; with ``track_budget`` 1 every frame is tracked;
    * anything else is filled.
    """

    def __init__(self, track_budget: float = 1.0, max_gap: int = DEFAULT_MAX_GAP) -> None:
        check_budgets(0, track_budget, max_gap)
        self.bucket = Bucket(budget_fraction(track_budget, "track_budget"))
        self.max_gap = int(max_gap)
        self.dense = self.bucket.budget >= 1
        self.last = -1  # position of the last processed frame
        self.key_pending = False  # a key frame was wished but the tracker credit was spent

    def decide(self, n: int, key: bool, score: float | None, wants: bool = True) -> KeyframeDecision:
        """The decision for stream position ``n`` (called once per frame, in order)."""
        credit = self.bucket.credit(n)
        self.key_pending = self.key_pending or key
        if self.key_pending and credit >= 1:
            self.key_pending = False
            return self._use(n, KeyframeDecision(True, score))
        if n - self.last - 1 >= self.max_gap or (credit >= 2 and (wants or self.dense)):
            return self._use(n, KeyframeDecision(False, score))
        return KeyframeDecision(False, score, process=False)

    def _use(self, n: int, decision: KeyframeDecision) -> KeyframeDecision:
        self.bucket.keys += 1
        self.last = n
        return decision
