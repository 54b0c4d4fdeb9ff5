"""Tests of the synthetic world (sowlv2.eval.world) and of `sowlv2 world` / `sowlv2 eval` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from sowlv2.errors import UsageError
from sowlv2.eval import world as world_mod
from sowlv2.eval.cli import eval_main, world_main
from sowlv2.eval.metrics import write_oracle_results
from sowlv2.eval.world import COLOURS, KINDS, iter_world_video
from sowlv2.io.video import iter_video_frames


def frames_of(seed, n=20, **kw):
    return list(iter_world_video(seed, n, **kw))


def test_same_seed_same_video_other_seed_differs():
    a = frames_of(3)
    b = frames_of(3)
    c = frames_of(4)
    assert all(np.array_equal(x[1], y[1]) and np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert b"".join(m.tobytes() for _, m in a) != b"".join(m.tobytes() for _, m in c)
    w = iter_world_video(3, 20)
    assert w.categories == iter_world_video(3, 20).categories
    # iterating the same object twice starts over
    again = list(w)
    assert np.array_equal(again[-1][1], a[-1][1])


def test_frames_shapes_and_categories():
    w = iter_world_video(1, 12, (97, 64))  # odd width on purpose
    labels = {f"{c} {s}" for c, s in KINDS}
    assert set(w.categories) == set(range(1, len(w.categories) + 1)) and len(w.categories) >= 2
    assert set(w.categories.values()) <= labels
    assert len(set(w.categories.values())) == len(w.categories)  # each object of its own kind
    seen = set()
    for rgb, ids in w:
        assert rgb.shape == (64, 97, 3) and rgb.dtype == np.uint8
        assert ids.shape == (64, 97) and ids.dtype == np.uint8
        seen |= set(np.unique(ids).tolist())
    assert seen - {0} <= set(w.categories)
    assert {1, 2} <= seen  # the first two objects are there from frame 0


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_annotation_matches_the_drawn_colours(seed):
    w = iter_world_video(seed, 30, noise=6)
    colour_of = {k: np.array(COLOURS[label.split()[0]]) for k, label in w.categories.items()}
    for rgb, ids in w:
        for k, colour in colour_of.items():
            m = ids == k
            if m.any():  # every pixel of object k shows k's colour (up to the added noise), no other
                assert np.abs(rgb[m].astype(int) - colour).max() <= 6
        # background pixels are never painted in an object colour
        bg = rgb[ids == 0].astype(int)
        for colour in colour_of.values():
            assert (np.abs(bg - colour).max(axis=1) <= 6).sum() == 0


def test_objects_enter_leave_and_occlude():
    class Recording(world_mod.WorldVideo):
        """Records each object's whole drawn mask (before occlusion) to compare with the id map."""

        def _draw(self, o, id_map):
            solo = np.zeros_like(id_map)
            super()._draw(o, solo)
            self.drawn[o.id] = solo == o.id
            super()._draw(o, id_map)

    entered_late = left_early = occluded = 0
    for seed in range(6):
        w = Recording(seed, 40)
        w.drawn = {}
        visible = []
        for _rgb, ids in _drawn_frames(w):
            for k, whole in w.drawn.items():
                shown = ids == k
                assert not (shown & ~whole).any()  # the annotation never shows more than was drawn
                occluded += int(shown.sum() < whole.sum())
            visible.append({k for k in w.categories if (ids == k).any()})
        for k in w.categories:
            frames = [t for t, v in enumerate(visible) if k in v]
            entered_late += bool(frames) and frames[0] > 0
            left_early += bool(frames) and frames[-1] < 39
    assert entered_late >= 3 and left_early >= 2 and occluded >= 10


def _drawn_frames(w):
    for rgb, ids in w:
        yield rgb, ids
        w.drawn = {}


def test_forced_scene_cut_changes_the_background():
    w = iter_world_video(2, 20, cut_at=10, noise=0)
    assert w.cuts == [10]
    frames = list(w)

    def bg_change(t):
        (a, ia), (b, ib) = frames[t - 1], frames[t]
        both = (ia == 0) & (ib == 0)
        return np.abs(a[both].astype(int) - b[both].astype(int)).mean()

    at_cut = bg_change(10)
    elsewhere = max(bg_change(t) for t in range(1, 20) if t != 10)
    assert at_cut > 15 and at_cut > 3 * elsewhere
    with pytest.raises(UsageError, match="cut_at"):
        iter_world_video(2, 20, cut_at=20)


