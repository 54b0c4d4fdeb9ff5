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
from sowlv2.eval.metrics import VideoScorer, evaluate, find_results, write_oracle_results

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
    assert (r.J, r.F, r.JF, r.recall) == (1.0, 1.0, 1.0, 1.0)
    assert r.discovery_latency == {"median": 0.0, "p95": 0.0, "max": 0.0}
    assert r.id_switches == 0 and r.detector_calls == 2 and r.frames == 8
    assert [(o.gt_id, o.label, o.pred_id) for o in r.objects] == [(1, "red square", 1), (2, "blue circle", 2)]
    d = r.to_dict()
    assert d["JF"] == 1.0 and d["objects"][1]["label"] == "blue circle"
    json.dumps(d)  # JSON-ready


def test_missing_object_scores_zero_and_lowers_recall(tmp_path):
    objs = two_objects()
    r = score(tmp_path, objs, [{1: o[1]} for o in objs])
    o1, o2 = r.objects
    assert (o1.J, o1.F, o1.pred_id) == (1.0, 1.0, 1)
    assert (o2.J, o2.F, o2.pred_id, o2.discovered) == (0.0, 0.0, None, False)
    assert o2.latency == 8  # never discovered: frames from its first frame (0) to the end
    assert r.recall == 0.5 and r.J == 0.5 and r.JF == 0.5
    assert r.detector_calls is None


def test_three_pixel_shift_of_a_square(tmp_path):
    side = 20
    gt = [{1: square(10, 10, side)}]
    pred = [{1: square(13, 10, side)}]
    r = score(tmp_path, gt, pred)
    inter = (side - 3) * side
    assert r.J == pytest.approx(inter / (2 * side * side - inter))  # 340 / 460
    # Tolerance ceil(0.008 * 80) = 1 px (4-neighbours only). Boundary of each square: 20 + 20 + 18 + 18 = 76
    # pixels. Predicted pixels within 1 px of the GT boundary: top row x = 13..30 (18), bottom row (18),
    # left column only at y = 11 and y = 28 (next to the GT's top/bottom rows) (2), right column none:
    # precision = 38 / 76 = 0.5, and recall the same by symmetry, so F = 0.5.
    assert r.F == pytest.approx(0.5)
    assert r.recall == 1.0  # 0.739 >= 0.5


def test_one_pixel_shift_is_within_boundary_tolerance(tmp_path):
    r = score(tmp_path, [{1: square(10, 10, 20)}], [{1: square(11, 10, 20)}])
    assert r.J == pytest.approx(19 * 20 / (800 - 19 * 20))
    assert r.F == 1.0  # every boundary pixel has one 1 px away; tolerance is 1 px


def test_predicted_ids_need_not_equal_gt_ids(tmp_path):
    objs = two_objects()
    r = score(tmp_path, objs, [{9: o[2], 4: o[1]} for o in objs])
    assert [(o.gt_id, o.pred_id, o.J) for o in r.objects] == [(1, 4, 1.0), (2, 9, 1.0)]
    assert r.unmatched_tracks == 0 and r.tracks == 2


def test_late_discovery_latency_and_frame_rule(tmp_path):
    n = 10
    objs = [{1: square(5 + t, 5, 10)} for t in range(n)]
    pred = [({1: o[1]} if t >= 3 else {}) for t, o in enumerate(objs)]
    r = score(tmp_path, objs, pred)
    (o,) = r.objects
    assert o.latency == 3 and o.discovered
    assert o.J == pytest.approx(7 / 10) and o.F == pytest.approx(7 / 10)


def test_frames_where_both_are_empty_are_skipped_but_false_positives_count(tmp_path):
    n = 10
    gt = [({1: square(5, 5, 10)} if t < 5 else {}) for t in range(n)]
    same = [({1: square(5, 5, 10)} if t < 5 else {}) for t in range(n)]
    assert score(tmp_path / "a", gt, same).J == 1.0
    longer = [{1: square(5, 5, 10)} for _ in range(n)]  # keeps predicting after the object left
    r = score(tmp_path / "b", gt, longer)
    assert r.J == pytest.approx(5 / 10) and r.F == pytest.approx(5 / 10)


