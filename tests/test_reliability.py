"""Reliability: every bad input is one clear line and an exit code; odd but valid inputs work; a batch
keeps going past a bad file; --resume / --overwrite / interruption leave complete results or none.

Runs the CLI in-process (``sowlv2.cli.main``) with the tiny random models; one subprocess proves that
no traceback reaches the terminal. The kill -9 / SIGINT tests are in test_reliability_resume.py, the
fuzz and property tests in test_reliability_fuzz.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sowlv2.cli import main
from sowlv2.errors import InputError
from sowlv2.io.images import read_image
from sowlv2.io.inputs import discover_inputs
from sowlv2.io.sinks import safe_labels
from sowlv2.io.video import iter_video_frames

# ---------------------------------------------------------------------------- media


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mp4_without_frame_data(path: Path) -> Path:
    """An MP4 whose index (moov, written first) announces 12 frames but whose data (mdat) is cut off."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for k in range(12):
            c.mux(s.encode(av.VideoFrame.from_ndarray(_noise(24, 32, k), format="rgb24")))
        c.mux(s.encode())
    data = path.read_bytes()
    i = 0
    while i < len(data):  # walk the top-level boxes to the start of mdat
        size, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        if kind == b"mdat":
            break
        i += size
    assert i < len(data), "no mdat box"
    path.write_bytes(data[:i + 200])  # the mdat header and the start of the first frame's data
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory, tiny_owl):
    d = tmp_path_factory.mktemp("media")
    Image.fromarray(_noise(24, 32)).save(d / "good.png")
    (d / "fake.jpg").write_text("this is text, not a JPEG")
    buf = io.BytesIO()
    Image.fromarray(_noise(48, 64)).save(buf, "JPEG", quality=95)
    (d / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "empty.mp4").write_bytes(b"")
    _mp4_without_frame_data(d / "nodata.mp4")
    (d / "empty_dir").mkdir()
    (d / "txt_dir").mkdir()
    (d / "txt_dir" / "notes.txt").write_text("no images here")
    (d / "unknown.yaml").write_text("treshold: 0.2\n")
    (d / "bad.yaml").write_text("threshold: [0.1\n")
    (d / "pyobj.yaml").write_text("threshold: !!python/object/apply:os.system ['echo pwned']\n")
    (d / "type.yaml").write_text("detect_every: often\n")
    (d / "list.yaml").write_text("- threshold\n")
    (d / "no_config").mkdir()
    shutil.copytree(tiny_owl, d / "no_weights", ignore=shutil.ignore_patterns("*.safetensors"))
    (d / "no_processor").mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_owl) / f, d / "no_processor")
    (d / "a_file").write_text("I am a file")
    return d


def _base(tiny_owl, tiny_sam, out: Path) -> list[str]:
    return ["--owl-model", str(tiny_owl), "--sam-model", str(tiny_sam), "--device", "cpu", "--output", str(out),
            "-q", "--threshold", "0", "--max-objects", "1"]


def _listing(folder: Path) -> list[str] | None:
    if not folder.exists():
        return None
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------- 1. bad input: one line


def _prefill(out: Path, what: str, media: Path) -> None:
    if what == "nonempty":
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
    elif what == "foreign":  # a folder of the user's with the name a result would take
        (out / "good").mkdir(parents=True)
        (out / "good" / "holiday.txt").write_text("keep me")


