"""Score SOWLv2 video results against DAVIS-style ground truth, with the DAVIS 2017 definitions.

The definitions are those of the DAVIS 2017 evaluation (davisvideochallenge/davis2017-evaluation:
``davis2017/metrics.py``, ``evaluation.py``, ``utils.py``); the code here is our own, checked against
hand-computed cases in ``tests/test_eval_metrics.py``.

Per frame, for a ground-truth object mask G and a predicted mask P ((H, W) bool):

- **J** (region similarity) = |G & P| / |G | P|, and 1 when both are empty.
- **Boundary map** (DAVIS's ``seg2bmap``): a pixel is a boundary pixel when its east, south or
  south-east neighbour exists and differs from it. Boundaries are 1 px wide and lie half a pixel
  towards the origin: the background pixel left of (or above) a mask is a boundary pixel, the mask's
  own left column is not. An image edge is not a boundary.
- **F** (boundary F-measure): tolerance r = ceil(bound_th x sqrt(H^2 + W^2)) pixels (bound_th 0.008;
  a bound_th >= 1 is r itself). A boundary pixel of P is matched when a boundary pixel of G lies
  within Euclidean distance r (a dilation by a disk of radius r), and the other way round. With nP,
  nG boundary pixels: precision = matched P / nP, recall = matched G / nG; when nP = 0, precision is
  1 (and recall 0 unless nG = 0); when nG = 0, recall is 1 (and precision 0 unless nP = 0).
  F = 2 precision recall / (precision + recall), 0 when both are 0. So F = 1 when neither mask has a
  boundary pixel (both empty) and 0 when exactly one has.

Per object, over the scored frames, for its per-frame values v (J or F, n frames):

- **Mean**: the mean of v.
- **Recall**: the share of frames with v > 0.5.
- **Decay**: the mean of the first quarter minus the mean of the last, with DAVIS's quarters: edges
  e_k = round-half-up(k (n - 1) / 4) for k = 0..4 (0-based frame positions), quarter k holds
  v[e_k .. e_{k+1}] with both ends included, so neighbouring quarters share a frame (48 frames: the
  first quarter is frames 0-12, the last 35-47). This is *not* an even 4-way split.

Protocols (``protocol=``):

- ``"davis"`` (DAVIS 2017 unsupervised; the default): every frame is scored. The proposals are the
  predicted ids with a non-empty mask in some frame, in increasing id order, followed by empty
  proposals when there are fewer proposals than objects (DAVIS pads the same way). Each object gets
  one proposal, one-to-one, by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``)
  maximising the sum over objects of (J-Mean + F-Mean) / 2. An object may get an empty proposal
  (``pred_id`` None): it then scores 0 where it is visible and 1 where it is not.
- ``"semi-supervised"`` (DAVIS 2017 semi-supervised): predicted id k is object k, no matching; the
  first and the last frame are not scored (DAVIS gives the first frame's masks to the method and
  leaves out the last).

Per video, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall and F-Decay are means over the objects of the
per-object values, and J&F-Mean = (J-Mean + F-Mean) / 2. Over several videos DAVIS averages over all
objects of all videos, not over videos: :func:`aggregate`.

Where this differs from the official code, on purpose:

- The objects are all ids visible in at least one frame. The official loader takes the objects of a
  sequence from its first frame (ids 1..max id there): every DAVIS object is there on frame 0, while
  objects of ``sowlv2 world`` enter later.
- Predictions are ``results.json`` tracks, one mask each, which may overlap (a DAVIS result PNG holds
  one id per pixel). The official code stops at more than 20 proposals; here there is no limit.
- For more than 256 frames the official decay's quarter edges wrap around (they are cast to uint8);
  here they do not. The ground truth's void label 255 counts as background, which is what the
  official loader does (it sets 255 to 0 before its void test, so its void masks are always empty).

Our own measures, not DAVIS's, with their own names: ``object_recall`` (the share of objects whose
J-Mean is >= 0.5), discovery latency and id switches (see :class:`ObjectScore`); they use every frame
whatever the protocol.

Why hand-written: no maintained package implements this with a pip-installable API. The DAVIS 2017
evaluation code is a repository, not a package, and reads whole videos into memory; ``davisinteractive``
scores interactive segmentation; ``motmetrics`` and TrackEval's forks score boxes / CLEAR-MOT. The
parts that libraries do well are theirs: pycocotools decodes RLE, scipy does the distance transform
and the assignment.

Everything streams: one ground-truth PNG and one predicted frame are decoded at a time; per frame
only a few numbers per object, track and overlapping (object, track) pair are kept (the
``results.json`` text itself is parsed whole; its masks stay RLE-compressed until their frame).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from ..errors import InputError
from ..types import mask_to_box

log = logging.getLogger(__name__)

PROTOCOLS = ("davis", "semi-supervised")
VOID = 255  # DAVIS's void label; the official loader turns it into background


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class ObjectScore:
    """Scores of one ground-truth object.

    Attributes:
        gt_id: id in the annotation PNGs.
        label: its category from ``categories.json`` (None when not known).
        pred_id: the predicted track assigned to it; None when it got an empty proposal (``davis``)
            or its id never has a mask (``semi-supervised``).
        J_mean, J_recall, J_decay, F_mean, F_recall, F_decay: DAVIS statistics of its per-frame J and
            F over the scored frames (module docstring).
        first_frame: first frame where the object is visible in the ground truth.
        frames: number of frames where the object is visible.
        latency: frames from ``first_frame`` to the first frame where its track has IoU >= 0.5 with
            it; ``frames_total - first_frame`` (the frames remaining until the end of the video) when
            that never happens. Ours, not DAVIS's.
        discovered: whether such a frame exists.
        id_switches: frames where the best-overlapping predicted id (IoU >= 0.5) differs from the one
            in the previous frame that had such an id. Ours, not DAVIS's.
    """

    gt_id: int
    label: str | None
    pred_id: int | None
    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float
    first_frame: int
    frames: int
    latency: int
    discovered: bool
    id_switches: int


@dataclass
class EvalResult:
    """Scores of one video.

    Attributes:
        protocol: ``"davis"`` (unsupervised) or ``"semi-supervised"``.
        JF_mean: DAVIS J&F-Mean, (J_mean + F_mean) / 2.
        J_mean, J_recall, J_decay, F_mean, F_recall, F_decay: DAVIS statistics, means over objects.
        object_recall: share of objects whose J_mean is >= 0.5 (ours, not DAVIS's J-Recall).
        discovery_latency: ``{"median", "p95", "max"}`` of the per-object latencies in frames.
        id_switches: sum over objects of ``ObjectScore.id_switches``.
        detector_calls: from ``stats.detector_calls`` of the results, None when absent.
        frames: number of ground-truth frames read.
        frames_scored: number of frames the DAVIS statistics cover (``frames - 2`` for
            ``semi-supervised``).
        tracks: number of predicted ids with a non-empty mask in some frame.
        unmatched_tracks: those assigned to no object.
        objects: one row per ground-truth object, ordered by id.
    """

    protocol: str
    JF_mean: float
    J_mean: float
    J_recall: float
    J_decay: float
    F_mean: float
    F_recall: float
    F_decay: float
    object_recall: float
    discovery_latency: dict[str, float]
    id_switches: int
    detector_calls: int | None
    frames: int
    frames_scored: int
    tracks: int
    unmatched_tracks: int
    objects: list[ObjectScore] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (objects as a list of dicts)."""
        return asdict(self)


STATISTICS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")


def aggregate(results: Iterable[EvalResult]) -> dict[str, float]:
    """DAVIS's global figures over several videos: each statistic averaged over all objects of all videos.

    Returns:
        ``{"JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay",
        "object_recall", "objects", "videos"}``.
    """
    results = list(results)
    rows = [o for r in results for o in r.objects]
    if not rows:
        raise ValueError("no objects to aggregate")
    out = {k: float(np.mean([getattr(o, k) for o in rows])) for k in STATISTICS}
    out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
    out["object_recall"] = float(np.mean([o.J_mean >= 0.5 for o in rows]))
    out["objects"] = len(rows)
    out["videos"] = len(results)
    return {k: out[k] for k in ("JF_mean", *STATISTICS, "object_recall", "objects", "videos")}


# ---------------------------------------------------------------------------------------------------
# Per-frame geometry


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS boundary pixels of a mask (``seg2bmap``): pixels whose east, south or south-east
    neighbour exists and differs from them.

    Args:
        mask: (H, W) bool (or 0/1).

    Returns:
        (H, W) bool.
    """
    m = np.asarray(mask, bool)
    b = np.zeros(m.shape, bool)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]  # east
    b[:-1, :] |= m[:-1, :] != m[1:, :]  # south
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]  # south-east
    return b


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Tolerance radius in pixels: ``ceil(bound_th * sqrt(H^2 + W^2))``, or ``bound_th`` itself when >= 1.

    Raises:
        ValueError: ``bound_th`` not > 0, or >= 1 and not a whole number of pixels.
    """
    if not bound_th > 0:
        raise ValueError(f"bound_th must be > 0, got {bound_th}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a bound_th >= 1 is a radius in pixels and must be whole, got {bound_th}")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm([height, width])))


