"""Tests of sowlv2.eval.metrics: hand-made ground truth and predictions with answers worked out here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from sowlv2.errors import InputError, UsageError
from sowlv2.eval.cli import eval_main
from sowlv2.eval.metrics import (
    VideoScorer,
    aggregate,
    boundary_map,
    boundary_radius,
    decay_quarters,
    evaluate,
    find_results,
    frame_scores,
    statistics,
    write_davis_pngs,
    write_oracle_results,
)

H, W = 48, 64


def square(x0: int, y0: int, side: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


def disk(cx: float, cy: float, r: float, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def write_gt(folder, id_maps: list[np.ndarray], labels: dict[int, str] | None = None):
    """DAVIS layout: folder/Annotations/00000.png (palette PNG) and categories.json."""
    ann = folder / "Annotations"
    ann.mkdir(parents=True)
    for k, m in enumerate(id_maps):
        img = Image.fromarray(m.astype(np.uint8))
        img.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 53 % 256, i * 97 % 256)])
        img.save(ann / f"{k:05d}.png")
    if labels:
        (folder / "categories.json").write_text(json.dumps({str(k): v for k, v in labels.items()}))
    return folder


def write_pred(path, frames: list[dict[int, np.ndarray]], h: int = H, w: int = W, detector_calls=None):
    """A results.json in the schema SOWLv2 writes, built from {id: (H, W) bool mask} per frame."""
    out_frames, tracks = [], {}
    for k, objs in enumerate(frames):
        objects = []
        for pid, m in objs.items():
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            ys, xs = np.nonzero(m)
            box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            rle_json = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
            objects.append({"id": pid, "label": f"thing {pid}", "score": 0.9, "box": box,
                            "area": int(m.sum()), "mask": rle_json})
            t = tracks.setdefault(pid, {"id": pid, "label": f"thing {pid}", "first_frame": k, "last_frame": k,
                                        "best_score": 0.9})
            t["last_frame"] = k
        out_frames.append({"index": k, "time": k / 24.0, "source_index": k, "keyframe": k % 4 == 0,
                           "objects": objects})
    data = {"input": "clip.mp4", "kind": "video", "width": w, "height": h, "fps": 24.0, "prompts": ["thing"],
            "frames": out_frames, "keyframes": list(range(0, len(frames), 4)),
            "keyframe_scores": [1.0] * len(range(0, len(frames), 4)), "tracks": list(tracks.values())}
    if detector_calls is not None:
        data["stats"] = {"frames": len(frames), "detector_calls": detector_calls,
                         "seconds": {"decode": 0.1, "select": 0.0, "detect": 1.0, "track": 2.0, "write": 0.1,
                                     "total": 3.2}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def id_map(objs: dict[int, np.ndarray]) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for k, mask in objs.items():
        m[mask] = k
    return m


def two_objects(n: int = 8) -> list[dict[int, np.ndarray]]:
    """A square moving right and a disc moving down, not touching."""
    return [{1: square(4 + t, 5, 12), 2: disk(45, 10 + 2 * t, 6)} for t in range(n)]


def score(tmp_path, gt_objs, pred_objs, labels=None, **kw):
    write_gt(tmp_path / "gt", [id_map(o) for o in gt_objs], labels)
    write_pred(tmp_path / "out" / "clip" / "results.json", pred_objs, **kw)
    return evaluate(tmp_path / "out", tmp_path / "gt")


def test_identical_prediction_scores_one(tmp_path):
    objs = two_objects()
    r = score(tmp_path, objs, objs, labels={1: "red square", 2: "blue circle"}, detector_calls=2)
    assert (r.JF_mean, r.J_mean, r.F_mean, r.J_recall, r.F_recall, r.object_recall) == (1.0,) * 6
    assert (r.J_decay, r.F_decay) == (0.0, 0.0) and r.protocol == "davis" and r.frames_scored == 8
    assert r.discovery_latency == {"median": 0.0, "p95": 0.0, "max": 0.0}
    assert r.id_switches == 0 and r.detector_calls == 2 and r.frames == 8
    assert [(o.gt_id, o.label, o.pred_id) for o in r.objects] == [(1, "red square", 1), (2, "blue circle", 2)]
    d = r.to_dict()
    assert d["JF_mean"] == 1.0 and d["objects"][1]["label"] == "blue circle"
    json.dumps(d)  # JSON-ready


# ----------------------------------------------------------------------------- J: db_eval_iou


def test_j_is_intersection_over_union_and_one_when_both_are_empty():
    g = np.zeros((4, 6), bool)
    g[1:3, 1:4] = True  # 6 px
    p = np.zeros((4, 6), bool)
    p[1:3, 2:5] = True  # 6 px, 4 of them in g
    assert frame_scores(g, p)[0] == pytest.approx(4 / 8)
    empty = np.zeros((4, 6), bool)
    assert frame_scores(empty, empty) == (1.0, 1.0)  # DAVIS: an empty frame on both sides is perfect
    assert frame_scores(g, empty) == (0.0, 0.0) and frame_scores(empty, p) == (0.0, 0.0)


# ----------------------------------------------------------------------------- boundaries: seg2bmap


def test_boundary_map_marks_pixels_whose_east_south_or_south_east_neighbour_differs():
    m = np.zeros((4, 4), bool)
    m[1:3, 1:3] = True
    # worked out pixel by pixel: the background pixels left of and above the square count (their E, S
    # or SE neighbour is in it), its right column and bottom row count (E or S neighbour outside), its
    # top-left pixel does not; the last row looks only east, the last column only south.
    expected = np.array([[1, 1, 1, 0],
                         [1, 0, 1, 0],
                         [1, 1, 1, 0],
                         [0, 0, 0, 0]], bool)
    assert (boundary_map(m) == expected).all()
    assert not boundary_map(np.ones((5, 7), bool)).any()  # the image edge is not a boundary
    corner = np.zeros((3, 3), bool)
    corner[2, 2] = True  # no east / south / south-east neighbour; its neighbours see it from the N and W
    assert (boundary_map(corner) == np.array([[0, 0, 0], [0, 1, 1], [0, 1, 0]], bool)).all()
    right = np.zeros((3, 3), bool)
    right[:, 2] = True  # touching the right edge: only the column left of it is a boundary
    assert (boundary_map(right) == np.array([[0, 1, 0]] * 3, bool)).all()


def test_boundary_of_a_k_square_is_the_ring_of_a_k_plus_1_square():
    m = square(10, 6, 5)  # cols 10..14, rows 6..10
    ring = square(9, 5, 6) & ~square(10, 6, 4)  # cols 9..14, rows 5..10, without its inside
    assert (boundary_map(m) == ring).all() and ring.sum() == 20


@pytest.mark.parametrize("h, w, bound_th, radius", [
    (48, 64, 0.008, 1),  # 0.008 x 80 = 0.64 -> 1
    (240, 320, 0.008, 4),  # 0.008 x 400 = 3.2 -> 4
    (480, 854, 0.008, 8),  # DAVIS 480p: 0.008 x 979.6 = 7.84 -> 8
    (240, 320, 3, 3),  # >= 1: pixels
])
def test_boundary_radius(h, w, bound_th, radius):
    assert boundary_radius(h, w, bound_th) == radius


def test_boundary_radius_rejects_bad_values():
    for bad in (0, -0.1, 2.5):
        with pytest.raises(ValueError, match="bound_th"):
            boundary_radius(10, 10, bad)


# ----------------------------------------------------------------------------- F: db_eval_boundary


def test_f_of_two_squares_two_pixels_apart():
    # 4x4 squares, the second 2 px to the right. Boundaries are 16-px rings: G's at rows 1..5, cols
    # 1..5; P's at rows 1..5, cols 3..7. Radius 1 (a 3x3 cross). P's ring pixels within 1 px of G's:
    # top row cols 3-6 (4), bottom row (4), left column only at rows 2 and 4 (next to G's top and
    # bottom rows) (2); its right column none: precision 10/16, recall 10/16 by symmetry, F = 0.625.
    g, p = square(2, 2, 4, 10, 10), square(4, 2, 4, 10, 10)
    j, f = frame_scores(g, p, bound_th=1)
    assert j == pytest.approx(8 / 24) and f == pytest.approx(10 / 16)
    assert frame_scores(g, p, bound_th=2)[1] == 1.0  # every ring pixel is within 2 px of the other ring


def test_f_empty_boundary_conventions():
    full, empty = np.ones((6, 6), bool), np.zeros((6, 6), bool)
    # a full-frame mask has no boundary pixel: DAVIS's F is 1 against an empty mask, while J is 0
    assert frame_scores(full, empty) == (0.0, 1.0)
    assert frame_scores(square(1, 1, 3, 6, 6), empty)[1] == 0.0  # precision 1, recall 0
    assert frame_scores(empty, square(1, 1, 3, 6, 6))[1] == 0.0  # precision 0, recall 1


def reference_boundary(m: np.ndarray) -> np.ndarray:
    """Pixel by pixel: an east, south or south-east neighbour inside the image that differs."""
    h, w = m.shape
    b = np.zeros_like(m)
    for y in range(h):
        for x in range(w):
            b[y, x] = any(m[y + dy, x + dx] != m[y, x] for dy, dx in ((0, 1), (1, 0), (1, 1))
                          if y + dy < h and x + dx < w)
    return b


def reference_f(gt: np.ndarray, pred: np.ndarray, radius: float) -> float:
    """Brute force: DAVIS boundaries, pairwise distances, precision/recall."""
    bg = np.argwhere(reference_boundary(gt)).astype(float)
    bp = np.argwhere(reference_boundary(pred)).astype(float)
    if len(bg) == 0 and len(bp) == 0:
        return 1.0
    if len(bg) == 0 or len(bp) == 0:
        return 0.0
    d = np.sqrt(((bg[:, None, :] - bp[None, :, :]) ** 2).sum(-1))
    recall = (d.min(axis=1) <= radius).mean()
    precision = (d.min(axis=0) <= radius).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("bound_th", [0.008, 0.02, 3])
def test_f_matches_a_brute_force_reference(bound_th):
    rng = np.random.default_rng(0)
    h, w = 40, 50
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
    for _ in range(10):
        cx, cy = rng.uniform(5, 45, 2)
        g = disk(cx, cy, rng.uniform(4, 10), h, w) | square(*rng.integers(0, 45, 2), 9, h, w)
        p = disk(cx + rng.normal(0, 4), cy + rng.normal(0, 4), rng.uniform(4, 10), h, w)
        assert (boundary_map(g) == reference_boundary(g)).all()
        scorer = VideoScorer((h, w), bound_th=bound_th)
        scorer.add(g.astype(np.uint8), [1], p[None])
        (o,) = scorer.result().objects
        assert o.pred_id == 1  # one object, one proposal: assigned even without overlap
        assert o.F_mean == pytest.approx(reference_f(g, p, radius))
        assert o.J_mean == pytest.approx((g & p).sum() / (g | p).sum())


# ----------------------------------------------------------------------------- mean, recall, decay


def test_decay_quarters_are_davis_s_overlapping_quarters():
    # edges round-half-up(k (n - 1) / 4): n = 8 -> 0, 2, 4, 5, 7; each quarter includes both edges
    assert decay_quarters(8) == [(0, 3), (2, 5), (4, 6), (5, 8)]
    assert decay_quarters(48) == [(0, 13), (12, 25), (24, 36), (35, 48)]
    assert decay_quarters(1) == [(0, 1)] * 4


def test_statistics_mean_recall_decay_by_hand():
    v = [1, 1, 0, 0, 0, 0, 1, 0]
    mean, recall, decay = statistics(v)
    assert mean == pytest.approx(3 / 8)
    assert recall == pytest.approx(3 / 8)
    # first quarter v[0:3] = 1, 1, 0 (2/3); last v[5:8] = 0, 1, 0 (1/3). An even split (v[0:2], v[6:8])
    # would give 1 - 1/2 instead.
    assert decay == pytest.approx(2 / 3 - 1 / 3)
    assert statistics([0.5, 0.51, 0.2])[1] == pytest.approx(1 / 3)  # strictly above 0.5
    assert statistics([0.7]) == (0.7, 1.0, 0.0)


def test_decay_and_recall_of_a_track_that_is_lost_halfway(tmp_path):
    objs = [{1: square(5 + t, 5, 10)} for t in range(8)]
    pred = [({1: o[1]} if t < 4 else {}) for t, o in enumerate(objs)]  # J = 1 1 1 1 0 0 0 0
    (o,) = score(tmp_path, objs, pred).objects
    assert (o.J_mean, o.J_recall, o.J_decay) == (0.5, 0.5, 1.0)
    assert (o.F_mean, o.F_recall, o.F_decay) == (0.5, 0.5, 1.0)


# ----------------------------------------------------------------------------- frames and objects


def test_missing_object_gets_an_empty_proposal_and_lowers_object_recall(tmp_path):
    objs = two_objects()
    r = score(tmp_path, objs, [{1: o[1]} for o in objs])
    o1, o2 = r.objects
    assert (o1.J_mean, o1.F_mean, o1.pred_id) == (1.0, 1.0, 1)
    assert (o2.J_mean, o2.F_mean, o2.J_recall, o2.pred_id, o2.discovered) == (0.0, 0.0, 0.0, None, False)
    assert o2.latency == 8  # never discovered: frames from its first frame (0) to the end
    assert r.object_recall == 0.5 and r.J_mean == 0.5 and r.JF_mean == 0.5
    assert r.detector_calls is None


def test_frames_where_both_are_empty_score_one(tmp_path):
    n = 10
    # an object that enters at frame 3 and is found at frame 5: J = 1 1 1 0 0 1 1 1 1 1
    gt = [({1: square(5, 5, 10)} if t >= 3 else {}) for t in range(n)]
    pred = [({1: square(5, 5, 10)} if t >= 5 else {}) for t in range(n)]
    (o,) = score(tmp_path / "a", gt, pred).objects
    assert o.J_mean == pytest.approx(8 / 10) and o.F_mean == pytest.approx(8 / 10)
    assert (o.first_frame, o.latency, o.frames) == (3, 2, 7)
    # a track that keeps predicting after its object left scores 0 on those frames
    gt = [({1: square(5, 5, 10)} if t < 5 else {}) for t in range(n)]
    assert score(tmp_path / "b", gt, gt).J_mean == 1.0
    r = score(tmp_path / "c", gt, [{1: square(5, 5, 10)} for _ in range(n)])
    assert r.J_mean == pytest.approx(5 / 10) and r.F_mean == pytest.approx(5 / 10)


def test_matching_uses_j_plus_f_not_j_alone():
    # One object, a 6x6 square (rows 2-7, cols 2-7). Radius 1.
    # A: the 4x4 square inside it. J = 16/36. Its 5x5 boundary ring lies 1 px inside the object's 7x7
    #    ring: precision 1, recall 20/24 (the 4 corners are sqrt(2) away): F = 10/11; (J+F)/2 = 0.677.
    # C: the object widened to 6x12 (cols 2-13). J = 36/72 = 0.5 > 16/36. Its 36-px ring matches the
    #    object's on the top and bottom rows up to col 8 and on the left column: precision 21/36,
    #    recall 21/24 (all but 3 px of the object's right column): F = 0.7; (J+F)/2 = 0.6.
    # Matching on J alone would give C; DAVIS's (J+F)/2 gives A.
    h, w = 10, 20
    gt = square(2, 2, 6, h, w).astype(np.uint8)
    a = square(3, 3, 4, h, w)
    c = np.zeros((h, w), bool)
    c[2:8, 2:14] = True
    assert frame_scores(gt, c, 1) == pytest.approx((0.5, 0.7))
    scorer = VideoScorer((h, w), bound_th=1)
    scorer.add(gt, [5, 6], np.stack([c, a]))
    r = scorer.result()
    (o,) = r.objects
    assert o.pred_id == 6 and r.unmatched_tracks == 1 and r.tracks == 2
    assert (o.J_mean, o.F_mean) == pytest.approx((16 / 36, 10 / 11))


def test_hungarian_beats_greedy_matching():
    # stripes of a 10x60 image: gt1 = cols [0, 20), gt2 = cols [20, 40)
    def cols(a, b):
        m = np.zeros((10, 60), bool)
        m[:, a:b] = True
        return m

    gt = np.zeros((10, 60), np.uint8)
    gt[:, 0:20], gt[:, 20:40] = 1, 2
    scorer = VideoScorer((10, 60))
    # A overlaps gt1 best (J 18/32) but only B can cover gt1 at all (11/20); A -> gt2 (12/38)
    scorer.add(gt, [7, 8], np.stack([cols(2, 32), cols(0, 11)]))
    r = scorer.result()
    assert [(o.gt_id, o.pred_id) for o in r.objects] == [(1, 8), (2, 7)]
    assert r.objects[0].J_mean == pytest.approx(11 / 20)
    assert r.objects[1].J_mean == pytest.approx(12 / 38)


def test_three_pixel_shift_of_a_square(tmp_path):
    side = 20
    r = score(tmp_path, [{1: square(10, 10, side)}], [{1: square(13, 10, side)}])
    inter = (side - 3) * side
    assert r.J_mean == pytest.approx(inter / (2 * side * side - inter))  # 340 / 460
    # 80-px rings (21x21: cols 9..29 and 12..32, rows 9..29), radius 1: the shifted ring's top and
    # bottom rows match on cols 12..30 (19 each), its left column only next to those rows (2), its
    # right column nowhere: precision 40 / 80, recall the same by symmetry, F = 0.5
    assert r.F_mean == pytest.approx(40 / 80)
    assert r.object_recall == 1.0  # J-Mean 0.739 >= 0.5


def test_one_pixel_shift_is_within_boundary_tolerance(tmp_path):
    r = score(tmp_path, [{1: square(10, 10, 20)}], [{1: square(11, 10, 20)}])
    assert r.J_mean == pytest.approx(19 * 20 / (800 - 19 * 20))
    assert r.F_mean == 1.0  # every boundary pixel has one 1 px away; tolerance is 1 px


def test_predicted_ids_need_not_equal_gt_ids(tmp_path):
    objs = two_objects()
    r = score(tmp_path, objs, [{9: o[2], 4: o[1]} for o in objs])
    assert [(o.gt_id, o.pred_id, o.J_mean) for o in r.objects] == [(1, 4, 1.0), (2, 9, 1.0)]
    assert r.unmatched_tracks == 0 and r.tracks == 2


def test_late_discovery_latency(tmp_path):
    n = 10
    objs = [{1: square(5 + t, 5, 10)} for t in range(n)]
    pred = [({1: o[1]} if t >= 3 else {}) for t, o in enumerate(objs)]
    r = score(tmp_path, objs, pred)
    (o,) = r.objects
    assert o.latency == 3 and o.discovered
    assert o.J_mean == pytest.approx(7 / 10) and o.F_mean == pytest.approx(7 / 10)


def test_missing_predicted_frames_count_as_empty(tmp_path):
    objs = [{1: square(5, 5, 10)} for _ in range(10)]
    r = score(tmp_path, objs, objs[:4])  # results.json has only 4 frames
    assert r.J_mean == pytest.approx(4 / 10) and r.frames == 10


def test_id_switches_are_counted(tmp_path):
    objs = [{1: square(5 + t, 5, 10)} for t in range(10)]
    # ids over frames: 1 1 1 1 2 2 2 (none) 2 1  -> switches at frame 4 and at frame 9
    ids = [1, 1, 1, 1, 2, 2, 2, None, 2, 1]
    pred = [({ids[t]: o[1]} if ids[t] else {}) for t, o in enumerate(objs)]
    r = score(tmp_path, objs, pred)
    (o,) = r.objects
    assert o.id_switches == 2 and r.id_switches == 2
    assert o.pred_id == 1 and o.J_mean == pytest.approx(5 / 10)  # id 1 covers 5 frames, id 2 covers 4
    assert r.unmatched_tracks == 1
    assert o.latency == 0


# ----------------------------------------------------------------------------- semi-supervised


def test_semi_supervised_matches_by_id_and_leaves_out_first_and_last_frame(tmp_path):
    n = 5
    objs = two_objects(n)
    # id 1 is object 1 on frames 1-3 only (empty on frames 0 and 4); object 2 is tracked as id 3, and
    # no id 2 is ever predicted
    pred = [{1: o[1], 3: o[2]} if 1 <= t <= 3 else {3: o[2]} for t, o in enumerate(objs)]
    write_gt(tmp_path / "gt", [id_map(o) for o in objs])
    write_pred(tmp_path / "r.json", pred)
    semi = evaluate(tmp_path / "r.json", tmp_path / "gt", protocol="semi-supervised")
    assert semi.protocol == "semi-supervised" and semi.frames_scored == 3 and semi.frames == 5
    o1, o2 = semi.objects
    assert (o1.pred_id, o1.J_mean, o1.F_mean) == (1, 1.0, 1.0)  # frames 0 and 4 are not scored
    assert (o2.pred_id, o2.J_mean) == (None, 0.0)  # id 2 never predicted; id 3 is not object 2
    assert semi.unmatched_tracks == 1 and semi.JF_mean == 0.5
    davis = evaluate(tmp_path / "r.json", tmp_path / "gt")
    assert davis.frames_scored == 5
    assert [(o.pred_id, o.J_mean) for o in davis.objects] == [(1, pytest.approx(3 / 5)), (3, 1.0)]


def test_unknown_protocol_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="protocol"):
        evaluate(tmp_path, tmp_path, protocol="unsupervised")


def test_aggregate_averages_over_objects_of_all_videos():
    def one(values):
        scorer = VideoScorer((10, 10))
        for v in values:  # each value: object k visible and predicted (1) or predicted empty (0)
            gt = np.zeros((10, 10), np.uint8)
            masks = []
            for k, hit in enumerate(v, start=1):
                gt[k, :] = k
                masks.append(gt == k if hit else np.zeros((10, 10), bool))
            scorer.add(gt, list(range(1, len(v) + 1)), np.stack(masks))
        return scorer.result()

    a = one([(1,), (1,)])  # 1 object, J-Mean 1
    b = one([(0, 0, 1), (0, 0, 1)])  # 3 objects: J-Mean 0, 0, 1 (the empty tracks never appear)
    agg = aggregate([a, b])
    assert agg["J_mean"] == pytest.approx(2 / 4) and agg["objects"] == 4 and agg["videos"] == 2
    assert (a.J_mean + b.J_mean) / 2 == pytest.approx(2 / 3)  # a mean over videos would differ
    assert agg["JF_mean"] == pytest.approx((agg["J_mean"] + agg["F_mean"]) / 2)


def test_oracle_results_round_trip(tmp_path):
    objs = two_objects(5)
    write_gt(tmp_path / "gt", [id_map(o) for o in objs], {1: "red square", 2: "blue circle"})
    out = write_oracle_results(tmp_path / "gt", tmp_path / "oracle")
    data = json.loads(out.read_text())
    assert out.name == "results.json" and data["width"] == W and data["height"] == H
    assert [t["label"] for t in data["tracks"]] == ["red square", "blue circle"]
    obj = data["frames"][2]["objects"][0]
    assert obj["box"] == [6.0, 5.0, 18.0, 17.0] and obj["area"] == 144
    r = evaluate(out, tmp_path / "gt")
    assert r.JF_mean == 1.0 and r.detector_calls == 0


def test_eval_main_prints_table_and_writes_json(tmp_path, capsys):
    objs = two_objects(5)
    write_gt(tmp_path / "gt", [id_map(o) for o in objs], {1: "red square", 2: "blue circle"})
    write_pred(tmp_path / "out" / "clip" / "results.json", [{1: o[1]} for o in objs], detector_calls=3)
    assert eval_main(["--pred", str(tmp_path / "out"), "--gt", str(tmp_path / "gt"),
                      "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "J&F-Mean 0.500" in text and "blue circle" in text and "detector calls 3" in text
    assert "DAVIS 2017 unsupervised, 5 of 5 frames scored" in text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["JF_mean"] == 0.5 and saved["object_recall"] == 0.5 and len(saved["objects"]) == 2
    assert saved["protocol"] == "davis" and "recall" not in saved and "JF" not in saved


def test_eval_main_semi_supervised_and_davis_pngs(tmp_path, capsys):
    objs = two_objects(5)
    write_gt(tmp_path / "gt", [id_map(o) for o in objs])
    # ids 4 and 9: renumbered 1, 2 by first appearance for the unsupervised task; a later object wins overlaps
    pred = [{9: o[2], 4: o[1]} for o in objs]
    pred[1] = {9: objs[1][2], 4: objs[1][1] | objs[1][2]}
    write_pred(tmp_path / "r.json", pred)
    argv = ["--pred", str(tmp_path / "r.json"), "--gt", str(tmp_path / "gt")]
    assert eval_main([*argv, "--protocol", "semi-supervised"]) == 0
    assert "DAVIS 2017 semi-supervised, 3 of 5 frames scored" in capsys.readouterr().out
    assert eval_main([*argv, "--davis-pngs", str(tmp_path / "png")]) == 0
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pngs] == [f"{k:05d}.png" for k in range(5)]
    with Image.open(pngs[1]) as im:
        assert im.mode == "P"
        ids = np.array(im)
    assert (ids[objs[1][1]] == 2).all() and (ids[objs[1][2]] == 2).all()  # id 4 (listed last) -> 2, on top
    with Image.open(pngs[0]) as im:
        ids = np.array(im)
    assert (ids[objs[0][2]] == 1).all() and (ids[objs[0][1]] == 2).all() and ids.max() == 2
    kept = write_davis_pngs(tmp_path / "r.json", tmp_path / "png_ids", renumber=False)
    with Image.open(kept / "00003.png") as im:
        assert set(np.unique(np.array(im))) == {0, 4, 9}


def test_eval_main_rejects_a_fractional_pixel_radius(tmp_path):
    with pytest.raises(UsageError, match="--bound-th"):
        eval_main(["--pred", str(tmp_path), "--gt", str(tmp_path), "--bound-th", "2.5"])


def test_find_results_variants(tmp_path):
    f = write_pred(tmp_path / "a" / "one" / "results.json", [{}])
    assert find_results(f) == f
    assert find_results(f.parent) == f
    assert find_results(tmp_path / "a") == f
    write_pred(tmp_path / "a" / "two" / "results.json", [{}])
    with pytest.raises(InputError, match="2 results.json found"):
        find_results(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no results.json"):
        find_results(tmp_path / "empty")
    with pytest.raises(InputError, match="no such file"):
        find_results(tmp_path / "missing")


@pytest.mark.parametrize("case, match", [
    ("size", "predictions are 40x40"),
    ("rgb", "expected an indexed"),
    ("notjson", "cannot read as JSON"),
    ("noframes", "no 'frames' list"),
    ("nomask", "object without a valid"),
    ("empty_gt", "no object in any frame"),
    ("no_png", "no .png annotation"),
    ("semi_2_frames", "at least 3 frames"),
])
def test_bad_inputs_raise_input_error(tmp_path, case, match):
    objs = [{1: square(5, 5, 10)}] * 2
    gt = write_gt(tmp_path / "gt", [id_map(o) for o in objs])
    pred = write_pred(tmp_path / "r.json", objs)
    if case == "size":
        write_pred(pred, [{1: square(5, 5, 10, 40, 40)}], h=40, w=40)
    elif case == "rgb":
        Image.new("RGB", (W, H)).save(gt / "Annotations" / "00001.png")
    elif case == "notjson":
        pred.write_text("{not json")
    elif case == "noframes":
        pred.write_text(json.dumps({"input": "x"}))
    elif case == "nomask":
        data = json.loads(pred.read_text())
        del data["frames"][0]["objects"][0]["mask"]
        pred.write_text(json.dumps(data))
    elif case == "empty_gt":
        for p in (gt / "Annotations").glob("*.png"):
            Image.fromarray(np.zeros((H, W), np.uint8)).save(p)
    elif case == "no_png":
        for p in (gt / "Annotations").glob("*.png"):
            p.unlink()
    with pytest.raises(InputError, match=match):
        evaluate(pred, gt, protocol="semi-supervised" if case == "semi_2_frames" else "davis")


def test_eval_main_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--gt"):
        eval_main(["--pred", str(tmp_path)])
    with pytest.raises(InputError, match="no such file"):
        eval_main(["--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)])
