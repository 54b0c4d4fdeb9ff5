"""Live frame sources: network streams, webcams, stdin and frames pushed by the caller.

``LiveSource`` reads a stream on a background thread and hands frames to the consumer (the pipeline)
in one of two policies:

* every frame (a recording): frames wait in a bounded queue; when it is full the reader waits too
  (the stream is read as fast as the models go);
* ``realtime``: only the newest frame is kept; a frame replaced before the consumer took it is
  *dropped* and counted (``stats["dropped"]``), never silently.

Each frame carries its capture time (``time.monotonic()`` when it was read from the stream), so the
caller can measure latency from capture to result (``pop_capture``).

Sources (``--input``): a URL FFmpeg opens through PyAV (``rtsp://``, ``rtmp://``, ``srt://``,
``udp://``, ``tcp://``, ``http(s)://`` streams ...), ``webcam:N`` (V4L2 ``/dev/videoN`` on Linux,
AVFoundation device N on macOS), ``-`` (a stream on stdin), or none: ``push`` frames from another
thread. A URL that drops is reopened up to ``reconnect`` times with backoff; each gap (start,
duration, reason, attempts) is recorded in ``gaps``.
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import av
import numpy as np

from ..errors import InputError, UsageError
from ..types import Frame
from .inputs import result_name
from .video import _apply_rotation, _rotation

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "srt", "udp", "tcp", "rtp", "http", "https", "hls",
               "mms", "mmsh", "rist", "zmq")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_WEBCAM = re.compile(r"^webcam:(\d+)$")
# A short probe. Time from opening to the first frame of the 10 fps HTTP test stream
# (``python benchmarks/live_open.py``, 3 runs each): FFmpeg's default
# probe (5 MB / 5 s of analysis) 2.22 s, after which ~20 frames arrive in a burst; probesize 32 KB with
# analyzeduration 0.5 s 0.91 s; with 0.1 s (these) 0.51 s.
PROBE_OPTIONS = {"probesize": "32768", "analyzeduration": "100000"}
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # wait before reconnect attempt 1, 2, ... (the last repeats)
QUEUE_FRAMES = 32  # frames that may wait for the consumer without --realtime
_POLL_S = 0.1
_CAPTURES_KEPT = 4096  # capture times remembered for frames handed out but not yet popped


def is_live_input(text: str | None) -> bool:
    """Whether ``--input`` names a live source: a stream URL, ``webcam:N`` or ``-`` (stdin)."""
    if not isinstance(text, str):
        return False
    if text == "-" or _WEBCAM.match(text):
        return True
    m = _URL.match(text)
    return bool(m) and m.group(1).lower() in URL_SCHEMES


def live_name(spec: str | None) -> str:
    """The result-folder name of a live source: ``webcam0``, ``stdin``, ``live`` (pushed frames), or
    the last part of a URL's path (``rtsp://cam/live/main`` -> ``main``), else its host."""
    if spec is None:
        return "live"
    if spec == "-":
        return "stdin"
    m = _WEBCAM.match(spec)
    if m:
        return f"webcam{m.group(1)}"
    rest = _URL.sub("", spec).split("?")[0].split("#")[0]
    host, _, path = rest.partition("/")
    last = path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else ""
    stem = last.rsplit(".", 1)[0] if "." in last else last
    name = result_name(stem or host.split("@")[-1].replace(":", "_"))
    return name or "live"


