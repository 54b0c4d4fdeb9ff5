"""Backend benchmark: what each detector and tracker costs, measured in one run (random weights).

Sections (each a dict in the result; ratios are within this run, so machine load cancels out as far
as it can):

- ``detectors``: seconds per image of each detector adapter at ``size`` ("real": the released
  architectures; "tiny": the test checkpoints), one warm-up call then the median of ``repeats``.
- ``trackers``: seconds of one tracking step with 1 and with 2 objects (frame 0 prompted, then
  ``steps`` tracked frames; the last step is timed: image encoding + memory attention + memory
  encoding), and ``edgetam_vs_sam2_2obj`` = EdgeTAM / SAM 2 hiera-tiny.
- ``memory``: per tracker, a child process per length runs ``mem_frames`` and ``10 * mem_frames``
  frames with 2 objects at ``mem_size`` and reports its peak RSS and the bytes the tracking session
  holds at the end; ``sam3_video_model`` is transformers' own ``Sam3VideoModel`` (detector on every
  frame, every frame kept) on the same frames.
- ``sam3``: SAM 3 through SOWLv2 (``Sam3Detector`` on key frames every 4th frame = a 25% budget,
  ``Sam3VideoTracker``, shared ViT, SOWLv2's association) against ``Sam3VideoModel`` on the same
  ``video_frames`` frames, each in a child process: wall seconds, peak RSS, session bytes, at
  ``mem_size``.

Random weights prove cost, never quality. Nothing is printed: ``log`` receives progress lines.
Run ``python -m sowlv2.bench_backends --out benchmarks/results/`` (writes ``backends.json`` and
``backends.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROMPTS = ["car", "person"]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random-ish RGB image (H, W, 3) uint8 (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w, 1)), (yy * 255 // max(h, 1)), np.full_like(xx, 128)], -1)
    return np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- model factories (in memory)

def _owlv2(size: str, device):
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    from .models.owlv2 import Owlv2Detector
    from .models.random_init import byte_tokenizer

    tok = byte_tokenizer(16)
    if size == "real":
        config, side = Owlv2Config(text_config=dict(vocab_size=49408), vision_config=dict(image_size=960,
                                                                                          patch_size=16)), 960
    else:
        config = Owlv2Config(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                              num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16),
                             vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, image_size=128, patch_size=16),
                             projection_dim=32)
        side = 128
    proc = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": side, "width": side}), tokenizer=tok)
    return Owlv2Detector(Owlv2ForObjectDetection(config).eval(), proc, device, torch.float32)


def _detector(name: str, size: str, device):
    import torch

    from .models import random_backends as rb

    if name == "owlv2":
        return _owlv2(size, device)
    if name in ("grounding-dino", "mm-grounding-dino"):
        from .models.grounding_dino import GroundingDinoDetector

        model, proc = rb.build_grounding_dino(None, size, mm=name.startswith("mm"))
        return GroundingDinoDetector(model.eval(), proc, device, torch.float32)
    if name == "omdet-turbo":
        from .models.omdet_turbo import OmDetTurboDetector

        model, proc = rb.build_omdet_turbo(None, size)
        return OmDetTurboDetector(model.eval(), proc, device, torch.float32)
    if name == "sam3":
        return _sam3(size, device)[0]
    raise ValueError(f"unknown detector {name!r}")


def _sam3(size: str, device):
    """(Sam3Detector, Sam3VideoTracker) of one random sam3_video model, sharing the ViT backbone."""
    import torch
    from transformers import Sam3Processor, Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

    from .models import random_backends as rb
    from .models.caching import LastCallCache
    from .models.sam3 import Sam3Detector
    from .models.sam_family import Sam3VideoTracker

    with tempfile.TemporaryDirectory() as tmp:
        model, proc = rb.build_sam3(None, size)
        proc.save_pretrained(tmp)
        det_proc, trk_proc = Sam3Processor.from_pretrained(tmp), Sam3TrackerVideoProcessor.from_pretrained(tmp)
    config = model.config
    detector_model = model.detector_model
    tracker_model = Sam3TrackerVideoModel(config.tracker_config, remove_vision_encoder=True)
    tracker_model.load_state_dict(model.tracker_model.state_dict(), strict=False)
    from transformers.models.sam3.modeling_sam3 import Sam3VisionModel

    vision = Sam3VisionModel(config.tracker_config.vision_config)
    shared = LastCallCache(detector_model.vision_encoder.backbone)
    detector_model.vision_encoder.backbone = shared
    vision.backbone = shared
    tracker_model.vision_encoder = vision
    del model
    detector = Sam3Detector(detector_model.eval().requires_grad_(False), det_proc, device, torch.float32)
    detector.backbone = shared
    tracker = Sam3VideoTracker(tracker_model.eval().requires_grad_(False), trk_proc, device=str(device))
    return detector, tracker


def _tracker(name: str, size: str, device):
    import torch

    from .models.sam2_video import Sam2VideoTracker

    if name == "sam2-hiera-tiny":
        from transformers import Sam2VideoConfig, Sam2VideoModel

        from .models.random_backends import _sam_processor
        from .models.random_init import _sam2_config_kwargs

        config = Sam2VideoConfig(**_sam2_config_kwargs("hiera-tiny" if size == "real" else "tiny"))
        model = Sam2VideoModel(config).eval()
        if size != "real":
            with torch.no_grad():
                model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(20.0)
        s = int(config.image_size)
        return Sam2VideoTracker(model.requires_grad_(False), _sam_processor(s, s // 4), device=str(device))
    if name == "edgetam":
        from .models import random_backends as rb
        from .models.sam_family import EdgeTamVideoTracker

        model, proc = rb.build_edgetam(None, size)
        return EdgeTamVideoTracker(model.requires_grad_(False), proc, device=str(device))
    if name == "sam3":
        return _sam3(size, device)[1]
    raise ValueError(f"unknown tracker {name!r}")


# ---------------------------------------------------------------------------- measurements

def _time_detector(det, image: np.ndarray, repeats: int) -> float:
    det.detect(image, PROMPTS, threshold=0.0)  # warm-up (and the text encoding)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        det.detect(image, PROMPTS, threshold=0.0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _boxes(h: int, w: int, n: int) -> dict[int, np.ndarray]:
    boxes = [np.array([0.1 * w, 0.1 * h, 0.45 * w, 0.6 * h], np.float32),
             np.array([0.5 * w, 0.3 * h, 0.9 * w, 0.9 * h], np.float32)]
    return {i + 1: boxes[i] for i in range(n)}


def _time_tracker(tracker, image: np.ndarray, n_objects: int, steps: int) -> float:
    """Seconds of the last of ``steps`` tracked frames after prompting ``n_objects`` on frame 0."""
    from .types import Frame

    tracker.reset()
    h, w = image.shape[:2]
    f0 = Frame(index=0, time=0.0, image=image)
    tracker.track(f0)
    tracker.prompt(_boxes(h, w, n_objects), f0)
    seconds = 0.0
    for i in range(1, steps + 1):
        frame = Frame(index=i, time=i / 25, image=np.roll(image, 3 * i, axis=1))
        t0 = time.perf_counter()
        out = tracker.track(frame)
        seconds = time.perf_counter() - t0
        assert len(out) == n_objects
    tracker.reset()
    return seconds


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which
    a child inherits from the parent it was forked from), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _child_memory(backend: str, frames: int, size: str) -> dict:
    """Run ``frames`` frames with 2 objects through ``backend`` in this process; peak RSS and session bytes."""
    import torch

    from .models.sam2_video import _storage_bytes
    from .types import Frame

    torch.set_num_threads(1)
    device = torch.device("cpu")
    side = 1008 if size == "real" else 128
    image = _image(side * 3 // 4, side)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    if backend == "sam3_video_model":
        from transformers import Sam3VideoProcessor

        from .models import random_backends as rb

        model, proc = rb.build_sam3(None, size)
        with tempfile.TemporaryDirectory() as tmp:
            proc.save_pretrained(tmp)
            proc = Sam3VideoProcessor.from_pretrained(tmp)
        model = model.eval()
        # Random weights: accept every detection, at most 2 objects (as SOWLv2's --max-objects 2 below)
        model.score_threshold_detection = model.new_det_thresh = 0.0
        model.max_num_objects = 2
        session = proc.init_video_session(inference_device=device, dtype=torch.float32)
        proc.add_text_prompt(session, PROMPTS)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(frames):
                pix = proc(images=np.roll(image, 3 * i, axis=1), return_tensors="pt").pixel_values[0]
                model(inference_session=session, frame=pix)
        held = _storage_bytes([session.processed_frames, session.output_dict_per_obj
                               if hasattr(session, "output_dict_per_obj") else {}, vars(session)])
        return {"frames": frames, "peak_rss_mb": _peak_rss_mb(), "session_bytes": held,
                "stored_frames": len(session.processed_frames or {}), "seconds": time.perf_counter() - t0,
                "objects": len(getattr(session, "obj_ids", []) or [])}
    tracker = _tracker(backend, size, device)
    f0 = Frame(index=0, time=0.0, image=image)
    t0 = time.perf_counter()
    tracker.track(f0)
    tracker.prompt(_boxes(h, w, 2), f0)
    for i in range(1, frames):
        tracker.track(Frame(index=i, time=i / 25, image=np.roll(image, 3 * i, axis=1)))
    state = tracker.state_size()
    return {"frames": frames, "peak_rss_mb": _peak_rss_mb(), "session_bytes": state["tensor_bytes"],
            "stored_frames": state["frames"], "seconds": time.perf_counter() - t0}


def _child_sam3(mode: str, frames: int, size: str, every: int = 4) -> dict:
    """SAM 3 on ``frames`` frames: ``ours`` (SOWLv2 pipeline, detector every ``every``-th frame) or
    ``theirs`` (``Sam3VideoModel``, detector on every frame). Wall seconds, peak RSS, session bytes."""
    import torch

    torch.set_num_threads(1)
    if mode == "theirs":
        return _child_memory("sam3_video_model", frames, size)
    from .data.config import PipelineBaseData
    from .pipeline import SOWLv2Pipeline
    from .types import Frame

    device = torch.device("cpu")
    detector, tracker = _sam3(size, device)
    side = 1008 if size == "real" else 128
    image = _image(side * 3 // 4, side)
    pipe = SOWLv2Pipeline(PipelineBaseData(device="cpu", detect_every=every, threshold=0.0, max_objects=2,
                                           progress=False), detector=detector, tracker=tracker, device="cpu")
    video = [Frame(index=i, time=i / 25, image=np.roll(image, 3 * i, axis=1)) for i in range(frames)]
    t0 = time.perf_counter()
    n = sum(1 for _ in pipe.track(video, PROMPTS))
    wall = time.perf_counter() - t0
    return {"frames": n, "peak_rss_mb": _peak_rss_mb(), "session_bytes": tracker.state_size()["tensor_bytes"],
            "stored_frames": tracker.state_size()["frames"], "seconds": wall,
            "detector_calls": pipe.last_run.detector_calls, "vit_runs": detector.backbone.runs,
            "objects": len(tracker.object_ids)}


def _in_child(kind: str, *args) -> dict:
    """Run ``_child_<kind>(*args)`` in a fresh Python process (own peak RSS); returns its dict."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "sowlv2.bench_backends", "--child", kind, "--child-out", str(out),
               "--child-args", json.dumps(list(args))]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------- the run

