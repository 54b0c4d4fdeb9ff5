"""Adaptive compute: detect / track / fill decisions, their budgets, filling, and the engine's outputs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sowlv2 import fill
from sowlv2.cli import main
from sowlv2.data.config import PipelineBaseData
from sowlv2.errors import UsageError
from sowlv2.keyframes import CadenceSelector, PixelSelector, TrackSchedule, VJepa2Selector, make_selector
from sowlv2.pipeline import SOWLv2Pipeline
from sowlv2.types import Detections, Frame, FrameResult, mask_to_box

H, W = 40, 56


# ---------------------------------------------------------------------- fakes
class FakeOptimizer:
    """V-JEPA 2 stand-in: features from a scene id stored in each frame's first pixel."""

    def __init__(self, frames_per_clip: int = 8) -> None:
        self.frames_per_clip, self.tubelet_size, self.topk_fraction, self.is_available = frames_per_clip, 2, 0.05, True

    def extract_video_features(self, frames, batch_size=4):
        return torch.stack([torch.randn(2, 2, 8, generator=torch.Generator().manual_seed(int(f[0, 0, 0])))
                            for f in frames])


def id_frames(ids):
    for i, s in enumerate(ids):
        yield Frame(index=i, time=i / 25.0, image=np.full((4, 4, 3), s, np.uint8))


def square(x: int, y: int, s: int = 10) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(y, 0):max(y + s, 0), max(x, 0):max(x + s, 0)] = True
    return m


class World:
    """Ground truth per frame: ``objects`` maps a label to ``t -> mask or None``."""

    def __init__(self, objects):
        self.objects = objects

    def masks(self, t):
        return {k: m for k, f in self.objects.items() if (m := f(t)) is not None}

    def frames(self, n):
        for t in range(n):
            img = np.full((H, W, 3), 50, np.uint8)
            for m in self.masks(t).values():
                img[m] = 220
            img[0, 0] = t  # the frame index, read back by the fakes
            yield Frame(index=t, time=t / 25, image=img, source_index=t)


class FakeDetector:
    def __init__(self, world):
        self.world, self.calls = world, []

    def detect(self, image, prompts, **kw):
        t = int(image[0, 0, 0])
        self.calls.append(t)
        gt = self.world.masks(t)
        if not gt:
            return Detections.empty()
        return Detections(boxes=np.stack([mask_to_box(m) for m in gt.values()]),
                          scores=np.full(len(gt), 0.9, np.float32), class_ids=np.zeros(len(gt), np.int64),
                          labels=tuple(prompts[0] for _ in gt))


@dataclass
class TM:
    mask: np.ndarray
    score: float = 1.0


class FakeTracker:
    """A perfect tracker: each prompted id follows the ground-truth object its box came from."""

    def __init__(self, world):
        self.world, self.bound, self.seen = world, {}, []

    def reset(self):
        self.bound.clear()

    def _which(self, box):
        return min(self.world.masks(self.t).items(), key=lambda kv: np.abs(mask_to_box(kv[1]) - box).sum())[0]

    def track(self, frame):
        self.t = frame.index
        self.seen.append(frame.index)
        gt = self.world.masks(self.t)
        return {oid: TM(gt.get(k, np.zeros((H, W), bool))) for oid, k in self.bound.items()}

    def masks_for_boxes(self, boxes, frame):
        return np.stack([self.world.masks(self.t)[self._which(b)] for b in boxes])

    def prompt(self, boxes, frame):
        for oid, box in boxes.items():
            self.bound[oid] = self._which(box)
        return {oid: TM(self.world.masks(self.t)[self.bound[oid]]) for oid in boxes}

    def remove(self, ids):
        for i in ids:
            self.bound.pop(i, None)


def pipe_for(world, **cfg) -> SOWLv2Pipeline:
    config = PipelineBaseData(device="cpu", progress=False, **cfg)
    return SOWLv2Pipeline(config, detector=FakeDetector(world), tracker=FakeTracker(world))


# ---------------------------------------------------------------------- budgets (hypothesis)
def check_invariants(decisions, key_budget: float | None, track_budget: float, max_gap: int) -> None:
    """Both budgets hold on every prefix, fills never span more than max_gap, key frames are tracked."""
    kb = Fraction(str(key_budget)) if key_budget is not None else None
    tb = Fraction(str(track_budget))
    keys = processed = gap = 0
    for n, d in enumerate(decisions):
        assert d.process or not d.is_key  # a key frame is always processed (track >= detect)
        keys += d.is_key
        processed += d.process
        gap = 0 if d.process else gap + 1
        assert gap <= max_gap, (n, [x.action for x in decisions])
        assert processed <= math.floor(tb * (n + 1)) + 1
        if kb is not None:
            assert keys <= math.floor(kb * (n + 1)) + 1
        assert processed >= keys
    if decisions:
        assert decisions[0].is_key