ERROR_ROWS = [
    # (args, exit code, message fragment, prefill of the output folder)
    pytest.param(["-i", "{m}/missing.jpg", "-p", "cat"], 2, "input: {m}/missing.jpg does not exist", None,
                 id="missing-input"),
    pytest.param(["-i", "{m}/empty.mp4", "-p", "cat"], 1, "{m}/empty.mp4: cannot read as video", None,
                 id="empty-video"),
    pytest.param(["-i", "{m}/nodata.mp4", "-p", "cat"], 1, "{m}/nodata.mp4: cannot decode any frame", None,
                 id="truncated-video-no-frame"),
    pytest.param(["-i", "{m}/fake.jpg", "-p", "cat"], 1, "{m}/fake.jpg: not a readable image", None,
                 id="text-named-jpg"),
    pytest.param(["-i", "{m}/trunc.jpg", "-p", "cat"], 1, "{m}/trunc.jpg: not a readable image (image file is "
                 "truncated", None, id="truncated-jpg"),
    pytest.param(["-i", "{m}/empty_dir", "-p", "cat"], 1, "{m}/empty_dir: the folder holds no images or videos",
                 None, id="empty-folder"),
    pytest.param(["-i", "{m}/txt_dir", "-p", "cat"], 1, "{m}/txt_dir: the folder holds no images or videos", None,
                 id="folder-without-images"),
    pytest.param(["-i", "{m}/txt_dir", "--frames", "-p", "cat"], 1, "holds no image frames", None,
                 id="frames-folder-without-images"),
    pytest.param(["-i", "{m}/good.png", "-p", ""], 2, "prompt: an empty prompt cannot be detected", None,
                 id="empty-prompt"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "  "], 2, "prompt: an empty prompt", None,
                 id="blank-prompt"),
    pytest.param(["-i", "{m}/good.png"], 2, "prompt: give at least one text prompt", None, id="no-prompt"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--threshold", "1.5"], 2, "threshold: must be in [0, 1], got 1.5",
                 None, id="threshold-above-1"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--threshold", "-0.1"], 2, "threshold: must be in [0, 1]", None,
                 id="threshold-below-0"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--threshold", "nan"], 2, "threshold: must be in [0, 1], got nan",
                 None, id="threshold-nan"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--threshold", "high"], 2, "expected a number, got 'high'",
                 None, id="threshold-not-a-number"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--fps", "0"], 2, "fps: must be a positive number", None,
                 id="fps-zero"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--owl-model", "{m}/no_such_model"], 1,
                 "detector: model folder not found: {m}/no_such_model", None, id="model-folder-missing"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--sam-model", "{m}/no_such_model"], 1,
                 "tracker: model folder not found", None, id="sam-folder-missing"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--owl-model", "{m}/no_config"], 1,
                 "detector: {m}/no_config is not a model folder (no config.json)", None, id="model-no-config"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--owl-model", "{m}/no_weights"], 1,
                 "detector: {m}/no_weights holds no safetensors weights", None, id="model-no-weights"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--owl-model", "{m}/no_processor"], 1,
                 "detector: cannot load '{m}/no_processor' (the folder lacks files", None, id="model-no-processor"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/unknown.yaml"], 2,
                 "{m}/unknown.yaml: unknown key 'treshold' (did you mean 'threshold'?)", None, id="yaml-unknown-key"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/bad.yaml"], 2,
                 "{m}/bad.yaml: malformed YAML (line 2)", None, id="yaml-malformed"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/pyobj.yaml"], 2,
                 "{m}/pyobj.yaml: YAML tag not allowed (line 1)", None, id="yaml-python-object"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/type.yaml"], 2,
                 "detect_every: must be a whole number, got 'often'", None, id="yaml-wrong-type"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/list.yaml"], 2,
                 "{m}/list.yaml: a config file must be a mapping", None, id="yaml-not-a-mapping"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--config", "{m}/none.yaml"], 2,
                 "config: file not found: {m}/none.yaml", None, id="yaml-missing"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--output", "{m}/a_file"], 2,
                 "output: {m}/a_file is a file, not a folder", None, id="output-is-a-file"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--output", "{m}/a_file/sub"], 2,
                 "output: cannot create {m}/a_file/sub: {m}/a_file is a file", None, id="output-not-creatable"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat"], 2, "output: {out} is not empty; use --overwrite", "nonempty",
                 id="output-not-empty"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--overwrite"], 2,
                 "output: {out}/good exists and is not a SOWLv2 result folder", "foreign",
                 id="overwrite-never-replaces-foreign-folder"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--overwrite", "--resume"], 2, "exclude each other", None,
                 id="overwrite-and-resume"),
    pytest.param(["-i", "{m}/good.png", "-p", "cat", "--bogus"], 2, "unrecognized arguments: --bogus", None,
                 id="unknown-flag"),
]
if os.geteuid() != 0:  # root writes anywhere: the permission check cannot fail for it
    ERROR_ROWS.append(pytest.param(["-i", "{m}/good.png", "-p", "cat", "--output", "{ro}/out"], 2,
                                   "output: cannot create {ro}/out (permission denied", "readonly",
                                   id="output-not-writable"))


