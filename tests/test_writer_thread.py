"""Video outputs written on a background thread: same bytes as writing in line, bounded queue, worker
errors raised in the caller's thread, no thread or half-written folder left behind."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeDetector, FakeTracker, World
from PIL import Image

from sowlv2 import pipeline as pipeline_module
from sowlv2.cli import main
from sowlv2.data.config import PipelineBaseData
from sowlv2.io import outputs, sinks
from sowlv2.io.sinks import InputWriter
from sowlv2.pipeline import SOWLv2Pipeline
from sowlv2.types import FrameResult, masks_to_boxes

H, W = 40, 57  # odd width: the H.264 writers pad
N = 12


# ---------------------------------------------------------------------- a tiny world and perfect fakes
def _gt(t: int) -> dict[str, np.ndarray]:
    """Ground-truth masks at frame t: a square moving right, a disc appearing at frame 5."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = {"square": (yy >= 5) & (yy < 17) & (xx >= 2 + 2 * t) & (xx < 14 + 2 * t)}
    if t >= 5:
        out["disc"] = (yy - 28) ** 2 + (xx - 40) ** 2 < 36
    return out


def _image(t: int) -> np.ndarray:
    img = np.full((H, W, 3), 60, np.uint8)
    for k, m in enumerate(_gt(t).values()):
        img[m] = (200, 40 + 100 * k, 40)
    img[0, 0] = t  # the frame index, read back by the fake detector (PNG is lossless)
    return img


WORLD = World({"square": lambda t: _gt(t)["square"], "disc": lambda t: _gt(t).get("disc")}, (H, W))


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("writer") / "walk"
    folder.mkdir()
    for t in range(N):
        Image.fromarray(_image(t)).save(folder / f"{t:04d}.png")
    return folder


PROMPTS = ["square", "disc"]


def _pipe(background: bool, **cfg) -> SOWLv2Pipeline:
    config = PipelineBaseData(device="cpu", progress=False, detect_every=4, mask_videos=True, **cfg)
    pipe = SOWLv2Pipeline(config, background_write=background)
    pipe._detector, pipe._tracker = FakeDetector(WORLD), FakeTracker(WORLD)
    return pipe


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sowlv2-writer")]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------- same outputs either way
def test_background_writes_the_same_bytes_as_writing_in_line(tmp_path, frames_dir):
    outs, runs = {}, {}
    for background in (False, True):
        pipe = _pipe(background)
        folder = pipe.process_video(frames_dir, PROMPTS, tmp_path / str(background))
        outs[background], runs[background] = _files(folder), pipe.last_run
        assert sorted(p.name for p in folder.parent.iterdir()) == ["walk"]  # no .walk.partial left
    assert not _writer_threads()
    sync, back = outs[False], outs[True]
    assert sorted(sync) == sorted(back)
    names = set(sync)
    # Every kind of output is there: per-object and merged PNGs, the 2 + 2 videos, both JSON files.
    # The square is in every frame; the disc appears at frame 5 and is found at the next key frame, 8.
    assert len([n for n in names if n.startswith("binary/frames/")]) == N + (N - 8)
    assert len([n for n in names if n.startswith("overlay/merged/")]) == N
    assert {n for n in names if n.startswith("video/")} == {
        "video/overlay.mp4", "video/binary.mp4", "video/obj01_square_mask.mp4", "video/obj02_disc_mask.mp4"}
    assert {"results.json", "annotations.json"} <= names
    for name in names - {"results.json"}:
        assert sync[name] == back[name], name
    res = {k: json.loads(v["results.json"]) for k, v in outs.items()}
    assert [f["index"] for f in res[True]["frames"]] == list(range(N))  # in order
    seconds = {k: r["stats"].pop("seconds") for k, r in res.items()}
    assert res[False] == res[True]
    for s in seconds.values():
        assert set(s) == {"decode", "select", "detect", "track", "write", "total"} and s["write"] > 0
        # the stages run one after another in the caller's thread: the total covers them all, the
        # final wait for the writer (close) included
        assert s["total"] >= sum(s[k] for k in ("decode", "select", "detect", "track", "write")) - 1e-3
    assert runs[False].write_thread_seconds == 0.0 and runs[True].write_thread_seconds > 0