BUDGETS = st.sampled_from([0.05, 0.1, 0.125, 0.25, 0.35, 0.5, 1.0])


@st.composite
def budgets(draw):
    key = draw(BUDGETS)
    track = draw(st.sampled_from([b for b in [0.1, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0] if b >= key]))
    gap = draw(st.integers(math.ceil(1 / track) - 1 if track < 1 else 1, 12).filter(lambda g: g >= 1))
    return key, track, gap


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(0, 4), max_size=80), b=budgets(), fpc=st.sampled_from([1, 2, 5, 8]),
       kind=st.sampled_from(["vjepa2", "pixel", "uniform"]), clips=st.integers(1, 2))
def test_content_selectors_keep_both_budgets_and_the_max_gap(ids, b, fpc, kind, clips):
    key, track, gap = b
    if kind == "pixel":
        sel = PixelSelector(key, frames_per_clip=fpc, clips_per_pass=clips, track_budget=track, max_gap=gap)
    else:
        sel = VJepa2Selector(FakeOptimizer(fpc), budget=key, strategy="novelty" if kind == "vjepa2" else "uniform",
                             clips_per_pass=clips, track_budget=track, max_gap=gap)
    out = list(sel.select(id_frames(ids)))
    assert [f.index for f, _ in out] == list(range(len(ids)))
    check_invariants([d for _, d in out], key, track, gap)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 120), every=st.integers(1, 12), track=st.sampled_from([0.2, 0.25, 0.35, 0.5, 1.0]),
       extra=st.integers(0, 6))
def test_cadence_keeps_the_track_budget_and_the_max_gap(n, every, track, extra):
    if track < 1 / every:
        return
    gap = max(1, math.ceil(1 / track) - 1) + extra
    out = list(CadenceSelector(every, track_budget=track, max_gap=gap).select(id_frames([0] * n)))
    decisions = [d for _, d in out]
    check_invariants(decisions, None, track, gap)
    keys = [i for i, d in enumerate(decisions) if d.is_key]
    if track == 1:  # today's behaviour: every frame tracked, the detector on the cadence
        assert all(d.process for d in decisions) and keys == list(range(0, n, every))
    else:  # a key frame moves later only while the tracker has no credit, never past the next one
        assert all(k2 > k1 for k1, k2 in zip(keys, keys[1:]))
        assert len(keys) >= len(range(0, n, every)) - 1


def test_a_uniform_stride_without_vjepa2():
    out = [d for _, d in CadenceSelector(10, track_budget=0.25, max_gap=4).select(id_frames([0] * 40))]
    tracked = [i for i, d in enumerate(out) if d.process]
    assert [i for i, d in enumerate(out) if d.is_key] == [0, 10, 20, 30]
    assert math.ceil(40 / 5) <= len(tracked) <= math.floor(0.25 * 40) + 1 and max(np.diff(tracked)) <= 5


def test_still_content_is_filled_and_moving_content_tracked():
    # scene 1 still for 30 frames, then a new scene every frame (everything moves)
    ids = [1] * 30 + [2 + (i % 3) for i in range(30)]
    out = [d for _, d in VJepa2Selector(FakeOptimizer(8), budget=0.1, track_budget=0.5, max_gap=4)
           .select(id_frames(ids))]
    still, moving = out[1:30], out[32:]
    assert sum(d.process for d in still) <= 29 // 5 + 1  # only what max_gap forces
    assert sum(d.process for d in moving) >= 10  # the budget goes where things move
    check_invariants(out, 0.1, 0.5, 4)


def test_a_refresh_key_frame_moves_to_the_most_changed_frame_within_the_lookahead():
    def video(bump_at):
        for i in range(16):  # still grey; one frame 4 levels brighter (below any event threshold)
            yield Frame(index=i, time=i / 25, image=np.full((8, 8, 3), 104 if i == bump_at else 100, np.uint8))

    for bump, expected in [(None, [0, 11]), (14, [0, 14]), (9, [0, 11])]:
        # credit reaches max_credit 3 at frame 11 (budget 0.25); the refresh goes to the most changed
        # frame from there to the end of the clip: 14 when it is brighter, else 11 (9 is out of reach)
        out = list(PixelSelector(0.25, frames_per_clip=16).select(video(bump)))
        assert [f.index for f, d in out if d.is_key][:2] == expected, bump


