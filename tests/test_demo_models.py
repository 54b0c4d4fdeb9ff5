"""The shipped demo checkpoints: they load through the production classes, stay small, and still
see the synthetic world on held-out videos (seeds 0-99 are never used in training).

Quality thresholds are the values measured by ``tools/eval_demo_models.py`` (see
``src/sowlv2/demo_models/training.json``) minus a margin; each check uses a few held-out frames only.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sowlv2.demo_models import DEMO_DIR, KINDS, resolve
from sowlv2.errors import ModelLoadError
from sowlv2.eval.world import iter_world_video

WORLD = (320, 240)
# Thresholds: measured with the shipped checkpoints (values in the comments; README, "Demo models"),
# minus a margin, so that a regression in a model, an adapter or a pipeline stage fails CI.
RECALL_MIN = 0.8  # measured 18/19 = 0.95
SAM_IOU_MIN = 0.78  # measured 0.821 (0.878 with the 128 px SAM 2 shipped before)
TRACK_IOU_MIN = 0.8  # measured 0.887 (seeds 0-4, 12 frames; 0.769 before)
# `sowlv2 demo --seed S` as a user runs it (48 frames) on a few held-out seeds, drawn once by a fixed
# generator (Random(15), 15 = the issue that set the target) rather than picked: (1, 26, 66).
E2E_SEEDS = tuple(sorted(random.Random(15).sample(range(100), 3)))
E2E_FRAMES = 48
E2E_SEED_JF_MIN = 0.6  # the target per seed; it holds on 84 of the 100 held-out seeds (eval.json)
E2E_JF_MIN = 0.75  # DAVIS J&F-Mean over the sample, measured 0.817 (0.856, 0.941, 0.654)
E2E_ID_SWITCHES_MAX = 1


def _objects(id_map: np.ndarray, categories: dict[int, str], min_area: int = 100):
    """(id, label, box xyxy float32, mask) of the objects with at least ``min_area`` visible pixels."""
    out = []
    for oid, label in categories.items():
        mask = id_map == oid
        if mask.sum() >= min_area:
            ys, xs = np.nonzero(mask)
            out.append((oid, label, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32), mask))
    return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


# ------------------------------------------------------------------ resolve, files, sizes


@pytest.mark.parametrize("kind", KINDS)
def test_resolve_demo_gives_the_shipped_folder(kind):
    folder = resolve("demo", kind)
    assert folder == str(DEMO_DIR / kind)
    assert (DEMO_DIR / kind / "config.json").is_file()
    assert (DEMO_DIR / kind / "model.safetensors").is_file()


@pytest.mark.parametrize("name", ["google/owlv2-base-patch16-ensemble", "./my/folder", "Demo", "demo2", ""])
def test_resolve_leaves_other_names_unchanged(name):
    assert resolve(name, "owl") == name
    assert resolve(name, "sam") == name


def test_resolve_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown model kind 'detector'"):
        resolve("demo", "detector")


def test_resolve_names_the_missing_folder(monkeypatch, tmp_path):
    import sowlv2.demo_models as dm

    monkeypatch.setattr(dm, "DEMO_DIR", tmp_path)
    with pytest.raises(ModelLoadError, match="demo sam model is missing"):
        dm.resolve("demo", "sam")


def test_checkpoints_are_small():
    total = sum(f.stat().st_size for kind in KINDS for f in (DEMO_DIR / kind).rglob("*") if f.is_file())
    assert total <= 25 * 1024 * 1024, f"demo checkpoints take {total / 2**20:.1f} MB (limit 25 MB)"


def test_training_record_names_the_held_out_seeds():
    record = json.loads((DEMO_DIR / "training.json").read_text())
    assert record["seeds"]["held_out"] == [0, 99]
    assert record["seeds"]["train_min"] >= 1000


# ------------------------------------------------------------------ loading through the production classes


@pytest.fixture(scope="module")
def owl():
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    folder = resolve("demo", "owl")
    model, info = Owlv2ForObjectDetection.from_pretrained(folder, output_loading_info=True, use_safetensors=True)
    return model.eval(), Owlv2Processor.from_pretrained(folder), info


@pytest.fixture(scope="module")
def sam_video():
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    folder = resolve("demo", "sam")
    model, info = Sam2VideoModel.from_pretrained(folder, output_loading_info=True, use_safetensors=True)
    return model.eval(), Sam2VideoProcessor.from_pretrained(folder), info


def test_owl_loads_completely(owl):
    model, processor, info = owl
    assert not info["missing_keys"] and not info["unexpected_keys"]
    # the text tower's hidden size must equal the projection (the class head compares them)
    assert model.config.text_config.hidden_size == model.config.projection_dim
    # the longest world label is not truncated by the tokenizer
    ids = processor.tokenizer("yellow triangle")["input_ids"]
    assert len(ids) <= processor.tokenizer.model_max_length <= model.config.text_config.max_position_embeddings


def test_sam_loads_as_video_and_image_model(sam_video):
    from transformers import Sam2Model, Sam2Processor

    model, _, info = sam_video
    assert not info["missing_keys"] and not info["unexpected_keys"]
    image_model = Sam2Model.from_pretrained(resolve("demo", "sam"), use_safetensors=True)
    # the image model shares every weight it has with the video checkpoint
    video_state = model.state_dict()
    for key, value in image_model.state_dict().items():
        assert key in video_state, key
        assert torch.equal(value, video_state[key]), key
    assert isinstance(Sam2Processor.from_pretrained(resolve("demo", "sam")), Sam2Processor)
    # the prompt and image position codes are one matrix (else boxes would be read in another code)
    assert torch.equal(model.prompt_encoder.shared_embedding.positional_embedding,
                       model.shared_image_embedding.positional_embedding)


def test_vjepa2_loads():
    from transformers import VJEPA2Model, VJEPA2VideoProcessor

    folder = resolve("demo", "vjepa2")
    model, info = VJEPA2Model.from_pretrained(folder, output_loading_info=True, use_safetensors=True)
    assert not info["missing_keys"]
    assert VJEPA2VideoProcessor.from_pretrained(folder).crop_size["height"] == model.config.crop_size


# ------------------------------------------------------------------ quality on held-out frames


def test_detector_finds_the_prompted_shapes_on_held_out_frames():
    """Production adapter, prompts = the video's labels; held-out seeds 0-4, frames 0 and 20."""
    from sowlv2.models.owlv2 import Owlv2Detector

    det = Owlv2Detector.from_pretrained(resolve("demo", "owl"), torch.device("cpu"))
    found = total = 0
    for seed in range(5):
        video = iter_world_video(seed, 21, WORLD)
        prompts = sorted(set(video.categories.values()))
        for t, (rgb, id_map) in enumerate(video):
            if t % 20:
                continue
            d = det.detect(rgb, prompts, threshold=0.1)
            for _, label, box, _ in _objects(id_map, video.categories):
                total += 1
                found += any(lab == label and _box_iou(b, box) >= 0.5 for lab, b in zip(d.labels, d.boxes))
    assert total >= 15
    assert found / total >= RECALL_MIN, f"recall {found}/{total}"


