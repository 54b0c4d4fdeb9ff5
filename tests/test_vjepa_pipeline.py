"""V-JEPA 2 key frames inside the video pipeline, and the seed document's programmatic example."""

import json

import numpy as np
import pytest

from sowlv2.cli import main
from sowlv2.io.video import VideoWriter


def make_cut_video(path, frames=64, cut=32, size=(96, 64)):
    """Textured background A, then from frame ``cut`` a different background B; a square moves."""
    w, h = size
    rng = np.random.default_rng(0)
    a = (rng.random((h, w, 3)) * 120).astype(np.uint8)
    b = 255 - (rng.random((h, w, 3)) * 120).astype(np.uint8)
    with VideoWriter(path, fps=16) as vw:
        for t in range(frames):
            img = (a if t < cut else b).copy()
            img[20:36, 10 + t // 2:26 + t // 2] = (230, 40, 40)
            vw.write(img)
    return path


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    return make_cut_video(tmp_path_factory.mktemp("cut") / "cut.mp4")


def test_vjepa2_keyframes_respect_the_budget_and_catch_the_scene_cut(tmp_path, cut_video, tiny_owl, tiny_sam,
                                                                      tiny_vjepa):
    rc = main(["--input", str(cut_video), "--prompt", "square", "--owl-model", str(tiny_owl),
               "--sam-model", str(tiny_sam), "--device", "cpu", "--threshold", "0", "--max-objects", "1",
               "--enable-vjepa2", "--vjepa2-model", str(tiny_vjepa), "--vjepa2-frames-per-clip", "16",
               "--keyframe-budget", "0.125", "--output", str(tmp_path / "o"), "-q", "--no-overlay"])
    assert rc == 0
    res = json.loads((tmp_path / "o/cut/results.json").read_text())
    keys = res["keyframes"]
    assert len(res["frames"]) == 64
    assert keys[0] == 0 and len(keys) <= 9  # ceil(0.125 * 64) + 1
    assert any(32 <= k <= 35 for k in keys), keys
    assert res["stats"]["detector_calls"] == len(keys)
    assert len(res["keyframe_scores"]) == len(keys)
    assert all(s is not None and 0.0 <= s <= 1.0 for s in res["keyframe_scores"])
    assert [f["index"] for f in res["frames"] if f["keyframe"]] == keys
    assert res["stats"]["seconds"]["select"] > 0


def test_unloadable_vjepa2_falls_back_to_uniform_at_the_same_budget(tmp_path, cut_video, tiny_owl, tiny_sam,
                                                                     caplog):
    rc = main(["--input", str(cut_video), "--prompt", "square", "--owl-model", str(tiny_owl),
               "--sam-model", str(tiny_sam), "--device", "cpu", "--threshold", "0", "--max-objects", "1",
               "--enable-vjepa2", "--vjepa2-model", str(tmp_path / "missing"), "--keyframe-budget", "0.125",
               "--output", str(tmp_path / "o"), "--no-overlay", "--no-binary"])
    assert rc == 0
    res = json.loads((tmp_path / "o/cut/results.json").read_text())
    assert 2 <= len(res["keyframes"]) <= 9 and res["keyframes"][0] == 0
    gaps = np.diff(res["keyframes"])
    assert gaps.max() - gaps.min() <= 1  # an even schedule


def test_seed_programmatic_example_runs_as_written(tmp_path, cut_video, tiny_owl, tiny_sam, tiny_vjepa_classifier):
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.optimizations import OptimizedSOWLv2Pipeline, VJepa2VideoOptimizer, create_vjepa2_optimizer

    config = PipelineBaseData(owl_model=str(tiny_owl), sam_model=str(tiny_sam), threshold=0.1, device="cpu",
                              vjepa2_model=str(tiny_vjepa_classifier), keyframe_budget=0.125, progress=False)
    vjepa2_optimizer = create_vjepa2_optimizer(config, enable_vjepa2=True)
    assert isinstance(vjepa2_optimizer, VJepa2VideoOptimizer)
    assert create_vjepa2_optimizer(config, enable_vjepa2=False) is None
    pipeline = OptimizedSOWLv2Pipeline(config)
    assert pipeline.vjepa2_optimizer is None  # config.enable_vjepa2 is off until an optimizer is assigned
    pipeline.vjepa2_optimizer = vjepa2_optimizer
    out = pipeline.process_video(str(cut_video), "person", str(tmp_path / "output_dir"))
    res = json.loads((out / "results.json").read_text())
    assert res["prompts"] == ["person"]
    assert vjepa2_optimizer.is_available  # the classification checkpoint's encoder was used
    assert len(res["keyframes"]) <= 9 and any(32 <= k <= 35 for k in res["keyframes"])
