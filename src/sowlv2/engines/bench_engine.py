"""Throughput of ``--engine ray`` with 1 and 2 workers, and Ray's start-up overhead, in one run.

    python -m sowlv2.engines.bench_engine                 # writes benchmarks/results/engine-cpu.{json,md}

Makes ``--videos`` short synthetic videos (a square and a disc moving over a gradient), starts Ray on
this machine once (the start-up overhead: ``ray.init``), then runs the whole set with the ray engine
``--repeats`` times per worker count, alternating 1 and 2 workers so that a change of the machine's
load hits both alike. Each worker has 1 CPU and 1 torch thread and the demo models (shipped, no
download). Per run: the wall time of ``SOWLv2Pipeline.process``, the workers' start (process start,
imports, model loading: ``engine.start_seconds`` of run.json), and the throughput after the start
(frames / (wall - start)). The ratio is the median 2-worker throughput over the median 1-worker one
(target >= 1.6 on 2 idle cores). The load average is recorded: a shared machine distorts the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TARGET_RATIO = 1.6


def make_videos(folder: Path, count: int, frames: int, size: tuple[int, int] = (160, 120)) -> list[Path]:
    """``count`` H.264 videos of ``frames`` frames (W x H = ``size``): a red square and a green disc
    moving over a blue gradient, each video a little different."""
    from ..io.video import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for k in range(count):
        path = folder / f"video{k}.mp4"
        with VideoWriter(path, fps=10.0) as vw:
            for t in range(frames):
                img = np.zeros((h, w, 3), np.uint8)
                img[..., 2] = (xx * 255 // w).astype(np.uint8)
                x0 = (5 + 3 * t + 7 * k) % (w - 30)
                img[20:50, x0:x0 + 30] = (220, 40, 40)
                img[(xx - (w - 40 - 2 * t) % w) ** 2 + (yy - 80 + k) ** 2 < 200] = (40, 200, 60)
                vw.write(img)
        paths.append(path)
    return paths


def _cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) jiffies of the whole machine from /proc/stat (Linux), or None."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return values[3] + values[4], sum(values)


def _autogroup() -> bool | None:
    """Whether Linux groups CPU shares by session (autogroup): then every process of this run (the
    driver, Ray, both workers) shares one session's share of a busy machine, however many workers."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def _run(folder: Path, out: Path, workers: int, prompts: list[str]) -> dict:
    from ..data.config import PipelineBaseData
    from ..pipeline import SOWLv2Pipeline

    shutil.rmtree(out, ignore_errors=True)
    config = PipelineBaseData(owl_model="demo", sam_model="demo", device="cpu", engine="ray", workers=workers,
                              cpus_per_worker=1, progress=False)
    ticks0 = _cpu_ticks()
    t0 = time.perf_counter()
    reports = SOWLv2Pipeline(config).process(str(folder), prompts, str(out))
    wall = time.perf_counter() - t0
    ticks1 = _cpu_ticks()
    idle = (round((ticks1[0] - ticks0[0]) / max(ticks1[1] - ticks0[1], 1), 3)
            if ticks0 and ticks1 else None)
    run = json.loads((out / "run.json").read_text())
    frames = sum(r.frames for r in reports)
    start = run["engine"]["start_seconds"]
    return {"workers": workers, "wall_s": round(wall, 3), "start_s": start, "frames": frames,
            "inputs_done": sum(r.status == "done" for r in reports),
            "frames_per_s_after_start": round(frames / max(wall - start, 1e-9), 3),
            "frames_per_s_wall": round(frames / wall, 3), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "machine_idle_share": idle,
            "input_seconds": [run["inputs"][r.name]["seconds"] for r in reports if r.status == "done"]}


