"""Sam2VideoTracker through the real transformers classes on tiny random checkpoints.

Random weights: these tests assert plumbing (ids, shapes, dtypes, what the session holds, how many
times each module runs, that eviction leaves results unchanged), never mask quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sowlv2.errors import ModelLoadError
from sowlv2.models import random_init
from sowlv2.models.sam2_video import Sam2VideoTracker
from sowlv2.types import Frame

H, W = 97, 131  # odd original size on purpose
BOX_A = np.array([10, 12, 60, 50], np.float32)
BOX_B = np.array([50, 20, 125, 90], np.float32)


def _save_tiny_sam(folder, processor_from, hidden: int):
    """The tiny SAM 2 of random_init with every hidden size set to ``hidden`` (memory channels stay 64)."""
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor

    kw = random_init._sam2_config_kwargs("tiny")
    kw["vision_config"]["fpn_hidden_size"] = hidden
    kw["prompt_encoder_config"]["hidden_size"] = hidden
    kw["mask_decoder_config"]["hidden_size"] = hidden
    for key in ("memory_attention_hidden_size", "memory_encoder_hidden_size", "mask_downsampler_embed_dim",
                "memory_fuser_embed_dim"):
        kw[key] = hidden
    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig(**kw)).eval().save_pretrained(folder)
    Sam2VideoProcessor.from_pretrained(processor_from).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sam_folder(tiny_sam):
    """The tiny random SAM 2 (its object-score bias is raised, so random-weight masks are not empty)."""
    return tiny_sam


def _tracker(folder, dtype=torch.float32, **kw) -> Sam2VideoTracker:
    return Sam2VideoTracker.from_pretrained(folder, device="cpu", dtype=dtype, **kw)


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield Frame(index=i, time=i / 25, image=rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def test_masks_have_frame_size_and_bool_dtype(sam_folder):
    tracker = _tracker(sam_folder)
    frames = list(_frames(3))
    assert tracker.track(frames[0]) == {}  # nothing to track yet
    out = tracker.prompt({4: BOX_A}, frames[0])
    for f in frames[1:]:
        out = tracker.track(f)
    assert list(out) == [4] and tracker.object_ids == [4]
    assert out[4].mask.shape == (H, W) and out[4].mask.dtype == np.bool_
    assert out[4].mask.any() and not out[4].mask.all()
    assert isinstance(out[4].score, float) and 0.0 <= out[4].score <= 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtype_is_honoured(sam_folder, dtype):
    tracker = _tracker(sam_folder, dtype=dtype)
    assert {p.dtype for p in tracker.model.parameters()} == {dtype}
    f0, f1 = _frames(2)
    tracker.prompt({1: BOX_A}, f0)  # prompt on an untracked frame tracks it first
    out = tracker.track(f1)
    assert out[1].mask.shape == (H, W) and out[1].mask.dtype == np.bool_
    assert tracker.session.processed_frames[1].dtype == dtype


def test_objects_added_late_are_tracked(sam_folder):
    tracker = _tracker(sam_folder)
    seen = []
    for f in _frames(9):
        out = tracker.track(f)
        if f.index == 0:
            out |= tracker.prompt({1: BOX_A}, f)
        if f.index == 5:
            assert tracker.prompt({2: BOX_B}, f).keys() == {2}
        seen.append(sorted(out))
    assert seen[:5] == [[1]] * 5 and seen[6:] == [[1, 2]] * 3
    assert tracker.object_ids == [1, 2]
    assert tracker.state_size()["cond_outputs"] == 2  # one prompted frame per object


def test_remove_drops_object_and_its_state(sam_folder):
    tracker = _tracker(sam_folder)
    frames = list(_frames(6))
    tracker.prompt({1: BOX_A, 2: BOX_B, 3: BOX_A}, frames[0])
    for f in frames[1:3]:
        tracker.track(f)
    before = tracker.state_size()
    tracker.remove([2, 99])  # 99 is unknown: ignored
    after = tracker.state_size()
    assert tracker.object_ids == [1, 3]
    assert after["objects"] == 2 and after["non_cond_outputs"] == before["non_cond_outputs"] * 2 // 3
    assert after["tensor_bytes"] < before["tensor_bytes"]
    assert tracker.track(frames[3]).keys() == {1, 3}
    tracker.remove([1, 3])
    assert tracker.track(frames[4]) == {} and tracker.state_size()["non_cond_outputs"] == 0
    assert tracker.prompt({3: BOX_B}, frames[4]).keys() == {3}  # an id can start again
    assert tracker.track(frames[5]).keys() == {3}


def test_reprompt_is_a_fresh_conditioning_prompt(sam_folder):
    frames = list(_frames(7))
    tracker = _tracker(sam_folder)
    tracker.prompt({1: BOX_A}, frames[0])
    for f in frames[1:5]:
        tracker.track(f)
    before = tracker.state_size()
    again = tracker.prompt({1: BOX_B}, frames[4])[1]
    after = tracker.state_size()
    assert after["cond_outputs"] == before["cond_outputs"] + 1
    assert after["non_cond_outputs"] == before["non_cond_outputs"] - 1  # its tracked output on frame 4
    # A re-prompt decodes the box without memory: exactly what a new object given that box gets.
    fresh = _tracker(sam_folder)
    fresh.track(frames[4])
    new = fresh.prompt({1: BOX_B}, frames[4])[1]
    assert np.array_equal(again.mask, new.mask) and again.score == new.score
    assert tracker.track(frames[5]).keys() == {1}


def test_each_frame_is_encoded_once_and_prompts_skip_memory_attention(sam_folder):
    tracker = _tracker(sam_folder)
    calls = {"encode": 0, "memory": 0}

    def count(name):
        return lambda *_: calls.__setitem__(name, calls[name] + 1)

    tracker.model.vision_encoder.register_forward_hook(count("encode"))
    tracker.model.memory_attention.register_forward_hook(count("memory"))
    log = []
    for f in _frames(8):
        start = dict(calls)
        tracker.track(f)
        tracked = dict(calls)
        if f.index in (1, 4):
            tracker.prompt({f.index: BOX_A}, f)  # a new object
        if f.index == 6:
            tracker.prompt({1: BOX_B, 7: BOX_A}, f)  # a re-prompt and a new object
        log.append((calls["encode"] - start["encode"], tracked["memory"] - start["memory"],
                    calls["memory"] - tracked["memory"]))
    # frame 0: no object, nothing encoded; then one encoding per frame, one memory attention per
    # tracked object, none when prompting (new boxes use no memory, other objects are reused).
    assert log == [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 0), (1, 1, 0), (1, 2, 0), (1, 2, 0), (1, 3, 0)]


N_FRAMES, STEADY_FROM = 32, 24  # prompts end at frame 8; frame 8 leaves every window by frame 24


def _run(tracker) -> list[tuple[dict, dict]]:
    """Object 1 from frame 0, object 2 from frame 3, object 1 re-prompted on frame 8.

    Returns:
        per frame: (``{obj_id: TrackedMask}``, ``tracker.state_size()``).
    """
    prompts = {0: {1: BOX_A}, 3: {2: BOX_B}, 8: {1: BOX_B}}
    record = []
    for f in _frames(N_FRAMES):
        out = tracker.track(f)
        out |= tracker.prompt(prompts.get(f.index, {}), f)
        record.append((out, tracker.state_size()))
    return record


@pytest.fixture(scope="module")
def runs(sam_folder):
    """The same video through a tracker that evicts and one that does not."""
    unbounded = _tracker(sam_folder)
    unbounded._evict = lambda: None
    return {"bounded": _run(_tracker(sam_folder)), "unbounded": _run(unbounded)}


def test_eviction_does_not_change_results(runs):
    for (a, _), (b, _) in zip(runs["unbounded"], runs["bounded"], strict=True):
        assert a.keys() == b.keys()
        for i in a:
            assert np.array_equal(a[i].mask, b[i].mask) and a[i].score == b[i].score


def test_memory_is_bounded(runs, sam_folder):
    m, p = 7, 16  # num_maskmem and max_object_pointers_in_encoder of the config
    sizes = [s for _, s in runs["bounded"]]
    for s in sizes:
        assert s["frames"] == 1 and s["vision_features"] == 1 and s["tracked_marks"] <= s["objects"]
        assert s["non_cond_outputs"] <= s["objects"] * p and s["prompt_inputs"] <= s["objects"]
    steady = sizes[STEADY_FROM]
    assert steady == {**steady, "objects": 2, "cond_outputs": 3, "non_cond_outputs": 2 * p,
                      "memory_outputs": 2 * m + 3}
    assert all(s == steady for s in sizes[STEADY_FROM:])  # more frames, not one byte more
    # without eviction the same video keeps everything: the bound is the tracker's doing
    grown = runs["unbounded"][-1][1]
    # tracked (non-conditioning) outputs: object 1 on frames 1..31 but 8, object 2 on frames 4..31
    assert grown["frames"] == N_FRAMES and grown["non_cond_outputs"] == (N_FRAMES - 2) + (N_FRAMES - 4)
    assert grown["tensor_bytes"] > 2 * steady["tensor_bytes"]


def test_conditioning_frames_are_capped(sam_folder):
    tracker = _tracker(sam_folder, max_cond_frames=3)
    for f in _frames(6):
        tracker.track(f)
        tracker.prompt({1: BOX_A + f.index} if f.index != 2 else {1: BOX_A, 2: BOX_B}, f)
    cond = [sorted(o["cond_frame_outputs"]) for o in tracker.session.output_dict_per_obj.values()]
    assert cond == [[0, 4, 5], [2]]  # the first prompt and the two latest


def test_bad_box_shape_is_rejected(sam_folder):
    tracker = _tracker(sam_folder)
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        tracker.prompt({1: np.zeros(3)}, next(_frames(1)))


def test_reset_forgets_everything(sam_folder):
    tracker = _tracker(sam_folder)
    tracker.prompt({1: BOX_A}, next(_frames(1)))
    tracker.reset()
    assert tracker.object_ids == [] and tracker.state_size()["frames"] == 0
    assert tracker.track(next(_frames(1))) == {}


def test_missing_folder_raises_model_load_error(tmp_path):
    missing = tmp_path / "no_such_sam"
    with pytest.raises(ModelLoadError, match="no_such_sam") as err:
        Sam2VideoTracker.from_pretrained(missing)
    assert "no such local folder" in str(err.value)


def test_untrackable_config_raises_model_load_error(tiny_sam, tmp_path):
    folder = _save_tiny_sam(tmp_path, tiny_sam, hidden=64)  # fpn_hidden_size == memory channels
    with pytest.raises(ModelLoadError, match="fpn_hidden_size=64"):
        Sam2VideoTracker.from_pretrained(folder)


def test_segment_boxes_matches_an_initial_prompt_and_reuses_the_encoding(sam_folder, monkeypatch):
    """Key-frame detections are decoded like a first prompt, in one batch, from the cached features."""
    tracker = _tracker(sam_folder)
    calls = []
    original = tracker.model.get_image_features
    monkeypatch.setattr(tracker.model, "get_image_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    frame = next(_frames(1))
    tracker.reset()
    assert tracker.track(frame) == {}
    masks = tracker.masks_for_boxes(np.stack([BOX_A, BOX_B]), frame)
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert tracker.object_ids == []  # nothing was added
    prompted = tracker.prompt({1: BOX_A, 2: BOX_B}, frame)
    np.testing.assert_array_equal(masks[0], prompted[1].mask)
    np.testing.assert_array_equal(masks[1], prompted[2].mask)
    assert len(calls) == 1
    assert tracker.masks_for_boxes(np.zeros((0, 4)), frame).shape == (0, H, W)