DETECTORS = ("owlv2", "grounding-dino", "omdet-turbo", "sam3")
TRACKERS = ("sam2-hiera-tiny", "edgetam", "sam3")


def run_backend_bench(*, size: str = "real", detectors=DETECTORS, trackers=TRACKERS, repeats: int = 1,
                      steps: int = 2, mem_size: str = "tiny", mem_frames: int = 20, video_frames: int = 16,
                      threads: int | None = 1, memory: bool = True,
                      log: Callable[[str], None] | None = None) -> dict:
    """Measure every backend in one run; returns the result dict (see the module docstring).

    Args:
        size: ``"real"`` or ``"tiny"`` for the detector and tracking-step sections.
        detectors, trackers: which to measure (names of ``DETECTORS`` / ``TRACKERS``).
        repeats: timed detector calls per detector (after one warm-up); steps: tracked frames per
            tracking-step measurement (the last is timed).
        mem_size: model size for the memory and SAM 3 video sections (child processes).
        mem_frames: N of the N vs 10N memory comparison; video_frames: frames of the SAM 3 comparison.
        threads: torch intra-op threads (None: leave torch's default). On a shared busy CPU one
            thread avoids threads spin-waiting on each other.
        memory: run the memory and SAM 3 video sections (child processes).
        log: receives one line per measurement.
    """
    import torch

    say = log or (lambda _msg: None)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cpu")
    t_start = time.perf_counter()
    result: dict = {"size": size, "mem_size": mem_size, "threads": torch.get_num_threads(),
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__, "load_avg_at_start": os.getloadavg()[0]},
                    "detectors": {}, "trackers": {}, "memory": {}, "sam3": {}}
    side = {"real": 1024, "tiny": 128}[size]
    image = _image(side * 3 // 4, side)
    torch.manual_seed(0)
    with torch.inference_mode():
        for name in detectors:
            det = _detector(name, size, device)
            params = sum(p.numel() for p in det.model.parameters()) / 1e6
            secs = _time_detector(det, image, repeats)
            result["detectors"][name] = {"seconds_per_image": round(secs, 3), "params_m": round(params, 1)}
            say(f"detector {name}: {secs:.2f} s per {image.shape[1]}x{image.shape[0]} image ({params:.0f} M)")
            del det
        for name in trackers:
            tracker = _tracker(name, size, device)
            params = sum(p.numel() for p in tracker.model.parameters()) / 1e6
            one = _time_tracker(tracker, image, 1, steps)
            two = _time_tracker(tracker, image, 2, steps)
            result["trackers"][name] = {"step_1obj_s": round(one, 3), "step_2obj_s": round(two, 3),
                                        "params_m": round(params, 1)}
            say(f"tracker {name}: step {one:.2f} s (1 object), {two:.2f} s (2 objects) ({params:.0f} M)")
            del tracker
    trk = result["trackers"]
    if "edgetam" in trk and "sam2-hiera-tiny" in trk:
        result["edgetam_vs_sam2_2obj"] = round(trk["edgetam"]["step_2obj_s"] / trk["sam2-hiera-tiny"]["step_2obj_s"], 3)
    for name in (*trackers, "sam3_video_model") if memory else ():
        if name == "sam3_video_model" and "sam3" not in trackers:
            continue
        short, long = (_in_child("memory", name, n, mem_size) for n in (mem_frames, 10 * mem_frames))
        entry = {"short": short, "long": long}
        if "error" not in short and "error" not in long:
            entry["peak_rss_ratio"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)
            entry["session_bytes_ratio"] = round(long["session_bytes"] / max(short["session_bytes"], 1), 3)
        result["memory"][name] = entry
        say(f"memory {name}: {mem_frames} vs {10 * mem_frames} frames: {entry}")
    if memory and "sam3" in trackers and video_frames:
        ours, theirs = _in_child("sam3", "ours", video_frames, mem_size), _in_child("sam3", "theirs", video_frames,
                                                                                   mem_size)
        entry = {"ours": ours, "sam3_video_model": theirs}
        if "error" not in ours and "error" not in theirs:
            entry["wall_ratio"] = round(ours["seconds"] / theirs["seconds"], 3)
            entry["peak_rss_ratio"] = round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3)
        result["sam3"] = entry
        say(f"sam3 ours vs Sam3VideoModel on {video_frames} frames: {entry}")
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    return result


