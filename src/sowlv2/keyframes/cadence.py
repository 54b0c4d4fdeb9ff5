"""The model-free schedule: the detector every ``every`` frames, the tracker on a uniform stride."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import UsageError
from ..stages import KeyframeDecision
from ..types import Frame
from .budget import DEFAULT_MAX_GAP, TrackSchedule


class CadenceSelector:
    """Key frame on frame 0 and then every ``every`` frames (positions 0, every, 2*every, ...).

    With ``track_budget`` below 1 the tracker follows a uniform stride: every frame asks to be tracked
    and :class:`~sowlv2.keyframes.budget.TrackSchedule` tracks it whenever the budget has a credit to
    spare (one is kept for the next key frame), so about one frame in ``1 / track_budget`` is tracked
    and the others are filled; a key frame whose tracker credit was spent moves to the next frame
    that has it.

    Args:
        every: cadence in frames, >= 1 (1: every frame is a key frame).
        track_budget: share of frames the tracker processes, in (0, 1] (1: every frame).
        max_gap: longest run of filled frames (>= 1).
    """

    def __init__(self, every: int = 1, track_budget: float = 1.0, max_gap: int = DEFAULT_MAX_GAP) -> None:
        if int(every) < 1:
            raise UsageError(f"detect_every must be >= 1, got {every}")
        self.every = int(every)
        self.track_budget = float(track_budget)
        self.max_gap = int(max_gap)
        TrackSchedule(track_budget, max_gap)  # check the settings now, not at the first frame
        self.seconds = 0.0

    def select(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, KeyframeDecision]]:
        self.seconds = 0.0
        schedule = TrackSchedule(self.track_budget, self.max_gap)
        for n, frame in enumerate(frames):
            yield frame, schedule.decide(n, n % self.every == 0, None)
