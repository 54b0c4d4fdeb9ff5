"""The memory section: peak RSS of streaming vs naive runs, each in its own process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SOWLv2Error
from .fakes import FixedBoxesDetector, ForcedTrackManager
from .machine import _proc_status_mb, _reset_peak_rss, _rss_mb
from .recorder import _r
from .settings import (
    _make_present,
    tiny_model_paths,
)

log = logging.getLogger(__name__)


class MemorySection:
    """The ``memory`` section (methods of :class:`~sowlv2.bench.core.Bench`)."""

    def section_memory(self) -> None:
        from ..eval.world import generate_world

        s = self.s
        n = s.memory_frames
        videos = {}
        for frames in (n, 10 * n):
            folder = generate_world(self.tmp / f"mem{frames}", seed=s.seed, frames=frames, size=s.size, videos=1,
                                    min_objects=s.objects, max_objects=s.objects, cut_prob=0.0)[0]
            videos[frames] = folder / "video.mp4"
        vid = self.world("video")
        real = s.memory_models == "real" and not s.quick
        paths = self.paths if real else tiny_model_paths(s.models)
        # One process (peak RSS is per process); the peak is reset before each run (see memory_child).
        order = [(mode, frames) for mode in ("stream", "naive") for frames in (n, 10 * n)]
        job = {"runs": [{"mode": mode, "video": str(videos[frames])} for mode, frames in order],
               "owl": str(paths["owl"]), "sam": str(paths["sam"]), "boxes": vid["boxes"].tolist(),
               "prompts": vid["labels"], "device": "cpu", "dtype": "float32",
               # one thread suits tiny models (and a busy machine) best; RSS does not depend on it
               "threads": s.threads if real else 1}
        child = _memory_child_run(job)
        rss = {f"{mode}_{frames}": dict(r, load_peak_rss_mb=child["load_peak_rss_mb"])
               for (mode, frames), r in zip(order, child["runs"])}
        self.runs["memory"] = {"models": "real-size" if real else "tiny", "size": list(s.size),
                               "frames": [n, 10 * n], "rss": rss,
                               "settings": "detector every 10 frames, results not written (track() consumed)"}
        what = "peak RSS of a process running the pipeline ({} models, {} frames, {})"
        kind = "real-size" if real else "tiny"
        for key, r in rss.items():
            mode, frames = key.split("_")
            self.measures[f"rss_{key}"] = {"median": r["peak_rss_mb"], "min": r["peak_rss_mb"],
                                           "max": r["peak_rss_mb"], "n": 1, "unit": "MiB",
                                           "what": what.format(kind, frames, "streaming" if mode == "stream"
                                                               else "naive: all frames decoded first")}
        self.comparisons["rss_10n_vs_n_stream"] = {
            "value": _r(rss[f"stream_{10 * n}"]["peak_rss_mb"] / rss[f"stream_{n}"]["peak_rss_mb"], 4),
            "what": f"peak RSS, {10 * n} / {n} frames, streaming ({kind} models)"}
        for mode in ("stream", "naive"):
            a, b = rss[f"{mode}_{n}"]["run_peak_rss_mb"], rss[f"{mode}_{10 * n}"]["run_peak_rss_mb"]
            if a and b:
                self.comparisons[f"rss_run_10n_vs_n_{mode}"] = {
                    "value": _r(b / a, 4), "what": f"peak RSS during the run (reset after loading), {10 * n} / {n} "
                                                   f"frames, {'streaming' if mode == 'stream' else 'naive'}"}
        self.comparisons["rss_10n_vs_n_naive"] = {
            "value": _r(rss[f"naive_{10 * n}"]["peak_rss_mb"] / rss[f"naive_{n}"]["peak_rss_mb"], 4),
            "what": f"peak RSS, {10 * n} / {n} frames, naive: all frames decoded first ({kind} models)"}
        if self.device.type == "cuda":
            self._gpu_memory()

    def _gpu_memory(self) -> None:
        """Peak GPU memory of streaming runs of N and 10N frames with the benchmarked models."""
        import torch

        from ..eval.world import generate_world

        s = self.s
        vid = self.world("video")
        out = {}
        for frames in (s.frames, 10 * s.frames):
            folder = generate_world(self.tmp / f"gpu{frames}", seed=s.seed, frames=frames, size=s.size,
                                    videos=1, min_objects=s.objects, max_objects=s.objects, cut_prob=0.0)[0]
            self.tracker  # noqa: B018 - load the shared tracker before the pipeline takes it
            pipe = self.pipeline(FixedBoxesDetector(self.detector, vid["boxes"], np.arange(len(vid["boxes"]))),
                                 detect_every=10)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.rec.context = f"gpu_memory:{frames}"
            with self.rec.timing("gpu_memory.wall"):
                count = sum(1 for _ in pipe.track(str(folder / "video.mp4"), vid["labels"]))
            out[frames] = {"frames": count,
                           "peak_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1),
                           "wall_s": _r(self.rec.samples["gpu_memory.wall"][-1].wall)}
            self.measures[f"gpu_peak_{frames}"] = {"median": out[frames]["peak_mb"], "min": out[frames]["peak_mb"],
                                                   "max": out[frames]["peak_mb"], "n": 1, "unit": "MiB",
                                                   "what": f"peak GPU memory allocated, {frames} frames, streaming"}
        self.runs["gpu_memory"] = out
        a, b = out[s.frames]["peak_mb"], out[10 * s.frames]["peak_mb"]
        self.comparisons["gpu_10n_vs_n"] = {"value": _r(b / a, 4),
                                            "what": f"peak GPU memory, {10 * s.frames} / {s.frames} frames"}

    # ------------------------------------------------------------------ report

def _memory_child_run(job: dict) -> dict:
    """Run :func:`memory_child` in a fresh Python process and return what it measured."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="sowlv2-bench-") as tmp:
        result = Path(tmp) / "memory.json"  # the child writes what it measured here
        proc = subprocess.run([sys.executable, "-m", "sowlv2.bench", "_memory_child", json.dumps(job), str(result)],
                              capture_output=True, text=True, env=env, timeout=3600)
        if proc.returncode != 0 or not result.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise SOWLv2Error(f"bench: memory runs failed: {tail}")
        return json.loads(result.read_text())