def write_report(result: dict, out: Path, command: str = "") -> tuple[Path, Path]:
    """Write ``backends.json`` and ``backends.md`` under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "backends.json", out / "backends.md"
    js.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Backend benchmark ({result['size']} size, random weights, CPU, {result['threads']} thread(s))", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    m = result["machine"]
    lines += [f"Machine: {m['cpus']} CPUs, load average {m['load_avg_at_start']:.1f} at start (shared), "
              f"torch {m['torch']}. Whole run {result['seconds']} s.", "",
              "| detector | parameters (M) | seconds per image |", "|---|---|---|"]
    for name, d in result["detectors"].items():
        lines.append(f"| {name} | {d['params_m']} | {d['seconds_per_image']} |")
    lines += ["", "| tracker | parameters (M) | step, 1 object (s) | step, 2 objects (s) |", "|---|---|---|---|"]
    for name, d in result["trackers"].items():
        lines.append(f"| {name} | {d['params_m']} | {d['step_1obj_s']} | {d['step_2obj_s']} |")
    if "edgetam_vs_sam2_2obj" in result:
        lines += ["", f"EdgeTAM / SAM 2 hiera-tiny tracking step with 2 objects: **{result['edgetam_vs_sam2_2obj']}**"]
    if result["memory"]:
        lines += ["", f"Memory ({result['mem_size']} size, child process per run): N vs 10N frames, 2 objects", "",
                  "| backend | frames | peak RSS (MB) | session bytes | stored frames | peak ratio | session ratio |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in result["memory"].items():
            s, lg = e["short"], e["long"]
            if "error" in s or "error" in lg:
                lines.append(f"| {name} | error: {s.get('error') or lg.get('error')} | | | | | |")
                continue
            lines.append(f"| {name} | {s['frames']} / {lg['frames']} "
                         f"| {s['peak_rss_mb']:.0f} / {lg['peak_rss_mb']:.0f} "
                         f"| {s['session_bytes']} / {lg['session_bytes']} "
                         f"| {s['stored_frames']} / {lg['stored_frames']} "
                         f"| {e.get('peak_rss_ratio')} | {e.get('session_bytes_ratio')} |")
    if result["sam3"]:
        e = result["sam3"]
        lines += ["", f"SAM 3 ({result['mem_size']} size): SOWLv2 (detector every 4th frame, bounded session) vs "
                  "transformers' Sam3VideoModel (detector every frame)", ""]
        for key in ("ours", "sam3_video_model"):
            lines.append(f"- {key}: {json.dumps(e[key])}")
        if "wall_ratio" in e:
            lines.append(f"- wall ratio ours / Sam3VideoModel: **{e['wall_ratio']}**; peak RSS ratio: "
                         f"**{e['peak_rss_ratio']}**")
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return js, md


def command(argv: list[str]) -> str:
    """Run (``argv`` as on the command line: ``--out DIR [--size tiny] ...``), write the report; the
    text the command line prints (the markdown report; nothing for a child process)."""
    p = argparse.ArgumentParser(prog="python -m sowlv2.bench_backends", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--size", choices=("real", "tiny"), default="real")
    p.add_argument("--mem-size", choices=("real", "tiny"), default="tiny")
    p.add_argument("--mem-frames", type=int, default=20)
    p.add_argument("--video-frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--detectors", nargs="*", default=list(DETECTORS), choices=DETECTORS)
    p.add_argument("--trackers", nargs="*", default=list(TRACKERS), choices=TRACKERS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--child-args", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        fn = {"memory": _child_memory, "sam3": _child_sam3}[a.child]
        Path(a.child_out).write_text(json.dumps(fn(*json.loads(a.child_args))), encoding="utf-8")
        return ""
    import logging

    logging.basicConfig(level=logging.WARNING)
    progress = logging.getLogger(__name__)
    progress.setLevel(logging.INFO)  # the bench's progress lines; other libraries stay at WARNING
    result = run_backend_bench(size=a.size, detectors=a.detectors, trackers=a.trackers, repeats=a.repeats,
                               steps=a.steps, mem_size=a.mem_size, mem_frames=a.mem_frames,
                               video_frames=a.video_frames, threads=a.threads, log=progress.info)
    js, md = write_report(result, Path(a.out), "python -m sowlv2.bench_backends " + " ".join(argv))
    return md.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m sowlv2.bench_backends ARGS``: the same as ``sowlv2 bench backends ARGS``."""
    from .cli import bench_main

    return bench_main(["backends", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
