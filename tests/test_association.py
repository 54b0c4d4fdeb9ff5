"""Key-frame association and the video loop's id logic, with fakes that give meaningful detections."""

import numpy as np
import pytest
from fakes import FakeDetector, FakeTracker
from fakes import World as FakeWorld

from sowlv2.data.config import PipelineBaseData
from sowlv2.pipeline import SOWLv2Pipeline
from sowlv2.tracking.association import TrackManager, mask_iou_matrix
from sowlv2.types import Detections, Frame, mask_to_box

H, W = 48, 64


def _square(x, y, s=10):
    m = np.zeros((H, W), bool)
    m[max(y, 0):max(y + s, 0), max(x, 0):max(x + s, 0)] = True
    return m


def _dets(masks, labels=None, scores=None):
    n = len(masks)
    return Detections(boxes=np.stack([mask_to_box(m) for m in masks]) if n else np.zeros((0, 4), np.float32),
                      scores=np.asarray(scores or [0.9] * n, np.float32), class_ids=np.zeros(n, np.int64),
                      labels=tuple(labels or ["square"] * n))


def test_mask_iou_matrix_by_hand():
    a, b = _square(0, 0), _square(5, 0)  # 10x10 squares overlapping in 5x10
    np.testing.assert_allclose(mask_iou_matrix(np.stack([a]), np.stack([a, b])), [[1.0, 50 / 150]], rtol=1e-6)


def test_manager_matches_keeps_ids_creates_new_and_ignores_covered():
    tm = TrackManager(match_iou=0.5, max_lost=3)
    a = tm.associate(0, {}, _dets([_square(0, 0), _square(30, 20)]), np.stack([_square(0, 0), _square(30, 20)]))
    assert [t for t, _ in a.new] == [1, 2]
    # Next key frame: both moved by 1 px (IoU 0.82 > reprompt_iou), plus a new object and a duplicate part.
    track_masks = {1: _square(0, 0), 2: _square(30, 20)}
    det_masks = np.stack([_square(31, 20), _square(1, 0), _square(50, 35), _square(2, 2, s=5)])
    a = tm.associate(8, track_masks, _dets(det_masks, scores=[0.8, 0.7, 0.6, 0.5]), det_masks)
    assert sorted(a.matched) == [(1, 1), (2, 0)]
    assert a.new == [(3, 2)] and a.ignored == [3]
    assert tm.tracks[1].score == pytest.approx(0.7)


def test_manager_reprompts_a_drifted_track_and_ends_a_lost_one():
    tm = TrackManager(match_iou=0.3, max_lost=2, reprompt_iou=0.8)
    tm.associate(0, {}, _dets([_square(0, 0)]), np.stack([_square(0, 0)]))
    a = tm.associate(5, {1: _square(0, 0)}, _dets([_square(3, 0)]), np.stack([_square(3, 0)]))  # IoU 0.54
    assert a.reprompt == [(1, 0)] and not a.new
    assert tm.update(6, {1: np.zeros((H, W), bool)}) == []
    assert tm.update(7, {}) == [1]
    assert not tm.tracks and [t.id for t in tm.all_tracks()] == [1]


def test_a_track_that_shrank_to_part_of_its_object_is_corrected_not_duplicated():
    tm = TrackManager(match_iou=0.5, reprompt_iou=0.8, contain=0.8)
    tm.associate(0, {}, _dets([_square(0, 0, s=20)]), np.stack([_square(0, 0, s=20)]))
    sliver = _square(2, 2, s=6)  # the propagated mask kept a corner: IoU with the object 36/400
    whole = _square(1, 1, s=20)
    a = tm.associate(8, {1: sliver}, _dets([whole]), np.stack([whole]))
    assert a.reprompt == [(1, 0)] and not a.new and not a.ignored
    assert tm.tracks[1].confirmed == 8


def test_a_part_of_another_label_is_not_merged_into_a_track():
    tm = TrackManager(match_iou=0.5, contain=0.8)
    tm.associate(0, {}, _dets([_square(0, 0, s=6)], labels=["bolt"]), np.stack([_square(0, 0, s=6)]))
    plate = _square(0, 0, s=24)  # a larger object of another label that contains the tracked bolt
    a = tm.associate(4, {1: _square(0, 0, s=6)}, _dets([plate], labels=["plate"]), np.stack([plate]))
    assert not a.matched and not a.reprompt and a.new == [(2, 0)]