def test_track_schedule_moves_a_key_frame_without_tracker_credit():
    s = TrackSchedule(0.25, max_gap=3)
    acts = [s.decide(n, key=n in (0, 4, 5), score=None, wants=False).action for n in range(9)]
    # frame 4 is forced by max_gap and takes the key; 5's key waits for credit (frame 7)
    assert acts[:4] == ["detect", "fill", "fill", "fill"]
    assert acts[4] == "detect" and "detect" in acts[6:8]


# ---------------------------------------------------------------------- filling
def test_interpolating_a_translating_square_matches_the_hand_computed_mask():
    a, b = square(4, 6), square(12, 6)  # moves 8 px right
    np.testing.assert_array_equal(fill.interpolate_mask(a, b, 0.5), square(8, 6))
    np.testing.assert_array_equal(fill.interpolate_mask(a, b, 0.25), square(6, 6))
    np.testing.assert_array_equal(fill.interpolate_mask(a, b, 0.75), square(10, 6))
    np.testing.assert_array_equal(fill.interpolate_mask(a, a, 0.3), a)  # nothing moved: exact


def test_interpolating_a_growing_disc_stays_between_its_ends():
    yy, xx = np.mgrid[0:H, 0:W]
    disc = lambda r, cx: (yy - 20) ** 2 + (xx - cx) ** 2 <= r * r  # noqa: E731
    mid = fill.interpolate_mask(disc(6, 20), disc(10, 30), 0.5)
    truth = disc(8, 25)
    iou = (mid & truth).sum() / (mid | truth).sum()
    assert iou > 0.85, iou


def _whole_frame_interpolation(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The module docstring's formula on the whole frame (what interpolate_mask computed before it
    worked in a window around the masks)."""
    from scipy import ndimage
    ca, cb = np.array(ndimage.center_of_mass(a)), np.array(ndimage.center_of_mass(b))
    c = (1 - t) * ca + t * cb
    def shift(m, offset):
        return ndimage.shift(m.astype(np.uint8), offset, order=0, mode="constant", cval=0).astype(bool)

    sa = fill._signed_distance(shift(a, c - ca))
    sb = fill._signed_distance(shift(b, c - cb))
    with np.errstate(invalid="ignore"):
        return np.nan_to_num((1 - t) * sa + t * sb, nan=-1.0) > 0


def test_interpolating_in_a_window_gives_the_whole_frame_result():
    """Random blobs, many touching the image's edges or leaving it: pixel for pixel the same mask."""
    from scipy import ndimage
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        blobs = []
        for _ in range(2):
            m = np.zeros((h, w), bool)
            y, x = int(rng.integers(-4, h + 4)), int(rng.integers(-4, w + 4))
            m[max(0, y - rng.integers(1, 12)):max(0, y + rng.integers(1, 12)),
              max(0, x - rng.integers(1, 12)):max(0, x + rng.integers(1, 12))] = True
            m |= ndimage.binary_dilation(rng.random((h, w)) < 0.01, iterations=int(rng.integers(0, 3))) & m.any()
            blobs.append(m)
        a, b = blobs
        if not a.any() or not b.any() or np.array_equal(a, b):
            continue
        t = float(rng.uniform(0.05, 0.95))
        np.testing.assert_array_equal(fill.interpolate_mask(a, b, t), _whole_frame_interpolation(a, b, t))
        checked += 1
    assert checked > 100


def test_shifting_in_a_window_gives_the_whole_frame_result():
    """Half-pixel offsets (ties of the nearest-neighbour rounding) and masks at the edges included."""
    from scipy import ndimage
    rng = np.random.default_rng(1)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(5, 40, 2))
        m = np.zeros((h, w), bool)
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        m[y:y + int(rng.integers(1, 10)), x:x + int(rng.integers(1, 10))] = True
        m &= rng.random((h, w)) < 0.8
        off = np.array([rng.integers(-8, 8) + rng.choice([0.5, 0.25, 0.0]),
                        rng.integers(-8, 8) + rng.choice([0.5, 0.75])])
        whole = ndimage.shift(m.astype(np.uint8), off, order=0, mode="constant", cval=0).astype(bool)
        np.testing.assert_array_equal(fill._shift(m, off), whole)


