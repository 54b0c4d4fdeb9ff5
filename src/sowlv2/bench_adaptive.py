"""Wall time of the adaptive-compute modes at real size, as ratios measured in one run (issue 13, item 5).

``python -m sowlv2.bench_adaptive --out benchmarks/results/`` runs the whole pipeline
(``SOWLv2Pipeline.process``: decode, select, detect, track, fill, write) on one synthetic world video
with real-size architectures and random weights (the models of ``sowlv2 bench``: OWLv2 B/16 at 960 px,
SAM 2.1 hiera-tiny at 1024 px, V-JEPA 2 ViT-L at 256 px, built locally once; nothing is downloaded), in
these modes:

- ``default``: every frame tracked, the detector every 10th frame (today's default);
- ``uniform_35``: a uniform stride, 35% of the frames tracked, the detector every 10th;
- ``vjepa2_35``: V-JEPA 2 decides, 35% tracked, 10% detected; V-JEPA 2's own time (reading the
  video one clip ahead and encoding it) is part of the wall;
- ``pixel_35``: the pixel-difference selector at the same budgets.

Each mode's wall time is divided by the default's. The models are loaded once and warmed up before
the first timed run; the runs take turns in one process, so they see the same machine. As in
``sowlv2 bench``, :class:`~sowlv2.bench.FixedBoxesDetector` runs the real OWLv2 and then returns the
world's true boxes, and :class:`~sowlv2.bench.ForcedTrackManager` keeps exactly those tracks, so every
mode tracks the same objects (random weights would otherwise decide how many).

A mode whose settings this commit does not know is reported as unavailable (with the reason).
``--quick`` uses tiny models (seconds; for tests).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from .errors import SOWLv2Error, UsageError

log = logging.getLogger(__name__)

TRACK_SHARE = 0.35
DETECT_SHARE = 0.1
PIXEL_SETTINGS = {"keyframe_strategy": "pixel"}


def modes(pixel: dict | None = None) -> dict[str, dict]:
    """Mode name -> PipelineBaseData changes."""
    pixel = PIXEL_SETTINGS if pixel is None else pixel
    every = round(1 / DETECT_SHARE)
    return {
        "default": {"detect_every": every},
        "uniform_35": {"detect_every": every, "track_budget": TRACK_SHARE},
        "vjepa2_35": {"enable_vjepa2": True, "keyframe_budget": DETECT_SHARE, "track_budget": TRACK_SHARE},
        "pixel_35": {**pixel, "keyframe_budget": DETECT_SHARE, "track_budget": TRACK_SHARE},
    }


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"bench_adaptive: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sowlv2.bench_adaptive",
                description="Wall time of the adaptive-compute modes (default, uniform stride, V-JEPA 2, pixel "
                            "difference) at real size with random weights, as ratios to the default.")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and markdown report")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--frames", type=int, default=None, help="frames of the video (default 20; quick 10)")
    p.add_argument("--objects", type=int, default=2, help="objects tracked (default 2)")
    p.add_argument("--modes", nargs="+", default=None, help=f"modes to run (default all: {', '.join(modes())})")
    p.add_argument("--pixel-settings", type=json.loads, default=None,
                   help="PipelineBaseData keys of the pixel-difference selector "
                        f"(default {json.dumps(PIXEL_SETTINGS)})")
    p.add_argument("--quick", action="store_true", help="tiny models (seconds; for tests)")
    p.add_argument("--models", default=None, help="cache folder of the built models (as sowlv2 bench)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; quick 1)")
    p.add_argument("--name", default=None, help="report file stem (default bench-adaptive-<device>-<dtype>[-quick])")
    return p


def _selector_factory(bench, cfg):
    """A selector factory reusing the bench's loaded V-JEPA 2 (None: the pipeline builds it from ``cfg``)."""
    if not getattr(cfg, "enable_vjepa2", False):
        return None
    from . import keyframes

    make = keyframes.make_selector
    params = inspect.signature(make).parameters
    for name in ("encoder", "optimizer"):
        if name in params:
            opt = bench.vjepa
            return lambda: make(cfg, **{name: opt})
    log.warning("make_selector takes no encoder: V-JEPA 2 is loaded in each run (its loading time is in the wall)")
    return None