def test_deduplicate_keeps_the_older_id_of_one_label_and_the_confirmed_label_of_two():
    tm = TrackManager(dup_iou=0.7)
    two = np.stack([_square(0, 0), _square(30, 20)])
    tm.associate(0, {}, _dets(two, labels=["square", "disc"]), two)
    a, b = _square(40, 5), _square(10, 30)
    tm.associate(5, {1: _square(0, 0), 2: _square(30, 20)}, _dets([_square(0, 0), a, b], labels=["square"] * 3),
                 np.stack([_square(0, 0), a, b]))  # confirms 1, creates 3 and 4 (squares)
    assert tm.tracks[2].confirmed == 0 and tm.tracks[3].confirmed == 5
    # SAM 2 pulled track 2 (a disc, unconfirmed since frame 0) onto square 1, and track 4 onto square 3
    masks = {1: _square(1, 0), 2: _square(0, 0), 3: a, 4: _square(40, 6)}
    assert tm.deduplicate(masks) == [2, 4]  # 2: label not backed since frame 0; 4: same label, newer id
    assert sorted(tm.tracks) == [1, 3] and [t.id for t in tm.all_tracks()] == [1, 2, 3, 4]
    assert tm.deduplicate(masks) == []  # idempotent


def test_deduplicate_prefers_a_recently_confirmed_label_over_an_older_id():
    tm = TrackManager(dup_iou=0.7)
    tm.associate(0, {}, _dets([_square(0, 0)], labels=["disc"]), np.stack([_square(0, 0)]))
    far = _square(40, 30)
    tm.associate(9, {1: _square(0, 0)}, _dets([far], labels=["square"]), np.stack([far]))  # new track 2
    assert tm.deduplicate({1: _square(40, 31), 2: far}) == [1]  # track 1 drifted onto the square
    assert tm.tracks[2].label == "square"


def test_deduplicate_keeps_the_older_id_on_a_tie_and_leaves_overlapping_objects_alone():
    tm = TrackManager(dup_iou=0.7)
    both = np.stack([_square(0, 0), _square(20, 20)])
    tm.associate(0, {}, _dets(both), both)
    assert tm.deduplicate({1: _square(0, 0), 2: _square(5, 0)}) == []  # IoU 1/3: two touching objects
    assert tm.deduplicate({1: _square(0, 0), 2: _square(0, 1)}) == [2]  # IoU 0.82, same confirmation frame


# ---------------------------------------------------------------------- the video loop with fakes
def World(objects):  # noqa: N802 - reads like the class it builds
    """Ground truth over the fakes' World: every object answers the prompt "square"."""
    return FakeWorld(objects, (H, W), labels=dict.fromkeys(objects, "square"))


class Cadence:
    def __init__(self, every):
        self.every, self.seconds = every, 0.0

    def select(self, frames):
        for f in frames:
            yield f, type("D", (), {"is_key": f.index % self.every == 0, "score": None})()


def _frames(n):
    for t in range(n):
        yield Frame(index=t, time=t / 25, image=np.full((H, W, 3), t, np.uint8), source_index=t)


def _run(world, n, every=8, **cfg):
    pipe = SOWLv2Pipeline(PipelineBaseData(**cfg), detector=FakeDetector(world), tracker=FakeTracker(world))
    results = list(pipe.track(_frames(n), ["square"], selector=Cadence(every)))
    return pipe, results


def test_object_entering_late_gets_a_new_id_at_the_next_key_frame_and_ids_stay():
    world = World({"a": lambda t: _square(2 + t // 4, 5),
                   "b": lambda t: _square(40, 30) if t >= 30 else None})
    pipe, results = _run(world, 48, every=8)
    assert pipe._detector.calls == [0, 8, 16, 24, 32, 40]
    ids = [r.ids.tolist() for r in results]
    assert all(i == [1] for i in ids[:32])  # b exists from 30 but is found at key frame 32
    assert all(i == [1, 2] for i in ids[32:])
    assert [t["id"] for t in pipe.last_run.tracks] == [1, 2]
    assert pipe.last_run.tracks[1]["first_frame"] == 32
    assert pipe.last_run.keyframes == [0, 8, 16, 24, 32, 40]
    for r in results:  # masks and boxes are the tracked object's
        if len(r):
            np.testing.assert_array_equal(r.masks[0], world.masks(r.index)["a"])
            np.testing.assert_allclose(r.boxes[0], mask_to_box(r.masks[0]))


def test_a_lost_track_ends_and_its_state_is_freed():
    world = World({"a": lambda t: _square(5, 5) if t < 20 else None})
    pipe, results = _run(world, 40, every=8, max_lost=5)
    assert pipe._tracker.removed == [1]
    assert pipe.last_run.tracks == [{"id": 1, "label": "square", "first_frame": 0, "last_frame": 19,
                                     "best_score": 0.9}]
    assert all(len(r) == 0 for r in results[20:])


def test_an_object_that_returns_after_its_track_ended_gets_a_new_id():
    world = World({"a": lambda t: _square(5, 5) if t < 10 or t >= 30 else None})
    pipe, results = _run(world, 40, every=8, max_lost=5)
    assert results[9].ids.tolist() == [1] and results[32].ids.tolist() == [2]  # ids are never reused