# ---------------------------------------------------------------------- a bounded queue
def test_the_producer_is_never_more_than_queue_size_plus_one_frames_ahead(tmp_path, frames_dir, monkeypatch):
    size = 2
    monkeypatch.setattr(pipeline_module, "WRITE_QUEUE_FRAMES", size)
    original = sinks.FanOut._write_frame
    written, ahead, order = [0], [], []

    def slow_write(self, result, image):
        time.sleep(0.03)
        order.append(result.index)
        original(self, result, image)
        written[0] += 1

    monkeypatch.setattr(sinks.FanOut, "_write_frame", slow_write)
    pipe = _pipe(True)
    tracker = pipe._tracker
    track = tracker.track

    def counting_track(frame):
        ahead.append(frame.index - written[0])  # frames handed to write() and not yet written
        return track(frame)

    tracker.track = counting_track
    pipe.process_video(frames_dir, PROMPTS, tmp_path / "out")
    assert order == list(range(N)) and written[0] == N
    assert max(ahead) <= size + 1  # the queue plus the frame being written
    assert max(ahead) >= 2  # the models did run ahead of the writer (it is in the background)


# ---------------------------------------------------------------------- worker errors
def _fail_on_frame(monkeypatch, k: int) -> tuple[OSError, list[str]]:
    """Make the PNG writer raise 'disk full' on frame k; returns the exception and the thread names."""
    exc = OSError(errno.ENOSPC, "No space left on device")
    threads: list[str] = []
    original = outputs.save_png

    def save(array, path):
        threads.append(threading.current_thread().name)
        if path.name.startswith(f"{k:06d}_"):
            raise exc
        original(array, path)

    monkeypatch.setattr(outputs, "save_png", save)
    return exc, threads


@pytest.mark.parametrize("k", [0, 3, N - 1])
def test_a_worker_error_is_raised_by_the_pipeline_and_nothing_is_left(tmp_path, frames_dir, monkeypatch, k):
    exc, threads = _fail_on_frame(monkeypatch, k)
    pipe = _pipe(True)
    out = tmp_path / "out"
    with pytest.raises(OSError) as info:
        pipe.process_video(frames_dir, PROMPTS, out)
    assert info.value is exc  # the original exception, not a wrapper
    assert threads and set(threads) == {"sowlv2-writer[walk]"}  # it did happen on the worker
    assert list(out.iterdir()) == []  # neither walk/ nor .walk.partial
    assert not _writer_threads()


