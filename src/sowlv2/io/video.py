"""Streaming video reading and H.264 writing with PyAV (no ffmpeg subprocess, no frames on disk)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import InputError
from ..types import Frame

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                  ".3gp", ".gif"}


class VideoInfo:
    """What the container says about a video stream.

    Attributes:
        fps: average frame rate as a float (29.97 stays 29.97); 0.0 when unknown.
        frames: frame count from the container (may be 0 or approximate).
        width, height: display size in pixels (after rotation).
        rotation: degrees counter-clockwise the frames are rotated for display.
    """

    def __init__(self, fps: float, frames: int, width: int, height: int, rotation: int) -> None:
        self.fps, self.frames, self.width, self.height, self.rotation = fps, frames, width, height, rotation

    def __repr__(self) -> str:
        return (f"VideoInfo(fps={self.fps:.3f}, frames={self.frames}, size={self.width}x{self.height}, "
                f"rotation={self.rotation})")


def _rotation(frame: av.VideoFrame) -> int:
    rot = getattr(frame, "rotation", 0) or 0
    return int(rot) % 360


def _apply_rotation(rgb: np.ndarray, rotation: int) -> np.ndarray:
    # PyAV reports the counter-clockwise rotation the display matrix applies.
    k = {0: 0, 90: 1, 180: 2, 270: 3}.get(rotation, 0)
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _codec_name(stream) -> str:
    try:
        return str(stream.codec.name)
    except Exception:  # noqa: BLE001 - only for a message
        return "unknown codec"


def probe_video(path: str | Path) -> VideoInfo:
    """Read stream metadata without decoding more than the first frame."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise InputError(f"{path}: no decoder for its video codec ({_codec_name(stream)})")
            fps = float(stream.average_rate) if stream.average_rate else 0.0
            frames = int(stream.frames or 0)
            w, h = stream.codec_context.width, stream.codec_context.height
            rotation = 0
            try:
                for frame in container.decode(stream):
                    rotation = _rotation(frame)
                    break
            except (av.error.FFmpegError, ValueError, MemoryError) as exc:
                raise InputError(f"{path}: cannot decode any frame ({getattr(exc, 'strerror', None) or exc}); "
                                 "the file is damaged or truncated") from None
    except (av.error.FFmpegError, ValueError, MemoryError) as exc:
        raise InputError(f"{path}: cannot read as video ({getattr(exc, 'strerror', None) or exc})") from None
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(fps, frames, w, h, rotation)


def _warn_if_short(path, stream, container, decoded: int, t_last: float) -> None:
    """Warn when the container announces more frames (or a longer duration) than decoded: a
    truncated file decodes as far as its data goes, without an error from the decoder."""
    expected = int(stream.frames or 0)
    if expected and decoded < expected - 1:
        log.warning("%s: decoded %d of the %d frames the file announces (truncated?); keeping what decoded",
                    path, decoded, expected)
        return
    if expected:
        return
    # No frame count (Matroska, WebM): compare with the duration, the stream's or, for a file with
    # only this stream, the container's (another stream, e.g. audio, may be longer).
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None and len(container.streams) == 1:
        duration = container.duration / 1_000_000
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    period = 1.0 / rate if rate > 0 else 0.1
    if duration and t_last + period < duration - max(2 * period, 0.02 * duration):
        log.warning("%s: frames end at %.2f s but the file announces %.2f s (truncated?); keeping what decoded",
                    path, t_last + period, duration)


def iter_video_frames(path: str | Path, fps: float | None = None) -> Iterator[Frame]:
    """Decode a video as a stream of RGB frames.

    Args:
        path: any container PyAV opens.
        fps: if given, keep the first frame at or after each multiple of 1/fps seconds (chosen by
            timestamp, so variable frame rate works); None keeps every frame.

    Yields:
        Frame with ``index`` counting kept frames, ``source_index`` counting decoded frames and
        ``time`` in seconds from the first frame. Frames are rotated as the metadata says.
    """
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, MemoryError) as exc:
        raise InputError(f"{path}: cannot open as video ({getattr(exc, 'strerror', None) or exc})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise InputError(f"{path}: no decoder for its video codec ({_codec_name(stream)})")
        stream.thread_type = "AUTO"
        base = stream.average_rate
        t0 = None
        next_t = 0.0
        kept = 0
        source = -1
        t_last = 0.0
        try:
            for frame in container.decode(stream):
                source += 1
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                elif base:
                    t = source / float(base)
                else:
                    t = float(source)
                if t0 is None:
                    t0 = t
                t -= t0
                if fps is not None:
                    if t + 1e-6 < next_t:
                        continue
                    next_t += 1.0 / fps
                    while next_t <= t + 1e-6:  # a gap in a variable-rate stream
                        next_t += 1.0 / fps
                t_last = t
                rgb = _apply_rotation(frame.to_ndarray(format="rgb24"), _rotation(frame))
                yield Frame(index=kept, time=round(t, 6), image=rgb, source_index=source)
                kept += 1
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            if kept == 0:
                raise InputError(f"{path}: cannot decode any frame ({reason}); the file is damaged or truncated") \
                    from None
            log.warning("%s: decoding stopped after %d frames (%s); keeping what decoded", path, source + 1, reason)
        else:
            if kept == 0:
                raise InputError(f"{path}: no frame could be decoded (empty or truncated video)")
            _warn_if_short(path, stream, container, source + 1, t_last)


def yuv420p_frame(rgb: np.ndarray) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB (even H and W) -> a yuv420p frame whose every byte is defined.

    FFmpeg pads each line of a frame to an aligned length and leaves the padding uninitialised;
    libx264 reads some of it, so the same frames encoded twice gave different bytes (and decoded
    pixels a few levels apart) whenever the width was not a multiple of the alignment. The colour
    conversion is FFmpeg's; the planes are then copied into a frame whose padding is zero.
    """
    h, w = rgb.shape[:2]
    yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    flat = yuv.to_ndarray()  # (H * 3 / 2, W): Y rows, then U and V, visible bytes only
    q = h // 4
    planes = (flat[:h], flat[h:h + q].reshape(h // 2, w // 2), flat[h + q:].reshape(h // 2, w // 2))
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, planes):
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, :plane.width] = data
        plane.update(buf)
    return frame


class VideoWriter:
    """Write RGB frames to an H.264 (yuv420p) MP4 that browsers play.

    Odd sizes are padded by one pixel (edge-replicated) to the even size yuv420p needs.

    Example:
        >>> with VideoWriter("out.mp4", fps=29.97) as w:
        ...     w.write(rgb)  # (H, W, 3) uint8
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 23) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 25.0
        self.crf = crf
        self.frames = 0
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, h: int, w: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w + (w % 2), h + (h % 2)
        stream.pix_fmt = "yuv420p"
        # mbtree off: with x264's macroblock-tree rate control the same input frames gave different
        # bytes (decoded pixels a few levels apart) in 3 of 16 runs in one process, even on one
        # encoder thread with identical input bytes; without it, 48 of 48 were identical. Results
        # must be reproducible (--resume, CI); the cost is a little compression at the same CRF.
        stream.options = {"crf": str(self.crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        stream.codec_context.time_base = 1 / rate
        self._stream = stream
        self._size = (h, w)

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame (all frames must share one size)."""
        h, w = rgb.shape[:2]
        if self._container is None:
            self._open(h, w)
        elif (h, w) != self._size:
            raise ValueError(f"frame size {w}x{h} differs from the video's {self._size[1]}x{self._size[0]}")
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = yuv420p_frame(rgb)
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
