"""VJepa2VideoOptimizer on the tiny random V-JEPA 2 checkpoints (real transformers classes, offline)."""

from __future__ import annotations

import logging
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from sowlv2.errors import UsageError
from sowlv2.optimizations.vjepa2 import (
    DEFAULT_MODEL,
    VJepa2VideoOptimizer,
    create_vjepa2_optimizer,
    novelty_scores,
    resolve_dtype,
    uniform_indices,
)

CPU = SimpleNamespace(device="cpu")
GRID = 8  # 128 px crop / 16 px patches
WIDTH = 32  # tiny hidden size


def texture(seed: int, h: int = 90, w: int = 160) -> np.ndarray:
    """(h, w, 3) uint8 smooth random texture."""
    t = gaussian_filter(np.random.default_rng(seed).random((h, w, 3)), (2, 2, 0))
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr)


class CallCounter:
    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.calls += 1


@pytest.fixture
def opt(tiny_vjepa):
    return VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa), frames_per_clip=16)


def test_lazy_loading_and_properties(tiny_vjepa):
    o = VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa), frames_per_clip=8)
    assert o.model is None  # nothing loaded by the constructor
    assert o.model_name == str(tiny_vjepa)
    assert o.frames_per_clip == 8
    assert o.device == torch.device("cpu")
    assert o.strategy == "novelty"
    assert o.is_available
    assert type(o.model).__name__ == "VJEPA2Model"
    assert o.dtype == torch.float32
    assert o.tubelet_size == 2


def test_features_shape_dtype_and_tubelets(opt):
    frames = [pil(texture(i)) for i in range(5)]  # 16:9 frames, one short clip padded to 16
    feats = opt.extract_video_features(frames)
    assert feats.shape == (5, GRID, GRID, WIDTH)
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert torch.equal(feats[0], feats[1]) and torch.equal(feats[2], feats[3])  # one tubelet each
    assert not torch.equal(feats[1], feats[2])
    # numpy RGB frames are accepted and give the same features as PIL images
    same = opt.extract_video_features([texture(i) for i in range(5)])
    assert torch.allclose(same, feats)
    assert opt.extract_video_features([]) is None


def test_predictor_never_runs(opt):
    assert opt.is_available
    enc, pred = CallCounter(opt.model.encoder), CallCounter(opt.model.predictor)
    opt.extract_video_features([pil(texture(i)) for i in range(20)])
    opt.get_temporal_importance_scores([pil(texture(i)) for i in range(4)])
    assert enc.calls == 2 and pred.calls == 0


def test_classification_checkpoint_uses_its_encoder(tiny_vjepa_classifier):
    from transformers import VJEPA2ForVideoClassification

    o = VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa_classifier), frames_per_clip=4)
    assert o.is_available
    assert type(o.model).__name__ == "VJEPA2Model" and not hasattr(o.model, "classifier")
    full = VJEPA2ForVideoClassification.from_pretrained(tiny_vjepa_classifier)
    ref = full.vjepa2.state_dict()
    got = o.model.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    pred = CallCounter(o.model.predictor)
    feats = o.extract_video_features([pil(texture(i)) for i in range(6)])
    assert feats.shape == (6, GRID, GRID, WIDTH) and pred.calls == 0


def test_batch_process_video_clips_batches_and_pads(tiny_vjepa):
    o = VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa), frames_per_clip=16)
    frames = [pil(texture(i, 48, 64)) for i in range(40)]
    assert o.is_available
    enc = CallCounter(o.model.encoder)
    clips = o.batch_process_video_clips(frames, batch_size=2)
    assert enc.calls == 2  # 3 clips (16, 16, 8) in batches of 2
    assert [len(c) for c, _ in clips] == [16, 16, 8]
    assert [c[0] for c, _ in clips] == [frames[0], frames[16], frames[32]]
    assert [tuple(f.shape) for _, f in clips] == [(16, GRID, GRID, WIDTH)] * 2 + [(8, GRID, GRID, WIDTH)]
    # the short clip was padded by repeating its last frame: same features as encoding it alone
    alone = o.extract_video_features(frames[32:])
    assert torch.allclose(clips[2][1], alone, atol=1e-5)
    enc.calls = 0
    assert len(o.batch_process_video_clips(frames, batch_size=4)) == 3 and enc.calls == 1
    with pytest.raises(ValueError):
        o.batch_process_video_clips(frames, batch_size=0)


