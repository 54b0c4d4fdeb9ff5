"""Property and fuzz tests: names that cannot escape, readers that fail only with InputError."""

from __future__ import annotations

import io
import re
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sowlv2.errors import InputError
from sowlv2.io.images import read_image
from sowlv2.io.inputs import MAX_NAME_BYTES, result_name
from sowlv2.io.sinks import safe_labels
from sowlv2.io.video import iter_video_frames, probe_video

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, lone surrogates included (undecodable bytes of a file name arrive as those).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
tricky = st.sampled_from(["", ".", "..", "...", "/", "../../etc/passwd", "a/../../b", "C:\\x", "run.json",
                          "RUN.JSON", " .. ", "\x00", "-rf", "~", "$HOME", "é" * 300, "\udcff" * 5])


@FAST
@given(st.lists(st.one_of(any_text, tricky), min_size=1, max_size=12))
def test_labels_are_one_safe_bounded_unique_component(prompts):
    labels = safe_labels(prompts)
    assert set(labels) == set(prompts)
    for label in labels.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", label) and len(label) <= 40
        assert not label.startswith("-") and Path(label).name == label
    assert len({v.casefold() for v in labels.values()}) == len(labels)  # unique, even ignoring case


def test_label_suffixes_stay_within_the_bound():
    labels = safe_labels(["x" * 50 + str(k) for k in range(1200)])  # all share the same 40-char base
    assert len(set(labels.values())) == 1200 and max(len(v) for v in labels.values()) == 40


@FAST
@given(st.one_of(any_text, tricky))
def test_result_names_stay_inside_the_output_folder(text):
    name = result_name(text)
    root = Path("/out")
    assert name and name not in (".", "..") and not name.startswith(".")
    assert (root / name).parent == root and Path(name).name == name
    assert not re.search(r"[\x00-\x1f/\\]", name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.casefold() != "run.json"
    assert result_name(name) == name  # stable


# ---------------------------------------------------------------------------- readers


def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    image.save(buf, fmt)
    return buf.getvalue()


IMAGES = [_image_bytes(f) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
HEADERS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP",
           b"\x00\x00\x00\x20ftypisom", b"\x1aE\xdf\xa3", b"RIFF\x00\x00\x00\x00AVI "]


def _mutate(data: bytes, cut: int, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data if cut < 0 else data[: max(1, cut % (len(data) + 1))])
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out)


# (where to cut, [(position, new byte)]): headers and indexes sit in the first kilobytes, so most
# edits land there.
position = st.one_of(st.integers(0, 200), st.integers(0, 1500), st.integers(0, 10**6))
damaged = st.tuples(st.one_of(st.just(-1), st.integers(0, 10**6)),  # -1: keep the whole file
                    st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=12))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def videos(scratch):
    clips = []
    for name, codec, fmt, options in [("a.mp4", "libx264", "yuv420p", {"movflags": "faststart"}),
                                      ("b.mkv", "ffv1", "yuv444p", {})]:
        path = scratch / name
        with av.open(str(path), "w", options=options) as c:
            s = c.add_stream(codec, rate=12)
            s.width, s.height, s.pix_fmt = 32, 24, fmt
            for k in range(12):
                frame = np.full((24, 32, 3), k * 20, np.uint8)
                c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            c.mux(s.encode())
        clips.append(path.read_bytes())
    return clips


def _read_image_or_input_error(path: Path) -> None:
    try:
        image = read_image(path)
    except InputError as exc:
        assert str(exc).startswith(str(path))
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # Pillow warns about damaged tags
@FAST
@given(st.sampled_from(HEADERS + [b""]), st.binary(max_size=600))
def test_image_reader_random_bytes_raise_only_input_error(scratch, header, tail):
    path = scratch / "random.jpg"
    path.write_bytes(header + tail)
    _read_image_or_input_error(path)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # ~5 ms each
@given(st.sampled_from(range(len(IMAGES))), damaged)
def test_image_reader_damaged_files_raise_only_input_error(scratch, which, damage):
    path = scratch / "damaged.png"
    path.write_bytes(_mutate(IMAGES[which], *damage))
    _read_image_or_input_error(path)


def _read_video_or_input_error(path: Path) -> None:
    for read in (probe_video, lambda p: list(iter_video_frames(p)), lambda p: list(iter_video_frames(p, fps=7))):
        try:
            out = read(path)
        except InputError as exc:
            assert str(exc).startswith(str(path))
            continue
        if isinstance(out, list):
            assert out and all(f.image.dtype == np.uint8 and f.image.shape[2] == 3 for f in out)


@FAST
@given(st.sampled_from(HEADERS + [b""]), st.binary(max_size=600))
def test_video_reader_random_bytes_raise_only_input_error(scratch, header, tail):
    path = scratch / "random.mp4"
    path.write_bytes(header + tail)
    _read_video_or_input_error(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), damaged)
def test_video_reader_damaged_files_raise_only_input_error(scratch, videos, which, damage):
    path = scratch / ("damaged.mp4", "damaged.mkv")[which]
    path.write_bytes(_mutate(videos[which], *damage))
    _read_video_or_input_error(path)