def test_sam_box_to_mask_on_held_out_frames():
    from sowlv2.models.sam2_image import Sam2ImageSegmenter

    seg = Sam2ImageSegmenter.from_pretrained(resolve("demo", "sam"), torch.device("cpu"))
    ious = []
    for seed in range(5):
        rgb, id_map = next(iter(iter_world_video(seed, 1, WORLD)))
        objs = _objects(id_map, iter_world_video(seed, 1, WORLD).categories)
        masks, _ = seg.segment(rgb, np.stack([o[2] for o in objs]))
        ious += [_mask_iou(m, o[3]) for m, o in zip(masks, objs)]
    assert np.mean(ious) >= SAM_IOU_MIN, np.mean(ious)


@torch.inference_mode()
def test_sam_tracks_a_box_prompt_through_held_out_frames(sam_video):
    """Box prompts on frame 0 of held-out videos 0-4, then 12 streamed frames through the session API."""
    model, proc, _ = sam_video
    ious = []
    for seed in range(5):
        video = iter_world_video(seed, 13, WORLD)
        session = proc.init_video_session(video=None, inference_device="cpu", dtype=torch.float32)
        for t, (rgb, id_map) in enumerate(video):
            pixels = proc(images=rgb, return_tensors="pt").pixel_values
            if t == 0:
                objs = _objects(id_map, video.categories)
                session.add_new_frame(pixels, frame_idx=0)
                proc.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=[o[0] for o in objs],
                                                     input_boxes=[[o[2].tolist() for o in objs]],
                                                     original_size=id_map.shape)
                model(inference_session=session, frame_idx=0)
                continue
            out = model(inference_session=session, frame=pixels, frame_idx=t)
            masks = proc.post_process_masks([out.pred_masks], original_sizes=[id_map.shape], binarize=True)[0]
            assert sorted(out.object_ids) == sorted(o[0] for o in objs)
            for k, oid in enumerate(out.object_ids):
                gt = id_map == oid
                if gt.any() or masks[k, 0].any():
                    ious.append(_mask_iou(masks[k, 0].numpy(), gt))
    assert len(ious) >= 100  # (object, frame) pairs where the object or its mask is present
    assert np.mean(ious) >= TRACK_IOU_MIN, np.mean(ious)