def test_a_worker_error_fails_the_cli_run_with_one_line_and_leaves_nothing(tmp_path, tiny_owl, tiny_sam,
                                                                          frames_dir, monkeypatch, capsys):
    _fail_on_frame(monkeypatch, 2)
    out = tmp_path / "out"
    rc = main(["--input", str(frames_dir), "--prompt", "square", "--owl-model", str(tiny_owl), "--sam-model",
               str(tiny_sam), "--device", "cpu", "--threshold", "0", "--max-objects", "1", "--output", str(out),
               "--frames", "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "OSError" in err and "No space left on device" in err
    assert not out.exists()  # the run completed nothing in a new folder: nothing is left
    assert not _writer_threads()


def _result(t: int) -> FrameResult:
    masks = np.stack(list(_gt(t).values()))
    labels = tuple(_gt(t))
    n = len(labels)
    return FrameResult(index=t, time=t / 25, size=(H, W), ids=np.arange(1, n + 1, dtype=np.int64), labels=labels,
                       class_ids=np.array([PROMPTS.index(x) for x in labels], np.int64),
                       scores=np.full(n, 0.9, np.float32), boxes=masks_to_boxes(masks), masks=masks,
                       keyframe=t == 0, source_index=t)


def _writer(tmp_path, queue_size=8, **cfg) -> InputWriter:
    return InputWriter(tmp_path / "walk", "walk", "video", PROMPTS, (H, W), PipelineBaseData(**cfg), fps=25.0,
                       background=True, queue_size=queue_size)


def test_write_raises_the_worker_error_instead_of_waiting_on_a_full_queue(tmp_path, monkeypatch):
    """Frame 0 fails after a while; frame 1 fills the one-place queue; the write of frame 2 waits for a
    place, and must raise the worker's error when the worker dies rather than wait forever."""
    exc = OSError(errno.EIO, "encoder failed")
    original = sinks.FanOut._write_frame

    def write_frame(self, result, image):
        if result.index == 0:
            time.sleep(0.3)
            raise exc
        original(self, result, image)

    monkeypatch.setattr(sinks.FanOut, "_write_frame", write_frame)
    writer = _writer(tmp_path, queue_size=1)
    t0 = time.perf_counter()
    with pytest.raises(OSError) as info:
        for t in range(N):
            writer.write(_result(t), _image(t))
    assert info.value is exc and t < N - 1 and time.perf_counter() - t0 < 5
    with pytest.raises(OSError):  # close raises it too (the caller may not have written again)
        writer.close([0], [None], [], {})
    writer.abort()
    assert not writer._fan._thread.is_alive() and not _writer_threads()
    assert list(tmp_path.iterdir()) == []


def test_abort_discards_queued_frames_and_ends_the_thread(tmp_path, monkeypatch):
    original = sinks.FanOut._write_frame
    done = []

    def slow(self, result, image):
        time.sleep(0.2)
        original(self, result, image)
        done.append(result.index)

    monkeypatch.setattr(sinks.FanOut, "_write_frame", slow)
    writer = _writer(tmp_path, queue_size=8)
    for t in range(8):
        writer.write(_result(t), _image(t))  # 8 frames fit: no wait
    t0 = time.perf_counter()
    writer.abort()
    assert time.perf_counter() - t0 < 1.0  # at most the frame in progress is finished, the rest dropped
    assert len(done) <= 2 and not writer._fan._thread.is_alive() and not _writer_threads()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="writer thread has stopped"):
        writer.write(_result(0), _image(0))


def test_close_waits_for_every_queued_frame(tmp_path):
    writer = _writer(tmp_path, queue_size=3, no_overlay=True)
    for t in range(N):
        writer.write(_result(t), _image(t))
    folder = writer.close([0], [None], [], {"frames": N})
    assert not writer._fan._thread.is_alive() and not _writer_threads()
    res = json.loads((folder / "results.json").read_text())
    assert [f["index"] for f in res["frames"]] == list(range(N))
    assert len(list((folder / "binary/merged").glob("*.png"))) == N
    assert res["stats"]["seconds"]["write"] >= 0 and writer.worker_seconds > 0
    assert [p.name for p in tmp_path.iterdir()] == ["walk"]


def test_queue_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="queue_size"):
        _writer(tmp_path, queue_size=0)
    assert list(tmp_path.iterdir()) == []  # checked before anything is written


def test_the_same_run_gives_the_same_video_bytes_every_time(tmp_path, frames_dir):
    """H.264 output is reproducible: with x264's macroblock-tree rate control on, 3 of 16 identical
    runs in one process gave different overlay.mp4 bytes (CI failed on it); every run must match."""
    import hashlib

    digests = set()
    for k in range(10):
        folder = _pipe(background=k % 2 == 1).process_video(frames_dir, PROMPTS, tmp_path / str(k))
        digests.add(tuple(hashlib.sha256((folder / "video" / name).read_bytes()).hexdigest()
                          for name in ("overlay.mp4", "binary.mp4")))
    assert len(digests) == 1
