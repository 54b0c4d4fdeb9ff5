"""Live streams: track prompts through a camera, a network stream or frames an application pushes.

    LiveSource (reader thread; every frame, or only the newest with ``realtime``)
        -> SOWLv2Pipeline.track (key frames by the usual cadence, SAM 2 session bounded)
        -> per frame: latency from capture to result -> growing outputs (results.jsonl, video segments)

``track_live`` is the Python API (results, no files); ``run_live`` writes the outputs and run.json
and is what ``sowlv2 --input rtsp://...`` runs. A live run ends at the end of the stream, after
``duration`` seconds, after ``max_frames`` frames, or on Ctrl-C / SIGTERM; it keeps every result up
to the last processed frame and finalises its files in every case.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .errors import UsageError
from .io.live import LiveSource, is_live_input
from .stages import InputInfo, RunSummary
from .types import Frame, FrameResult

log = logging.getLogger(__name__)

# The settings of live runs and their defaults (a file input with another value is a usage error).
LIVE_KEYS = {"open_timeout": 10.0, "reconnect": 0, "realtime": False, "duration": None, "max_frames": None,
             "segment_seconds": 60.0}
RUN_JSON_EVERY_S = 5.0  # how often run.json is refreshed during a live run
# Stop reasons and what they mean for status and exit code.
END_OF_STREAM, DURATION, MAX_FRAMES, SIGNAL = "end of stream", "duration", "max_frames", "signal"


class LatencyMeter:
    """Latency percentiles in constant memory: a histogram with 1% wide geometric bins
    from 0.1 ms to 10,000 s (percentiles within 1%; ``max`` and ``mean`` exact)."""

    _LO, _HI, _RATIO = 1e-4, 1e4, 1.01

    def __init__(self) -> None:
        self._n_bins = int(math.ceil(math.log(self._HI / self._LO) / math.log(self._RATIO))) + 2
        self.counts = np.zeros(self._n_bins, np.int64)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        k = 0 if seconds <= self._LO else int(math.log(seconds / self._LO) / math.log(self._RATIO)) + 1
        self.counts[min(k, self._n_bins - 1)] += 1
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) in seconds (the geometric middle of its bin), None if empty."""
        if self.count == 0:
            return None
        k = int(np.searchsorted(np.cumsum(self.counts), math.ceil(q / 100 * self.count)))
        if k == 0:
            return self._LO
        return min(self._LO * self._RATIO ** (k - 0.5), self.max)

    def summary(self) -> dict:
        """{"frames", "p50_ms", "p95_ms", "max_ms", "mean_ms"} (None values when nothing was measured)."""
        def ms(v):
            return None if v is None else round(v * 1000, 1)
        return {"frames": self.count, "p50_ms": ms(self.percentile(50)), "p95_ms": ms(self.percentile(95)),
                "max_ms": ms(self.max if self.count else None),
                "mean_ms": ms(self.total / self.count if self.count else None)}


class LiveRun:
    """One live run as an iterable of FrameResult (what ``track_live`` returns).

    Each result has ``extra["latency"]``: seconds from the frame's capture (read from the stream or
    pushed) to its result; ``last_image`` is the (H, W, 3) uint8 RGB frame of the result last
    yielded. ``stats()`` has frames, drops, gaps, latency and why the run ended.
    """

    def __init__(self, pipeline, source: LiveSource, prompts, *, duration: float | None = None,
                 max_frames: int | None = None) -> None:
        self.pipeline, self.source, self.prompts = pipeline, source, prompts
        self.duration, self.max_frames = duration, max_frames
        self.latency = LatencyMeter()
        self.stop_reason: str | None = None
        self.processed = 0
        self.last_image: np.ndarray | None = None  # (H, W, 3) uint8 RGB frame of the last result
        self._images: dict[int, np.ndarray] = {}  # frames handed to the pipeline, not yet resulted

    def stop(self, reason: str = SIGNAL) -> None:
        """End the run after the frame being processed (any thread; e.g. from a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.source.stop(reason)

    def _frames(self):
        for frame in self.source.frames():
            if self.duration is not None and self.source.seconds >= self.duration:
                self.stop(DURATION)
                return
            self._images[frame.index] = frame.image
            yield frame
            if self.max_frames is not None and frame.index + 1 >= self.max_frames:
                self.stop(MAX_FRAMES)
                return

    def __iter__(self) -> Iterator[FrameResult]:
        self.source.open()
        timer = None
        if self.duration is not None:  # also ends a run whose stream stalls or is reconnecting
            timer = threading.Timer(max(0.0, self.duration - self.source.seconds), self.stop, (DURATION,))
            timer.daemon = True
            timer.start()
        try:
            for result in self.pipeline.track(self._frames(), self.prompts):
                capture = self.source.pop_capture(result.index)
                if capture is not None:
                    result.extra["latency"] = time.monotonic() - capture
                    self.latency.add(result.extra["latency"])
                self.processed += 1
                self.last_image = self._images.pop(result.index, None)
                for old in [k for k in self._images if k < result.index]:  # never resulted (not expected)
                    del self._images[old]
                yield result
        finally:
            if timer is not None:
                timer.cancel()
            if self.stop_reason is None:
                self.stop_reason = END_OF_STREAM
            self.source.close()

    def stats(self) -> dict:
        """The live part of the run's statistics (also under ``stats.live`` in results.json)."""
        s = self.source.stats()
        return {"frames_read": s["frames_read"], "frames": self.processed, "dropped": s["dropped"],
                "realtime": self.source.realtime, "latency": self.latency.summary(), "gaps": s["gaps"],
                "stop": self.stop_reason, "stream_end": s["end"], "seconds": round(self.source.seconds, 3)}


