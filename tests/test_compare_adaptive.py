"""Tests of the adaptive-compute comparison (tools/compare_adaptive.py) and its real-size wall bench
(sowlv2.bench_adaptive): aggregation, targets and the default track budget from hand-made rows, and a
short end-to-end run of each (demo models / tiny models)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cmp():
    spec = importlib.util.spec_from_file_location("compare_adaptive", ROOT / "tools" / "compare_adaptive.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["compare_adaptive"] = mod
    spec.loader.exec_module(mod)
    return mod


def row(mode, seed, objects, tracker_calls, frames=100, detector_calls=10, wall=2.0, switches=0):
    """A per-video row as run_video makes it; objects: [(J, F, latency, discovered)]."""
    objs = [{"gt_id": i + 1, "J": j, "F": f, "latency": lat, "discovered": d, "id_switches": 0,
             "first_frame": 0} for i, (j, f, lat, d) in enumerate(objects)]
    jf = sum((o["J"] + o["F"]) / 2 for o in objs) / len(objs)
    return {"seed": seed, "mode": mode, "frames": frames, "wall_s": wall, "detector_calls": detector_calls,
            "tracker_calls": tracker_calls, "fills": frames - tracker_calls, "seconds": {"select": 0.5},
            "JF": jf, "id_switches": switches, "objects": objs}


def test_modes_and_settings(cmp):
    modes = cmp.all_modes()
    assert modes[0] == "default" and "uniform@1" not in modes and len(modes) == 1 + 3 + 4 + 4
    assert cmp.mode_settings("default", {}) == {"detect_every": 10}
    assert cmp.mode_settings("uniform@0.35", {}) == {"detect_every": 10, "track_budget": 0.35}
    assert cmp.mode_settings("vjepa2@0.25", {}) == {"enable_vjepa2": True, "keyframe_budget": 0.1,
                                                     "track_budget": 0.25}
    assert cmp.mode_settings("pixel@0.5", {"keyframe_strategy": "pixel"}) == {
        "keyframe_strategy": "pixel", "keyframe_budget": 0.1, "track_budget": 0.5}
    with pytest.raises(ValueError):
        cmp.mode_settings("oracle@0.5", {})


def test_aggregate_pools_objects_of_all_videos(cmp):
    rows = [row("m", 0, [(1.0, 1.0, 0, True)], 50, wall=1.0),
            row("m", 1, [(0.2, 0.4, 9, True), (0.6, 0.6, 100, False), (0.8, 1.0, 1, True)], 30, wall=3.0,
                switches=2)]
    s = cmp.aggregate(rows)
    # J&F over the 4 objects (DAVIS-style), not over the 2 videos
    assert s["JF"] == pytest.approx((1.0 + 0.3 + 0.6 + 0.9) / 4)
    assert s["JF_video_mean"] == pytest.approx((1.0 + (0.3 + 0.6 + 0.9) / 3) / 2)
    assert s["recall"] == pytest.approx(3 / 4)  # J >= 0.5: 1.0, 0.6, 0.8
    assert s["latency_median"] == pytest.approx(5.0) and s["undiscovered"] == 1
    assert s["share_tracked"] == pytest.approx(80 / 200) and s["share_detected"] == pytest.approx(0.1)
    assert s["wall_s"] == pytest.approx(4.0) and s["id_switches"] == pytest.approx(1.0)
    assert cmp.aggregate([{"mode": "m", "error": "TypeError: no track_budget"}]) == {
        "error": "TypeError: no track_budget"}


def test_targets_and_recommended_budget(cmp):
    def summ(jf, lat=1):
        return {"JF": jf, "latency_median": lat}

    summary = {"default": summ(0.70), "uniform@0.35": summ(0.64), "vjepa2@1": summ(0.71),
               "vjepa2@0.5": summ(0.69), "vjepa2@0.35": summ(0.685, 2), "vjepa2@0.25": summ(0.60),
               "pixel@0.35": summ(0.69), "pixel@1": summ(0.70)}
    t = {x["target"]: x for x in cmp.targets(summary)}
    within = next(v for k, v in t.items() if "within 0.02" in k)
    above = next(v for k, v in t.items() if "above a uniform" in k)
    latency = next(v for k, v in t.items() if "latency" in k)
    assert within["met"] and within["value"] == pytest.approx(-0.015)
    assert above["met"] and above["value"] == pytest.approx(0.045)
    assert latency["met"] and latency["value"] == 2
    pixel = {k: v for k, v in t.items() if "pixel" in k}
    assert [v["met"] for v in pixel.values()] == [True, None, False, None]  # 1, 0.5 (no pixel run), 0.35, 0.25
    # the smallest share within 0.02 of the default: 0.35 (0.685 >= 0.68), not 0.25 (0.60)
    assert cmp.recommend_track_budget(summary)["track_budget"] == 0.35
    summary["vjepa2@0.35"] = summ(0.5)
    summary["vjepa2@0.5"] = summ(0.5)
    assert cmp.recommend_track_budget(summary)["track_budget"] == 1.0
    summary["uniform@0.35"] = summ(0.49)
    assert not next(v for k, v in ((x["target"], x) for x in cmp.targets(summary)) if "within" in k)["met"]


def test_compare_end_to_end_on_a_short_video(cmp, tmp_path, capsys):
    """One held-out events video, the default mode and one the commit may not know: report, table, plot."""
    out = tmp_path / "out"
    argv = ["--seeds", "3", "4", "--frames", "60", "--size", "160x120", "--out", str(out), "--work",
            str(tmp_path / "work"), "--modes", "default", "vjepa2@0.5", "--threads", "1"]
    assert cmp.main(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    runs = {r["mode"]: r for r in report["runs"]}
    d = runs["default"]
    assert d["frames"] == 60 and d["tracker_calls"] == 60 and d["fills"] == 0
    assert d["detector_calls"] == 6  # frames 0, 10, ..., 50
    assert 0 <= d["JF"] <= 1 and d["objects"] and report["summary"]["default"]["videos"] == 1
    v = runs["vjepa2@0.5"]
    if "error" in v:  # this commit has no track budget yet: reported, not fatal
        assert "track_budget" in v["error"] and "unavailable" in (out / "compare.md").read_text()
    else:
        assert v["tracker_calls"] <= 60 // 2 + 1 and v["detector_calls"] <= 60 // 10 + 1
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "J&F against the share of frames tracked" in capsys.readouterr().out


def test_bench_adaptive_quick(tmp_path):
    from sowlv2.bench_adaptive import main

    out = tmp_path / "out"
    assert main(["--quick", "--frames", "8", "--out", str(out), "--models", str(tmp_path / "models")]) == 0
    report = json.loads((out / "bench-adaptive-cpu-float32-quick.json").read_text())
    d = report["runs"]["default"]
    assert d["tracker_calls"] == 8 and d["detector_calls"] == 1 and d["tracks"] == 2
    assert report["ratios"]["default"] == 1.0
    for name in ("uniform_35", "vjepa2_35", "pixel_35"):
        r = report["runs"][name]
        if "error" not in r:
            # 35% of 8 frames: at most floor(0.35 * 8) + 1 = 3 tracked; the ratio is the measured walls'
            assert r["tracker_calls"] <= 3 and r["fills"] == 8 - r["tracker_calls"]
            assert report["ratios"][name] == pytest.approx(r["wall_s"] / d["wall_s"], rel=1e-3)
    assert "/ default" in (out / "bench-adaptive-cpu-float32-quick.md").read_text()


def test_bench_adaptive_usage_errors():
    from sowlv2.bench_adaptive import main

    assert main(["--quick", "--modes", "oracle"]) == 2
    assert main(["--quick", "--frames", "1"]) == 2


def test_label_association_needs_the_same_label(cmp):
    import numpy as np

    from sowlv2.types import Detections

    def square(x, y, s=10):
        m = np.zeros((40, 60), bool)
        m[y:y + s, x:x + s] = True
        return m

    def dets(masks, labels):
        boxes = np.array([[m.nonzero()[1].min(), m.nonzero()[0].min(), m.nonzero()[1].max() + 1,
                           m.nonzero()[0].max() + 1] for m in masks], np.float32)
        return Detections(boxes=boxes, scores=np.full(len(masks), 0.9, np.float32),
                          class_ids=np.arange(len(masks)), labels=tuple(labels))

    tm = cmp.label_association()()
    a = tm.associate(0, {}, dets([square(0, 0), square(30, 20)], ["red", "blue"]),
                     np.stack([square(0, 0), square(30, 20)]))
    assert sorted(a.new) == [(1, 0), (2, 1)]
    # frame 9: the red track sits where a green object now is (a scene cut); blue is where it was
    masks = [square(0, 0), square(30, 20)]
    a = tm.associate(9, {1: square(0, 0), 2: square(30, 20)}, dets(masks, ["green", "blue"]), np.stack(masks))
    assert a.new == [(3, 0)] and a.matched == [(2, 1)] and not a.ignored
    assert tm.tracks[3].label == "green" and tm.tracks[1].label == "red"
    # the stale red track and the new green one are duplicates: the recently confirmed label stays
    assert tm.deduplicate({1: square(0, 0), 2: square(30, 20), 3: square(0, 0)}) == [1]
    # the pipeline's own association matches across labels (what the experiment changes)
    from sowlv2.tracking.association import TrackManager

    base = TrackManager()
    base.associate(0, {}, dets([square(0, 0)], ["red"]), np.stack([square(0, 0)]))
    b = base.associate(9, {1: square(0, 0)}, dets([square(0, 0)], ["green"]), np.stack([square(0, 0)]))
    assert b.matched == [(1, 0)] and base.tracks[1].label == "red"