@torch.inference_mode()
def test_vjepa2_features_change_most_at_a_scene_cut():
    """Random (untrained) encoder: per-position feature novelty between consecutive tubelets peaks at the cut."""
    from transformers import VJEPA2Model

    model = VJEPA2Model.from_pretrained(resolve("demo", "vjepa2")).eval()
    s = model.config.crop_size
    video = iter_world_video(11, 16, WORLD, cut_at=8)
    x = torch.from_numpy(np.stack([rgb for rgb, _ in video])).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
    x = (x - 0.45) / 0.225
    feats = model.get_vision_features(x[None])[0]  # (tubelets * g * g, D)
    g = s // model.config.patch_size
    f = feats.reshape(-1, g * g, feats.shape[-1])
    nov = (1 - torch.nn.functional.cosine_similarity(f[1:], f[:-1], dim=-1)) / 2
    score = nov.topk(math.ceil(0.05 * g * g), dim=1).values.mean(1)  # novelty of tubelets 1..7
    cut = 8 // model.config.tubelet_size - 1
    others = torch.cat([score[:cut], score[cut + 1:]])
    assert score[cut] > 1.5 * others.max(), score  # measured: 0.79 vs 0.40


# ------------------------------------------------------------------ the whole pipeline: `sowlv2 demo`


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """``sowlv2 demo`` on held-out videos (seeds never used in training), through the CLI entry point."""
    from sowlv2.cli import main

    runs = {}
    for seed in E2E_SEEDS:
        out = tmp_path_factory.mktemp(f"demo{seed}")
        rc = main(["demo", "--output", str(out), "--seed", str(seed), "--frames", str(E2E_FRAMES), "--quiet"])
        assert rc == 0
        runs[seed] = (out, json.loads((out / "demo_metrics.json").read_text()))
    return runs


def test_demo_end_to_end_quality_on_held_out_videos(demo_runs):
    """J&F of the whole pipeline (shipped OWLv2 + SAM 2 + V-JEPA 2 key frames, association, writers, eval):
    a regression in any stage lowers it. Threshold: the value measured when the models were shipped,
    minus a margin (see README, "Demo models")."""
    jf = [m["JF_mean"] for _, m in demo_runs.values()]
    assert float(np.mean(jf)) >= E2E_JF_MIN, jf
    assert min(jf) >= E2E_SEED_JF_MIN, dict(zip(demo_runs, jf))
    for _, m in demo_runs.values():
        assert m["id_switches"] <= E2E_ID_SWITCHES_MAX, m["objects"]


def test_demo_writes_its_metrics_and_the_outputs_it_names(demo_runs, capsys):
    for out, m in demo_runs.values():
        for key in ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "object_recall",
                    "discovery_latency", "id_switches", "detector_calls", "seconds"):
            assert key in m, key
        assert m["settings"]["owl_model"] == m["settings"]["sam_model"] == "demo" and m["settings"]["enable_vjepa2"]
        # V-JEPA 2 chose the key frames at the default 25 % budget: floor(F / 4) + 1 at most
        assert 1 <= m["detector_calls"] <= E2E_FRAMES // 4 + 1
        res = json.loads((Path(m["results"]) / "results.json").read_text())
        assert len(res["frames"]) == E2E_FRAMES and res["stats"]["detector_calls"] == m["detector_calls"]
        assert (Path(m["results"]) / "video" / "overlay.mp4").stat().st_size > 0
        assert (out / "world" / "video_000" / "video.mp4").is_file()


def test_demo_rejects_a_training_seed_with_one_line(tmp_path, capsys):
    from sowlv2.cli import main

    assert main(["demo", "--output", str(tmp_path / "d"), "--seed", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--seed must be a held-out seed in 0..99" in err
    assert not (tmp_path / "d").exists()


def test_demo_name_loads_through_the_pipeline_adapters():
    from sowlv2.models.owlv2 import Owlv2Detector
    from sowlv2.models.sam2_video import Sam2VideoTracker
    from sowlv2.optimizations import VJepa2VideoOptimizer

    det = Owlv2Detector.from_pretrained("demo", torch.device("cpu"))
    assert det.model.config.vision_config.image_size == json.loads(
        (DEMO_DIR / "owl" / "config.json").read_text())["vision_config"]["image_size"]
    tracker = Sam2VideoTracker.from_pretrained("demo")
    assert tracker.model.config.image_size == json.loads((DEMO_DIR / "sam" / "config.json").read_text())["image_size"]
    assert VJepa2VideoOptimizer(model_name="demo", device="cpu").is_available