def decay_quarters(n: int) -> list[tuple[int, int]]:
    """DAVIS's 4 quarters of n frames for the decay, as ``[start, stop)`` index pairs (see module docstring).

    Example: ``decay_quarters(8) == [(0, 3), (2, 5), (4, 6), (5, 8)]``.
    """
    if n < 1:
        raise ValueError(f"need at least one frame, got {n}")
    edges = [(k * (n - 1) + 2) // 4 for k in range(5)]  # round half up of k (n - 1) / 4
    return [(edges[k], edges[k + 1] + 1) for k in range(4)]


def statistics(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """DAVIS (mean, recall, decay) of one object's per-frame values (J or F).

    Args:
        values: (n,) per-frame values, n >= 1.

    Returns:
        mean; recall: share of values > 0.5; decay: mean of the first quarter minus mean of the last.
    """
    v = np.asarray(values, float)
    q = decay_quarters(len(v))
    first, last = v[q[0][0]:q[0][1]], v[q[3][0]:q[3][1]]
    return float(np.mean(v)), float(np.mean(v > 0.5)), float(np.mean(first) - np.mean(last))


def _f_from_counts(n_pred: int, n_gt: int, pred_hits: int, gt_hits: int) -> float:
    """F from boundary counts: ``pred_hits`` of the ``n_pred`` predicted boundary pixels are matched,
    ``gt_hits`` of the ``n_gt`` ground-truth ones (DAVIS conventions for empty boundaries)."""
    precision = 1.0 if n_pred == 0 else (0.0 if n_gt == 0 else pred_hits / n_pred)
    recall = 1.0 if n_gt == 0 else (0.0 if n_pred == 0 else gt_hits / n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


class _Outline:
    """DAVIS boundary pixels of one mask and the zone within the tolerance radius of them.

    ``ys``, ``xs``: (n,) int absolute coordinates of boundary pixels. ``zone``: bool array of the
    region ``[zy0:zy1, zx0:zx1]`` that is True within ``radius`` (Euclidean) of a boundary pixel,
    i.e. the boundary dilated by a disk of that radius.
    """

    def __init__(self, mask: np.ndarray, box: tuple[slice, slice], radius: int) -> None:
        h, w = mask.shape
        # boundary pixels lie within the mask's box grown by 1 px up and left (the background pixel
        # before an edge); 1 px more down and right gives every pixel of the box its neighbours
        y0, y1 = max(0, box[0].start - 1), min(h, box[0].stop + 1)
        x0, x1 = max(0, box[1].start - 1), min(w, box[1].stop + 1)
        by, bx = np.nonzero(boundary_map(mask[y0:y1, x0:x1]))
        self.ys, self.xs = by + y0, bx + x0
        self.n = int(by.size)
        if self.n == 0:
            self.box = (0, 0, 0, 0)
            self.zone = np.zeros((0, 0), bool)
            return
        zy0, zy1 = max(0, int(self.ys.min()) - radius), min(h, int(self.ys.max()) + radius + 1)
        zx0, zx1 = max(0, int(self.xs.min()) - radius), min(w, int(self.xs.max()) + radius + 1)
        far = np.ones((zy1 - zy0, zx1 - zx0), bool)
        far[self.ys - zy0, self.xs - zx0] = False
        self.zone = ndimage.distance_transform_edt(far) <= radius
        self.box = (zy0, zy1, zx0, zx1)

    def hits(self, other: _Outline) -> int:
        """How many of ``other``'s boundary pixels lie within this outline's zone."""
        if self.n == 0 or other.n == 0:
            return 0
        zy0, zy1, zx0, zx1 = self.box
        inside = (other.ys >= zy0) & (other.ys < zy1) & (other.xs >= zx0) & (other.xs < zx1)
        if not inside.any():
            return 0
        return int(self.zone[other.ys[inside] - zy0, other.xs[inside] - zx0].sum())


def _f_measure(gt: _Outline, pred: _Outline) -> float:
    return _f_from_counts(pred.n, gt.n, gt.hits(pred), pred.hits(gt))


def frame_scores(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> tuple[float, float]:
    """J and F of one frame for one object (DAVIS ``db_eval_iou`` / ``db_eval_boundary``).

    Args:
        gt, pred: (H, W) bool (or 0/1) masks of the same shape.
        bound_th: boundary tolerance (fraction of the diagonal, or whole pixels when >= 1).

    Returns:
        (J, F).
    """
    g, p = np.asarray(gt, bool), np.asarray(pred, bool)
    if g.shape != p.shape or g.ndim != 2:
        raise ValueError(f"expected two (H, W) masks of one shape, got {g.shape} and {p.shape}")
    radius = boundary_radius(*g.shape, bound_th)
    union = int((g | p).sum())
    j = 1.0 if union == 0 else int((g & p).sum()) / union
    full = (slice(0, g.shape[0]), slice(0, g.shape[1]))
    return j, _f_measure(_Outline(g, full, radius), _Outline(p, full, radius))


# ---------------------------------------------------------------------------------------------------
# Streaming accumulator


@dataclass
class _Frame:
    """What one frame leaves behind: per visible object (area, boundary pixels), per non-empty track
    its boundary pixels, and (J, F) per (object, track) pair that are both non-empty."""

    gt: dict[int, tuple[int, int]]
    pred: dict[int, int]
    pairs: dict[tuple[int, int], tuple[float, float]]


class VideoScorer:
    """Accumulate per-frame J and F of ground-truth objects and predicted tracks, then score.

    Feed frames in order with ``add``; call ``result`` at the end (once per protocol if wanted).
    Holds a few numbers per frame, never masks of past frames.

    Args:
        size: (height, width) of every frame.
        bound_th: boundary tolerance, fraction of the image diagonal (or whole pixels when >= 1).
    """

    def __init__(self, size: tuple[int, int], bound_th: float = 0.008) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.radius = boundary_radius(*self.size, bound_th)
        self.frames = 0
        self._log: list[_Frame] = []
        self._gt_frames: dict[int, int] = {}  # gt id -> frames visible
        self._gt_first: dict[int, int] = {}  # gt id -> first frame visible
        self._pred_ids: set[int] = set()  # ids with a non-empty mask in some frame
        self._first_hit: dict[tuple[int, int], int] = {}  # (gt, pred) -> first frame with IoU >= 0.5
        self._last_best: dict[int, int] = {}
        self._switches: dict[int, int] = {}

    def add(self, gt: np.ndarray, pred_ids: list[int] | np.ndarray, pred_masks: np.ndarray) -> None:
        """Add the next frame.

        Args:
            gt: (H, W) integer id map, 0 = background, k > 0 = object k.
            pred_ids: (n,) predicted track ids, unique within the frame.
            pred_masks: (n, H, W) bool (or 0/1) masks of those tracks; empty masks count as absent.
        """
        t = self.frames
        self.frames += 1
        if gt.shape != self.size:
            raise ValueError(f"ground-truth frame {t} has shape {gt.shape}, expected {self.size}")
        pred_masks = np.asarray(pred_masks, bool)
        if pred_masks.size == 0:
            pred_masks = pred_masks.reshape(0, *self.size)
        if pred_masks.ndim != 3 or pred_masks.shape[1:] != self.size:
            raise ValueError(f"frame {t}: predicted masks have shape {pred_masks.shape}, "
                             f"expected (n, {self.size[0]}, {self.size[1]})")
        pred_ids = [int(p) for p in pred_ids]
        if len(pred_ids) != len(pred_masks):
            raise ValueError(f"frame {t}: {len(pred_ids)} ids for {len(pred_masks)} masks")
        if len(set(pred_ids)) != len(pred_ids):
            raise ValueError(f"frame {t}: predicted ids repeat within the frame: {pred_ids}")
        gt = np.asarray(gt)
        boxes = ndimage.find_objects(gt.astype(np.int32, copy=False))
        gt_ids = [i + 1 for i, b in enumerate(boxes) if b is not None]
        for g in gt_ids:
            self._gt_frames[g] = self._gt_frames.get(g, 0) + 1
            self._gt_first.setdefault(g, t)
        gt_area = np.bincount(gt.ravel(), minlength=len(boxes) + 1) if gt_ids else None
        gt_outlines = {g: _Outline(gt == g, boxes[g - 1], self.radius) for g in gt_ids}
        frame = _Frame(gt={g: (int(gt_area[g]), gt_outlines[g].n) for g in gt_ids}, pred={}, pairs={})
        best: dict[int, tuple[float, int]] = {}
        for p, m in zip(pred_ids, pred_masks, strict=True):
            area = int(m.sum())
            if area == 0:
                continue
            self._pred_ids.add(p)
            ys = np.flatnonzero(m.any(axis=1))
            xs = np.flatnonzero(m.any(axis=0))
            outline = _Outline(m, (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)), self.radius)
            frame.pred[p] = outline.n
            if not gt_ids:
                continue
            inter = np.bincount(gt[m].ravel(), minlength=len(gt_area))
            for g in gt_ids:
                iou = float(inter[g]) / float(gt_area[g] + area - inter[g])
                frame.pairs[(g, p)] = (iou, _f_measure(gt_outlines[g], outline))
                if iou >= 0.5:
                    self._first_hit.setdefault((g, p), t)
                    if iou > best.get(g, (0.0, 0))[0]:
                        best[g] = (iou, p)
        self._log.append(frame)
        for g, (_, p) in best.items():
            last = self._last_best.get(g)
            if last is not None and last != p:
                self._switches[g] = self._switches.get(g, 0) + 1
            self._last_best[g] = p

    def _series(self, g: int, p: int | None, frames: range) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (J, F) of object g against track p (None: an empty proposal) over ``frames``."""
        j = np.empty(len(frames))
        f = np.empty(len(frames))
        for i, t in enumerate(frames):
            rec = self._log[t]
            g_in = rec.gt.get(g)
            p_in = rec.pred.get(p) if p is not None else None
            if g_in is not None and p_in is not None:
                j[i], f[i] = rec.pairs[(g, p)]
            elif g_in is not None:  # only the object: J = 0; F from the boundary counts
                j[i], f[i] = 0.0, _f_from_counts(0, g_in[1], 0, 0)
            elif p_in is not None:  # only the track
                j[i], f[i] = 0.0, _f_from_counts(p_in, 0, 0, 0)
            else:  # both empty
                j[i] = f[i] = 1.0
        return j, f

    def result(self, labels: dict[int, str] | None = None, detector_calls: int | None = None,
               protocol: str = "davis") -> EvalResult:
        """Assign tracks to objects and compute the scores.

        Args:
            labels: ground-truth id -> category, copied into the per-object rows.
            detector_calls: copied into the result.
            protocol: ``"davis"`` (unsupervised: Hungarian on (J-Mean + F-Mean) / 2, every frame) or
                ``"semi-supervised"`` (predicted id k is object k; first and last frame not scored).

        Raises:
            ValueError: no ground-truth object visible in any frame, an unknown protocol, or fewer
                than 3 frames for ``semi-supervised``.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        gts = sorted(self._gt_frames)
        preds = sorted(self._pred_ids)
        if not gts:
            raise ValueError("the ground truth has no object in any frame; nothing to score")
        if protocol == "semi-supervised":
            if self.frames < 3:
                raise ValueError(f"the semi-supervised protocol leaves out the first and the last frame: "
                                 f"it needs at least 3 frames, got {self.frames}")
            scored = range(1, self.frames - 1)
            match = {g: g for g in gts if g in self._pred_ids}
        else:
            scored = range(self.frames)
            proposals: list[int | None] = [*preds, *[None] * max(0, len(gts) - len(preds))]
            # (proposals x objects), as DAVIS orients it, so that ties resolve the same way
            score = np.zeros((len(proposals), len(gts)))
            for k, p in enumerate(proposals):
                for i, g in enumerate(gts):
                    j, f = self._series(g, p, scored)
                    score[k, i] = (np.mean(j) + np.mean(f)) / 2
            rows, cols = linear_sum_assignment(-score)
            match = {gts[c]: proposals[r] for r, c in zip(rows, cols, strict=True) if proposals[r] is not None}
        objects = []
        for g in gts:
            p = match.get(g)
            jm, jr, jd = statistics((series := self._series(g, p, scored))[0])
            fm, fr, fd = statistics(series[1])
            first = self._gt_first[g]
            hit = self._first_hit.get((g, p), -1) if p is not None else -1
            objects.append(ObjectScore(
                gt_id=g, label=(labels or {}).get(g), pred_id=p, J_mean=jm, J_recall=jr, J_decay=jd,
                F_mean=fm, F_recall=fr, F_decay=fd, first_frame=first, frames=self._gt_frames[g],
                latency=(hit - first) if hit >= 0 else self.frames - first, discovered=hit >= 0,
                id_switches=self._switches.get(g, 0)))
        lat = np.array([o.latency for o in objects], float)
        stats = {k: float(np.mean([getattr(o, k) for o in objects])) for k in STATISTICS}
        return EvalResult(
            protocol=protocol, JF_mean=(stats["J_mean"] + stats["F_mean"]) / 2, **stats,
            object_recall=float(np.mean([o.J_mean >= 0.5 for o in objects])),
            discovery_latency={"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                               "max": float(lat.max())},
            id_switches=int(sum(o.id_switches for o in objects)), detector_calls=detector_calls,
            frames=self.frames, frames_scored=len(scored), tracks=len(preds),
            unmatched_tracks=len(set(preds) - set(match.values())), objects=objects)


# ---------------------------------------------------------------------------------------------------
# Files


def find_results(path: str | Path) -> Path:
    """Locate a SOWLv2 ``results.json``.

    Args:
        path: the file itself, an output folder holding ``results.json``, or a ``--output`` folder
            holding exactly one ``<name>/results.json``.

    Raises:
        InputError: when none, or more than one, is found.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise InputError(f"{p}: no such file or folder (expected a SOWLv2 results.json or its folder)")
    if (p / "results.json").is_file():
        return p / "results.json"
    found = sorted(p.glob("*/results.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(f"{p}: no results.json in it or in its sub-folders; pass the folder SOWLv2 "
                         "wrote for one input, or the results.json itself")
    names = ", ".join(str(f.parent.name) for f in found)
    raise InputError(f"{p}: {len(found)} results.json found ({names}); pass one of these folders")


def load_results(path: str | Path) -> tuple[Path, dict]:
    """Read and check the top level of a ``results.json``; returns (its path, the parsed dict)."""
    file = find_results(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: cannot read as JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError(f"{file}: not a SOWLv2 results.json (no 'frames' list at the top level)")
    return file, data


def find_annotations(gt: str | Path) -> tuple[list[Path], dict[int, str]]:
    """List the ground-truth PNGs (sorted by name) and read the categories when present.

    Args:
        gt: a folder with ``Annotations/*.png`` (and optionally ``categories.json``), as
            ``generate_world`` writes, or a folder of PNGs.

    Returns:
        (PNG paths, {object id: label}); labels are empty when there is no ``categories.json``.
    """
    root = Path(gt)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected a folder with Annotations/*.png, or of PNGs)")
    ann = root / "Annotations" if (root / "Annotations").is_dir() else root
    pngs = sorted(ann.glob("*.png"))
    if not pngs:
        raise InputError(f"{ann}: no .png annotation files (DAVIS style: 00000.png, 00001.png, ...)")
    labels: dict[int, str] = {}
    for cat in (root / "categories.json", ann / "categories.json"):
        if cat.is_file():
            try:
                labels = {int(k): str(v) for k, v in json.loads(cat.read_text()).items()}
            except (ValueError, AttributeError, json.JSONDecodeError) as exc:
                raise InputError(f"{cat}: expected a JSON object of id -> label ({exc})") from exc
            break
    return pngs, labels


def read_annotation(path: Path) -> np.ndarray:
    """Read one DAVIS annotation PNG as an (H, W) integer id map (0 = background)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16", "1"):
                raise InputError(f"{path}: a {img.mode} image; expected an indexed (palette) or grey PNG "
                                 "whose pixel values are object ids, as in DAVIS Annotations")
            arr = np.array(img)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as PNG ({exc})") from exc
    return arr.astype(np.uint8) if arr.dtype == bool else arr


def _decode_frame(entry: dict, size: tuple[int, int], file: Path) -> tuple[list[int], np.ndarray]:
    """(ids, (n, H, W) bool masks) of one frame entry of results.json."""
    objs = entry.get("objects") or []
    ids, rles = [], []
    for obj in objs:
        try:
            rle = obj["mask"]
            ids.append(int(obj["id"]))
            rles.append({"size": [int(s) for s in rle["size"]], "counts": rle["counts"].encode("ascii")})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{file}: frame {entry.get('index')}: object without a valid 'id' and "
                             f"'mask' {{'size', 'counts'}} ({exc!r})") from exc
        if tuple(rles[-1]["size"]) != size:
            raise InputError(f"{file}: frame {entry.get('index')}, object {ids[-1]}: mask size "
                             f"{rles[-1]['size']} differs from the ground truth's [H, W] = {list(size)}")
    if not rles:
        return [], np.zeros((0, *size), bool)
    masks = mask_utils.decode(rles)  # (H, W, n) uint8, Fortran order
    return ids, np.moveaxis(masks, -1, 0).astype(bool)


def _iter_frames(pngs: list[Path], results: dict,
                 file: Path) -> Iterator[tuple[np.ndarray, list[int], np.ndarray]]:
    """Yield (gt id map, predicted ids, (n, H, W) bool masks) for each ground-truth frame in order."""
    by_index: dict[int, dict] = {}
    for entry in results["frames"]:
        try:
            by_index[int(entry["index"])] = entry
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{file}: a frame entry without an integer 'index' ({exc!r})") from exc
    extra = [i for i in by_index if not 0 <= i < len(pngs)]
    if extra:
        log.warning("%s: %d predicted frames beyond the %d ground-truth frames are ignored",
                    file, len(extra), len(pngs))
    size = None
    for k, png in enumerate(pngs):
        gt = read_annotation(png)
        if gt.dtype == np.uint8 and (gt == VOID).any():
            gt = np.where(gt == VOID, 0, gt)  # as the official loader: the void label is background
        if size is None:
            size = gt.shape
            w, h = results.get("width"), results.get("height")
            if w is not None and h is not None and (int(h), int(w)) != size:
                raise InputError(f"{file}: predictions are {w}x{h} but the ground truth {png} is "
                                 f"{size[1]}x{size[0]}; score results of the same video at full size")
        elif gt.shape != size:
            raise InputError(f"{png}: size {gt.shape[1]}x{gt.shape[0]} differs from the first "
                             f"annotation's {size[1]}x{size[0]}")
        entry = by_index.get(k)
        ids, masks = _decode_frame(entry, size, file) if entry else ([], np.zeros((0, *size), bool))
        yield gt, ids, masks


def evaluate(pred: str | Path, gt: str | Path, *, protocol: str = "davis", bound_th: float = 0.008,
             progress: bool = False) -> EvalResult:
    """Score a SOWLv2 video result against DAVIS-style ground truth (see the module docstring).

    Args:
        pred: ``results.json``, its folder, or an output folder holding exactly one ``<name>/results.json``.
        gt: a folder with ``Annotations/*.png`` (+ optional ``categories.json``) or a folder of PNGs
            (such as a DAVIS ``Annotations_unsupervised/480p/<sequence>``); the k-th PNG in name order
            is frame index k of the predictions. Predicted frames that are missing count as empty
            predictions. The objects scored are the ids visible in at least one PNG (an id listed in
            ``categories.json`` but never visible is not scored).
        protocol: ``"davis"`` (DAVIS 2017 unsupervised) or ``"semi-supervised"``.
        bound_th: boundary tolerance (fraction of the diagonal, or whole pixels when >= 1).
        progress: show a tqdm bar over frames.

    Returns:
        EvalResult.

    Raises:
        InputError: unreadable or inconsistent files, ground truth without any object, or fewer than
            3 frames for ``semi-supervised``.
        ValueError: an unknown protocol or a bad ``bound_th``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    boundary_radius(1, 1, bound_th)  # checks it before any file is read
    file, results = load_results(pred)
    pngs, labels = find_annotations(gt)
    scorer = None
    for gt_map, ids, masks in tqdm(_iter_frames(pngs, results, file), total=len(pngs), disable=not progress,
                                   desc="eval", unit="frame"):
        if scorer is None:
            scorer = VideoScorer(gt_map.shape, bound_th)
        try:
            scorer.add(gt_map, ids, masks)
        except ValueError as exc:
            raise InputError(f"{file}: {exc}") from exc
    calls = (results.get("stats") or {}).get("detector_calls")
    try:
        return scorer.result(labels, int(calls) if calls is not None else None, protocol=protocol)
    except ValueError as exc:
        raise InputError(f"{gt}: {exc}") from exc


def write_davis_pngs(pred: str | Path, output: str | Path, *, frames: int | None = None,
                     renumber: bool = True) -> Path:
    """Write a SOWLv2 ``results.json`` as DAVIS result PNGs, what the official evaluation reads.

    ``output/{frame:05d}.png``: indexed PNGs with the DAVIS palette, pixel value = track id, 0 =
    background. Where masks of two tracks overlap, the one listed later in ``results.json`` wins
    (a DAVIS PNG holds one id per pixel).

    Args:
        pred: as for ``evaluate``.
        output: folder to write into (``<results_path>/<sequence>`` for the official code).
        frames: write this many frames (frames missing from the results are empty); default: up to
            the last frame index in the results.
        renumber: number the tracks 1, 2, ... in order of first appearance, leaving out ids that
            never have a mask (for the unsupervised task, where the official code treats a gap in the
            ids as an empty proposal and stops at more than 20); False keeps the ids (for the
            semi-supervised task, where id k is object k).

    Returns:
        The folder written.

    Raises:
        InputError: unreadable results, or an id above 255 (it does not fit an 8-bit PNG).
    """
    from .world import save_annotation  # the DAVIS palette

    file, results = load_results(pred)
    h, w = int(results.get("height") or 0), int(results.get("width") or 0)
    if h <= 0 or w <= 0:
        raise InputError(f"{file}: no 'width' and 'height'; cannot size the PNGs")
    by_index = {int(e["index"]): e for e in results["frames"]}
    n = frames if frames is not None else (max(by_index) + 1 if by_index else 0)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    new_ids: dict[int, int] = {}
    for t in range(n):
        id_map = np.zeros((h, w), np.uint8)
        entry = by_index.get(t)
        ids, masks = _decode_frame(entry, (h, w), file) if entry else ([], np.zeros((0, h, w), bool))
        for p, m in zip(ids, masks, strict=True):
            if not m.any():
                continue
            k = new_ids.setdefault(p, len(new_ids) + 1) if renumber else p
            if not 1 <= k <= 255:
                raise InputError(f"{file}: track id {p} does not fit an 8-bit DAVIS PNG (1..255); "
                                 "renumber the tracks")
            id_map[m] = k
        save_annotation(out / f"{t:05d}.png", id_map)
    return out


def write_oracle_results(gt: str | Path, output: str | Path, *, fps: float = 24.0) -> Path:
    """Turn ground-truth annotation PNGs into a SOWLv2 ``results.json`` (an "oracle" prediction).

    Every visible object becomes a track with its ground-truth id, label (``categories.json``, else
    ``"object <id>"``) and score 1.0; no detector ran, so ``stats.detector_calls`` is 0.

    Args:
        gt: as for ``evaluate``.
        output: a ``.json`` file path, or a folder to write ``results.json`` into.
        fps: frame rate recorded in the file (frame ``k`` has ``time = k / fps``).

    Returns:
        The path written.
    """
    pngs, labels = find_annotations(gt)
    frames, tracks = [], {}
    h = w = 0
    for k, png in enumerate(pngs):
        id_map = read_annotation(png)
        h, w = id_map.shape
        objects = []
        for g in (int(v) for v in np.unique(id_map) if v != 0):
            m = id_map == g
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            label = labels.get(g, f"object {g}")
            objects.append({"id": g, "label": label, "score": 1.0,
                            "box": [float(v) for v in mask_to_box(m)], "area": int(m.sum()),
                            "mask": {"size": [h, w], "counts": rle["counts"].decode("ascii")}})
            tr = tracks.setdefault(g, {"id": g, "label": label, "first_frame": k, "last_frame": k,
                                       "best_score": 1.0})
            tr["last_frame"] = k
        frames.append({"index": k, "time": round(k / fps, 6), "source_index": k, "keyframe": k == 0,
                       "objects": objects})
    out = Path(output)
    if out.suffix.lower() != ".json":
        out = out / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"input": str(gt), "kind": "video", "width": w, "height": h, "fps": fps,
            "prompts": sorted({t["label"] for t in tracks.values()}), "frames": frames,
            "keyframes": [0], "keyframe_scores": [1.0], "tracks": [tracks[g] for g in sorted(tracks)],
            "stats": {"frames": len(pngs), "detector_calls": 0,
                      "seconds": {k: 0.0 for k in ("decode", "select", "detect", "track", "write", "total")}}}
    out.write_text(json.dumps(data) + "\n")
    return out
