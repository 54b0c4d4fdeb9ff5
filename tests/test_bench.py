"""sowlv2 bench: the quick run's report, the naive baseline's encodings, the documented fakes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sowlv2 import bench
from sowlv2.cli import bench_main, main
from sowlv2.errors import UsageError

EXPECTED_MEASURES = {
    "owlv2_detect", "owlv2_forward", "sam2_image_encode", "sam2_decode_1_boxes", "sam2_decode_2_boxes",
    "sam2_decode_8_boxes", "image_ours_1", "image_ours_8", "image_naive_8", "decode_per_frame", "write_per_frame",
    "vjepa2_clip", "vjepa2_forward", "video_every_frame", "video_every_10", "video_vjepa2_25",
    "sam2_track_step_2_objects", "sam2_track_forward", "rss_stream_6", "rss_stream_60", "rss_naive_6",
    "rss_naive_60",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick bench run (tiny models): its report and markdown."""
    root = tmp_path_factory.mktemp("bench")
    t0 = time.perf_counter()
    rc = bench_main(["--quick", "--models", str(root / "models"), "--output", str(root / "out")])
    seconds = time.perf_counter() - t0
    assert rc == 0
    report = json.loads((root / "out/bench-cpu-float32-quick.json").read_text())
    md = (root / "out/bench-cpu-float32-quick.md").read_text()
    return report, md, seconds


def test_quick_report_has_every_measure_positive(quick):
    report, _, _ = quick
    assert report["errors"] == {}
    measures = report["measures"]
    assert set(measures) == EXPECTED_MEASURES
    for name, m in measures.items():
        assert m["n"] >= 1, name
        assert m["median"] > 0 and m["min"] > 0 and m["min"] <= m["median"] <= m["max"], (name, m)
    assert report["settings"]["quick"] is True and report["settings"]["objects"] == 2
    for key in ("date", "command", "machine", "versions", "load_average"):
        assert report[key], key
    assert report["command"].startswith("sowlv2 bench --quick")
    assert set(report["load_average"]) >= {"start", "end", "images", "video", "memory"}


def test_quick_report_video_runs_track_the_forced_objects(quick):
    report, _, _ = quick
    runs = report["runs"]["video"]["runs"]
    assert set(runs) == {"every_frame", "every_10", "vjepa2_25"}
    frames = report["settings"]["frames"]
    assert runs["every_frame"]["detector_calls"] == frames  # detector on every frame
    assert runs["every_10"]["detector_calls"] == 1  # frames < 10: frame 0 only
    assert runs["vjepa2_25"]["detector_calls"] <= int(np.ceil(0.25 * frames)) + 1
    for r in runs.values():
        assert r["tracks"] == 2 and r["frames"] == frames
        assert r["objects_per_frame"] == 2.0  # the forced objects are present, so their masks are written
        assert 0 < r["share_forward_of_wall"] < 1 and 0 < r["share_stats"] <= 1
        assert r["seconds"]["write"] > 0
    assert runs["every_frame"]["seconds"]["detect"] > runs["every_10"]["seconds"]["detect"]
    assert runs["vjepa2_25"]["seconds"]["select"] > 0 and runs["every_frame"]["seconds"]["select"] == 0


def test_quick_report_naive_baseline_encodes_once_per_box(quick):
    report, _, _ = quick
    enc = report["runs"]["images"]["encodings_per_image"]
    assert set(enc["ours_1"]) == {1} and set(enc["ours_8"]) == {1}
    assert set(enc["naive_8"]) == {8}
    assert report["comparisons"]["image_naive_vs_ours_8"]["value"] > 1


def test_quick_report_memory_and_targets(quick):
    report, _, _ = quick
    mem = report["runs"]["memory"]
    assert mem["models"] == "tiny" and mem["frames"] == [6, 60]
    for key, r in mem["rss"].items():
        assert r["frames"] == int(key.split("_")[1])
        assert r["peak_rss_mb"] >= r["run_peak_rss_mb"] > 0
    targets = {t["name"]: t for t in report["targets"]}
    assert len(targets) == 4
    for t in targets.values():
        assert isinstance(t["pass"], bool)
        value, limit = t["value"], float(t["limit"].split()[1])
        assert t["pass"] == (value >= limit if t["limit"].startswith(">=") else value <= limit)
    # tiny models: the speed targets are reported but marked as not applying
    assert sum(not t["applies"] for t in targets.values()) == 3


