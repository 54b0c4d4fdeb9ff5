"""Key-frame association: detections to tracks by mask IoU, stable ids, track lifecycle.

On a key frame every detection has a mask (SAM 2 decoding of its box on this frame) and every
live track has its propagated mask. Then:

1. Hungarian matching on mask IoU (``scipy.optimize.linear_sum_assignment``); a pair counts as a
   match when IoU >= ``match_iou``, or when the two have the same label and one mask lies mostly
   inside the other (``contain``, default 0.8, of the smaller mask): a track that shrank to a part
   of its object, or bled onto a neighbour, is the same object and is corrected, not duplicated.
   A matched track keeps its id, label and gets the detection's score.
2. Drift: a match whose IoU is below ``reprompt_iou`` (default 0.8) re-prompts the track with the
   detection's box, so that SAM 2's memory is corrected by the detector while the id stays.
   A match at or above it is left alone (re-prompting costs a conditioning frame in memory).
3. An unmatched detection starts a new track with a new id (ids start at 1, never reused) unless
   most of its mask (``cover_new``, default 0.5) is already covered by live tracks: that is a
   part or a duplicate of something tracked, not a new object.
4. A track whose mask is empty for ``max_lost`` consecutive frames is ended.
5. Duplicates (every frame, :meth:`TrackManager.deduplicate`): when two live tracks' masks overlap
   with IoU >= ``dup_iou`` (default 0.7) SAM 2 has pulled both onto one object and one of them ends,
   so one object never carries two ids: the newer id when both have the same label, else the one a
   detection confirmed less recently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..types import Detections


@dataclass
class Track:
    """A tracked object. ``id`` is what users see; it never changes and is never reused."""

    id: int
    label: str
    class_id: int
    score: float
    best_score: float
    first_frame: int
    last_frame: int
    lost: int = 0  # consecutive frames with an empty mask
    confirmed: int = -1  # last frame on which a detection matched (or created) this track

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "first_frame": self.first_frame,
                "last_frame": self.last_frame, "best_score": round(self.best_score, 5)}


@dataclass
class Association:
    """What to do after a key frame: (track id, detection index) pairs."""

    matched: list[tuple[int, int]] = field(default_factory=list)
    reprompt: list[tuple[int, int]] = field(default_factory=list)
    new: list[tuple[int, int]] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every mask of ``a`` (n, H, W) bool and ``b`` (m, H, W) bool -> (n, m) float."""
    return _overlaps(a, b)[0]


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over the smaller mask between every mask of ``a`` (n, H, W) and ``b`` (m, H, W)."""
    if len(a) == 0 or len(b) == 0:
        z = np.zeros((len(a), len(b)), np.float32)
        return z, z
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    sa, sb = fa.sum(1)[:, None], fb.sum(1)[None, :]
    union = sa + sb - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    small = np.minimum(sa, sb)
    inside = np.where(small > 0, inter / np.maximum(small, 1), 0.0)
    return iou.astype(np.float32), inside.astype(np.float32)


class TrackManager:
    """Owns the tracks of one video and decides ids.

    Args:
        match_iou: minimum mask IoU for a detection to keep a track's id.
        max_lost: frames a track may stay empty before it ends.
        reprompt_iou: matches below this IoU re-prompt the track (drift correction).
        cover_new: an unmatched detection whose mask is covered this much by live tracks is ignored.
        contain: a detection and a track of the same label also match when this share of the smaller
            mask lies inside the other.
        dup_iou: two live tracks whose masks overlap this much are one object (see ``deduplicate``).
    """

    def __init__(self, match_iou: float = 0.5, max_lost: int = 30, reprompt_iou: float = 0.8,
                 cover_new: float = 0.5, contain: float = 0.8, dup_iou: float = 0.7) -> None:
        self.match_iou, self.max_lost = match_iou, max_lost
        self.reprompt_iou, self.cover_new = reprompt_iou, cover_new
        self.contain, self.dup_iou = contain, dup_iou
        self.tracks: dict[int, Track] = {}
        self.ended: list[Track] = []
        self._next_id = 1

    def associate(self, frame_index: int, track_masks: dict[int, np.ndarray], detections: Detections,
                  det_masks: np.ndarray) -> Association:
        """Match one key frame's detections to the live tracks and create new tracks.

        Args:
            track_masks: live track id -> (H, W) bool propagated mask on this frame.
            detections: the detector's output on this frame.
            det_masks: (n, H, W) bool, one mask per detection.
        """
        out = Association()
        ids = [i for i in track_masks if i in self.tracks]
        tmasks = (np.stack([track_masks[i] for i in ids]) if ids
                  else np.zeros((0, *det_masks.shape[1:]), bool))
        iou, inside = _overlaps(tmasks, det_masks)
        same = np.array([[self.tracks[t].label == lab for lab in detections.labels] for t in ids],
                        bool).reshape(iou.shape)
        # a same-label part/whole pair is a match, ranked below any pair that already matches by IoU
        contained = same & (inside >= self.contain) & (iou < self.match_iou)
        gain = np.where(contained, self.match_iou * inside, iou)
        matched_dets: set[int] = set()
        if gain.size:
            rows, cols = linear_sum_assignment(-gain)
            for r, c in zip(rows, cols):
                if iou[r, c] < self.match_iou and not contained[r, c]:
                    continue
                tid = ids[r]
                matched_dets.add(int(c))
                track = self.tracks[tid]
                track.score = float(detections.scores[c])
                track.best_score = max(track.best_score, track.score)
                track.last_frame = frame_index
                track.confirmed = frame_index
                track.lost = 0
                (out.reprompt if iou[r, c] < self.reprompt_iou else out.matched).append((tid, int(c)))
        covered = tmasks.any(axis=0) if len(tmasks) else None
        for c in range(len(detections)):
            if c in matched_dets:
                continue
            area = det_masks[c].sum()
            if covered is not None and area > 0 and (det_masks[c] & covered).sum() / area >= self.cover_new:
                out.ignored.append(c)
                continue
            tid = self._next_id
            self._next_id += 1
            score = float(detections.scores[c])
            self.tracks[tid] = Track(tid, detections.labels[c], int(detections.class_ids[c]), score, score,
                                     frame_index, frame_index, confirmed=frame_index)
            out.new.append((tid, c))
            # later detections of this frame must not duplicate the new object either
            covered = det_masks[c].copy() if covered is None else covered | det_masks[c]
        return out

    def update(self, frame_index: int, masks: dict[int, np.ndarray]) -> list[int]:
        """Record which tracks are visible on this frame; return the ids that end now."""
        ended = []
        for tid, track in list(self.tracks.items()):
            mask = masks.get(tid)
            if mask is not None and mask.any():
                track.lost = 0
                track.last_frame = max(track.last_frame, frame_index)
            else:
                track.lost += 1
                if track.lost >= self.max_lost:
                    ended.append(tid)
                    self.ended.append(self.tracks.pop(tid))
        return ended

    def deduplicate(self, masks: dict[int, np.ndarray], max_side: int = 256) -> list[int]:
        """End live tracks that duplicate another live track; return their ids (the caller frees them).

        Two tracks whose masks have IoU >= ``dup_iou`` follow one object. With the same label the
        older id stays (ids are stable) and takes over the newer one's confirmation; with different
        labels the one a detection confirmed more recently stays. IoU is computed on masks subsampled
        to at most ``max_side`` pixels a side (cheap on every frame, even at 4K).

        Args:
            masks: track id -> (H, W) bool mask on this frame.
        """
        ids = [i for i in sorted(masks) if i in self.tracks and masks[i].any()]
        if len(ids) < 2:
            return []
        h, w = masks[ids[0]].shape
        step = max(1, -(-max(h, w) // max_side))
        small = np.stack([masks[i][::step, ::step] for i in ids])
        iou = mask_iou_matrix(small, small)
        kept: list[int] = []  # indices into ids, oldest id first
        dropped: list[int] = []
        for k in range(len(ids)):
            twin = next((j for j in kept if iou[k, j] >= self.dup_iou), None)
            if twin is None:
                kept.append(k)
                continue
            old, new = self.tracks[ids[twin]], self.tracks[ids[k]]
            if old.label != new.label and new.confirmed > old.confirmed:
                # the newer track's label is the one a detection backed more recently
                kept[kept.index(twin)] = k
                dropped.append(old.id)
            else:  # same object, same label: the older id stays (ids are stable), with the newer evidence
                old.confirmed = max(old.confirmed, new.confirmed)
                old.best_score = max(old.best_score, new.best_score)
                dropped.append(new.id)
        for tid in dropped:
            self.ended.append(self.tracks.pop(tid))
        return sorted(dropped)

    def all_tracks(self) -> list[Track]:
        """Every track of the video so far, ended or live, by id."""
        return sorted([*self.ended, *self.tracks.values()], key=lambda t: t.id)