def open_args(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """(file, format, container options) to open ``spec`` with PyAV.

    Raises:
        UsageError: ``webcam:N`` on a system without V4L2 / AVFoundation.
    """
    m = _WEBCAM.match(spec)
    if m:
        n = m.group(1)
        if sys.platform.startswith("linux"):
            return f"/dev/video{n}", "v4l2", {}
        if sys.platform == "darwin":
            return n, "avfoundation", {"framerate": "30"}
        raise UsageError(f"input: {spec}: webcams are opened through V4L2 (Linux) or AVFoundation (macOS); "
                         "on this system give the camera's stream URL instead")
    if spec == "-":
        return "pipe:0", None, dict(PROBE_OPTIONS)
    return spec, None, dict(PROBE_OPTIONS)


@dataclass
class Gap:
    """A time the stream was lost.

    Attributes:
        start: seconds since the source opened when the stream dropped.
        duration: seconds until the first frame after reconnecting, or until the run ended when the
            stream did not come back.
        reason: why it dropped (the FFmpeg error, or ``"end of stream"``).
        attempts: reconnect attempts made.
        reconnected: whether the stream came back.
    """

    start: float
    duration: float
    reason: str
    attempts: int
    reconnected: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"], d["duration"] = round(self.start, 3), round(self.duration, 3)
        return d


_END = object()


class LiveSource:
    """A live stream of RGB frames, read on a background thread.

    Args:
        spec: a stream URL, ``webcam:N``, ``-`` (stdin), or None for frames given with ``push``.
        open_timeout: seconds to wait for the stream to open (and for data while reading; a stream
            silent that long has dropped).
        reconnect: how many times to try reopening a URL after each drop (0: a drop ends the stream).
        realtime: keep only the newest frame (drop the ones the consumer could not take in time);
            False hands over every frame.
        queue_frames: frames that may wait for the consumer without ``realtime``.

    Example:
        >>> src = LiveSource("rtsp://camera/stream", open_timeout=5, reconnect=3, realtime=True)
        >>> src.open()                          # raises InputError if it does not open in time
        >>> for frame in src.frames(): ...      # Frame: (H, W, 3) uint8 RGB
        >>> src.close()

        >>> src = LiveSource()                  # fed by the application
        >>> src.push(rgb)                       # from any thread; src.end() ends the stream
    """

    def __init__(self, spec: str | None = None, *, open_timeout: float = 10.0, reconnect: int = 0,
                 realtime: bool = False, queue_frames: int = QUEUE_FRAMES) -> None:
        if spec is not None and not is_live_input(spec):
            raise UsageError(f"input: {spec!r} is not a live source (a stream URL, webcam:N or -)")
        self.spec = spec
        self.name = live_name(spec)
        self.open_timeout = float(open_timeout)
        self.reconnect = int(reconnect)
        self.realtime = bool(realtime)
        self.gaps: list[Gap] = []
        self.frames_read = 0  # frames decoded from the stream (or pushed)
        self.frames_out = 0  # frames handed to the consumer
        self.dropped = 0  # frames replaced by a newer one before the consumer took them (realtime)
        self.end_reason: str | None = None
        self.fps: float | None = None  # the stream's announced frame rate, when it has one
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
        self._latest = None
        self._cond = threading.Condition()
        self._ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container = None
        self._opened_at: float | None = None
        self._captures: OrderedDict[int, float] = OrderedDict()
        self._size: tuple[int, int] | None = None
        self._t_offset = 0.0
        self._t_first: float | None = None
        self._t_last = -1.0  # stream time of the last frame handed out
        self._t_read = 0.0  # stream time of the last frame read
        self._pending_gap: Gap | None = None  # a gap whose duration ends at the next frame read
        self._gap_t0 = 0.0

    # ------------------------------------------------------------------ opening
    def _open_container(self):
        file, fmt, options = open_args(self.spec)
        try:
            container = av.open(file, format=fmt, container_options=options,
                                timeout=(self.open_timeout, self.open_timeout))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            if isinstance(exc, av.error.ExitError) or "Immediate exit" in str(reason):
                reason = f"no answer within {self.open_timeout:g} s (--open-timeout)"
            where = self.spec if file in (self.spec, "pipe:0") else f"{self.spec} ({file})"
            raise InputError(f"{where}: cannot open the stream ({reason})") from None
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.spec}: the stream has no video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.average_rate:
            self.fps = float(stream.average_rate)
        return container

    def open(self) -> LiveSource:
        """Open the stream (synchronously: an error is raised here) and start reading it.

        Raises:
            InputError: the stream did not open within ``open_timeout`` or has no video.
        """
        if self._opened_at is not None:
            return self
        if self.spec is not None:
            t0 = time.monotonic()
            self._container = self._open_container()
            log.info("%s: opened in %.2f s", self.spec, time.monotonic() - t0)
        self._opened_at = time.monotonic()
        if self.spec is not None:
            self._thread = threading.Thread(target=self._read_loop, name=f"sowlv2-live[{self.name}]", daemon=True)
            self._thread.start()
        return self

    @property
    def seconds(self) -> float:
        """Seconds since the source opened."""
        return 0.0 if self._opened_at is None else time.monotonic() - self._opened_at

    # ------------------------------------------------------------------ producer side
    def push(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Hand one frame to the consumer (from any thread).

        Args:
            image: (H, W, 3) uint8 RGB; every frame must have the first frame's size.
            time_s: its time in seconds (default: seconds since the source opened).

        Without ``realtime`` this blocks while the queue is full; with it, an older frame that the
        consumer has not taken yet is dropped.

        Raises:
            RuntimeError: the source has ended or was closed.
        """
        if self.spec is not None:
            raise RuntimeError("push() is for a LiveSource without a stream (LiveSource())")
        if self._opened_at is None:
            self.open()
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"push: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if self._ended or self._stop.is_set():
            raise RuntimeError("push() after end() or close()")
        self._offer(image, time.monotonic(), self.seconds if time_s is None else float(time_s))

    def end(self) -> None:
        """End a pushed stream: the consumer gets the frames still waiting, then the stream ends."""
        self._finish("end of stream")

    def _offer(self, image, capture: float, t: float) -> bool:
        """Give one frame (an image or an av.VideoFrame, its capture time and stream time) to the
        consumer; False when the source was stopped meanwhile."""
        item = (image, capture, t, self.frames_read)
        self.frames_read += 1
        if self.realtime:
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = item
                self._cond.notify_all()
            return True
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _finish(self, reason: str) -> None:
        with self._cond:
            if self.end_reason is None:
                self.end_reason = reason
            self._ended = True
            self._cond.notify_all()

    def _read_loop(self) -> None:
        """The reader thread: decode frames; on a drop, reconnect with backoff (URLs only)."""
        container = self._container
        try:
            while True:
                reason = self._read_container(container)
                container.close()
                container = None
                if self._stop.is_set():
                    return
                if self.spec in ("-",) or self.spec.startswith("webcam:") or self.reconnect <= 0:
                    self._finish(reason)
                    return
                t_drop = time.monotonic()
                log.warning("%s: stream lost (%s); reconnecting (up to %d attempts)", self.spec, reason,
                            self.reconnect)
                attempts = 0
                while attempts < self.reconnect and not self._stop.is_set():
                    wait = BACKOFF_S[min(attempts, len(BACKOFF_S) - 1)]
                    if self._stop.wait(wait):
                        break
                    attempts += 1
                    try:
                        container = self._open_container()
                        break
                    except InputError as exc:
                        log.info("%s: reconnect attempt %d failed: %s", self.spec, attempts, exc)
                gap = Gap(start=t_drop - self._opened_at, duration=0.0, reason=reason, attempts=attempts,
                          reconnected=container is not None)
                self.gaps.append(gap)
                if container is None:
                    gap.duration = time.monotonic() - t_drop
                    self._finish(f"{reason}; not back after {attempts} reconnect attempt(s)"
                                 if attempts else reason)
                    return
                log.warning("%s: reconnected after %.1f s", self.spec, time.monotonic() - t_drop)
                self._t_first = None  # the new connection's timestamps start again
                self._t_offset = self._t_read + max(0.0, time.monotonic() - t_drop)
                self._pending_gap = gap
                self._gap_t0 = t_drop
        except BaseException as exc:  # noqa: BLE001 - end the stream with the reason, never hang the consumer
            log.debug("live reader failed", exc_info=True)
            self._finish(f"reader failed: {type(exc).__name__}: {exc}")
        finally:
            if container is not None:
                container.close()

    def _read_container(self, container) -> str:
        """Decode frames until the stream ends, fails or the source is stopped; returns why it ended.
        When the stream fails, the frames the decoder still holds are handed out first."""
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return "stopped"
                try:
                    decoded = packet.decode()
                except (av.error.InvalidDataError, ValueError):
                    log.debug("%s: undecodable packet skipped", self.spec)
                    continue
                if not self._hand_out(decoded):
                    return "stopped"
        except av.error.ExitError:
            reason = f"no data for {self.open_timeout:g} s"
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        else:
            return "end of stream"  # the demuxer's last (empty) packet flushed the decoder
        try:
            self._hand_out(stream.codec_context.decode(None))
        except (av.error.FFmpegError, ValueError):
            log.debug("%s: flushing the decoder failed", self.spec, exc_info=True)
        return reason

    def _hand_out(self, frames) -> bool:
        """Offer decoded av.VideoFrames; False when the source was stopped."""
        for frame in frames:
            capture = time.monotonic()
            if self._pending_gap is not None:
                self._pending_gap.duration = capture - self._gap_t0
                self._pending_gap = None
            if not self._offer(frame, capture, self._stream_time(frame, capture)):
                return False
        return True

    def _stream_time(self, frame, capture: float) -> float:
        """Seconds since the stream started: the frame's timestamp (continued across reconnects)."""
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
        else:
            t = capture - self._opened_at
        if self._t_first is None:
            self._t_first = t
        self._t_read = t - self._t_first + self._t_offset
        return self._t_read

    # ------------------------------------------------------------------ consumer side
    def _take(self):
        """The next (image, capture, time, read sequence number), or _END; waits for the reader."""
        if self.realtime:
            with self._cond:
                while self._latest is None and not self._ended and not self._stop.is_set():
                    self._cond.wait(_POLL_S)
                if self._latest is None or self._stop.is_set():
                    return _END
                item, self._latest = self._latest, None
                return item
        while not self._stop.is_set():  # stopped: frames still queued are not handed out
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._ended and self._queue.empty():
                    return _END
        return _END

    def _to_rgb(self, image) -> np.ndarray:
        if isinstance(image, av.VideoFrame):
            image = _apply_rotation(image.to_ndarray(format="rgb24"), _rotation(image))
        if self._size is None:
            self._size = image.shape[:2]
        elif image.shape[:2] != self._size:
            from PIL import Image

            log.warning("%s: frame size changed from %dx%d to %dx%d; resized to the first size", self.name,
                        self._size[1], self._size[0], image.shape[1], image.shape[0])
            image = np.asarray(Image.fromarray(image).resize((self._size[1], self._size[0])))
        return image

    def frames(self) -> Iterator[Frame]:
        """Yield the stream's frames until it ends or ``stop``/``close`` is called.

        Yields:
            Frame with ``index`` counting frames handed out, ``source_index`` counting frames read
            (a gap between two source indices is dropped frames), ``time`` the stream time in
            seconds (timestamps continue across reconnects), image (H, W, 3) uint8 RGB.
        """
        self.open()
        while True:
            item = self._take()
            if item is _END:
                return
            image, capture, t, seq = item
            item = None
            image = self._to_rgb(image)
            t = max(round(t, 6), round(self._t_last + 1e-6, 6))
            self._t_last = t
            index = self.frames_out
            self._captures[index] = capture
            while len(self._captures) > _CAPTURES_KEPT:
                self._captures.popitem(last=False)
            self.frames_out += 1
            yield Frame(index=index, time=t, image=image,
                        source_index=seq)

    def pop_capture(self, index: int) -> float | None:
        """The capture time (``time.monotonic()``) of frame ``index``, forgotten once read."""
        return self._captures.pop(index, None)

    def stop(self, reason: str = "stopped") -> None:
        """End ``frames()`` at its next frame (from any thread, e.g. a signal handler)."""
        self._finish(reason)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stop reading and release the stream (waits briefly for the reader thread)."""
        self.stop(self.end_reason or "closed")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.open_timeout + 1.0)

    def stats(self) -> dict:
        """frames_read, frames (handed out), dropped, gaps (list of dicts) and end reason."""
        return {"frames_read": self.frames_read, "frames": self.frames_out, "dropped": self.dropped,
                "gaps": [g.to_dict() for g in self.gaps], "end": self.end_reason}

    def __enter__(self) -> LiveSource:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["LiveSource", "Gap", "is_live_input", "live_name", "open_args", "PROBE_OPTIONS"]