def test_quick_markdown_table(quick):
    report, md, seconds = quick
    assert md.startswith("# sowlv2 bench: cpu, float32, quick")
    assert "| measure | median | min - max | n | CPU time | what |" in md
    for name in EXPECTED_MEASURES:
        assert f"| {name} |" in md, name
    assert "## Targets" in md and ("PASS" in md or "FAIL" in md)
    assert "## Video runs" in md and "| every_frame |" in md
    assert seconds < 120  # the brief asks for < 30 s on an idle machine; this guards against a runaway


def test_naive_segment_encodes_once_per_box_and_gives_the_same_masks(tiny_sam):
    import torch

    from sowlv2.models.sam2_image import Sam2ImageSegmenter

    seg = Sam2ImageSegmenter.from_pretrained(str(tiny_sam), torch.device("cpu"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 40, 50], [50, 10, 120, 90], [20, 30, 70, 80]], np.float32)
    masks, _ = seg.segment(image, boxes)
    assert seg.encodings == 1
    naive = bench.naive_segment(seg, image, boxes)
    assert seg.encodings == 1 + len(boxes)
    assert naive.shape == masks.shape == (3, 96, 128) and naive.dtype == bool
    # the same work product: each box's mask is decoded the same way alone or in a batch
    inter = (naive & masks).sum(axis=(1, 2))
    union = (naive | masks).sum(axis=(1, 2))
    assert np.all(inter >= 0.99 * np.maximum(union, 1))


class _CountingDetector:
    def __init__(self):
        self.calls = 0
        self.device = "cpu"

    def detect(self, image, prompts, threshold=0.1, nms_iou=0.5, max_objects=None):
        self.calls += 1
        return None


def test_fixed_boxes_detector_runs_the_real_detector_and_returns_the_boxes():
    inner = _CountingDetector()
    boxes = np.array([[-5, 10, 50, 60], [100, 20, 400, 300]], np.float32)
    fake = bench.FixedBoxesDetector(inner, boxes, np.array([1, 0]))
    dets = fake.detect(np.zeros((240, 320, 3), np.uint8), ["cat", "dog"])
    assert inner.calls == 1 and fake.calls == 1
    assert dets.labels == ("dog", "cat")
    np.testing.assert_array_equal(dets.boxes, [[0, 10, 50, 60], [100, 20, 320, 240]])  # clipped to the image
    assert np.all(np.diff(dets.scores) <= 0) and fake.device == "cpu"


def test_forced_track_manager_keeps_exactly_the_detected_objects():
    from sowlv2.types import Detections

    manager = bench.ForcedTrackManager(match_iou=0.0, max_lost=5)
    full = np.ones((1, 8, 8), bool)
    dets = Detections(boxes=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
                      class_ids=np.zeros(2, np.int64), labels=("a", "a"))
    first = manager.associate(0, {}, dets, np.concatenate([full, full]))
    assert len(first.new) == 2  # the duplicate is kept: exactly the detected objects are tracked
    half = np.zeros((2, 8, 8), bool)
    half[:, :4] = True
    later = manager.associate(1, {1: full[0], 2: full[0]}, dets, half)
    assert not later.new and not later.reprompt and len(later.matched) == 2


@pytest.mark.parametrize("argv", [["--only", "video,bogus"], ["--size", "320"], ["--objects", "0"],
                                  ["--dtype", "float16"], ["--repeats", "0"]])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(UsageError):
        bench.parse_args(argv)
    assert main(["bench", *argv]) == 2
    assert "sowlv2: error: bench:" in capsys.readouterr().err


@pytest.mark.parametrize(("section", "prog"), [("backends", "python -m sowlv2.bench_backends"),
                                               ("adaptive", "bench_adaptive"),
                                               ("engine", "python -m sowlv2.engines.bench_engine")])
def test_bench_dispatches_the_other_benchmarks(section, prog, capsys):
    """`sowlv2 bench backends|adaptive|engine ...` runs that benchmark's own command line."""
    with pytest.raises(SystemExit) as info:
        main(["bench", section, "--help"])
    assert info.value.code == 0
    assert prog in capsys.readouterr().out
