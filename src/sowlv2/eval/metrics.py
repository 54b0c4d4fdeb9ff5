"""Score SOWLv2 video results against DAVIS-style ground truth (unsupervised protocol).

Protocol (as in DAVIS 2017 unsupervised, with the frame rule below):

- Predicted tracks (ids in ``results.json``) are matched one-to-one to ground-truth objects by the
  Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on their mean J over the video. A
  pair whose mean J is 0 is not a match. A ground-truth object without a match scores J = F = 0.
- Per object, J (region IoU) and F (boundary F-measure) are averaged over the frames where the
  ground-truth object or its matched track is non-empty; frames where both are empty are skipped.
  The mean J used for matching follows the same rule for every candidate pair.
- F follows the DAVIS definition: the boundaries of both masks are matched with a tolerance of
  ``bound_th`` x image diagonal (``ceil(0.008 * diag)`` pixels by default; a ``bound_th`` >= 1 is a
  pixel radius), i.e. a boundary pixel counts as matched when a boundary pixel of the other mask lies
  within that Euclidean radius (a disk dilation, computed with a distance transform). Precision is
  the share of predicted boundary pixels matched, recall the share of ground-truth boundary pixels
  matched, F = 2PR / (P + R). A boundary pixel is a mask pixel with a 4-neighbour outside the mask
  (the image edge is not a boundary). When a frame has a mask on one side only, F = 0.

Why hand-written: no maintained package implements this exact protocol with a pip-installable API.
The DAVIS 2017 evaluation code is a repository, not a package, reads whole videos into memory and
matches on J&F over all frames; ``davisinteractive`` scores interactive segmentation; ``motmetrics``
and TrackEval's forks score boxes/CLEAR-MOT, not J/F. The parts that libraries do well are theirs:
pycocotools decodes RLE, scipy does the distance transform, erosion and the assignment.

Everything streams: one ground-truth PNG and one predicted frame are decoded at a time, and only
per-(object, track) counts and sums are kept, so memory does not grow with video length (the
``results.json`` text itself is parsed whole; its masks stay RLE-compressed until their frame).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
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

_CROSS = ndimage.generate_binary_structure(2, 1)


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class ObjectScore:
    """Scores of one ground-truth object.

    Attributes:
        gt_id: id in the annotation PNGs.
        label: its category from ``categories.json`` (None when not known).
        pred_id: the matched predicted track id, None when no track matched.
        J: mean region IoU over the frames where the object or its track is non-empty.
        F: mean boundary F-measure over the same frames.
        first_frame: first frame where the object is visible in the ground truth.
        frames: number of frames where the object is visible.
        latency: frames from ``first_frame`` to the first frame where the matched track has IoU >= 0.5
            with it; ``frames_total - first_frame`` (the frames remaining until the end of the video)
            when it is never discovered.
        discovered: whether such a frame exists.
        id_switches: frames where the best-overlapping predicted id (IoU >= 0.5) differs from the one
            in the previous frame that had such an id.
    """

    gt_id: int
    label: str | None
    pred_id: int | None
    J: float
    F: float
    first_frame: int
    frames: int
    latency: int
    discovered: bool
    id_switches: int


@dataclass
class EvalResult:
    """Scores of one video.

    Attributes:
        J, F: means over ground-truth objects of the per-object J and F.
        JF: (J + F) / 2.
        recall: share of ground-truth objects whose matched track has mean J >= 0.5.
        discovery_latency: ``{"median", "p95", "max"}`` of the per-object latencies in frames (an
            object never discovered counts with the frames remaining until the end of the video).
        id_switches: sum over objects of ``ObjectScore.id_switches``.
        detector_calls: from ``stats.detector_calls`` of the results, None when absent.
        frames: number of ground-truth frames scored.
        tracks: number of predicted ids that appear in a mask.
        unmatched_tracks: predicted ids matched to no ground-truth object.
        objects: one row per ground-truth object, ordered by id.
    """

    J: float
    F: float
    JF: float
    recall: float
    discovery_latency: dict[str, float]
    id_switches: int
    detector_calls: int | None
    frames: int
    tracks: int
    unmatched_tracks: int
    objects: list[ObjectScore] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (objects as a list of dicts)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------------
# Per-frame geometry


class _Outline:
    """Boundary pixels of one mask and the zone within the tolerance radius of them.

    ``ys``, ``xs``: (n,) int absolute coordinates of boundary pixels. ``zone``: bool array of the
    region ``[zy:zy+zh, zx:zx+zw]`` that is True within ``radius`` of a boundary pixel.
    """

    def __init__(self, mask: np.ndarray, box: tuple[slice, slice], radius: int) -> None:
        h, w = mask.shape
        y0, y1 = max(0, box[0].start - 1), min(h, box[0].stop + 1)
        x0, x1 = max(0, box[1].start - 1), min(w, box[1].stop + 1)
        crop = mask[y0:y1, x0:x1]
        # outside the crop is either image edge (not a boundary) or background > 1 px away
        inner = ndimage.binary_erosion(crop, structure=_CROSS, border_value=1)
        by, bx = np.nonzero(crop & ~inner)
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
    if gt.n == 0 and pred.n == 0:
        return 1.0
    if gt.n == 0 or pred.n == 0:
        return 0.0
    precision = gt.hits(pred) / pred.n
    recall = pred.hits(gt) / gt.n
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Tolerance radius in pixels: ``ceil(bound_th * diagonal)``, or ``bound_th`` itself when >= 1."""
    return int(bound_th) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(height, width)))


# ---------------------------------------------------------------------------------------------------
# Streaming accumulator