def memory_child(job: dict) -> dict:
    """Inside the child process: load the models once, run the pipeline over each job run, report peak RSS.

    A run of ``mode`` ``stream`` consumes ``SOWLv2Pipeline.track(path)`` (frames decoded as needed); one
    of mode ``naive`` first decodes every frame into a list (as the old tool did) and then tracks the
    list. Runs go one after the other; the peak RSS is reset before each (Linux ``/proc/self/clear_refs``)
    and read from ``VmHWM``, so each run's peak is its own.

    Returns:
        ``{"load_peak_rss_mb", "runs": [{"mode", "frames", "peak_rss_mb", "rss_before_mb",
        "run_peak_rss_mb", "run_growth_mb", "seconds"}, ...]}``. ``peak_rss_mb`` is the process's peak
        had it run only that video: the larger of the loading peak and the run's peak.
    """
    import torch

    from ..data.config import PipelineBaseData
    from ..io.inputs import InputItem, iter_frames
    from ..pipeline import SOWLv2Pipeline

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    config = PipelineBaseData(owl_model=job["owl"], sam_model=job["sam"], device=job["device"],
                              dtype=job["dtype"], progress=False, match_iou=0.0, max_lost=10**9, detect_every=10)
    boxes = np.asarray(job["boxes"], np.float32)
    loaded = SOWLv2Pipeline(config)
    pipe = SOWLv2Pipeline(config, detector=FixedBoxesDetector(loaded.detector, boxes, np.arange(len(boxes))),
                          association=ForcedTrackManager)
    del loaded
    _make_present(pipe.tracker.model)
    # imports and loading; VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's RSS at fork
    load_peak = _proc_status_mb("VmHWM") or _rss_mb()
    runs = []
    for spec in job["runs"]:
        before = _proc_status_mb("VmRSS")
        reset = _reset_peak_rss()
        t0 = time.perf_counter()
        item = InputItem(Path(spec["video"]), "video", "video")
        video: Any = item
        if spec["mode"] == "naive":
            video = list(iter_frames(item))
        count = sum(1 for _ in pipe.track(video, job["prompts"]))
        del video
        run_peak = _proc_status_mb("VmHWM") if reset else None
        runs.append({"mode": spec["mode"], "frames": count,
                     "peak_rss_mb": max(load_peak, run_peak or _rss_mb()), "rss_before_mb": before,
                     "run_peak_rss_mb": run_peak,
                     "run_growth_mb": None if run_peak is None or before is None else round(run_peak - before, 1),
                     "seconds": round(time.perf_counter() - t0, 2)})
    return {"load_peak_rss_mb": load_peak, "runs": runs}


# ---------------------------------------------------------------------------------------------- output
