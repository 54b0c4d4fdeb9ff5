"""Tests of the ``events`` world preset (sowlv2.eval.world_events, ``sowlv2 world --preset events``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sowlv2.errors import UsageError
from sowlv2.eval.cli import world_main
from sowlv2.eval.world import COLOURS
from sowlv2.eval.world_events import iter_event_video

SIZE = (96, 72)  # small frames keep these tests fast; the preset is scale-free


def frames_of(seed, n=150, size=SIZE, **kw):
    return list(iter_event_video((seed, 0), n, size, **kw))


def still_runs(frames):
    """Lengths of the maximal runs of consecutive frames identical (rgb and id map) to their predecessor."""
    runs, cur = [], 0
    for (a, ia), (b, ib) in zip(frames, frames[1:], strict=False):
        if np.array_equal(a, b) and np.array_equal(ia, ib):
            cur += 1
        else:
            runs.append(cur)
            cur = 0
    return [r for r in [*runs, cur] if r]


def test_same_seed_same_video_other_seed_differs():
    a, b, c = frames_of(3), frames_of(3), frames_of(4)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert b"".join(r.tobytes() for r, _ in a) != b"".join(r.tobytes() for r, _ in c)
    w1, w2 = iter_event_video((3, 0), 150, SIZE), iter_event_video((3, 0), 150, SIZE)
    assert (w1.categories, w1.cuts, w1.events) == (w2.categories, w2.cuts, w2.events)
    again = list(w1)  # iterating twice starts over
    assert np.array_equal(again[-1][0], a[-1][0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_stretches_of_zero_change(seed):
    frames = frames_of(seed)
    runs = still_runs(frames)
    # a calm stretch lasts >= 10 frames: whole frames repeat bit for bit (static camera, fixed noise)
    assert max(runs) >= 9
    assert sum(runs) >= 0.2 * (len(frames) - 1)
    # ... and it is not a frozen video: some frames change
    assert sum(runs) <= 0.9 * (len(frames) - 1)


def test_objects_stop_and_go():
    """Some object is seen both still (its mask unchanged for >= 9 frames) and moving (its mask changes)."""
    stop_and_go = 0
    for seed in range(3):
        w = iter_event_video((seed, 0), 150, SIZE)
        masks = [ids for _, ids in w]
        for k in w.categories:
            seen = [t for t, m in enumerate(masks) if (m == k).any()]
            same = [np.array_equal(masks[t] == k, masks[t - 1] == k) for t in seen[1:] if t - 1 in seen]
            runs, cur = [], 0
            for s in same:
                cur = cur + 1 if s else 0
                runs.append(cur)
            stop_and_go += bool(runs) and max(runs) >= 9 and not all(same)
    assert stop_and_go >= 3


def test_scene_cuts_replace_background_and_objects():
    n_cuts = set()
    for seed in range(8):
        w = iter_event_video((seed, 0), 150, SIZE, noise=0)
        assert 1 <= len(w.cuts) <= 2 and w.cuts == sorted(w.cuts)
        assert w.scenes[0][0] == 0 and w.scenes[-1][1] == 150 and len(w.scenes) == len(w.cuts) + 1
        n_cuts.add(len(w.cuts))
        frames = list(w)
        for cut in w.cuts:
            (a, ia), (b, ib) = frames[cut - 1], frames[cut]
            both = (ia == 0) & (ib == 0)
            assert np.abs(a[both].astype(int) - b[both].astype(int)).mean() > 15  # a new background
            before = set(np.unique(ia).tolist()) - {0}
            after = set(np.unique(ib).tolist()) - {0}
            assert after and not before & after  # new objects
        # away from cuts, background pixels never change (static camera)
        for t in range(1, 150):
            if t not in w.cuts:
                (a, ia), (b, ib) = frames[t - 1], frames[t]
                both = (ia == 0) & (ib == 0)
                assert np.array_equal(a[both], b[both]), t
        # labels are unique in the video, so an object never has to be tracked across a cut; within a
        # scene the colours are distinct (the demo SAM 2 confuses objects of one colour)
        assert len(set(w.categories.values())) == len(w.categories)
        for scene in range(len(w.scenes)):
            colours = [o.colour for o in w._plan if o.scene == scene]
            assert 2 <= len(colours) == len(set(colours)) <= 4
    assert n_cuts == {1, 2}


def test_entries_and_exits_at_random_times():
    entries, exits = [], 0
    for seed in range(6):
        w = iter_event_video((seed, 0), 150, SIZE)
        visible = [set(np.unique(ids).tolist()) - {0} for _, ids in w]
        scene_start = {k: max(s for s, _ in w.scenes if s <= next(t for t, v in enumerate(visible) if k in v))
                       for k in w.categories if any(k in v for v in visible)}
        for e in w.events:
            if e["kind"] == "enter":
                first = next(t for t, v in enumerate(visible) if e["id"] in v)
                assert e["frame"] <= first <= e["frame"] + 12  # seen as soon as it is in (sliding in: soon)
                assert first > scene_start[e["id"]]
                entries.append(first)
            elif e["kind"] == "exit":
                last = max(t for t, v in enumerate(visible) if e["id"] in v)
                assert e["frame"] - 1 <= last <= e["frame"] + 40
                exits += 1
        # every scene has a late entrant
        assert sum(e["kind"] == "enter" for e in w.events) >= len(w.scenes)
    assert min(entries) > 0 and len(set(entries)) >= 6 and exits >= 2  # at varied times


@pytest.mark.parametrize("seed", [0, 7])
def test_annotation_matches_the_drawn_colours(seed):
    w = iter_event_video((seed, 0), 150, SIZE, noise=6)
    colour_of = {k: np.array(COLOURS[label.split()[0]]) for k, label in w.categories.items()}
    scene_of = {o.id: o.scene for o in w._plan}
    for t, (rgb, ids) in enumerate(w):
        scene = next(i for i, (s, e) in enumerate(w.scenes) if s <= t < e)
        present = set(np.unique(ids).tolist()) - {0}
        assert present <= set(w.categories) and all(scene_of[k] == scene for k in present)
        for k in present:
            assert np.abs(rgb[ids == k].astype(int) - colour_of[k]).max() <= 6
        bg = rgb[ids == 0].astype(int)
        for colour in colour_of.values():
            assert (np.abs(bg - colour).max(axis=1) <= 6).sum() == 0


def test_world_main_events_preset(tmp_path, capsys):
    assert world_main(["--output", str(tmp_path), "--preset", "events", "--seed", "2", "--frames", "60",
                       "--size", "96x72"]) == 0
    folder = tmp_path / "video_000"
    meta = json.loads((folder / "world.json").read_text())
    assert meta["preset"] == "events" and meta["frames"] == 60 and 1 <= len(meta["cuts"]) <= 2
    assert {e["kind"] for e in meta["events"]} >= {"cut", "enter"}
    pngs = sorted((folder / "Annotations").glob("*.png"))
    assert len(pngs) == 60
    w = iter_event_video((2, 0), 60, SIZE)
    for t, (_, ids) in enumerate(w):
        if t in (0, 30, 59):
            assert np.array_equal(np.array(Image.open(pngs[t])), ids)
    assert json.loads((folder / "categories.json").read_text()) == {str(k): v for k, v in w.categories.items()}
    assert "60 frames" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--preset", "events", "--frames", "40"], "frames must be >= 60"),
    (["--preset", "events", "--cut-at", "70"], "--cut-at applies to the default preset"),
    (["--preset", "busy"], "invalid choice"),
])
def test_world_main_events_usage_errors(tmp_path, argv, match):
    with pytest.raises(UsageError, match=match):
        world_main(["--output", str(tmp_path / "x"), *argv])