def _fr(index, masks: dict[int, np.ndarray]) -> FrameResult:
    ids = sorted(masks)
    stack = np.stack([masks[i] for i in ids]) if ids else np.zeros((0, H, W), bool)
    return FrameResult(index=index, time=index / 25, size=(H, W), ids=np.array(ids, np.int64),
                       labels=tuple("sq" for _ in ids), class_ids=np.zeros(len(ids), np.int64),
                       scores=np.full(len(ids), 0.9, np.float32), boxes=np.zeros((len(ids), 4), np.float32),
                       masks=stack)


def test_objects_at_one_end_of_a_gap_are_carried_to_its_middle():
    a = _fr(0, {1: square(0, 0), 2: square(30, 20)})  # 2 ends inside the gap
    b = _fr(4, {1: square(8, 0), 3: square(40, 25)})  # 3 appears inside the gap
    frame = lambda i: Frame(index=i, time=i / 25, image=np.zeros((H, W, 3), np.uint8))  # noqa: E731
    got = {i: fill.interpolate(a, b, frame(i), i / 4) for i in (1, 2, 3)}
    assert [g.ids.tolist() for g in got.values()] == [[1, 2], [1, 2], [1, 3]]
    assert all(g.kind == "filled" and not g.keyframe for g in got.values())
    np.testing.assert_array_equal(got[2].masks[0], square(4, 0))
    np.testing.assert_array_equal(got[3].masks[1], square(40, 25))
    np.testing.assert_allclose(got[2].boxes[0], mask_to_box(square(4, 0)))


def test_fills_on_a_still_video_are_exact(tmp_path):
    world = World({"a": lambda t: square(10, 10), "b": lambda t: square(30, 20, 8)})
    for mode in ("interpolate", "carry"):
        pipe = pipe_for(world, detect_every=10, track_budget=0.25, max_gap=4, fill=mode)
        results = list(pipe.track(world.frames(30), ["square"]))
        assert [r.index for r in results] == list(range(30))
        kinds = [r.kind for r in results]
        assert kinds.count("filled") >= 15 and kinds[0] == "detected"
        for r in results:
            assert r.ids.tolist() == [1, 2]
            np.testing.assert_array_equal(r.masks[0], square(10, 10))
            np.testing.assert_array_equal(r.masks[1], square(30, 20, 8))
        tracked = [r.index for r in results if r.kind != "filled"]
        assert pipe._tracker.seen == tracked  # the tracker never saw a filled frame
        assert pipe.last_run.fills == kinds.count("filled")


def test_interpolated_frames_follow_a_moving_square_and_carry_does_not():
    world = World({"a": lambda t: square(2 + 2 * t, 10)})
    out = {}
    for mode in ("interpolate", "carry"):
        pipe = pipe_for(world, detect_every=8, track_budget=0.25, max_gap=3, fill=mode)
        out[mode] = list(pipe.track(world.frames(17), ["square"]))
    for r in out["interpolate"]:
        np.testing.assert_array_equal(r.masks[0], square(2 + 2 * r.index, 10))  # 2 px a frame: exact
    carried = [r for r in out["carry"] if r.kind == "filled"]
    assert carried and all(not np.array_equal(r.masks[0], square(2 + 2 * r.index, 10)) for r in carried)


def test_the_interpolating_engine_lags_by_at_most_max_gap_frames():
    world = World({"a": lambda t: square(t, 10)})
    consumed = 0

    def source():
        nonlocal consumed
        for f in world.frames(40):
            consumed += 1
            yield f

    pipe = pipe_for(world, detect_every=10, track_budget=0.25, max_gap=4)
    lag = []
    for k, _ in enumerate(pipe.track(source(), ["square"])):
        lag.append(consumed - (k + 1))
    assert max(lag) <= 4 and max(lag) >= 2


