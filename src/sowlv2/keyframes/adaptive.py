"""The content-driven rule shared by the V-JEPA 2 and the pixel-difference selectors.

A :class:`ClipSelector` reads the stream in groups of ``clips_per_pass`` clips of ``frames_per_clip``
frames (its lookahead; the memory bound), turns each group into per-frame feature maps (the subclass:
V-JEPA 2 encoder tokens, or small grey images) and decides every frame of a clip at once:

**Key frames** (the detector), within ``keyframe_budget`` (``s_n``: the frame's change against the
last key frame; ``jump_n``: its tubelet's change against the frame just before the tubelet;
``credit_n``: unspent detector budget):

* frame 0 is a key frame (score 1.0);
* **event**: ``credit_n >= 1`` and either ``s_n >= thr`` (the content moved away from the last key
  frame) or ``jump_n >= thr_jump`` with ``s_n >= min_novelty`` (an abrupt change: a cut, an object
  popping in). Both thresholds adapt to the video: ``max(min_novelty, median + sensitivity * 1.4826 *
  MAD)`` of the recent non-key values (the last ``4 * frames_per_clip``) together with the current
  clip's, so a steady level of motion or noise is not an event but a jump above it is. A cut makes
  *every* later frame of its clip differ from the last key frame, which can lift ``thr`` above them
  all; its jump stands out in the clip's jumps, so the cut is still caught. Within a clip the event
  goes to the tubelet with the largest jump when that jump itself clears a threshold (a cut), else to
  the first frame above ``thr`` (gradual change: detect as soon as it is noticed), and then to the
  *last* frame of that tubelet (the frames of a tubelet share their features, and for a cut in the
  middle of a tubelet the last one is the one after the cut).
* **refresh**: when no event is due and ``credit_n`` reaches ``max_credit``, a key frame is spent
  anyway (slow changes the features miss still get detected), on the most changed frame from there
  to the end of the clip (the lookahead), earliest on ties. In a static video this gives evenly
  spaced key frames at the budget's rate while ``max_credit - 1`` stay in reserve for events.

**Tracking or filling** (the tracker), within ``track_budget`` and ``max_gap``: a frame asks to be
tracked when its change against the last *processed* frame is at least ``min_motion``; the
:class:`~sowlv2.keyframes.budget.TrackSchedule` then decides (key frames first, a fill never longer
than ``max_gap``, one credit kept for the next key frame). So fills go where the content barely
changed, the tracker runs densely where things move, and the detector runs where something new
appears. With ``track_budget`` 1 every frame is tracked.

When the features are unavailable (the encoder failed; it logs one warning) or the strategy is
``uniform``, key frames are evenly spaced at the budget and every frame asks to be tracked.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..stages import KeyframeDecision
from ..types import Frame
from .budget import DEFAULT_MAX_GAP, Bucket, TrackSchedule, budget_fraction

log = logging.getLogger(__name__)


class ClipSelector:
    """Base of the content-driven selectors (see the module docstring for the rule).

    Subclasses give ``frames_per_clip`` and ``tubelet`` and implement :meth:`_features` and
    :meth:`_change`; ``self.uniform`` (True: no features at all) may be set by them.

    Args:
        budget: ``keyframe_budget``, share of frames the detector may run on, in (0, 1].
        clips_per_pass: clips read ahead and scored together (lookahead and memory bound:
            ``clips_per_pass * frames_per_clip`` frames).
        max_credit: detector credit at which a refresh key frame is spent (>= 1).
        min_novelty: lowest event threshold.
        sensitivity: robust standard deviations above the median that make an event.
        track_budget: share of frames the tracker processes, in (0, 1] (key frames included).
        max_gap: longest run of filled frames (>= 1).
        min_motion: change against the last processed frame from which a frame asks to be tracked.
    """

    frames_per_clip: int = 16
    tubelet: int = 1
    uniform: bool = False

    def __init__(self, budget: float = 0.25, *, clips_per_pass: int = 1, max_credit: int = 3,
                 min_novelty: float = 0.05, sensitivity: float = 3.0, track_budget: float = 1.0,
                 max_gap: int = DEFAULT_MAX_GAP, min_motion: float = 0.02) -> None:
        if int(max_credit) < 1:
            raise ValueError(f"max_credit must be >= 1, got {max_credit}")
        if int(clips_per_pass) < 1:
            raise UsageError(f"vjepa2_clips_per_pass must be >= 1, got {clips_per_pass}")
        self.clips_per_pass = int(clips_per_pass)
        self._budget = budget_fraction(budget)
        self.budget = float(budget)
        self.max_credit = int(max_credit)
        self.min_novelty = float(min_novelty)
        self.sensitivity = float(sensitivity)
        self.track_budget = float(track_budget)
        self.max_gap = int(max_gap)
        self.min_motion = float(min_motion)
        TrackSchedule(track_budget, max_gap)  # check the settings now
        self.seconds = 0.0
        self.fallback = False  # True once the selection has fallen back to the uniform schedule

    # ------------------------------------------------------------------ subclass hooks
    def _features(self, images: list[np.ndarray]) -> torch.Tensor | None:
        """(N, h, w, D) float features of the frames (one group), or None when unavailable."""
        raise NotImplementedError

    def _change(self, feats: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """(N,) change in [0, 1] of each (h, w, D) map in ``feats`` against ``ref`` (one or N maps)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ selection
    def _threshold(self, window: deque, current: np.ndarray) -> float:
        vals = np.concatenate([np.asarray(window, dtype=np.float64), current.astype(np.float64)])
        if vals.size == 0:
            return self.min_novelty
        med = float(np.median(vals))
        mad = float(np.median(np.abs(vals - med)))
        return max(self.min_novelty, med + self.sensitivity * 1.4826 * mad)

    def select(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, KeyframeDecision]]:
        """Yield ``(frame, decision)`` for every frame, in order, up to ``clips_per_pass`` clips behind
        the source."""
        self.seconds = 0.0
        self.fallback = False
        bucket = Bucket(self._budget)
        schedule = TrackSchedule(self.track_budget, self.max_gap)
        fpc = max(1, int(self.frames_per_clip))
        group_len = fpc * self.clips_per_pass
        state: dict[str, Any] = {"ref": None, "prev": None, "proc": None, "window": deque(maxlen=4 * fpc),
                                 "jumps": deque(maxlen=4 * fpc)}
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
            if not self.uniform and not self.fallback:
                decisions = self._decide_group(list(group), start, fpc, bucket, schedule, state)
                if decisions is None:
                    self.fallback = True
                    log.info("key frames: uniform schedule at budget %s from frame %d", self.budget, start)
            if decisions is None:
                decisions = self._uniform(count, start, bucket, schedule)
            self.seconds += time.perf_counter() - t0
            start += count
            for decision in decisions:
                yield group.popleft(), decision
            if count < group_len:  # a short group: the stream has ended
                break

    def _decide_group(self, frames: list[Frame], start: int, fpc: int, bucket: Bucket, schedule: TrackSchedule,
                      state: dict[str, Any]) -> list[KeyframeDecision] | None:
        """Score up to ``clips_per_pass`` clips at once and decide them clip by clip."""
        feats = self._features([f.image for f in frames])
        if feats is None:
            return None
        out: list[KeyframeDecision] = []
        for c in range(0, len(frames), fpc):
            clip = feats[c : c + fpc]
            keys, scores = self._key_clip(clip, start + c, bucket, state)
            out.extend(self._track_clip(clip, start + c, keys, scores, schedule, state))
        return out

    def _uniform(self, count: int, start: int, bucket: Bucket, schedule: TrackSchedule) -> list[KeyframeDecision]:
        out = []
        for n in range(start, start + count):
            key = bucket.uniform_due(n) and bucket.credit(n) >= 1
            bucket.keys += key
            out.append(schedule.decide(n, key, None))
        return out

    def _track_clip(self, feats: torch.Tensor, start: int, keys: list[bool], scores: list[float],
                    schedule: TrackSchedule, state: dict[str, Any]) -> list[KeyframeDecision]:
        """Detect / track / fill for one clip, from its key frames and each frame's motion."""
        out = []
        for r in range(int(feats.shape[0])):
            wants = True
            if state["proc"] is not None and not schedule.dense:
                wants = float(self._change(feats[r : r + 1], state["proc"])[0]) >= self.min_motion
            decision = schedule.decide(start + r, keys[r], scores[r], wants)
            if decision.process and not schedule.dense:
                state["proc"] = feats[r].clone()
            out.append(decision)
        return out

    def _key_clip(self, feats: torch.Tensor, start: int, bucket: Bucket,
                  state: dict[str, Any]) -> tuple[list[bool], list[float]]:
        """Key-frame wishes and scores for one clip's frames from their (T, h, w, D) features."""
        count = int(feats.shape[0])
        tub = max(1, int(self.tubelet))
        # Jump of each frame: its tubelet against the frame just before the tubelet's first frame.
        tstart = [(j // tub) * tub for j in range(count)]
        prev_maps = torch.stack([feats[t - 1] if t > 0 else (state["prev"] if state["prev"] is not None
                                                             else feats[0]) for t in tstart])
        jumps = self._change(feats, prev_maps).numpy()
        state["prev"] = feats[-1].clone()
        jthr = self._threshold(state["jumps"], jumps[[t for t in sorted(set(tstart))]])

        keys = [False] * count
        scores: list[float | None] = [None] * count
        window: deque = state["window"]
        j = 0
        if state["ref"] is None:  # first frame of the video
            keys[0], scores[0] = True, 1.0
            bucket.keys += 1
            state["ref"] = feats[0].clone()  # a copy: a view would keep the whole clip alive
            j = 1
        while j < count:
            s = self._change(feats[j:], state["ref"]).numpy()
            thr = self._threshold(window, s)
            pos = np.arange(start + j, start + count)
            credit = np.array([bucket.credit(int(n)) for n in pos])
            jump = jumps[j:]
            event = (s >= thr) | ((jump >= jthr) & (s >= self.min_novelty))
            cand = np.flatnonzero(event & (credit >= 1))
            key_rel: int | None = None
            if cand.size:
                cj = jump[cand]
                best = int(cand[int(np.argmax(cj))])  # argmax keeps the earliest of equal jumps
                key_rel = best if (cj.max() >= thr or cj.max() >= jthr) else int(cand[0])
            else:
                full = np.flatnonzero(credit >= self.max_credit)
                if full.size:
                    f = int(full[0])
                    key_rel = f + int(np.argmax(s[f:]))  # the most changed frame within reach
            if key_rel is not None:  # the last frame of its tubelet (same features, later in time)
                key_rel = min(tstart[j + key_rel] + tub - 1, count - 1) - j
            stop = len(s) if key_rel is None else key_rel
            for r in range(stop):
                scores[j + r] = float(s[r])
                window.append(float(s[r]))
            if key_rel is None:
                break
            k = j + key_rel
            keys[k], scores[k] = True, float(s[key_rel])
            bucket.keys += 1
            if s[key_rel] < thr:  # a refresh: an ordinary score, part of the baseline
                window.append(float(s[key_rel]))
            state["ref"] = feats[k].clone()
            j = k + 1
        state["jumps"].extend(float(jumps[t]) for t in sorted(set(tstart)) if not keys[t])
        assert all(v is not None for v in scores)
        return keys, scores  # type: ignore[return-value]