@pytest.mark.parametrize("args, code, message, prefill", ERROR_ROWS)
def test_bad_input_is_one_line_with_the_right_exit_code(tmp_path, media, tiny_owl, tiny_sam, capsys, args, code,
                                                        message, prefill):
    out = tmp_path / "out"
    fill = {"m": str(media), "out": str(out), "ro": str(tmp_path / "ro")}
    if prefill == "readonly":
        (tmp_path / "ro").mkdir(mode=0o555)
    _prefill(out, prefill, media)
    before = _listing(out)
    rc = main(_base(tiny_owl, tiny_sam, out) + [a.format(**fill) for a in args])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == code, err
    assert err.startswith("sowlv2: error:") and len(err.splitlines()) == 1, err
    assert message.format(**fill) in err
    assert "Traceback" not in err
    assert _listing(out) == before  # nothing written, nothing removed (absent stays absent)


def test_verbose_shows_the_traceback(tmp_path, media, tiny_owl, tiny_sam, capsys):
    rc = main(_base(tiny_owl, tiny_sam, tmp_path / "o") + ["-i", str(media / "fake.jpg"), "-p", "cat", "-v"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" in err and err.strip().endswith("not an image format Pillow knows)")


def test_no_traceback_reaches_the_terminal(tmp_path, media, tiny_owl, tiny_sam):
    proc = subprocess.run([sys.executable, "-m", "sowlv2", *_base(tiny_owl, tiny_sam, tmp_path / "o"),
                           "-i", str(media / "trunc.jpg"), "-p", "cat"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"sowlv2: error: {media / 'trunc.jpg'}: not a readable image (image file is truncated")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "o").exists()


def test_truncated_video_keeps_the_frames_that_decode_and_warns(tmp_path, tiny_owl, tiny_sam, capsys):
    src = tmp_path / "clip.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv444p"
        for k in range(20):
            c.mux(s.encode(av.VideoFrame.from_ndarray(_noise(24, 32, k), format="rgb24")))
        c.mux(s.encode())
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    kept = sum(1 for _ in iter_video_frames(cut))
    assert 0 < kept < 20
    rc = main(_base(tiny_owl, tiny_sam, tmp_path / "o") + ["-i", str(cut), "-p", "cat", "--no-overlay"])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"sowlv2: warning: {cut}: frames end at" in err and "(truncated?); keeping what decoded" in err
    res = json.loads((tmp_path / "o/cut/results.json").read_text())
    assert len(res["frames"]) == kept


# ---------------------------------------------------------------------------- 3. a batch keeps going


def test_a_bad_file_in_a_folder_is_reported_and_skipped(tmp_path, media, tiny_owl, tiny_sam, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_noise(24, 32, 1)).save(folder / "a.png")
    Image.fromarray(_noise(30, 20, 2)).save(folder / "c.jpg")
    shutil.copy(media / "fake.jpg", folder / "b.jpg")
    out = tmp_path / "out"
    rc = main([a for a in _base(tiny_owl, tiny_sam, out) if a != "-q"] + ["-i", str(folder), "-p", "cat"])
    cap = capsys.readouterr()
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "run.json"]  # no b, no .partial
    errors = [line for line in cap.err.splitlines() if line.startswith("sowlv2: error:")]
    assert errors == [f"sowlv2: error: {folder / 'b.jpg'}: not a readable image (not an image format Pillow knows)"]
    assert "Traceback" not in cap.err
    assert "2 done, 1 failed (b; see run.json)" in cap.out
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed"
    assert {k: v["status"] for k, v in run["inputs"].items()} == {"a": "done", "b": "failed", "c": "done"}
    assert run["inputs"]["b"]["error"] == errors[0].removeprefix("sowlv2: error: ")
    assert {"sowlv2", "torch", "transformers"} <= set(run["versions"]) and run["settings"]["threshold"] == 0.0
    for name, file in (("a", "a.png"), ("c", "c.jpg")):
        assert json.loads((out / name / "results.json").read_text())["input"] == file