# ---------------------------------------------------------------------- results.json
def test_results_json_marks_each_frame_and_counts_the_model_calls(tmp_path):
    from PIL import Image

    world = World({"a": lambda t: square(2 + t, 8), "b": lambda t: square(30, 20) if t >= 9 else None})
    folder = tmp_path / "walk"
    folder.mkdir()
    for f in world.frames(24):
        Image.fromarray(f.image).save(folder / f"{f.index:04d}.png")
    pipe = pipe_for(world, detect_every=6, track_budget=0.5, max_gap=2, frames=True, no_overlay=True)
    out = pipe.process_video(folder, ["square"], tmp_path / "o")
    res = json.loads((out / "results.json").read_text())
    frames = res["frames"]
    kinds = [f["kind"] for f in frames]
    assert [f["index"] for f in frames] == list(range(24))
    assert set(kinds) == {"detected", "tracked", "filled"}
    assert [f["keyframe"] for f in frames] == [k == "detected" for k in kinds]
    assert res["keyframes"] == [f["index"] for f in frames if f["kind"] == "detected"]
    st_ = res["stats"]
    assert st_["detector_calls"] == kinds.count("detected") == len(pipe._detector.calls)
    assert st_["tracker_calls"] == kinds.count("detected") + kinds.count("tracked") == len(pipe._tracker.seen)
    assert st_["fills"] == kinds.count("filled") and st_["frames"] == 24
    assert "fill" in st_["seconds"]
    first_b = min(f["index"] for f in frames if any(o["id"] == 2 for o in f["objects"]))
    assert 9 <= first_b <= 12  # b enters at 9, is detected at key frame 12, filled back to the gap's middle
    for f in frames:  # every frame has its objects, with boxes
        assert [o["id"] for o in f["objects"]] == ([1] if f["index"] < first_b else [1, 2])
        assert all(len(o["box"]) == 4 for o in f["objects"])
    n_png = len(list((out / "binary/frames").glob("*.png")))
    assert n_png == sum(len(f["objects"]) for f in frames)


def test_track_budget_1_decides_as_before():
    # the default settings and track_budget 1 give every frame to the tracker and the same key frames
    sel = make_selector(PipelineBaseData(detect_every=4))
    actions = [d.action for _, d in sel.select(id_frames([0] * 9))]
    assert actions == ["detect", "track", "track", "track"] * 2 + ["detect"]


# ---------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(("argv", "key"), [
    (["--track-budget", "0"], "track_budget"),
    (["--track-budget", "1.5"], "track_budget"),
    (["--keyframe-budget", "0", "--enable-vjepa2"], "keyframe_budget"),
    (["--max-gap", "0"], "max_gap"),
    (["--track-budget", "0.05", "--max-gap", "30"], "track_budget"),  # below --detect-every 10's share
    (["--enable-vjepa2", "--keyframe-budget", "0.5", "--track-budget", "0.35"], "track_budget"),
    (["--track-budget", "0.1", "--detect-every", "20"], "max_gap"),  # 1 in 10 cannot keep fills <= 4
    (["--fill", "guess"], "fill"),
])
def test_bad_adaptive_settings_are_usage_errors(argv, key, tmp_path, capsys):
    img = tmp_path / "x.mp4"
    img.write_bytes(b"")
    rc = main(["--input", str(img), "--prompt", "cat", "--output", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and key in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_make_selector_checks_the_budgets_too():
    with pytest.raises(UsageError, match="track_budget"):
        make_selector(type("C", (), {"keyframe_strategy": "pixel", "keyframe_budget": 0.3, "track_budget": 0.2})())


# ---------------------------------------------------------------------- the tiny real V-JEPA 2
def cut_video(cut: int, frames: int = 64, size=(96, 64)):
    """The issue's case: textured background A, from frame ``cut`` a different background B; a square moves."""
    w, h = size
    rng = np.random.default_rng(0)
    a = (rng.random((h, w, 3)) * 120).astype(np.uint8)
    b = 255 - (rng.random((h, w, 3)) * 120).astype(np.uint8)
    for t in range(frames):
        img = (a if t < cut else b).copy()
        img[20:36, 10 + t // 2:26 + t // 2] = (230, 40, 40)
        yield Frame(index=t, time=t / 16, image=img)


@pytest.fixture(scope="module")
def tiny_encoder(tiny_vjepa):
    from types import SimpleNamespace

    from sowlv2.models.vjepa2 import VJepa2VideoOptimizer

    return VJepa2VideoOptimizer(SimpleNamespace(device="cpu"), model_name=str(tiny_vjepa), frames_per_clip=16)


@pytest.mark.parametrize("cut", [20, 32, 37, 45])
@pytest.mark.parametrize("track_budget", [1.0, 0.35])
def test_a_scene_cut_gets_a_key_frame_within_two_frames_after_it(tiny_encoder, cut, track_budget):
    sel = VJepa2Selector(tiny_encoder, budget=0.125, track_budget=track_budget, max_gap=4)
    out = [d for _, d in sel.select(cut_video(cut))]
    keys = [i for i, d in enumerate(out) if d.is_key]
    assert any(cut <= k <= cut + 2 for k in keys), keys
    check_invariants(out, 0.125, track_budget, 4)


def test_the_encoder_is_loaded_once_for_a_folder_of_three_videos(tmp_path, tiny_vjepa, monkeypatch):
    import transformers

    from sowlv2.io.video import VideoWriter

    calls = []
    original = transformers.VJEPA2Model.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0] if args else None)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.VJEPA2Model, "from_pretrained", classmethod(counting))
    world = World({"a": lambda t: square(2 + t, 8)})
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(3):
        with VideoWriter(videos / f"v{k}.mp4", fps=10) as vw:
            for f in world.frames(6):
                vw.write(f.image)
    pipe = pipe_for(world, enable_vjepa2=True, vjepa2_model=str(tiny_vjepa), vjepa2_frames_per_clip=4,
                    keyframe_budget=0.5, no_overlay=True, no_binary=True)
    pipe._tracker = FakeTracker(world)
    reports = pipe.process(str(videos), ["square"], str(tmp_path / "o"))
    assert [r.status for r in reports] == ["done"] * 3
    assert len(calls) == 1, calls