def track_live(pipeline, source, prompts=None, *, realtime: bool = False, open_timeout: float = 10.0,
               reconnect: int = 0, duration: float | None = None, max_frames: int | None = None) -> LiveRun:
    """Track ``prompts`` through a live source; iterate the result for one FrameResult per frame.

    Args:
        pipeline: a SOWLv2Pipeline (its key-frame cadence and models are used as for a video).
        source: a stream URL (``rtsp://``, ``http://``, ``udp://`` ...), ``webcam:N``, ``-`` (stdin),
            or a ``LiveSource`` (e.g. ``LiveSource()`` fed with ``push(rgb)`` from another thread).
        prompts: text prompts (default: the pipeline's config).
        realtime: process the newest frame, dropping those the models cannot keep up with (counted);
            False processes every frame. Ignored when ``source`` is a LiveSource (its own setting).
        open_timeout, reconnect: see ``LiveSource`` (for a URL).
        duration: stop after this many seconds since the source opened.
        max_frames: stop after this many processed frames.

    Returns:
        A LiveRun: iterate it for FrameResults (``extra["latency"]`` in seconds); ``stop()`` ends it
        from another thread; ``stats()`` gives drops, gaps and latency percentiles.

    Raises (when iteration starts):
        InputError: the stream does not open within ``open_timeout``.
    """
    if not isinstance(source, LiveSource):
        source = LiveSource(source, open_timeout=open_timeout, reconnect=reconnect, realtime=realtime)
    return LiveRun(pipeline, source, prompts, duration=duration, max_frames=max_frames)


