"""Online key-frame selection: cadence, V-JEPA 2 novelty within a budget, fallbacks, memory."""

from __future__ import annotations

import logging
import math
import time
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from sowlv2.errors import UsageError
from sowlv2.keyframes import (
    CadenceSelector,
    KeyframeDecision,
    KeyframeSelector,
    VJepa2Selector,
    make_selector,
)
from sowlv2.optimizations.vjepa2 import VJepa2VideoOptimizer
from sowlv2.types import Frame


def texture(seed: int, h: int = 72, w: int = 128) -> np.ndarray:
    t = gaussian_filter(np.random.default_rng(seed).random((h, w, 3)), (2, 2, 0))
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def scene_video(n: int, scenes: list[int], cuts: list[int], noise: int = 3, seed: int = 0):
    """Frames of textured scenes: scene ``scenes[k]`` from ``cuts[k]`` on, plus per-frame noise."""
    rng = np.random.default_rng(seed)
    textures = {s: texture(s) for s in scenes}
    for i in range(n):
        k = max(j for j, c in enumerate(cuts) if c <= i)
        base = textures[scenes[k]].astype(np.int16)
        img = np.clip(base + rng.integers(-noise, noise + 1, base.shape), 0, 255).astype(np.uint8)
        yield Frame(index=i, time=i / 25, image=img)


def keys_of(pairs) -> list[int]:
    return [f.index for f, d in pairs if d.is_key]


def assert_budget(keys: list[int], n: int, budget: float) -> None:
    """Prefix invariant: after m frames at most floor(budget * m) + 1 key frames; frame 0 is one."""
    b = Fraction(str(budget))
    assert n == 0 or keys[0] == 0
    for count, k in enumerate(keys, start=1):
        assert count <= math.floor(b * (k + 1)) + 1, (keys, budget)
    assert len(keys) <= math.ceil(b * n) + 1


class FakeOptimizer:
    """Features from a scene id stored in each frame's first pixel: equal ids, equal features."""

    def __init__(self, frames_per_clip: int = 8, fail_from_call: int | None = None) -> None:
        self.frames_per_clip = frames_per_clip
        self.tubelet_size = 2
        self.topk_fraction = 0.05
        self.is_available = True
        self.calls = 0
        self.fail_from_call = fail_from_call

    def extract_video_features(self, frames, batch_size=4):
        self.calls += 1
        if self.fail_from_call is not None and self.calls >= self.fail_from_call:
            self.is_available = False
            return None
        out = []
        for img in frames:
            g = torch.Generator().manual_seed(int(img[0, 0, 0]))
            out.append(torch.randn(2, 2, 8, generator=g))
        return torch.stack(out)


def id_frames(ids):
    for i, s in enumerate(ids):
        yield Frame(index=i, time=i / 25.0, image=np.full((2, 2, 3), s, np.uint8))


# ----------------------------------------------------------------------------- cadence
@pytest.mark.parametrize(("every", "n", "expected"), [
    (1, 4, [0, 1, 2, 3]),
    (3, 10, [0, 3, 6, 9]),
    (5, 5, [0]),
    (4, 0, []),
])
def test_cadence(every, n, expected):
    sel = CadenceSelector(every)
    assert isinstance(sel, KeyframeSelector)
    out = list(sel.select(id_frames([0] * n)))
    assert [f.index for f, _ in out] == list(range(n))
    assert keys_of(out) == expected
    assert all(d.score is None for _, d in out)


def test_cadence_rejects_zero():
    with pytest.raises(UsageError, match="detect_every"):
        CadenceSelector(0)


# ----------------------------------------------------------------------------- budget logic (fake features)
@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 5), min_size=0, max_size=90),
    budget=st.sampled_from([0.03, 0.1, 0.125, 0.25, 0.3, 0.5, 1.0]),
    fpc=st.sampled_from([1, 2, 5, 8, 16]),
    strategy=st.sampled_from(["novelty", "variance", "uniform"]),
    clips=st.integers(1, 3),
)
def test_budget_prefix_invariant_any_content(ids, budget, fpc, strategy, clips):
    sel = VJepa2Selector(FakeOptimizer(fpc), budget=budget, strategy=strategy, clips_per_pass=clips)
    out = list(sel.select(id_frames(ids)))
    assert [f.index for f, _ in out] == list(range(len(ids)))
    keys = keys_of(out)
    assert_budget(keys, len(ids), budget)
    scores = [d.score for _, d in out if d.score is not None]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_static_video_refreshes_evenly_and_keeps_a_reserve():
    sel = VJepa2Selector(FakeOptimizer(8), budget=0.125, max_credit=3)
    keys = keys_of(sel.select(id_frames([7] * 96)))
    assert_budget(keys, 96, 0.125)
    # nothing changes: one refresh every 1/budget frames once max_credit is reached, 2 kept in reserve
    assert keys == [0, 23, 31, 39, 47, 55, 63, 71, 79, 87, 95]


