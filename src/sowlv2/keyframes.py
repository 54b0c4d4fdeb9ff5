"""Online key-frame selection: which frames of a stream the detector runs on.

A selector wraps a stream of :class:`~sowlv2.types.Frame` and yields each frame, in order, with a
:class:`KeyframeDecision`. Two selectors:

* :class:`CadenceSelector` — frame 0, then every ``every``-th frame.
* :class:`VJepa2Selector` — reads one clip of ``frames_per_clip`` frames ahead, encodes it with the
  V-JEPA 2 encoder and spends a key-frame *budget* where the content changed most since the last key
  frame (see the class docstring for the rule).

Budget (a prefix invariant, so it holds for a video of unknown length): after any ``m`` frames, at
most ``floor(budget * m) + 1`` of them are key frames; over a whole video of ``N`` frames that is at
most ``ceil(budget * N) + 1``. ``budget`` is taken as the decimal the user wrote (``0.1`` is exactly
one tenth). Frame 0 is always a key frame.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .optimizations.vjepa2 import VJepa2VideoOptimizer, create_vjepa2_optimizer, novelty_scores
from .stages import KeyframeDecision, KeyframeSelector
from .types import Frame

log = logging.getLogger(__name__)

SELECTOR_STRATEGIES = ("novelty", "variance", "uniform")


class CadenceSelector:
    """Key frame on frame 0 and then every ``every`` frames (positions 0, every, 2*every, ...).

    Args:
        every: cadence in frames, >= 1 (1: every frame is a key frame).
    """

    def __init__(self, every: int = 1) -> None:
        if int(every) < 1:
            raise UsageError(f"detect_every must be >= 1, got {every}")
        self.every = int(every)
        self.seconds = 0.0

    def select(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, KeyframeDecision]]:
        self.seconds = 0.0
        for n, frame in enumerate(frames):
            yield frame, KeyframeDecision(is_key=n % self.every == 0, score=None)


def _budget_fraction(budget: float) -> Fraction:
    try:
        b = Fraction(str(budget))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"keyframe_budget must be a number in (0, 1], got {budget!r}") from exc
    if not 0 < b <= 1:
        raise UsageError(f"keyframe_budget must be in (0, 1] (share of frames the detector may run on), "
                         f"got {budget!r}")
    return b


class _Bucket:
    """Key-frame credit: ``floor(budget * (n + 1)) + 1 - keys`` at frame ``n`` (0-based)."""

    def __init__(self, budget: Fraction) -> None:
        self.budget = budget
        self.keys = 0

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


class VJepa2Selector:
    """Key frames where V-JEPA 2 features change, within a budget, decided clip by clip.

    Frames are buffered until ``clips_per_pass`` clips of ``optimizer.frames_per_clip`` frames are
    full (or the stream ends), encoded in one forward pass, decided clip by clip, and yielded in
    order, so at most ``clips_per_pass`` clips of frames and of features are held (one by default).

    Rule, for each frame ``n`` (``s_n``: novelty of its features against the last key frame's, see
    :func:`sowlv2.optimizations.vjepa2.novelty_scores`; ``credit_n``: unspent budget at ``n``):

    * frame 0 is a key frame (score 1.0);
    * **event**: a frame with ``s_n >= threshold`` and ``credit_n >= 1``. The threshold adapts to the
      video: ``max(min_novelty, median + sensitivity * 1.4826 * MAD)`` of the recent non-key scores
      (the last ``4 * frames_per_clip``) together with the current clip's, so a steady level of
      motion or noise is not an event but a jump above it is. Within a clip the event goes to the
      tubelet with the largest jump against the tubelet before it when that jump itself clears the
      threshold (a cut: the encoder mixes time within a clip, so frames just before a cut already
      drift and would otherwise take the key frame too early), else to the first frame above the
      threshold (gradual change: detect as soon as it is noticed). Later frames of the clip are then
      compared with the new key frame, so the frames after a cut are no longer novel.
    * **refresh**: when no event is due and ``credit_n`` reaches ``max_credit``, frame ``n`` is a key
      frame anyway, so slow changes the features miss still get detected. In a static video this
      gives evenly spaced key frames at the budget's rate while ``max_credit - 1`` stay in reserve for
      the next event (a scene cut gets its key frame within its tubelet unless the reserve was spent).

    If the optimizer is unavailable (it logs one warning with the reason) or ``strategy`` is
    ``"uniform"``, key frames are evenly spaced at the budget (frame 0, then every ``1 / budget``).

    Args:
        optimizer: the V-JEPA 2 encoder wrapper (``frames_per_clip`` sets the look-ahead).
        budget: share of frames the detector may run on, in (0, 1].
        clips_per_pass: clips read ahead and encoded together (the look-ahead and the memory bound
            are ``clips_per_pass * frames_per_clip`` frames). On a GPU the encoder's cost per pass is
            mostly fixed overhead, so 2-4 clips per pass cost little more than one.
        strategy: ``"novelty"`` (cosine change of the spatial feature map), ``"variance"`` (relative
            change of the feature map's variance, ``|v - v_key| / (v + v_key)``) or ``"uniform"``.
        max_credit: key-frame credit at which a refresh key frame is spent (>= 1).
        min_novelty: lowest event threshold (scores in [0, 1]).
        sensitivity: robust standard deviations above the median score that make an event.
    """

    def __init__(
        self,
        optimizer: VJepa2VideoOptimizer,
        budget: float = 0.25,
        strategy: str = "novelty",
        *,
        clips_per_pass: int = 1,
        max_credit: int = 3,
        min_novelty: float = 0.05,
        sensitivity: float = 3.0,
    ) -> None:
        if strategy not in SELECTOR_STRATEGIES:
            raise UsageError(f"keyframe_strategy must be one of {', '.join(SELECTOR_STRATEGIES)}, "
                             f"got {strategy!r}")
        if int(max_credit) < 1:
            raise ValueError(f"max_credit must be >= 1, got {max_credit}")
        if int(clips_per_pass) < 1:
            raise UsageError(f"vjepa2_clips_per_pass must be >= 1, got {clips_per_pass}")
        self.clips_per_pass = int(clips_per_pass)
        self._budget = _budget_fraction(budget)
        self.optimizer = optimizer
        self.budget = float(budget)
        self.strategy = strategy
        self.max_credit = int(max_credit)
        self.min_novelty = float(min_novelty)
        self.sensitivity = float(sensitivity)
        self.seconds = 0.0
        self.fallback = False  # True once the selection has fallen back to the uniform schedule

    # ------------------------------------------------------------------ scoring
    def _change(self, feats: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """(N,) change in [0, 1] of each (h, w, D) map in ``feats`` against ``ref`` (one or N maps)."""
        if self.strategy == "variance":
            v = feats.float().flatten(1).var(dim=1)
            r = ref.float().flatten(1).var(dim=1) if ref.dim() == 4 else ref.float().var().expand_as(v)
            return ((v - r).abs() / (v + r).clamp_min(1e-12)).clamp(0, 1)
        return novelty_scores(feats, ref, getattr(self.optimizer, "topk_fraction", 0.05))

    def _threshold(self, window: deque, current: np.ndarray) -> float:
        vals = np.concatenate([np.asarray(window, dtype=np.float64), current.astype(np.float64)])
        if vals.size == 0:
            return self.min_novelty
        med = float(np.median(vals))
        mad = float(np.median(np.abs(vals - med)))
        return max(self.min_novelty, med + self.sensitivity * 1.4826 * mad)

    # ------------------------------------------------------------------ selection
    def select(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, KeyframeDecision]]:
        """Yield ``(frame, decision)`` for every frame, in order, up to ``clips_per_pass`` clips behind
        the source."""
        self.seconds = 0.0
        self.fallback = False
        bucket = _Bucket(self._budget)
        use_model = self.strategy != "uniform"
        fpc = max(1, int(self.optimizer.frames_per_clip))
        group_len = fpc * self.clips_per_pass
        state: dict[str, Any] = {"ref": None, "prev": None, "window": deque(maxlen=4 * fpc)}
        group: deque[Frame] = deque()
        start = 0  # stream position of group[0]
        it = iter(frames)
        while True:
            for frame in it:
                group.append(frame)
                if len(group) == group_len:
                    break
            if not group:
                break
            t0 = time.perf_counter()
            count = len(group)
            decisions: list[KeyframeDecision] | None = None
            if use_model and not self.fallback:
                decisions = self._decide_group(list(group), start, fpc, bucket, state)
                if decisions is None:
                    self.fallback = True
                    log.info("key frames: uniform schedule at budget %s from frame %d", self.budget, start)
            if decisions is None:
                decisions = self._uniform(count, start, bucket)
            self.seconds += time.perf_counter() - t0
            start += count
            for decision in decisions:
                yield group.popleft(), decision
            if count < group_len:  # a short group: the stream has ended
                break

    def _decide_group(
        self, frames: list[Frame], start: int, fpc: int, bucket: _Bucket, state: dict[str, Any]
    ) -> list[KeyframeDecision] | None:
        """Encode up to ``clips_per_pass`` clips (one forward pass) and decide them clip by clip."""
        opt = self.optimizer
        if not opt.is_available:
            return None
        feats = opt.extract_video_features([f.image for f in frames], batch_size=self.clips_per_pass)
        if feats is None:
            return None
        out: list[KeyframeDecision] = []
        for c in range(0, len(frames), fpc):
            out.extend(self._decide_clip(feats[c : c + fpc], start + c, bucket, state))
        return out

    def _uniform(self, count: int, start: int, bucket: _Bucket) -> list[KeyframeDecision]:
        out = []
        for n in range(start, start + count):
            key = bucket.uniform_due(n) and bucket.credit(n) >= 1
            bucket.keys += key
            out.append(KeyframeDecision(is_key=key, score=None))
        return out

    def _decide_clip(
        self, feats: torch.Tensor, start: int, bucket: _Bucket, state: dict[str, Any]
    ) -> list[KeyframeDecision]:
        """Decisions for one clip's frames from their (T, h, w, D) features; ``start``: stream position."""
        count = int(feats.shape[0])
        tub = max(1, int(getattr(self.optimizer, "tubelet_size", 2)))
        # Jump of each frame: its tubelet against the frame just before the tubelet's first frame.
        tstart = [(j // tub) * tub for j in range(count)]
        prev_maps = torch.stack([feats[t - 1] if t > 0 else (state["prev"] if state["prev"] is not None
                                                             else feats[0]) for t in tstart])
        jumps = self._change(feats, prev_maps).numpy()
        state["prev"] = feats[-1].clone()

        decisions: list[KeyframeDecision | None] = [None] * count
        window: deque = state["window"]
        j = 0
        if state["ref"] is None:  # first frame of the video
            decisions[0] = KeyframeDecision(True, 1.0)
            bucket.keys += 1
            state["ref"] = feats[0].clone()  # a copy: a view would keep the whole clip alive
            j = 1
        while j < count:
            s = self._change(feats[j:], state["ref"]).numpy()
            thr = self._threshold(window, s)
            pos = np.arange(start + j, start + count)
            credit = np.array([bucket.credit(int(n)) for n in pos])
            cand = np.flatnonzero((s >= thr) & (credit >= 1))
            key_rel: int | None = None
            if cand.size:
                cj = jumps[j + cand]
                best = int(cand[int(np.argmax(cj))])  # argmax keeps the earliest of equal jumps
                key_rel = best if cj.max() >= thr else int(cand[0])
            else:
                full = np.flatnonzero(credit >= self.max_credit)
                if full.size:
                    key_rel = int(full[0])
            stop = len(s) if key_rel is None else key_rel
            for r in range(stop):
                decisions[j + r] = KeyframeDecision(False, float(s[r]))
                window.append(float(s[r]))
            if key_rel is None:
                break
            k = j + key_rel
            decisions[k] = KeyframeDecision(True, float(s[key_rel]))
            bucket.keys += 1
            if s[key_rel] < thr:  # a refresh: an ordinary score, part of the baseline
                window.append(float(s[key_rel]))
            state["ref"] = feats[k].clone()
            j = k + 1
        assert all(d is not None for d in decisions)
        return decisions  # type: ignore[return-value]


def make_selector(config: Any) -> KeyframeSelector:
    """The selector the settings ask for.

    Reads (each optional): ``enable_vjepa2`` (False), ``detect_every`` (1), ``keyframe_budget``
    (0.25), ``keyframe_strategy`` ("novelty"), ``vjepa2_model``, ``vjepa2_frames_per_clip`` (16),
    ``vjepa2_clips_per_pass`` (1), ``device``, ``dtype``.

    Returns:
        :class:`VJepa2Selector` when ``enable_vjepa2`` is set, else :class:`CadenceSelector`.

    Raises:
        UsageError: a setting is out of range.
    """
    if getattr(config, "enable_vjepa2", False):
        optimizer = create_vjepa2_optimizer(config, enable_vjepa2=True)
        assert optimizer is not None
        budget = getattr(config, "keyframe_budget", None)
        strategy = getattr(config, "keyframe_strategy", None) or "novelty"
        clips = getattr(config, "vjepa2_clips_per_pass", None)
        return VJepa2Selector(optimizer, budget=0.25 if budget is None else budget, strategy=strategy,
                              clips_per_pass=1 if clips is None else clips)
    every = getattr(config, "detect_every", None)
    return CadenceSelector(1 if every is None else every)


__all__ = ["KeyframeDecision", "KeyframeSelector", "CadenceSelector", "VJepa2Selector", "make_selector"]