def test_missing_predicted_frames_count_as_empty(tmp_path):
    objs = [{1: square(5, 5, 10)} for _ in range(10)]
    r = score(tmp_path, objs, objs[:4])  # results.json has only 4 frames
    assert r.J == pytest.approx(4 / 10) and r.frames == 10


def test_id_switches_are_counted(tmp_path):
    objs = [{1: square(5 + t, 5, 10)} for t in range(10)]
    # ids over frames: 1 1 1 1 2 2 2 (none) 2 1  -> switches at frame 4 and at frame 9
    ids = [1, 1, 1, 1, 2, 2, 2, None, 2, 1]
    pred = [({ids[t]: o[1]} if ids[t] else {}) for t, o in enumerate(objs)]
    r = score(tmp_path, objs, pred)
    (o,) = r.objects
    assert o.id_switches == 2 and r.id_switches == 2
    assert o.pred_id == 1 and o.J == pytest.approx(5 / 10)  # id 1 covers 5 frames, id 2 covers 4
    assert r.unmatched_tracks == 1
    assert o.latency == 0


def test_hungarian_beats_greedy_matching():
    # stripes of a 10x60 image: gt1 = cols [0, 20), gt2 = cols [20, 40)
    def cols(a, b):
        m = np.zeros((10, 60), bool)
        m[:, a:b] = True
        return m

    gt = np.zeros((10, 60), np.uint8)
    gt[:, 0:20], gt[:, 20:40] = 1, 2
    scorer = VideoScorer((10, 60))
    # A overlaps gt1 best (18/32) but only B can cover gt1 at all (11/20); A -> gt2 (12/38)
    scorer.add(gt, [7, 8], np.stack([cols(2, 32), cols(0, 11)]))
    r = scorer.result()
    assert [(o.gt_id, o.pred_id) for o in r.objects] == [(1, 8), (2, 7)]
    assert r.objects[0].J == pytest.approx(11 / 20)
    assert r.objects[1].J == pytest.approx(12 / 38)


def reference_f(gt: np.ndarray, pred: np.ndarray, radius: float) -> float:
    """Brute force: inner 4-neighbour boundaries, pairwise distances, precision/recall."""

    def boundary(m):
        p = np.pad(m, 1, constant_values=True)
        interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        return np.argwhere(m & ~interior).astype(float)

    bg, bp = boundary(gt), boundary(pred)
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
    overlapping = 0
    for _ in range(10):
        cx, cy = rng.uniform(5, 35, 2)
        g = disk(cx, cy, rng.uniform(4, 10), h, w) | square(*rng.integers(0, 30, 2), 9, h, w)
        p = disk(cx + rng.normal(0, 4), cy + rng.normal(0, 4), rng.uniform(4, 10), h, w)
        scorer = VideoScorer((h, w), bound_th=bound_th)
        scorer.add(g.astype(np.uint8), [1], p[None])
        j = (g & p).sum() / (g | p).sum()
        r = scorer.result()
        if j > 0:
            overlapping += 1
            assert r.objects[0].F == pytest.approx(reference_f(g, p, radius))
            assert r.objects[0].J == pytest.approx(j)
        else:
            assert r.objects[0].pred_id is None
    assert overlapping >= 5


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
    assert r.JF == 1.0 and r.detector_calls == 0


def test_eval_main_prints_table_and_writes_json(tmp_path, capsys):
    objs = two_objects(5)
    write_gt(tmp_path / "gt", [id_map(o) for o in objs], {1: "red square", 2: "blue circle"})
    write_pred(tmp_path / "out" / "clip" / "results.json", [{1: o[1]} for o in objs], detector_calls=3)
    assert eval_main(["--pred", str(tmp_path / "out"), "--gt", str(tmp_path / "gt"),
                      "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "J&F 0.500" in text and "blue circle" in text and "detector calls 3" in text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["JF"] == 0.5 and saved["recall"] == 0.5 and len(saved["objects"]) == 2


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
        evaluate(pred, gt)


def test_eval_main_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--gt"):
        eval_main(["--pred", str(tmp_path)])
    with pytest.raises(InputError, match="no such file"):
        eval_main(["--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)])