def test_cut_after_reserve_is_caught_and_later_frames_are_not_novel():
    ids = [1] * 50 + [2] * 30
    sel = VJepa2Selector(FakeOptimizer(8), budget=0.125)
    out = list(sel.select(id_frames(ids)))
    keys = keys_of(out)
    assert 51 in keys  # the last frame of the cut's tubelet (50, 51): frames of a tubelet share features
    assert out[51][1].score > 0.3
    assert all(d.score < 1e-6 for _, d in out[52:])  # compared with the new key frame
    assert_budget(keys, 80, 0.125)


def test_uniform_strategy_never_loads_the_model(tmp_path, caplog):
    opt = VJepa2VideoOptimizer(SimpleNamespace(device="cpu"), model_name=str(tmp_path / "missing"))
    sel = VJepa2Selector(opt, budget=0.25, strategy="uniform")
    with caplog.at_level(logging.WARNING):
        keys = keys_of(sel.select(id_frames([0] * 20)))
    assert keys == [0, 4, 8, 12, 16]
    assert opt.model is None and not caplog.records


def test_failure_mid_video_continues_uniformly():
    fake = FakeOptimizer(8, fail_from_call=2)
    sel = VJepa2Selector(fake, budget=0.25)
    out = list(sel.select(id_frames([i % 4 for i in range(40)])))
    assert len(out) == 40 and sel.fallback
    assert all(d.score is None for _, d in out[8:])  # clip 2 onwards: uniform schedule
    keys = keys_of(out)
    assert_budget(keys, 40, 0.25)
    assert [k for k in keys if k >= 8] == [8, 12, 16, 20, 24, 28, 32, 36]


def test_seconds_counts_selection_not_the_source():
    def slow(frames):
        for f in frames:
            time.sleep(0.02)
            yield f

    sel = VJepa2Selector(FakeOptimizer(8), budget=0.25)
    t0 = time.perf_counter()
    list(sel.select(slow(id_frames([0] * 24))))
    wall = time.perf_counter() - t0
    assert wall > 0.45 and 0 < sel.seconds < 0.2


# ----------------------------------------------------------------------------- tiny V-JEPA 2 model
@pytest.fixture(scope="module")
def tiny_opt(tiny_vjepa):
    return VJepa2VideoOptimizer(SimpleNamespace(device="cpu"), model_name=str(tiny_vjepa), frames_per_clip=16)


@pytest.mark.parametrize("cut", [32, 37, 40])
def test_scene_cut_gets_a_key_frame_within_two_frames_after_it(tiny_opt, cut):
    sel = VJepa2Selector(tiny_opt, budget=0.125)
    out = list(sel.select(scene_video(64, scenes=[11, 12], cuts=[0, cut])))
    keys = keys_of(out)
    assert len(keys) <= 9
    assert_budget(keys, 64, 0.125)
    hit = [k for k in keys if cut <= k <= cut + 2]  # on the cut or within 2 frames after it, never before
    assert hit, keys
    # after the cut's key frame, the frames of the new scene are no longer novel
    after = [d.score for f, d in out if f.index > max(hit) + 1 and f.index < 64]
    assert max(after) < out[hit[0]][1].score / 10