class VideoScorer:
    """Accumulate per-frame overlaps of ground-truth objects and predicted tracks, then score.

    Feed frames in order with ``add``; call ``result`` at the end. Holds only per-(object, track)
    counters, never masks of past frames.

    Args:
        size: (height, width) of every frame.
        bound_th: boundary tolerance, fraction of the image diagonal (or pixels when >= 1).
    """

    def __init__(self, size: tuple[int, int], bound_th: float = 0.008) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.radius = boundary_radius(*self.size, bound_th)
        self.frames = 0
        self._gt_frames: dict[int, int] = {}  # gt id -> frames visible
        self._gt_first: dict[int, int] = {}  # gt id -> first frame visible
        self._pred_frames: dict[int, int] = {}  # pred id -> frames non-empty
        # (gt, pred) -> [frames both non-empty, sum J, sum F, first frame with IoU >= 0.5 or -1]
        self._pairs: dict[tuple[int, int], list] = {}
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
        best: dict[int, tuple[float, int]] = {}
        for p, m in zip(pred_ids, pred_masks, strict=True):
            area = int(m.sum())
            if area == 0:
                continue
            self._pred_frames[p] = self._pred_frames.get(p, 0) + 1
            if not gt_ids:
                continue
            inter = np.bincount(gt[m].ravel(), minlength=len(gt_area))
            ys = np.flatnonzero(m.any(axis=1))
            xs = np.flatnonzero(m.any(axis=0))
            outline = _Outline(m, (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)), self.radius)
            for g in gt_ids:
                iou = float(inter[g]) / float(gt_area[g] + area - inter[g])
                f = _f_measure(gt_outlines[g], outline)
                acc = self._pairs.setdefault((g, p), [0, 0.0, 0.0, -1])
                acc[0] += 1
                acc[1] += iou
                acc[2] += f
                if iou >= 0.5 and acc[3] < 0:
                    acc[3] = t
                if iou >= 0.5 and iou > best.get(g, (0.0, 0))[0]:
                    best[g] = (iou, p)
        for g, (_, p) in best.items():
            last = self._last_best.get(g)
            if last is not None and last != p:
                self._switches[g] = self._switches.get(g, 0) + 1
            self._last_best[g] = p

    def _pair_means(self, g: int, p: int) -> tuple[float, float]:
        acc = self._pairs.get((g, p))
        if acc is None:
            return 0.0, 0.0
        frames = self._gt_frames[g] + self._pred_frames[p] - acc[0]
        return acc[1] / frames, acc[2] / frames

    def result(self, labels: dict[int, str] | None = None, detector_calls: int | None = None) -> EvalResult:
        """Match tracks to objects and compute the scores.

        Args:
            labels: ground-truth id -> category, copied into the per-object rows.
            detector_calls: copied into the result.

        Raises:
            ValueError: when no ground-truth object was visible in any frame.
        """
        gts = sorted(self._gt_frames)
        preds = sorted(self._pred_frames)
        if not gts:
            raise ValueError("the ground truth has no object in any frame; nothing to score")
        labels = labels or {}
        mean_j = np.zeros((len(gts), len(preds)))
        for i, g in enumerate(gts):
            for k, p in enumerate(preds):
                mean_j[i, k] = self._pair_means(g, p)[0]
        match: dict[int, int] = {}
        if preds:
            rows, cols = linear_sum_assignment(mean_j, maximize=True)
            match = {gts[r]: preds[c] for r, c in zip(rows, cols, strict=True) if mean_j[r, c] > 0}
        objects = []
        for g in gts:
            p = match.get(g)
            j, f = self._pair_means(g, p) if p is not None else (0.0, 0.0)
            first = self._gt_first[g]
            hit = self._pairs[(g, p)][3] if p is not None else -1
            objects.append(ObjectScore(
                gt_id=g, label=labels.get(g), pred_id=p, J=j, F=f, first_frame=first,
                frames=self._gt_frames[g], latency=(hit - first) if hit >= 0 else self.frames - first,
                discovered=hit >= 0, id_switches=self._switches.get(g, 0)))
        lat = np.array([o.latency for o in objects], float)
        jm = float(np.mean([o.J for o in objects]))
        fm = float(np.mean([o.F for o in objects]))
        return EvalResult(
            J=jm, F=fm, JF=(jm + fm) / 2, recall=float(np.mean([o.J >= 0.5 for o in objects])),
            discovery_latency={"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                               "max": float(lat.max())},
            id_switches=int(sum(o.id_switches for o in objects)), detector_calls=detector_calls,
            frames=self.frames, tracks=len(preds), unmatched_tracks=len(preds) - len(match), objects=objects)


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


def evaluate(pred: str | Path, gt: str | Path, *, bound_th: float = 0.008,
             progress: bool = False) -> EvalResult:
    """Score a SOWLv2 video result against DAVIS-style ground truth (see the module docstring).

    Args:
        pred: ``results.json``, its folder, or an output folder holding exactly one ``<name>/results.json``.
        gt: a folder with ``Annotations/*.png`` (+ optional ``categories.json``) or a folder of PNGs;
            the k-th PNG in name order is frame index k of the predictions. Predicted frames that are
            missing count as empty predictions. The objects scored are the ids visible in at least one
            PNG (an id listed in ``categories.json`` but never visible is not scored).
        bound_th: boundary tolerance (fraction of the diagonal, or pixels when >= 1).
        progress: show a tqdm bar over frames.

    Returns:
        EvalResult.

    Raises:
        InputError: unreadable or inconsistent files, or ground truth without any object.
    """
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
        return scorer.result(labels, int(calls) if calls is not None else None)
    except ValueError as exc:
        raise InputError(f"{gt}: {exc}") from exc


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