@pytest.mark.parametrize("strategy", ["novelty", "variance", "uniform"])
def test_scores_one_per_frame_in_range(tiny_vjepa, strategy):
    cfg = SimpleNamespace(device="cpu", keyframe_strategy=strategy)
    o = VJepa2VideoOptimizer(cfg, model_name=str(tiny_vjepa), frames_per_clip=8)
    frames = [pil(texture(i // 6)) for i in range(21)]  # a new texture every 6 frames
    scores = o.get_temporal_importance_scores(frames)
    assert len(scores) == 21
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    if strategy == "uniform":
        assert scores == [1.0] * 21
    elif strategy == "variance":
        assert min(scores) == 0.0 and max(scores) == 1.0  # min-max normalised
    else:
        assert scores[0] == scores[1] == 1.0  # the first tubelet has nothing before it
        changed = {6, 12, 18}  # tubelets that start on a new texture
        quiet = [s for i, s in enumerate(scores) if i >= 2 and i % 2 == 0 and i not in changed]
        assert min(scores[i] for i in changed) > 10 * max(quiet)


def test_novelty_definition():
    a = torch.randn(4, 4, 8)
    assert float(novelty_scores(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(novelty_scores(-a, a)) == pytest.approx(1.0, abs=1e-6)
    b = a.clone()
    b[0, 0] = -b[0, 0]  # one of 16 positions reversed: top-1 (5 % of 16 -> 1 position) sees it fully
    assert float(novelty_scores(b, a)) == pytest.approx(1.0, abs=1e-6)
    assert float(novelty_scores(b, a, topk_fraction=1.0)) == pytest.approx(1 / 16, abs=1e-6)
    batch = novelty_scores(torch.stack([a, b, -a]), a)
    assert batch.shape == (3,) and batch[0] < batch[1] <= batch[2]


def test_wide_frames_are_not_cropped(opt):
    from transformers import AutoVideoProcessor

    x = texture(1)  # 90 x 160, 16:9
    x2 = x.copy()
    x2[:, :16] = texture(2)[:, :16]  # change only the leftmost 10 % of the width
    # The processor's own centre crop would not see the change at all ...
    proc = AutoVideoProcessor.from_pretrained(opt.model_name)
    a = proc(videos=[x[None]], return_tensors="pt").pixel_values_videos
    b = proc(videos=[x2[None]], return_tensors="pt").pixel_values_videos
    assert torch.equal(a, b)
    # ... the optimizer does.
    scores = opt.get_temporal_importance_scores([pil(x)] * 8 + [pil(x2)] * 8)
    assert scores[8] > 0.05
    assert max(scores[2:8] + scores[10:]) < scores[8] / 10


def test_optimize_frame_selection(tiny_vjepa):
    o = VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa), frames_per_clip=16)
    frames = [pil(texture(0 if i < 20 else 1)) for i in range(40)]
    for target in (1, 2, 3, 7, 39, 40, 100):
        idx = o.optimize_frame_selection(frames, target)
        assert len(idx) == min(target, 40)
        assert idx == sorted(set(idx)) and idx[0] == 0 and idx[-1] < 40
    assert o.optimize_frame_selection(frames, 0) == []
    assert o.optimize_frame_selection([], 5) == []
    assert o.optimize_frame_selection(frames, 2) == [0, 20]  # the scene change
    # one frame per tubelet before a second one: the 3rd pick is not 21 (20's tubelet mate)
    assert 21 not in o.optimize_frame_selection(frames, 3)
    o.strategy = "uniform"
    assert o.optimize_frame_selection(frames, 4) == [0, 10, 20, 30]


def test_uniform_indices():
    for n in range(0, 30):
        for k in range(0, 35):
            idx = uniform_indices(n, k)
            assert len(idx) == min(k, n) and idx == sorted(set(idx))
            assert all(0 <= i < n for i in idx) and (not idx or idx[0] == 0)


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_missing_model_falls_back_with_one_warning(tmp_path, caplog):
    missing = tmp_path / "no-such-model"
    o = VJepa2VideoOptimizer(CPU, model_name=str(missing), frames_per_clip=16)
    frames = [pil(texture(i, 32, 32)) for i in range(10)]
    with caplog.at_level(logging.WARNING):
        assert o.is_available is False
        assert o.extract_video_features(frames) is None
        assert o.get_temporal_importance_scores(frames) is None
        assert o.batch_process_video_clips(frames) == []
        assert o.optimize_frame_selection(frames, 4) == uniform_indices(10, 4) == [0, 2, 5, 7]
        assert o.is_available is False
    warns = _warnings(caplog)
    assert len(warns) == 1 and str(missing) in warns[0].getMessage()
    assert "uniform" in warns[0].getMessage()


def test_not_a_vjepa2_checkpoint(tmp_path, caplog):
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    o = VJepa2VideoOptimizer(CPU, model_name=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert not o.is_available
    assert "not a V-JEPA 2" in o.failure_reason and len(_warnings(caplog)) == 1


def test_transformers_without_vjepa2(tiny_vjepa, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))
    o = VJepa2VideoOptimizer(CPU, model_name=str(tiny_vjepa))
    with caplog.at_level(logging.WARNING):
        assert not o.is_available
    assert "no V-JEPA 2" in o.failure_reason and len(_warnings(caplog)) == 1


def test_out_of_memory_while_encoding(opt, monkeypatch, caplog):
    assert opt.is_available

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(opt.model, "get_vision_features", oom)
    frames = [pil(texture(i, 32, 32)) for i in range(6)]
    with caplog.at_level(logging.WARNING):
        assert opt.extract_video_features(frames) is None
        assert opt.optimize_frame_selection(frames, 3) == uniform_indices(6, 3)
    assert not opt.is_available
    warns = _warnings(caplog)
    assert len(warns) == 1 and "out of memory" in warns[0].getMessage()


def test_dtype_from_config(tiny_vjepa):
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError):
        resolve_dtype("int7", torch.device("cpu"))
    o = VJepa2VideoOptimizer(SimpleNamespace(device="cpu", dtype="bfloat16"), model_name=str(tiny_vjepa))
    feats = o.extract_video_features([pil(texture(i, 32, 32)) for i in range(4)])
    assert next(o.model.parameters()).dtype == torch.bfloat16
    assert feats.dtype == torch.float32 and feats.shape == (4, GRID, GRID, WIDTH)
    with pytest.raises(UsageError, match="dtype"):
        VJepa2VideoOptimizer(SimpleNamespace(dtype="float8"), model_name=str(tiny_vjepa))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tiny_vjepa, caplog):
    o = VJepa2VideoOptimizer(SimpleNamespace(device="cuda"), model_name=str(tiny_vjepa))
    with caplog.at_level(logging.WARNING):
        assert not o.is_available
    assert "CUDA is not available" in o.failure_reason and len(_warnings(caplog)) == 1


def test_create_vjepa2_optimizer(tiny_vjepa):
    assert create_vjepa2_optimizer(CPU, enable_vjepa2=False) is None
    default = create_vjepa2_optimizer(None)
    assert default.model_name == DEFAULT_MODEL and default.frames_per_clip == 16 and default.model is None
    cfg = SimpleNamespace(device="cpu", vjepa2_model=str(tiny_vjepa), vjepa2_frames_per_clip=32,
                          keyframe_strategy="variance")
    o = create_vjepa2_optimizer(cfg)
    assert (o.model_name, o.frames_per_clip, o.strategy) == (str(tiny_vjepa), 32, "variance")
    assert o.model is None  # lazy
    with pytest.raises(UsageError, match="keyframe_strategy"):
        VJepa2VideoOptimizer(SimpleNamespace(keyframe_strategy="random"))
    with pytest.raises(UsageError, match="frames_per_clip"):
        VJepa2VideoOptimizer(None, frames_per_clip=0)
