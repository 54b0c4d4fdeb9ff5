"""Writers that save one input's results as frames arrive (nothing is held to the end).

``InputWriter`` is the result folder of one input (``ResultFolder``: written as ``.<name>.partial``,
renamed into place only when complete, so a result folder is complete or absent) plus the output
sinks of the config (``io.outputs.sinks_for``: PNGs, videos, results.json, annotations) and any extra
sinks (export formats), all fed by one ``FanOut``.

``FanOut(..., background=True)`` does the per-frame work (RLE, PNG, overlays, H.264 encoding) on one
worker thread fed by a bounded queue, so the models go on with the next frames meanwhile; memory
stays bounded (the caller blocks when the writer is ``queue_size`` frames behind) and a worker error
is raised in the caller's thread at its next ``write`` or at ``close``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..stages import InputInfo, RunSummary, Sink
from ..types import FrameResult
from .outputs import object_record, safe_labels, safe_name, sinks_for
from .result_folder import ResultFolder, atomic_write_json, check_replaceable, is_result_folder, partial_dir

log = logging.getLogger(__name__)

_STOP = object()  # the sentinel that ends a background writer's worker
_POLL_S = 0.1  # how often a caller blocked on a full queue checks that the worker is still alive

__all__ = ["FanOut", "InputWriter", "atomic_write_json", "check_replaceable", "is_result_folder", "object_record",
           "partial_dir", "safe_labels", "safe_name"]


class FanOut:
    """Feed every frame to a list of sinks, in order, in line or on one background thread.

    Args:
        sinks: opened sinks.
        background: write on one worker thread (frames keep their order): ``write`` only queues the
            frame, blocking while ``queue_size`` frames wait. ``finish`` or ``abort`` must be called
            (they end the thread). False: ``write`` does the work before it returns.
        queue_size: frames that may wait for the worker (with ``background``); at most
            ``queue_size + 1`` frames are held at any time.
        name: the worker thread's name.

    Attributes:
        seconds: time the caller spent in ``write`` and ``finish`` (with ``background``: waiting for
            a place in the queue and for the worker to finish).
        worker_seconds: time the worker thread spent writing frames (0.0 without ``background``).
    """

    def __init__(self, sinks: list[Sink], background: bool = False, queue_size: int = 8,
                 name: str = "sowlv2-writer") -> None:
        if background and queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.sinks = sinks
        self.seconds = 0.0
        self.worker_seconds = 0.0
        self.frames = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
            self._discard = threading.Event()
            self._thread = threading.Thread(target=self._work, name=name, daemon=True)
            self._thread.start()

    @property
    def background(self) -> bool:
        return self._thread is not None

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        """Write (or queue) one frame for every sink; raises what the worker raised on an earlier frame."""
        t0 = time.perf_counter()
        if self._thread is None:
            self._write_frame(result, image)
        else:
            self._raise_worker_error()
            if not self._offer((result, image)):
                self._raise_worker_error()
                raise RuntimeError("the writer thread has stopped (write after close or abort)")
        self.seconds += time.perf_counter() - t0

    def _write_frame(self, result: FrameResult, image: np.ndarray) -> None:
        for sink in self.sinks:
            sink.write(result, image)
        self.frames += 1

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _offer(self, item: Any) -> bool:
        """Put ``item`` on the queue, waiting while it is full; False if the worker is no longer alive
        (a caller never blocks on a queue that nobody empties)."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        """The worker: write queued frames in order until the sentinel; stop at the first error."""
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._discard.is_set():
                continue
            t0 = time.perf_counter()
            try:
                self._write_frame(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
                log.debug("writer thread failed", exc_info=True)
                self._error = exc
                return
            finally:
                item = None  # do not hold the frame while waiting for the next one
                self.worker_seconds += time.perf_counter() - t0

    def _stop_worker(self, discard: bool) -> None:
        """End the worker and wait for it; with ``discard``, frames still queued are dropped."""
        if self._thread is None:
            return
        if discard:
            self._discard.set()
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._offer(_STOP)
        self._thread.join()

    def finish(self) -> None:
        """Wait until every queued frame is written; raises what the worker raised."""
        t0 = time.perf_counter()
        self._stop_worker(discard=False)
        self._raise_worker_error()
        self.seconds += time.perf_counter() - t0

    def abort(self) -> None:
        """Drop queued frames, end the worker, and let every sink release its files (best effort)."""
        self._stop_worker(discard=True)
        for sink in self.sinks:
            try:
                sink.abort()
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                log.debug("aborting a sink failed", exc_info=True)


class InputWriter:
    """Write everything for one input (an image or a video) into ``out_dir``.

    Args:
        out_dir: final folder (``OUTPUT/<input name>``); written as ``.<name>.partial`` first.
        name: the input's file name (recorded in the JSON).
        kind: ``"image"`` or ``"video"``.
        prompts: the prompts, in order (category ids are positions + 1).
        size: (height, width) of the frames.
        config: a PipelineBaseData (output switches).
        fps: processing frame rate (videos).
        background, queue_size: see ``FanOut``.
        extra_sinks: more sinks (e.g. export formats), written after the config's own.
        source: the input's path (for sinks that refer to the source frames).

    Use as a context manager: leaving the block without ``close`` (an exception) aborts.

    Attributes:
        seconds: time the caller spent in ``write`` and ``close``. Saved as ``stats.seconds.write``.
        worker_seconds: time the worker thread spent writing frames (0.0 without ``background``).
    """

    def __init__(self, out_dir: Path, name: str, kind: str, prompts: list[str], size: tuple[int, int],
                 config, fps: float | None = None, background: bool = False, queue_size: int = 8,
                 extra_sinks: list[Sink] | None = None, source: Path | None = None) -> None:
        if background and queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.folder = ResultFolder(Path(out_dir))
        self.final_dir, self.dir = self.folder.final_dir, self.folder.dir
        self.info = InputInfo(name=name, kind=kind, prompts=tuple(prompts), size=tuple(size), fps=fps,
                              source=None if source is None else Path(source))
        self.sinks: list[Sink] = [*sinks_for(config, kind), *(extra_sinks or [])]
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open(self.dir, self.info)
                opened.append(sink)
        except BaseException:
            for sink in opened:
                sink.abort()
            self.folder.abort()
            raise
        self._fan = FanOut(self.sinks, background=background, queue_size=queue_size,
                           name=f"sowlv2-writer[{self.final_dir.name}]")
        self._closed = False

    @property
    def background(self) -> bool:
        """Whether frames are written on a worker thread."""
        return self._fan.background

    @property
    def seconds(self) -> float:
        return self._fan.seconds

    @property
    def worker_seconds(self) -> float:
        return self._fan.worker_seconds

    @property
    def frames(self) -> int:
        return self._fan.frames

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        """Write (or, with ``background``, queue) one frame.

        Args:
            result: the frame's result; its arrays must not change afterwards (the worker reads them).
            image: (H, W, 3) uint8 RGB frame the overlays are drawn on (not modified, kept until written).

        Raises:
            Whatever the worker raised on an earlier frame (the original exception), with ``background``.
        """
        try:
            self._fan.write(result, image)
        except RuntimeError as exc:
            if "writer thread has stopped" in str(exc):
                raise RuntimeError(f"{self.final_dir}: {exc}") from None
            raise

    def close(self, keyframes: list[int], keyframe_scores: list[float | None], tracks: list[dict],
              stats: dict) -> Path:
        """Finish every file and move the folder into place. Returns the final folder.

        With ``background``, first waits until the worker has written every queued frame.

        Raises:
            Whatever the worker raised (the original exception); the folder stays ``.partial`` and the
            caller is expected to call ``abort``.
        """
        t0 = time.perf_counter()
        self._fan.finish()
        waited = time.perf_counter() - t0
        stats = dict(stats)
        seconds = stats["seconds"] = dict(stats.get("seconds", {}))
        seconds["write"] = round(self.seconds, 4)
        if "total" in seconds:  # the run is not over until the last frame is written
            seconds["total"] = round(seconds["total"] + waited, 4)
        summary = RunSummary(keyframes=keyframes, keyframe_scores=keyframe_scores, tracks=tracks, stats=stats,
                             frames=self.frames)
        for sink in self.sinks:
            sink.close(summary)
        self._closed = True
        return self.folder.commit()

    def abort(self) -> None:
        """Drop everything written for this input (it never reaches its final name).

        With ``background``, frames still queued are discarded and the worker is ended first (after
        the frame it is writing, if any). Safe after a worker error and after a failed ``close``.
        """
        self._fan.abort()
        self.folder.abort()
        self._closed = True

    def __enter__(self) -> InputWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if not self._closed:
            self.abort()