def test_world_main_writes_video_and_annotations(tmp_path, capsys):
    assert world_main(["--output", str(tmp_path), "--seed", "1", "--frames", "40"]) == 0
    folder = tmp_path / "video_000"
    pngs = sorted((folder / "Annotations").glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["00000.png", "00001.png"] and len(pngs) == 40
    cats = json.loads((folder / "categories.json").read_text())
    assert len(cats) >= 2 and "objects" in capsys.readouterr().out
    with Image.open(pngs[0]) as im:
        assert im.mode == "P" and im.size == (320, 240)
    frames = list(iter_video_frames(folder / "video.mp4"))
    assert len(frames) == 40
    # the H.264 frames show each object's colour on its interior (3 px in from its edge)
    checked = 0
    for t in (0, 20, 39):
        ids = np.array(Image.open(pngs[t]))
        rgb = frames[t].image.astype(int)
        for k, label in cats.items():
            inner = ndimage.binary_erosion(ids == int(k), iterations=3)
            if inner.sum() > 20:
                err = np.abs(rgb[inner] - np.array(COLOURS[label.split()[0]])).mean()
                assert err < 10, (t, label, err)
                checked += 1
    assert checked >= 4
    meta = json.loads((folder / "world.json").read_text())
    assert meta["frames"] == 40 and meta["width"] == 320


def test_eval_main_on_the_oracle_scores_one(tmp_path, capsys):
    world_main(["--output", str(tmp_path / "w"), "--seed", "4", "--frames", "16", "--size", "160x120",
                "--videos", "2", "--cut-at", "8"])
    gt = tmp_path / "w" / "video_001"
    write_oracle_results(gt, tmp_path / "pred" / "video_001")
    argv = ["--pred", str(tmp_path / "pred"), "--gt", str(gt), "--json", str(tmp_path / "s.json")]
    assert eval_main(argv) == 0
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["JF_mean"] == 1.0 and saved["object_recall"] == 1.0 and saved["frames"] == 16
    assert "J&F-Mean 1.000" in capsys.readouterr().out
    assert json.loads((gt / "world.json").read_text())["cuts"] == [8]


def test_world_is_also_a_davis_2017_root(tmp_path):
    """The layout the official davis2017-evaluation code reads (``DAVIS(root, task, subset="val")``):
    ImageSets/2017/val.txt, JPEGImages/480p/<seq>/*.jpg, Annotations_unsupervised/480p/<seq>/*.png
    (unsupervised) and Annotations/480p/<seq>/*.png (semi-supervised), one PNG per JPEG, names sorted
    in frame order."""
    folders = world_mod.generate_world(tmp_path / "w", seed=2, frames=6, size=(64, 48), videos=2)
    root = tmp_path / "w"
    seqs = (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert seqs == ["video_000", "video_001"] == [f.name for f in folders]
    for seq, folder in zip(seqs, folders, strict=True):
        jpgs = sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))
        assert [p.name for p in jpgs] == [f"{t:05d}.jpg" for t in range(6)]
        with Image.open(jpgs[0]) as im:
            assert im.size == (64, 48) and im.mode == "RGB"
        own = sorted((folder / "Annotations").glob("*.png"))
        for task in ("Annotations_unsupervised", "Annotations"):
            pngs = sorted((root / task / "480p" / seq).glob("*.png"))
            assert [p.name for p in pngs] == [p.name for p in own]
            assert all(a.read_bytes() == b.read_bytes() for a, b in zip(pngs, own, strict=True))
    # the frames are the drawn ones (JPEG-compressed): close to the world's RGB
    rgb0 = next(iter(iter_world_video((2, 1), 6, (64, 48))))[0]
    jpg = np.asarray(Image.open(root / "JPEGImages" / "480p" / "video_001" / "00000.jpg"), float)
    assert np.abs(jpg - rgb0).mean() < 4
    # rewriting with fewer frames leaves no stale frames
    world_mod.generate_world(tmp_path / "w", seed=2, frames=4, size=(64, 48), videos=1)
    assert len(list((root / "JPEGImages" / "480p" / "video_000").glob("*.jpg"))) == 4
    assert (root / "ImageSets" / "2017" / "val.txt").read_text() == "video_000\n"


@pytest.mark.parametrize("argv, match", [
    (["--seed", "1"], "--output"),
    (["--output", "x", "--size", "320by240"], "WIDTHxHEIGHT"),
    (["--output", "x", "--frames", "0"], "--frames"),
    (["--output", "x", "--frames", "10", "--cut-at", "10"], "--cut-at"),
    (["--output", "x", "--size", "8x8"], "size"),
])
def test_world_main_usage_errors(tmp_path, argv, match):
    argv = [str(tmp_path / a) if a == "x" else a for a in argv]
    with pytest.raises(UsageError, match=match):
        world_main(argv)