def run_bench(videos: int = 8, frames: int = 32, repeats: int = 2, work: Path | None = None) -> dict:
    """Run the benchmark; returns the report (see the module docstring)."""
    import ray

    from .ray_engine import connect

    tmp = Path(work or tempfile.mkdtemp(prefix="sowlv2-engine-bench-"))
    folder = tmp / "videos"
    make_videos(folder, videos, frames)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    started = connect(ray, None)
    ray_start = time.perf_counter() - t0
    try:
        runs = []
        for _ in range(repeats):
            for workers in (1, 2):
                runs.append(_run(folder, tmp / f"out{workers}", workers, ["red square", "green disc"]))
                log.info("%s", runs[-1])
    finally:
        if started:
            ray.shutdown()
    one = statistics.median(r["frames_per_s_after_start"] for r in runs if r["workers"] == 1)
    two = statistics.median(r["frames_per_s_after_start"] for r in runs if r["workers"] == 2)
    one_wall = statistics.median(r["frames_per_s_wall"] for r in runs if r["workers"] == 1)
    two_wall = statistics.median(r["frames_per_s_wall"] for r in runs if r["workers"] == 2)
    import ray as _ray
    import torch

    from .. import __version__

    return {"videos": videos, "frames_per_video": frames, "size": [160, 120], "models": "demo", "device": "cpu",
            "repeats": repeats, "cpu_count": os.cpu_count(), "ray_init_s": round(ray_start, 3),
            "ray_started_here": started, "runs": runs,
            "frames_per_s_1_worker": one, "frames_per_s_2_workers": two, "ratio": round(two / one, 3),
            "ratio_wall": round(two_wall / one_wall, 3), "target_ratio": TARGET_RATIO,
            "pass": two / one >= TARGET_RATIO, "autogroup": _autogroup(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "versions": {"sowlv2": __version__, "ray": _ray.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def to_markdown(r: dict) -> str:
    lines = [f"# Engine benchmark: --engine ray, 1 vs 2 workers ({r['date']})", "",
             f"{r['videos']} videos x {r['frames_per_video']} frames ({r['size'][0]}x{r['size'][1]}), demo models, "
             f"CPU, 1 CPU and 1 torch thread per worker, {r['cpu_count']} cores; {r['repeats']} run(s) per worker "
             "count, alternating. Command: `python -m sowlv2.engines.bench_engine`.", "",
             "| workers | wall s | workers' start s | frames/s after start | frames/s wall | median s per input "
             "| machine idle | load average (1 min) |",
             "|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        lines.append(f"| {x['workers']} | {x['wall_s']} | {x['start_s']} | {x['frames_per_s_after_start']} | "
                     f"{x['frames_per_s_wall']} | {statistics.median(x['input_seconds']):.2f} | "
                     f"{x['machine_idle_share']} | {x['loadavg'][0]} |")
    lines += ["", f"- Throughput ratio 2 / 1 workers (medians, after the workers' start): **{r['ratio']}** "
              f"(target >= {r['target_ratio']}: {'PASS' if r['pass'] else 'FAIL'}); on wall time: {r['ratio_wall']}",
              f"- Ray start-up (`ray.init` of a local instance, measured separately): {r['ray_init_s']} s; "
              "each run's workers' start (process, imports, models) is the 'workers' start' column",
              f"- Load average before / after: {r['loadavg_before']} / {r['loadavg_after']} "
              "(other processes on the machine take CPU from the workers and distort the ratio); "
              "machine idle: the share of all cores idle during the run",
              f"- Linux autogroup scheduling: {r['autogroup']} (when on, every process of this session, both "
              "workers included, shares one session's CPU share of a busy machine: a second worker then "
              "halves each worker's speed instead of doubling throughput)", ""]
    return "\n".join(lines)


def command(argv: list[str]) -> str:
    """Run (``argv`` as on the command line), write the reports; the line the command line prints."""
    p = argparse.ArgumentParser(prog="python -m sowlv2.engines.bench_engine", description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=32, help="frames per video")
    p.add_argument("--repeats", type=int, default=2, help="runs per worker count")
    p.add_argument("--out", default="benchmarks/results", help="folder of engine-cpu.json / .md")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run_bench(a.videos, a.frames, a.repeats)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine-cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "engine-cpu.md").write_text(to_markdown(report))
    return (f"wrote {out / 'engine-cpu.json'} and {out / 'engine-cpu.md'}: ratio {report['ratio']} "
            f"(target >= {TARGET_RATIO}), Ray start-up {report['ray_init_s']} s")


def main(argv: list[str] | None = None) -> int:
    """``python -m sowlv2.engines.bench_engine ARGS``: the same as ``sowlv2 bench engine ARGS``."""
    from ..cli import bench_main

    return bench_main(["engine", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