def test_end_to_end_adaptive_run_with_the_tiny_models(tmp_path, tiny_owl, tiny_sam, tiny_vjepa):
    from sowlv2.io.video import VideoWriter

    video = tmp_path / "cut.mp4"
    with VideoWriter(video, fps=16) as vw:
        for f in cut_video(24, frames=40):
            vw.write(f.image)
    rc = main(["--input", str(video), "--prompt", "square", "--detector", str(tiny_owl), "--tracker", str(tiny_sam),
               "--device", "cpu", "--threshold", "0", "--max-objects", "1", "--enable-vjepa2", "--vjepa2-model",
               str(tiny_vjepa), "--vjepa2-frames-per-clip", "8", "--keyframe-budget", "0.1", "--track-budget",
               "0.35", "--output", str(tmp_path / "o"), "-q", "--no-overlay"])
    assert rc == 0
    res = json.loads((tmp_path / "o/cut/results.json").read_text())
    frames = res["frames"]
    kinds = [f["kind"] for f in frames]
    assert len(frames) == 40 and kinds[0] == "detected"
    assert res["stats"]["tracker_calls"] == 40 - kinds.count("filled") <= math.floor(0.35 * 40) + 1
    assert res["stats"]["detector_calls"] == kinds.count("detected") <= math.floor(0.1 * 40) + 1
    assert res["stats"]["fills"] == kinds.count("filled") > 0
    gaps = [len(run) for run in "".join("f" if k == "filled" else "." for k in kinds).split(".") if run]
    assert max(gaps) <= 4
    # a filled frame next to processed frames with the object has the object too (ids kept)
    for i, f in enumerate(frames[1:-1], start=1):
        if f["kind"] == "filled":
            before = {o["id"] for o in frames[i - 1]["objects"]}
            after = {o["id"] for o in frames[i + 1]["objects"]}
            assert {o["id"] for o in f["objects"]} <= before | after
    written = {p.name for p in Path(tmp_path / "o/cut/binary/frames").glob("*.png")}
    assert len(written) == sum(len(f["objects"]) for f in frames)


def test_the_seed_api_does_not_import_the_pipeline_at_import_time():
    import subprocess
    import sys

    code = ("import sys, sowlv2.optimizations as o; assert 'sowlv2.pipeline' not in sys.modules; "
            "from sowlv2.optimizations import OptimizedSOWLv2Pipeline; assert 'sowlv2.pipeline' in sys.modules; "
            "from sowlv2.pipeline import SOWLv2Pipeline; assert issubclass(OptimizedSOWLv2Pipeline, SOWLv2Pipeline)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_registry_loads_the_encoder_by_its_model_type(tiny_vjepa, tmp_path):
    from sowlv2.errors import ModelLoadError
    from sowlv2.models import registry

    enc = registry.load("encoder", str(tiny_vjepa), torch.device("cpu"))
    assert enc.is_available and enc.model is not None
    with pytest.raises(ModelLoadError, match="vjepa2"):
        registry.load("encoder", str(tmp_path / "missing"), torch.device("cpu"))