@pytest.mark.parametrize(("n", "budget"), [(1, 0.25), (17, 0.1), (33, 0.25), (50, 0.5)])
def test_budget_with_the_model_on_changing_content(tiny_opt, n, budget):
    # a new scene every 3 frames: every frame wants to be a key frame
    video = scene_video(n, scenes=list(range(n // 3 + 1)), cuts=list(range(0, n, 3)), noise=0)
    out = list(VJepa2Selector(tiny_opt, budget=budget).select(video))
    assert len(out) == n
    assert_budget(keys_of(out), n, budget)


def test_variance_strategy_with_the_model(tiny_opt):
    out = list(VJepa2Selector(tiny_opt, budget=0.25, strategy="variance").select(
        scene_video(40, scenes=[3, 4], cuts=[0, 20])))
    assert all(0.0 <= d.score <= 1.0 for _, d in out)
    assert_budget(keys_of(out), 40, 0.25)


def test_memory_bounded_by_one_clip(tiny_opt):
    consumed = 0

    def source():
        nonlocal consumed
        for f in scene_video(70, scenes=[1, 2], cuts=[0, 30]):
            consumed += 1
            yield f

    yielded = 0
    lead = []
    for frame, _ in VJepa2Selector(tiny_opt, budget=0.25).select(source()):
        assert frame.index == yielded
        yielded += 1
        lead.append(consumed - yielded)
    assert yielded == 70
    assert max(lead) == tiny_opt.frames_per_clip - 1  # never more than the clip being yielded


def test_clips_per_pass_batches_without_changing_decisions(tiny_opt):
    video = list(scene_video(70, scenes=[1, 2, 3], cuts=[0, 21, 50]))
    one = list(VJepa2Selector(tiny_opt, budget=0.2).select(video))
    enc_calls = 0

    def count(*args):
        nonlocal enc_calls
        enc_calls += 1

    handle = tiny_opt.model.encoder.register_forward_hook(count)
    consumed = 0

    def source():
        nonlocal consumed
        for f in video:
            consumed += 1
            yield f

    lead = []
    two = []
    for pair in VJepa2Selector(tiny_opt, budget=0.2, clips_per_pass=2).select(source()):
        two.append(pair)
        lead.append(consumed - len(two))
    handle.remove()
    assert enc_calls == 3  # 5 clips (16, 16, 16, 16, 6) two per pass
    assert max(lead) == 2 * tiny_opt.frames_per_clip - 1
    assert keys_of(two) == keys_of(one)
    assert np.allclose([d.score for _, d in two], [d.score for _, d in one], atol=1e-4)


def test_missing_model_uniform_with_one_warning(tmp_path, caplog):
    opt = VJepa2VideoOptimizer(SimpleNamespace(device="cpu"), model_name=str(tmp_path / "gone"))
    sel = VJepa2Selector(opt, budget=0.125)
    with caplog.at_level(logging.WARNING):
        out = list(sel.select(scene_video(40, scenes=[1], cuts=[0])))
    assert keys_of(out) == [0, 8, 16, 24, 32]
    assert all(d.score is None for _, d in out) and sel.fallback
    warns = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warns) == 1 and "gone" in warns[0].getMessage()


# ----------------------------------------------------------------------------- make_selector
def test_make_selector(tiny_vjepa):
    assert make_selector(SimpleNamespace()).every == 1
    cad = make_selector(SimpleNamespace(enable_vjepa2=False, detect_every=5))
    assert isinstance(cad, CadenceSelector) and cad.every == 5
    cfg = SimpleNamespace(enable_vjepa2=True, device="cpu", vjepa2_model=str(tiny_vjepa),
                          vjepa2_frames_per_clip=8, keyframe_budget=0.1, keyframe_strategy="variance",
                          vjepa2_clips_per_pass=3)
    sel = make_selector(cfg)
    assert isinstance(sel, VJepa2Selector) and isinstance(sel, KeyframeSelector)
    assert (sel.budget, sel.strategy, sel.optimizer.frames_per_clip) == (0.1, "variance", 8)
    assert sel.clips_per_pass == 3
    assert sel.optimizer.model_name == str(tiny_vjepa) and sel.optimizer.model is None
    default = make_selector(SimpleNamespace(enable_vjepa2=True))
    assert (default.budget, default.strategy, default.clips_per_pass) == (0.25, "novelty", 1)


@pytest.mark.parametrize(("settings_", "match"), [
    (dict(enable_vjepa2=True, keyframe_budget=0), "keyframe_budget"),
    (dict(enable_vjepa2=True, keyframe_budget=1.5), "keyframe_budget"),
    (dict(enable_vjepa2=True, keyframe_budget="lots"), "keyframe_budget"),
    (dict(enable_vjepa2=True, keyframe_strategy="random"), "keyframe_strategy"),
    (dict(enable_vjepa2=True, vjepa2_clips_per_pass=0), "clips_per_pass"),
    (dict(detect_every=0), "detect_every"),
])
def test_make_selector_rejects_bad_settings(settings_, match):
    with pytest.raises(UsageError, match=match):
        make_selector(SimpleNamespace(**settings_))


def test_decision_is_a_value():
    assert KeyframeDecision(True, 0.5) == KeyframeDecision(is_key=True, score=0.5)