def test_a_folder_where_every_file_fails_leaves_nothing(tmp_path, media, tiny_owl, tiny_sam, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("x.jpg", "y.png"):
        shutil.copy(media / "fake.jpg", folder / name)
    rc = main([a for a in _base(tiny_owl, tiny_sam, tmp_path / "out") if a != "-q"] + ["-i", str(folder), "-p", "c"])
    cap = capsys.readouterr()
    assert rc == 1 and not (tmp_path / "out").exists()
    assert [line.split(": ")[2] for line in cap.err.splitlines() if line.startswith("sowlv2: error:")] == [
        str(folder / "x.jpg"), str(folder / "y.png")]
    assert "0 done, 2 failed (x, y); results in" in cap.out  # no run.json to point at


# ---------------------------------------------------------------------------- 2. odd but valid input


def _rgb_source() -> np.ndarray:
    """A 30 x 40 image with distinct rows and columns (so rotations are visible)."""
    yy, xx = np.mgrid[0:30, 0:40]
    return np.stack([xx * 6, yy * 8, (xx + yy) * 3], axis=-1).astype(np.uint8)


def _save(kind: str, path: Path) -> np.ndarray:
    """Write an odd image; return the (H, W, 3) RGB a viewer shows."""
    src = _rgb_source()
    im = Image.fromarray(src)
    if kind == "gray":
        im.convert("L").save(path)
        g = np.asarray(im.convert("L"))
        return np.repeat(g[..., None], 3, axis=2)
    if kind == "rgba":
        a = np.full(src.shape[:2], 255, np.uint8)
        a[:, :10] = 0  # transparent strip: shown over white
        Image.fromarray(np.dstack([src, a])).save(path)
        want = src.copy()
        want[:, :10] = 255
        return want
    if kind == "gray16":
        g16 = (np.asarray(im.convert("L")).astype(np.uint16) * 257)
        g16[0, 0] = 65535
        Image.fromarray(g16).save(path)
        g8 = (g16 / 65535.0 * 255).astype(np.uint8)
        return np.repeat(g8[..., None], 3, axis=2)
    if kind == "palette":
        p = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        p.save(path)
        return np.asarray(p.convert("RGB"))
    if kind == "cmyk":
        im.convert("CMYK").save(path, quality=100)
        return src
    if kind.startswith("exif"):
        exif = Image.Exif()
        exif[0x0112] = int(kind[4:])
        im.save(path, exif=exif, quality=100)
        return {"exif6": np.rot90(src, -1), "exif8": np.rot90(src, 1), "exif3": np.rot90(src, 2)}[kind]
    if kind == "tiny1x1":
        Image.fromarray(src[:1, :1]).save(path)
        return src[:1, :1]
    if kind == "tiny3x5":
        Image.fromarray(src[:5, :3]).save(path)
        return src[:5, :3]
    raise ValueError(kind)


ODD_IMAGES = [
    # (kind, file name, mean abs difference allowed: 0 = exact; lossy JPEG rows get a tolerance)
    ("gray", "gray.png", 0), ("rgba", "rgba.png", 0), ("gray16", "gray16.png", 0), ("palette", "palette.png", 0),
    ("cmyk", "cmyk.jpg", 4), ("exif6", "exif 6 rotated.jpg", 4), ("exif8", "exif8.jpg", 4),
    ("exif3", "exif3.jpg", 4), ("tiny1x1", "one.png", 0), ("tiny3x5", "été 3x5 ☃.png", 0),
]


@pytest.mark.parametrize("kind, name, tol", ODD_IMAGES, ids=[r[0] for r in ODD_IMAGES])
def test_odd_images_read_as_a_viewer_shows_them(tmp_path, kind, name, tol):
    want = _save(kind, tmp_path / name)
    got = read_image(tmp_path / name)
    assert got.dtype == np.uint8 and got.shape == want.shape  # (H, W, 3) as displayed
    if tol == 0:
        np.testing.assert_array_equal(got, want)
    else:  # a wrong orientation or colour conversion is off by far more than JPEG's loss
        assert np.abs(got.astype(int) - want.astype(int)).mean() <= tol


def test_odd_images_run_end_to_end_with_displayed_sizes(tmp_path, tiny_owl, tiny_sam, capsys):
    folder = tmp_path / "odd photos"
    folder.mkdir()
    sizes = {}
    for kind, name, _ in ODD_IMAGES:
        h, w = _save(kind, folder / name).shape[:2]
        sizes[Path(name).stem] = (w, h)
    long_prompt = "a " + " ".join(["very"] * 30) + " small cat"
    rc = main(_base(tiny_owl, tiny_sam, tmp_path / "out") + ["-i", str(folder), "-p", "cat", long_prompt])
    err = capsys.readouterr().err
    assert rc == 0, err
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith(f"sowlv2: warning: prompt {long_prompt!r} is ")
    assert warning.endswith("tokens; the text model reads only the first 16")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(sizes)
    for stem, (w, h) in sizes.items():
        res = json.loads((out / stem / "results.json").read_text())
        assert (res["width"], res["height"]) == (w, h)
        merged = Image.open(out / stem / "binary/merged/000000_merged_mask.png")
        assert merged.size == (w, h)
        for o in res["frames"][0]["objects"]:
            assert o["mask"]["size"] == [h, w] and o["label"] in ("cat", long_prompt)
    safe = safe_labels(["cat", long_prompt])
    assert len(safe[long_prompt]) <= 40
    labels = {p.name.split("_", 2)[2].rsplit("_", 1)[0] for p in out.glob("*/binary/frames/*.png")}
    assert labels and labels <= set(safe.values())


def test_huge_image_detector_sees_a_bounded_copy_and_masks_are_full_size(tmp_path, tiny_owl, tiny_sam, monkeypatch):
    from sowlv2.models.owlv2 import Owlv2Detector

    seen = []
    original = Owlv2Detector._detect  # the model part, after the adapter shrank the image
    monkeypatch.setattr(Owlv2Detector, "_detect", lambda self, image, *a, **k: seen.append(image.shape) or
                        original(self, image, *a, **k))
    src = tmp_path / "huge.png"
    Image.fromarray(_noise(250, 400)).resize((4000, 2500), Image.Resampling.NEAREST).save(src, compress_level=1)
    rc = main(_base(tiny_owl, tiny_sam, tmp_path / "o") + ["-i", str(src), "-p", "cat", "--no-overlay"])
    assert rc == 0
    assert seen == [(160, 256, 3)]  # 2 x the tiny detector's 128 px side, aspect kept
    res = json.loads((tmp_path / "o/huge/results.json").read_text())
    assert (res["width"], res["height"]) == (4000, 2500)
    (obj,) = res["frames"][0]["objects"]
    x0, y0, x1, y1 = obj["box"]
    assert 0 <= x0 < x1 <= 4000 and 0 <= y0 < y1 <= 2500 and x1 - x0 > 16  # full-image pixels, not 256-px ones
    mask = Image.open(tmp_path / "o/huge/binary/frames/000000_obj01_cat_mask.png")
    assert mask.size == (4000, 2500)


def test_detector_boxes_are_scaled_back_from_the_shrunk_copy():
    """The input-size rule every detector adapter applies (models.sizing): the model sees at most
    2 x its input side, boxes come back in the full image's pixels."""
    from sowlv2.models.sizing import detect_shrunk, processor_side
    from sowlv2.types import Detections

    class Processor:
        class image_processor:  # noqa: N801 - mimics transformers' attribute
            size = {"height": 100, "width": 100}

    seen = []

    def detect(image):
        """Finds one box covering the left half, top third of whatever image it gets."""
        h, w = image.shape[:2]
        seen.append(image.shape)
        return Detections(boxes=np.array([[0, 0, w / 2, h / 3]], np.float32), scores=np.ones(1, np.float32),
                          class_ids=np.zeros(1, np.int64), labels=("x",))

    side = processor_side(Processor())
    assert side == 100
    dets = detect_shrunk(detect, np.zeros((900, 1500, 3), np.uint8), side)
    assert seen[-1] == (120, 200, 3)
    np.testing.assert_allclose(dets.boxes[0], [0, 0, 750, 300], atol=1.0)
    small = detect_shrunk(detect, np.zeros((150, 180, 3), np.uint8), side)  # under 2 x 100: untouched
    assert seen[-1] == (150, 180, 3) and small.boxes[0, 2] == 90


def _vfr_video(path: Path, pts_ms: list[int]) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv444p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), k * 20, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def test_variable_frame_rate_video_is_sampled_by_timestamp(tmp_path, tiny_owl, tiny_sam):
    pts = [0, 40, 80, 90, 100, 300, 310, 320, 700, 740]
    video = _vfr_video(tmp_path / "vfr.mkv", pts)
    frames = list(iter_video_frames(video))
    assert [f.time for f in frames] == [t / 1000 for t in pts]
    # --fps 10: the first frame at or after 0.0, 0.1, 0.2 (-> 0.3, which also serves 0.3), 0.4 (-> 0.7)
    picked = list(iter_video_frames(video, fps=10))
    assert [f.source_index for f in picked] == [0, 4, 5, 8]
    assert [int(f.image[0, 0, 0]) for f in picked] == [0, 80, 100, 160]  # the frames themselves, not neighbours
    rc = main(_base(tiny_owl, tiny_sam, tmp_path / "o") + ["-i", str(video), "-p", "cat", "--fps", "10",
                                                          "--no-overlay"])
    assert rc == 0
    res = json.loads((tmp_path / "o/vfr/results.json").read_text())
    assert [(f["source_index"], f["time"]) for f in res["frames"]] == [(0, 0.0), (4, 0.1), (5, 0.3), (8, 0.7)]