@dataclass
class LiveReport:
    """What ``run_live`` did.

    Attributes:
        status: ``done`` (the stream ended), ``stopped`` (duration, max frames or a signal) or
            ``failed`` (an error mid-stream; results up to it are kept).
        exit_code: 0, 130 after a signal, 1 after an error.
    """

    name: str
    path: str
    status: str
    frames: int = 0
    objects: int = 0
    seconds: float = 0.0
    output: str | None = None
    error: str | None = None
    stop: str | None = None
    live: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "failed" else 130 if self.stop == SIGNAL else 0


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() or folder.is_symlink():
        ours = folder.is_dir() and not folder.is_symlink() and (
            (folder / "results.json").is_file() or (folder / "results.jsonl").is_file())
        if not (overwrite and ours):
            raise UsageError(f"output: {folder} exists" + ("" if ours else " and is not a SOWLv2 result folder")
                             + "; choose another --output" + (" or use --overwrite" if ours else ""))
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run_live(pipeline, source: str | LiveSource, prompts, out_root: str | Path, *, realtime: bool = False,
             open_timeout: float = 10.0, reconnect: int = 0, duration: float | None = None,
             max_frames: int | None = None, segment_seconds: float = 60.0, on_frame=None,
             handle_signals: bool = True, warmup: bool = True) -> LiveReport:
    """Run a live source into ``out_root/<name>/`` with outputs that grow as frames arrive.

    Writes ``results.jsonl`` (a line per frame, flushed), ``video/overlay_NNNNN.mp4`` segments (unless
    ``config.no_overlay``), and at the end ``results.json`` and ``annotations.json``; ``out_root/run.json``
    is refreshed every few seconds and at the end (status ``done``, ``stopped`` or ``failed``, with the
    ``live`` statistics: drops, gaps, latency p50 / p95 / max). The result folder is written in place
    (not renamed at the end): after a crash it holds the JSON Lines and playable video up to the crash.

    Args:
        pipeline: a SOWLv2Pipeline; its config gives the outputs switched off and ``overwrite``.
        source, prompts, realtime, open_timeout, reconnect, duration, max_frames: see ``track_live``.
        out_root: the output folder (empty, or ``overwrite`` to replace an earlier live result).
        segment_seconds: stream seconds per video segment.
        on_frame: called as ``on_frame(result)`` after each frame is written.
        handle_signals: in the main thread, the first Ctrl-C / SIGTERM stops the run after the current
            frame (a second one interrupts at once; files are still finalised).
        warmup: load the models and run them on one blank 128x128 frame before opening the stream, so
            the first frames do not wait for model loading and first-call set-up.

    Returns:
        The LiveReport (``exit_code`` is what the CLI returns).

    Raises:
        UsageError: the output folder cannot be used. InputError: the stream does not open (nothing
        is written). An error mid-stream is raised after the files are finalised (status ``failed``).
    """
    from .io.live_sinks import JsonlSink, SegmentedVideoSink
    from .run_log import RunLog, check_output_dir, prepare_output_dir

    config = pipeline.config
    if config.resume:
        raise UsageError("resume: a live stream cannot be resumed; use a new --output (or --overwrite)")
    prompts = pipeline._prompts(prompts)
    out_root = Path(out_root).expanduser()
    if not isinstance(source, LiveSource):
        source = LiveSource(source, open_timeout=open_timeout, reconnect=reconnect, realtime=realtime)
    check_output_dir(out_root, config)
    folder = out_root / source.name
    if folder.exists() and not config.overwrite:
        raise UsageError(f"output: {folder} exists; choose another --output or use --overwrite")
    if warmup:  # load the models and run them once before the stream starts (first-call costs)
        blank = Frame(index=0, time=0.0, image=np.zeros((128, 128, 3), np.uint8), source_index=0)
        for _ in pipeline.track([blank], prompts):
            pass
    from tqdm.auto import tqdm

    from .run_log import versions

    versions()  # imports torch / transformers now, not while the stream's first frames wait
    was_empty = not out_root.is_dir() or not any(out_root.iterdir())
    source.open()  # InputError here: nothing written yet
    try:
        created = prepare_output_dir(out_root)
        _prepare_folder(folder, config.overwrite)
    except BaseException:
        source.close()
        raise
    run = LiveRun(pipeline, source, prompts, duration=duration, max_frames=max_frames)
    item = SimpleNamespace(name=source.name, path=source.spec or "<pushed frames>", kind="stream")
    run_log = RunLog(out_root, config, prompts)
    run_log.start(item)
    sinks = [JsonlSink()]
    video = None
    if not config.no_overlay:
        video = SegmentedVideoSink(segment_seconds)
        sinks.append(video)
    t0 = time.perf_counter()
    previous = _install_signals(run) if handle_signals else None
    error: BaseException | None = None
    opened = False
    last_log = time.monotonic()
    bar = tqdm(total=max_frames, desc=source.name, unit="frame", disable=not config.progress, leave=False,
               dynamic_ncols=True)
    try:
        for result in run:
            if not opened:
                info = InputInfo(name=source.name, kind="video", prompts=tuple(prompts), size=result.size,
                                 fps=source.fps)
                for sink in sinks:
                    sink.open(folder, info)
                opened = True
            for sink in sinks:
                sink.write(result, run.last_image)
            bar.update(1)
            if on_frame is not None:
                on_frame(result)
            if time.monotonic() - last_log >= RUN_JSON_EVERY_S:
                last_log = time.monotonic()
                run_log.data["inputs"][item.name].update(frames=run.processed, live=run.stats())
                run_log._save()
    except BaseException as exc:  # finalise what was written, then raise
        error = exc
        run.stop_reason = SIGNAL if isinstance(exc, KeyboardInterrupt) else "error"
        source.close()
    finally:
        bar.close()
        _restore_signals(previous)
    state = pipeline.last_run
    live = run.stats()
    report = LiveReport(source.name, str(item.path), "done", frames=run.processed, output=str(folder),
                        stop=run.stop_reason, live=live)
    if run.stop_reason in (DURATION, MAX_FRAMES, SIGNAL):
        report.status = "stopped"
    if error is not None and not isinstance(error, KeyboardInterrupt):
        report.status = "failed"
        report.error = f"{source.spec or source.name}: {type(error).__name__}: {error}"
    try:
        if opened:
            stats = state.stats() if state is not None else {"frames": run.processed}
            stats["live"] = live
            summary = RunSummary(keyframes=state.keyframes if state else [],
                                 keyframe_scores=state.keyframe_scores if state else [],
                                 tracks=state.tracks if state else [], stats=stats, frames=run.processed)
            for sink in sinks:
                sink.close(summary)
            report.objects = len(summary.tracks)
        else:
            folder.rmdir() if not any(folder.iterdir()) else None
            report.output = None
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    finally:
        report.seconds = round(time.perf_counter() - t0, 3)
        rec = {"path": report.path, "kind": "stream", "status": report.status, "objects": report.objects,
               "frames": report.frames, "seconds": report.seconds, "output": report.output,
               "stop": report.stop, "live": live}
        if video is not None:
            rec["segments"] = video.segments
        if report.error:
            rec["error"] = report.error
        run_log.data["inputs"][item.name] = {k: v for k, v in rec.items() if v is not None}
        run_log.data["live"] = live
        run_log._end(report.status)
        if not opened and was_empty and error is None:
            run_log.discard(remove_folder=created)
    if error is not None:
        raise error
    return report


def _install_signals(run: LiveRun):
    """First SIGINT / SIGTERM: stop after the current frame; the second: the default (interrupt)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):  # noqa: ARG001 - signal API
        if run.stop_reason == SIGNAL:
            raise KeyboardInterrupt
        log.warning("stopping after the current frame (signal %s); send it again to stop at once",
                    signal.Signals(signum).name)
        run.stop(SIGNAL)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous) -> None:
    if previous:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["track_live", "run_live", "LiveRun", "LiveReport", "LatencyMeter", "is_live_input"]