def run_mode(bench, name: str, changes: dict, video: Path, boxes, prompts: list[str]) -> dict:
    """One timed whole-pipeline run; its wall, CPU, model calls and stage seconds."""
    import numpy as np

    from .bench import FixedBoxesDetector
    from .bench.machine import _load

    try:
        cfg = bench.base_config(**changes)
    except (TypeError, UsageError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    fake = FixedBoxesDetector(bench.detector, boxes, np.arange(len(boxes)))
    bench.tracker  # noqa: B018 - loaded and instrumented before the pipeline takes it
    pipe = bench.pipeline(fake, selector=_selector_factory(bench, cfg), **changes)
    out = bench.tmp / f"adaptive-{name}"
    load = _load()
    w0, c0 = time.perf_counter(), time.process_time()
    reports = pipe.process(str(video), prompts, str(out))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if reports[0].status != "done":
        raise SOWLv2Error(f"bench_adaptive: run {name} failed: {reports[0].error}")
    res = json.loads((Path(reports[0].output) / "results.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    st = res["stats"]
    kinds = [f.get("kind") for f in res["frames"]]
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "frames": st["frames"],
            "detector_calls": st["detector_calls"], "tracker_calls": st.get("tracker_calls", st["frames"]),
            "fills": st.get("fills", 0), "kinds": "".join((k or "t")[0] for k in kinds),
            "seconds": st["seconds"], "tracks": len(res["tracks"]), "load": load}


def run(argv: list[str]) -> tuple[dict, Path, Path]:
    """Parse ``argv``, run the modes, write ``<name>.json`` and ``<name>.md``; returns the report and paths."""
    from .bench import Bench, BenchSettings, machine_info, model_paths, versions

    ns = build_parser().parse_args(argv)
    all_modes = modes(ns.pixel_settings)
    chosen = ns.modes or list(all_modes)
    unknown = [m for m in chosen if m not in all_modes]
    if unknown:
        raise UsageError(f"bench_adaptive: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(all_modes)}")
    if "default" not in chosen:
        chosen = ["default", *chosen]
    frames = ns.frames or (10 if ns.quick else 20)
    if frames < 2:
        raise UsageError(f"bench_adaptive: --frames must be >= 2, got {frames}")
    settings = BenchSettings(device=ns.device, dtype=ns.dtype, frames=frames,
                             size=(160, 120) if ns.quick else (320, 240), objects=ns.objects, quick=ns.quick,
                             output=Path(ns.out), only=("video",), repeats=1,
                             threads=ns.threads if ns.threads is not None else (1 if ns.quick else None),
                             argv=list(argv))
    if ns.models:
        settings.models = Path(ns.models).expanduser()
    t0 = time.perf_counter()
    bench = Bench(settings)
    bench.paths = model_paths(settings)
    try:
        vid = bench.world("video")
        boxes, prompts = vid["boxes"], vid["labels"]
        bench.warm_up(vid)
        if any(all_modes[m].get("enable_vjepa2") for m in chosen):
            bench.vjepa.extract_video_features(vid["frames"][:16], batch_size=1)
        runs = {}
        for name in chosen:
            log.info("bench_adaptive: %s", name)
            runs[name] = run_mode(bench, name, all_modes[name], vid["path"], boxes, prompts)
            log.info("bench_adaptive: %s %s", name, {k: v for k, v in runs[name].items() if k != "seconds"})
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    base = runs["default"]
    ratios = {name: round(r["wall_s"] / base["wall_s"], 4) for name, r in runs.items() if "wall_s" in r}
    cpu_ratios = {name: round(r["cpu_s"] / base["cpu_s"], 4) for name, r in runs.items() if "cpu_s" in r}
    target = ratios.get("vjepa2_35")
    report = {
        "command": "python -m sowlv2.bench_adaptive " + " ".join(argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(bench.device), "versions": versions(),
        "settings": {"device": str(bench.device), "dtype": ns.dtype, "frames": frames,
                     "size": list(settings.size), "objects": ns.objects, "quick": ns.quick,
                     "track_share": TRACK_SHARE, "detect_share": DETECT_SHARE},
        "models": {**bench.model_info, "sam2": {"size": "tiny" if ns.quick else settings.sam_size}},
        "modes": {n: all_modes[n] for n in chosen}, "runs": runs, "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "target": {"what": "V-JEPA 2 adaptive (35% tracked, 10% detected) wall / default wall", "value": target,
                   "limit": 0.45, "met": None if target is None else target <= 0.45},
    }
    stem = ns.name or f"bench-adaptive-{bench.device.type}-{ns.dtype}" + ("-quick" if ns.quick else "")
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"{stem}.json", out / f"{stem}.md"
    jpath.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    mpath.write_text(markdown(report), encoding="utf-8")
    return report, jpath, mpath


def markdown(report: dict) -> str:
    st, m = report["settings"], report["machine"]
    lines = [f"# Adaptive compute, wall time: {st['device']}, {st['dtype']}"
             + (" (quick: tiny models)" if st["quick"] else ""), "",
             f"- command: `{report['command']}`",
             f"- date: {report['date']}; took {report['seconds']} s",
             f"- machine: {m.get('cpu')}, {m.get('cpu_count')} cores ({m.get('torch_threads')} torch threads)",
             f"- input: synthetic world, {st['frames']} frames {st['size'][0]}x{st['size'][1]}, {st['objects']} "
             "objects (true boxes after the real OWLv2 ran; tracks forced); real-size architectures, random weights"
             if not st["quick"] else f"- input: {st['frames']} frames, tiny models",
             "- models: " + "; ".join(f"{k} " + ", ".join(f"{a}={b}" for a, b in d.items())
                                      for k, d in report["models"].items()),
             "- load average (1, 5, 15 min) before each run: " + "; ".join(
                 f"{n} {r['load']}" for n, r in report["runs"].items() if "load" in r),
             "", "| mode | wall s | / default | CPU s | / default | detector calls | tracker calls | fills | "
             "select s | detect s | track s | frames (d/t/f) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        if "error" in r:
            lines.append(f"| {name} | unavailable: {r['error']} |" + " |" * 10)
            continue
        sec = r["seconds"]
        lines.append(f"| {name} | {r['wall_s']:.1f} | {report['ratios'][name]:.3f} | {r['cpu_s']:.1f} | "
                     f"{report['cpu_ratios'][name]:.3f} | "
                     f"{r['detector_calls']} | {r['tracker_calls']} | {r['fills']} | {sec.get('select', 0):.1f} | "
                     f"{sec.get('detect', 0):.1f} | {sec.get('track', 0):.1f} | `{r['kinds']}` |")
    t = report["target"]
    res = "n/a" if t["met"] is None else ("met" if t["met"] else "**not met**")
    lines += ["", f"Target: {t['what']} <= {t['limit']}: {t['value']} ({res}); CPU-time ratio "
              f"{report['cpu_ratios'].get('vjepa2_35')}.", ""]
    return "\n".join(lines)


def command(argv: list[str]) -> str:
    """Run (``argv`` as on the command line); the text the command line prints: the report and where
    it was written. Raises ``SOWLv2Error`` (a usage error exits 2)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report, jpath, mpath = run(argv)
    return f"{markdown(report)}\nwrote {jpath} and {mpath}"


def main(argv: list[str] | None = None) -> int:
    """``python -m sowlv2.bench_adaptive ARGS``: the same as ``sowlv2 bench adaptive ARGS``."""
    from .cli import bench_main

    return bench_main(["adaptive", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