def test_unsafe_file_stems_cannot_leave_the_output_folder(tmp_path, tiny_owl, tiny_sam):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("..png", "...png", "run.json.png", "Cat.png", "cat.jpg"):
        Image.fromarray(_noise(20, 24)).save(folder / name, format="PNG" if name.endswith("png") else "JPEG")
    # Hidden files (..png, ...png) are not part of a folder; the others get distinct, safe names.
    assert [it.name for it in discover_inputs(folder)] == ["cat", "Cat_png", "run.json_"]
    assert [discover_inputs(folder / n)[0].name for n in ("..png", "...png")] == ["input", "input"]
    out = tmp_path / "sub" / "out"
    rc = main(_base(tiny_owl, tiny_sam, out) + ["-i", str(folder / "...png"), "-p", "cat", "--no-overlay"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out"]  # nothing next to the output
    assert sorted(p.name for p in out.iterdir()) == ["input", "run.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["..png", "...png", "run.json.png", "Cat.png",
                                                               "cat.jpg"])


# ---------------------------------------------------------------------------- 5. resume / overwrite


@pytest.fixture
def three(tmp_path):
    folder = tmp_path / "three"
    folder.mkdir()
    for k, name in enumerate(("a.png", "b.png", "c.png")):
        Image.fromarray(_noise(24, 32, k)).save(folder / name)
    return folder


def _without_seconds(raw: bytes) -> dict:
    data = json.loads(raw)
    del data["stats"]["seconds"]
    return data


def _count_items(monkeypatch) -> list[str]:
    from sowlv2.pipeline import SOWLv2Pipeline

    done = []
    original = SOWLv2Pipeline._run_item
    monkeypatch.setattr(SOWLv2Pipeline, "_run_item",
                        lambda self, item, *a: done.append(item.name) or original(self, item, *a))
    return done


def test_resume_skips_complete_inputs_and_redoes_the_rest(tmp_path, three, tiny_owl, tiny_sam, monkeypatch, capsys):
    out = tmp_path / "out"
    base = _base(tiny_owl, tiny_sam, out) + ["-i", str(three), "-p", "cat"]
    assert main(base) == 0
    first = {n: (out / n / "results.json").read_bytes() for n in "abc"}
    ran = _count_items(monkeypatch)
    assert main(base + ["--resume"]) == 0
    assert ran == []  # everything complete: nothing redone
    # b's folder is gone and c was interrupted mid-way (run.json says running, a .partial is left).
    shutil.rmtree(out / "b")
    run = json.loads((out / "run.json").read_text())
    run["inputs"]["c"]["status"] = "running"
    (out / "run.json").write_text(json.dumps(run))
    shutil.move(out / "c", out / ".c.partial")
    (out / ".old.partial").mkdir()
    assert main(base + ["--resume"]) == 0
    assert ran == ["b", "c"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "run.json"]
    assert (out / "a/results.json").read_bytes() == first["a"]  # untouched
    assert _without_seconds((out / "b/results.json").read_bytes()) == _without_seconds(first["b"])  # redone alike
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and all(r["status"] == "done" for r in run["inputs"].values())
    # Different settings: an error that names the key and both values; nothing changes.
    capsys.readouterr()
    before = (out / "run.json").read_bytes()
    assert main(base + ["--resume", "--threshold", "0.5", "--no-merged"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("sowlv2: error: resume: settings differ from the previous run's in no_merged (false -> true), "
                   "threshold (0.0 -> 0.5); use the same settings, or --overwrite to start again")
    assert (out / "run.json").read_bytes() == before
    # The same names from another folder are other inputs: redone, not skipped.
    other = tmp_path / "other"
    shutil.copytree(three, other)
    ran.clear()
    assert main(_base(tiny_owl, tiny_sam, out) + ["-i", str(other), "-p", "cat", "--resume"]) == 0
    assert ran == ["a", "b", "c"]


def test_overwrite_redoes_everything_and_keeps_what_is_not_ours(tmp_path, three, tiny_owl, tiny_sam, monkeypatch):
    out = tmp_path / "out"
    base = _base(tiny_owl, tiny_sam, out) + ["-i", str(three), "-p", "cat"]
    assert main(base) == 0
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / ".a.partial").mkdir()  # a stale unfinished result: ours
    ran = _count_items(monkeypatch)
    assert main(base + ["--overwrite", "--no-merged"]) == 0
    assert ran == ["a", "b", "c"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "mine", "notes.txt", "run.json"]
    assert not (out / "a/binary/merged").exists()  # replaced by the new run's results
    assert json.loads((out / "run.json").read_text())["settings"]["no_merged"] is True


def test_interrupt_marks_run_json_and_leaves_no_partial_folder(tmp_path, three, tiny_owl, tiny_sam, monkeypatch,
                                                               capsys):
    """SIGTERM (as a scheduler sends) arrives while the second input is being written."""
    from sowlv2.io.sinks import InputWriter

    original = InputWriter.write
    calls = []

    def write(self, *a, **k):
        calls.append(self.final_dir.name)
        if self.final_dir.name == "b":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises KeyboardInterrupt here
        return original(self, *a, **k)

    monkeypatch.setattr(InputWriter, "write", write)
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGTERM)
    t0 = time.perf_counter()
    rc = main(_base(tiny_owl, tiny_sam, out) + ["-i", str(three), "-p", "cat"])
    assert rc == 130 and time.perf_counter() - t0 < 5
    assert "sowlv2: interrupted; finished inputs are kept, rerun with --resume" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a", "run.json"]  # no .b.partial
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert {k: v["status"] for k, v in run["inputs"].items()} == {"a": "done", "b": "interrupted"}
    assert signal.getsignal(signal.SIGTERM) is handler  # main() restores the handler it replaced


def test_a_run_that_completes_nothing_leaves_nothing(tmp_path, media, tiny_owl, tiny_sam, monkeypatch):
    from sowlv2.errors import ModelLoadError
    from sowlv2.models.sam2_image import Sam2ImageSegmenter

    def fail(*a, **k):
        raise ModelLoadError("sam_model: cannot load 'x': broken")

    monkeypatch.setattr(Sam2ImageSegmenter, "from_pretrained", classmethod(fail))
    folder = tmp_path / "two"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(_noise(20, 20, k)).save(folder / f"{k}.png")
    out = tmp_path / "out"
    assert main(_base(tiny_owl, tiny_sam, out) + ["-i", str(folder), "-p", "cat"]) == 1
    assert not out.exists()  # a model error stops the run at the first input; run.json is removed too


def test_read_image_errors_are_input_errors(tmp_path):
    (tmp_path / "d.png").mkdir()
    for path, fragment in [(tmp_path / "none.png", "file not found"), (tmp_path / "d.png", "is a folder")]:
        with pytest.raises(InputError, match=fragment):
            read_image(path)
