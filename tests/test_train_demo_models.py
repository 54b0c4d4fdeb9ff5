"""The demo training tool's data: memory-training clips that hold a same-colour pair (issue 15)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
train = pytest.importorskip("train_demo_models")


def test_same_colour_pairs_lists_the_objects_that_share_a_colour():
    cats = {1: "red circle", 2: "blue square", 3: "red triangle", 4: "blue circle", 5: "green square"}
    assert train.same_colour_pairs(cats) == [(1, 3), (2, 4)]
    assert train.same_colour_pairs({1: "red circle", 2: "blue circle"}) == []


@pytest.mark.parametrize("distractor", [1.0, 0.0])
def test_memory_clips_hold_a_prompted_same_colour_pair_when_asked(distractor, monkeypatch):
    planned, plan = [], train.iter_world_video  # the videos sam_clips plans: a clip comes from the last

    def spy(*args, **kwargs):
        planned.append(plan(*args, **kwargs))
        return planned[-1]

    monkeypatch.setattr(train, "iter_world_video", spy)
    _, proc = train.build_sam(64)
    clips = train.sam_clips(proc, np.random.default_rng(0), train.SAM_CLIP_SEED0, 3, 5, 64, distractor=distractor)
    first_is_pair = []
    for _ in range(8):
        pixels, ids, boxes, target, visible = next(clips)
        assert pixels.shape == (3, 3, 64, 64) and target.shape == (3, len(ids), 64, 64)
        assert visible[0].all() and len(boxes) == len(ids) <= 5
        labels = planned[-1].categories
        first_is_pair.append(len(ids) >= 2 and labels[ids[0]].split()[0] == labels[ids[1]].split()[0])
    if distractor == 1.0:
        assert all(first_is_pair)  # the pair comes first, both on the clip's first frame (visible[0])
    else:
        assert not all(first_is_pair)  # without the option, clips need not hold one
