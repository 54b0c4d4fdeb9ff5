"""``sowlv2 bench``: measured speed and memory of every stage and of the whole pipeline, against naive
baselines, written as a small JSON report and a markdown table.

What runs (sections, ``--only`` picks some):

* ``images``: one image with 1 and with 8 objects through ``SOWLv2Pipeline.process_image`` (one SAM 2
  encoding, all boxes decoded together) and the naive baseline (one SAM 2 encoding per box, as the old
  tool did). Gives OWLv2 per image, SAM 2 image encoding and SAM 2 box decoding per N boxes.
* ``io``: PyAV decoding per frame (the pipeline's reader) and writing per frame (``InputWriter`` with
  the default outputs: PNG masks and overlays, merged, two H.264 videos, JSON).
* ``vjepa2``: V-JEPA 2 encoder per clip.
* ``video``: whole-pipeline runs (``SOWLv2Pipeline.process``, outputs written) on a synthetic world
  video: detector on every frame, ``--detect-every 10`` and V-JEPA 2 key frames at a 25% budget. Gives
  the wall time, the share in model forward passes and the SAM 2 tracking step per N objects.
* ``memory``: peak RSS of a streaming run and of the naive one (all frames decoded into memory first)
  on N and 10N frames, each in its own process (``resource.getrusage``); on CUDA also the peak GPU
  memory of N and 10N frames with the benchmarked models.

Models: real-size architectures (OWLv2 B/16 at 960 px, SAM 2.1 hiera-tiny or hiera-small at 1024 px,
V-JEPA 2 ViT-L at 256 px) with random weights, built locally once into a cache folder (speed does not
depend on weight values; nothing is downloaded); ``--quick`` uses tiny ones.

Two documented fakes make random weights measurable (both at an output, never inside a model):

* :class:`FixedBoxesDetector` runs the real OWLv2 (pre-processing, forward, post-processing: its cost
  is real) and then returns N fixed boxes taken from the world's ground truth, so every run tracks the
  same N objects instead of what random weights "detect".
* :class:`ForcedTrackManager` (injected as the pipeline's association) keeps exactly those N tracks (every detection
  of the first key frame starts a track, later ones match, none re-prompts, none ends), and SAM 2's
  object-score bias is raised so that objects count as present and their masks are written (random
  weights put the score at about 0: "no object", empty masks, nothing to write).

Timings are medians of repeated runs after a warm-up; each sample records wall time and the process's
CPU time. The load average is recorded per section because the machine may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SOWLv2Error, UsageError
from .tracking.association import TrackManager
from .types import Detections

log = logging.getLogger(__name__)

SECTIONS = ("images", "io", "vjepa2", "video", "memory")
SAM_SIZES = ("hiera-tiny", "hiera-small")
IMAGE_OBJECTS = 8  # the "many objects" image
BUILD_VERSION = 1  # bump when the cached models must be rebuilt
DEFAULT_CACHE = Path(os.environ.get("SOWLV2_BENCH_MODELS", "~/.cache/sowlv2/bench-models")).expanduser()


# ---------------------------------------------------------------------------------------------- settings
@dataclass
class BenchSettings:
    """Parsed ``sowlv2 bench`` options (see :func:`build_parser`)."""

    device: str = "cpu"
    dtype: str = "float32"
    frames: int = 16
    size: tuple[int, int] = (320, 240)  # (width, height)
    objects: int = 2
    quick: bool = False
    output: Path = Path("benchmarks/results")
    only: tuple[str, ...] = SECTIONS
    repeats: int = 2
    models: Path = DEFAULT_CACHE
    sam_size: str = "hiera-tiny"
    memory_frames: int = 100
    memory_models: str = "tiny"
    seed: int = 0
    threads: int | None = None
    name: str | None = None
    argv: list[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"bench: {message}")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"size must be between 16x16 and 4096x4096, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sowlv2 bench", description="Measure the speed and memory of every stage and of the "
                "whole pipeline (real-size architectures with random weights, built locally; no download).")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model precision")
    p.add_argument("--frames", type=int, default=None, help="frames of the test video (default 16; quick 8)")
    p.add_argument("--size", type=_size, default=None, help="frame size WxH (default 320x240; quick 160x120)")
    p.add_argument("--objects", type=int, default=2, help="objects tracked in the video runs (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny models and short runs (seconds; for tests)")
    p.add_argument("--output", default="benchmarks/results", help="folder for the JSON and markdown report")
    p.add_argument("--only", default=None, help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats after the warm-up (default 2)")
    p.add_argument("--models", default=None, help=f"cache folder of the built models (default {DEFAULT_CACHE}, "
                                                   "or $SOWLV2_BENCH_MODELS)")
    p.add_argument("--sam-size", default="hiera-tiny", choices=list(SAM_SIZES),
                   help="SAM 2.1 architecture (default hiera-tiny; the tool's default model is hiera-small)")
    p.add_argument("--memory-frames", type=int, default=None,
                   help="N of the memory check (N and 10N frames; default 100; quick 6)")
    p.add_argument("--memory-models", default="tiny", choices=["tiny", "real"],
                   help="models of the RSS check: tiny (default; seconds) or the real-size ones (hours on a CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; quick: 1, which tiny models run fastest with "
                        "on a busy machine)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--name", default=None, help="report file stem (default bench-<device>-<dtype>[-quick])")
    return p


def _default(value, default):
    return default if value is None else value


def parse_args(argv: list[str]) -> BenchSettings:
    ns = build_parser().parse_args(argv)
    quick = ns.quick
    only = SECTIONS
    if ns.only:
        only = tuple(s.strip() for s in ns.only.split(",") if s.strip())
        unknown = [s for s in only if s not in SECTIONS]
        if unknown or not only:
            raise UsageError(f"bench: --only takes {', '.join(SECTIONS)}; got {ns.only!r}")
    s = BenchSettings(
        device=ns.device, dtype=ns.dtype, frames=_default(ns.frames, 8 if quick else 16),
        size=ns.size or ((160, 120) if quick else (320, 240)), objects=ns.objects, quick=quick,
        output=Path(ns.output), only=only, repeats=_default(ns.repeats, 2),
        models=Path(ns.models).expanduser() if ns.models else DEFAULT_CACHE, sam_size=ns.sam_size,
        memory_frames=_default(ns.memory_frames, 6 if quick else 100), memory_models=ns.memory_models,
        seed=ns.seed, threads=_default(ns.threads, 1 if quick else None), name=ns.name, argv=list(argv))
    if s.threads is not None and s.threads < 1:
        raise UsageError(f"bench: --threads must be >= 1, got {s.threads}")
    if s.frames < 2:
        raise UsageError(f"bench: --frames must be >= 2, got {s.frames}")
    if not 1 <= s.objects <= 12:
        raise UsageError(f"bench: --objects must be in 1..12 (kinds of the synthetic world), got {s.objects}")
    if s.repeats < 1:
        raise UsageError(f"bench: --repeats must be >= 1, got {s.repeats}")
    if s.memory_frames < 2:
        raise UsageError(f"bench: --memory-frames must be >= 2, got {s.memory_frames}")
    return s


# ---------------------------------------------------------------------------------------------- models
def model_paths(settings: BenchSettings) -> dict[str, Path]:
    """Build (once; cached) and return the model folders: ``owl``, ``sam``, ``vjepa``."""
    if settings.quick:
        return tiny_model_paths(settings.models)
    root = settings.models
    return {
        "owl": _cached(root / "owlv2-base", "owlv2", "base"),
        "sam": _cached(root / f"sam2-{settings.sam_size}", "sam2", settings.sam_size),
        "vjepa": _cached(root / "vjepa2-vitl", "vjepa2", "vitl"),
    }


def tiny_model_paths(root: Path) -> dict[str, Path]:
    return {"owl": _cached(root / "tiny-owlv2", "owlv2", "tiny"),
            "sam": _cached(root / "tiny-sam2", "sam2", "tiny"),
            "vjepa": _cached(root / "tiny-vjepa2", "vjepa2", "tiny")}


def _cached(folder: Path, kind: str, size: str) -> Path:
    """Build a random-weight checkpoint into ``folder`` unless a complete build is already there."""
    from .models import random_init

    marker = folder / ".bench-build.json"
    want = {"kind": kind, "size": size, "version": BUILD_VERSION}
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                return folder
        except (OSError, ValueError):
            pass
    if folder.exists():
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    log.info("building %s (%s) with random weights into %s", kind, size, folder)
    t0 = time.perf_counter()
    builder = {"owlv2": random_init.build_owlv2, "sam2": random_init.build_sam2,
               "vjepa2": random_init.build_vjepa2}[kind]
    builder(tmp, size=size)
    (tmp / ".bench-build.json").write_text(json.dumps(want))
    tmp.rename(folder)
    log.info("built %s in %.1f s", folder.name, time.perf_counter() - t0)
    return folder


def _make_present(model) -> None:
    """Bench-only: raise SAM 2's object-score bias so objects count as present (see the module docstring)."""
    import torch

    head = getattr(getattr(model, "mask_decoder", None), "pred_obj_score_head", None)
    if head is not None:
        with torch.no_grad():
            head.proj_out.bias.fill_(20.0)


def _param_count(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Sample:
    """One timed call: wall and process CPU seconds, the context it ran in, and tags."""

    wall: float
    cpu: float
    context: str
    tags: dict = field(default_factory=dict)


class Recorder:
    """Times calls of wrapped methods.

    Calls are grouped by family: inside a family only the outermost call is timed, so a model forward
    that calls another wrapped forward is counted once. ``context`` labels every sample taken while it
    is set (e.g. the name of a pipeline run).
    """

    def __init__(self, device=None) -> None:
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self.context = ""
        self._depth: dict[str, int] = defaultdict(int)
        self._cuda = device is not None and getattr(device, "type", str(device)).startswith("cuda")

    def sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def wrap(self, obj: Any, name: str, key: str, family: str = "forward",
             tags: Callable[..., dict] | None = None) -> None:
        """Replace ``obj.name`` (a bound method) by a timed version recording into ``samples[key]``."""
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            if self._depth[family]:
                return fn(*args, **kwargs)
            extra = tags(*args, **kwargs) if tags else {}
            self._depth[family] += 1
            self.sync()
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.samples[key].append(Sample(time.perf_counter() - w0, time.process_time() - c0,
                                                self.context, extra))
                self._depth[family] -= 1

        setattr(obj, name, timed)

    @contextlib.contextmanager
    def timing(self, key: str, **tags) -> Iterator[None]:
        """Time a block as one sample of ``key``."""
        self.sync()
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.sync()
            self.samples[key].append(Sample(time.perf_counter() - w0, time.process_time() - c0, self.context,
                                            tags))

    def select(self, key: str, context: str | None = None, prefix: str | None = None,
               where: Callable[[Sample], bool] | None = None) -> list[Sample]:
        out = self.samples.get(key, [])
        if context is not None:
            out = [s for s in out if s.context == context]
        if prefix is not None:
            out = [s for s in out if s.context.startswith(prefix)]
        if where is not None:
            out = [s for s in out if where(s)]
        return out


def summarize(samples: list[Sample], what: str, per: float = 1.0, unit: str = "s") -> dict:
    """Median / min / max of the samples' wall times (and the median CPU time), divided by ``per``."""
    if not samples:
        raise SOWLv2Error(f"bench: no samples for {what!r}")
    walls = np.array([s.wall for s in samples], float) / per
    cpus = np.array([s.cpu for s in samples], float) / per
    return {"median": _r(np.median(walls)), "min": _r(walls.min()), "max": _r(walls.max()), "n": len(samples),
            "cpu_median": _r(np.median(cpus)), "unit": unit, "what": what}


def _r(x: float, digits: int = 5) -> float:
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(digits, digits - int(math.floor(math.log10(abs(x)))) - 1))


# ---------------------------------------------------------------------------------------------- fakes
class FixedBoxesDetector:
    """Bench fake at the detector's output.

    Runs the real detector on every call (pre-processing, forward and post-processing cost what they
    cost), then returns ``boxes`` instead of what it found: random weights detect garbage, and runs
    that track different numbers of objects could not be compared.

    Args:
        detector: the real ``Owlv2Detector``.
        boxes: (n, 4) float32 [x0, y0, x1, y1] in pixels (ground truth of the synthetic world).
        class_ids: (n,) int, index of each box's prompt.
    """

    def __init__(self, detector, boxes: np.ndarray, class_ids: np.ndarray) -> None:
        self.detector = detector
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        self.calls = 0

    def __getattr__(self, name: str):  # calls, device, model, ... of the real detector
        return getattr(self.detector, name)

    def detect(self, image: np.ndarray, prompts, threshold: float = 0.1, nms_iou: float = 0.5,
               max_objects: int | None = None) -> Detections:
        self.detector.detect(image, prompts, threshold=threshold, nms_iou=nms_iou, max_objects=max_objects)
        self.calls += 1
        h, w = image.shape[:2]
        boxes = self.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        n = len(boxes)
        return Detections(boxes=boxes, scores=np.linspace(0.9, 0.8, n, dtype=np.float32),
                          class_ids=self.class_ids.copy(), labels=tuple(prompts[i] for i in self.class_ids))


class ForcedTrackManager(TrackManager):
    """The association the bench injects (``SOWLv2Pipeline(association=ForcedTrackManager)``): it keeps
    exactly the detected objects as tracks.

    Every detection of the first key frame starts a track (none is taken for a duplicate), later
    detections all match (with the pipeline config's ``match_iou=0``), no match re-prompts (the well
    tracked case: key frames cost a detection and a decoding, not a re-prompt), no track is ended as
    another's duplicate, and no track ends (with ``max_lost`` large). Random weights would otherwise
    decide how many objects are tracked.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cover_new = math.inf
        self.reprompt_iou = 0.0
        self.dup_iou = math.inf  # random weights may give two objects one mask: keep both tracks


def naive_segment(segmenter, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The old tool's way to segment an image: one SAM 2 image encoding per box.

    Returns:
        (n, H, W) bool masks.
    """
    h, w = image.shape[:2]
    masks = [segmenter.segment(image, np.asarray(b, np.float32)[None])[0][0] for b in boxes]
    return np.stack(masks) if masks else np.zeros((0, h, w), bool)


# ---------------------------------------------------------------------------------------------- world
def world_boxes(world) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Iterate a synthetic world video once.

    Returns:
        boxes: (K, 4) float32, each object's ground-truth box on the first frame it is visible (a
            box in the middle of the frame for an object never visible).
        frames: every (H, W, 3) uint8 RGB frame (only call this for short videos).
        id_maps: every (H, W) uint8 id map.
    """
    w, h = world.size
    ids = sorted(world.categories)
    boxes: dict[int, np.ndarray] = {}
    frames, id_maps = [], []
    for rgb, id_map in world:
        frames.append(rgb)
        id_maps.append(id_map)
        for k in ids:
            if k in boxes:
                continue
            ys, xs = np.nonzero(id_map == k)
            if len(xs):
                boxes[k] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    centre = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4], np.float32)
    return np.stack([boxes.get(k, centre) for k in ids]), frames, id_maps


# ---------------------------------------------------------------------------------------------- machine
def machine_info(device) -> dict:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "ram_gb": _ram_gb()}
    if getattr(device, "type", "") == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def versions() -> dict:
    import av
    import torch
    import transformers

    from . import __version__

    out = {"sowlv2": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "av": av.__version__, "numpy": np.__version__}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5)
        if commit.returncode == 0:
            out["git"] = commit.stdout.strip()
    return out


def _proc_status_mb(key: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or the last reset) in MiB; None without /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS, ``VmHWM`` (Linux >= 4.0: ``/proc/self/clear_refs``).

    ``ru_maxrss`` is not a substitute: it also keeps the peak of threads that have exited.

    Returns False where that is not possible (then only the whole process's peak is known)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rss_mb() -> float:
    """Peak RSS of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


# ---------------------------------------------------------------------------------------------- the bench
class Bench:
    """One ``sowlv2 bench`` run: models, synthetic inputs, sections, report."""

    def __init__(self, settings: BenchSettings) -> None:
        import torch

        from .models.loading import resolve_device

        self.s = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[settings.dtype]
        self.rec = Recorder(self.device)
        self.measures: dict[str, dict] = {}
        self.comparisons: dict[str, dict] = {}
        self.runs: dict[str, Any] = {}
        self.load: dict[str, list[float]] = {"start": _load()}
        self.section_seconds: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="sowlv2-bench-"))
        self.paths: dict[str, Path] = {}
        self.model_info: dict[str, Any] = {}
        self._detector = self._segmenter = self._tracker = self._vjepa = None
        self._world: dict[str, Any] = {}

    # ------------------------------------------------------------------ models (loaded once, shared)
    def base_config(self, **changes):
        from .data.config import PipelineBaseData

        cfg = PipelineBaseData(owl_model=str(self.paths["owl"]), sam_model=str(self.paths["sam"]),
                               vjepa2_model=str(self.paths["vjepa"]), device=str(self.device),
                               dtype=self.s.dtype, progress=False, overwrite=True, match_iou=0.0,
                               max_lost=10**9, threshold=0.1)
        return cfg.replace(**changes) if changes else cfg

    @property
    def detector(self):
        if self._detector is None:
            from .models.owlv2 import Owlv2Detector

            det = Owlv2Detector.from_pretrained(str(self.paths["owl"]), self.device, self.s.dtype)
            self.rec.wrap(det, "forward", "owlv2.forward")
            self.rec.wrap(det, "preprocess", "owlv2.preprocess")
            self.rec.wrap(det, "detect", "owlv2.detect", family="step")
            self.model_info["owlv2"] = {"params_m": round(_param_count(det.model) / 1e6, 1),
                                        "image_size": det.model.config.vision_config.image_size}
            self._detector = det
        return self._detector

    @property
    def segmenter(self):
        if self._segmenter is None:
            from .models.sam2_image import Sam2ImageSegmenter

            seg = Sam2ImageSegmenter.from_pretrained(str(self.paths["sam"]), self.device, self.s.dtype)
            _make_present(seg.model)
            self.rec.wrap(seg.model, "get_image_embeddings", "sam2.image_encode")
            self.rec.wrap(seg.model, "forward", "sam2.image_decode",
                          tags=lambda *a, **k: {"boxes": int(k["input_boxes"].shape[1]) if "input_boxes" in k else 0})
            self.rec.wrap(seg, "segment", "sam2.segment", family="step")
            self.model_info["sam2"] = {"size": "tiny" if self.s.quick else self.s.sam_size,
                                       "params_m": round(_param_count(seg.model) / 1e6, 1),
                                       "image_size": seg.model.config.vision_config.backbone_config.image_size}
            self._segmenter = seg
        return self._segmenter

    @property
    def tracker(self):
        if self._tracker is None:
            from .models.sam2_video import Sam2VideoTracker

            tr = Sam2VideoTracker.from_pretrained(str(self.paths["sam"]), device=str(self.device),
                                                  dtype=self.torch_dtype)
            _make_present(tr.model)
            m = tr.model
            for name in ("forward", "_prepare_vision_features", "_single_frame_forward"):
                self.rec.wrap(m, name, "sam2.video_forward")
            state = lambda *a, **k: {"objects": len(tr.session.obj_ids), "t": tr._t + 1}  # noqa: E731
            self.rec.wrap(tr, "track", "sam2.track_step", family="step", tags=state)
            self.rec.wrap(tr, "prompt", "sam2.prompt", family="step", tags=state)
            self.rec.wrap(tr, "masks_for_boxes", "sam2.segment_boxes", family="step",
                          tags=lambda boxes, frame: {"boxes": len(boxes)})
            self._tracker = tr
        return self._tracker

    @property
    def vjepa(self):
        if self._vjepa is None:
            from .optimizations.vjepa2 import VJepa2VideoOptimizer

            opt = VJepa2VideoOptimizer(self.base_config(), model_name=str(self.paths["vjepa"]),
                                       frames_per_clip=16, device=str(self.device))
            if not opt.is_available:
                raise SOWLv2Error(f"bench: V-JEPA 2 cannot be loaded from {self.paths['vjepa']}: "
                                  f"{opt.failure_reason}")
            self.rec.wrap(opt.model, "get_vision_features", "vjepa2.forward")
            self.rec.wrap(opt, "extract_video_features", "vjepa2.clip", family="step")
            self.model_info["vjepa2"] = {"params_m": round(_param_count(opt.model) / 1e6, 1),
                                         "crop_size": opt.model.config.crop_size, "frames_per_clip": 16}
            self._vjepa = opt
        return self._vjepa

    def pipeline(self, detector, selector=None, **changes):
        """A SOWLv2Pipeline sharing the loaded models (the bench injects them: no reload per run)."""
        from .pipeline import SOWLv2Pipeline

        return SOWLv2Pipeline(self.base_config(**changes), detector=detector, segmenter=self._segmenter,
                              tracker=self._tracker, device=self.device, selector=selector,
                              association=ForcedTrackManager)

    # ------------------------------------------------------------------ inputs
    def world(self, kind: str):
        """Synthetic inputs: ``video`` (frames x size, ``objects`` objects, written as MP4) and ``image``."""
        if kind in self._world:
            return self._world[kind]
        from .eval.world import generate_world, iter_world_video

        s = self.s
        if kind == "video":
            n = s.objects
            folder = generate_world(self.tmp / "world", seed=s.seed, frames=s.frames, size=s.size, videos=1,
                                    min_objects=n, max_objects=n, cut_prob=0.0)[0]
            world = iter_world_video((s.seed, 0), s.frames, s.size, min_objects=n, max_objects=n, cut_prob=0.0)
            boxes, frames, id_maps = world_boxes(world)
            out = {"path": folder / "video.mp4", "boxes": boxes, "frames": frames, "id_maps": id_maps,
                   "labels": [world.categories[k] for k in sorted(world.categories)]}
        else:
            n = IMAGE_OBJECTS
            world = iter_world_video((s.seed, 1), 24, s.size, min_objects=n, max_objects=n, cut_prob=0.0)
            boxes, frames, id_maps = world_boxes(world)
            best = int(np.argmax([len(np.unique(m)) for m in id_maps]))
            out = {"image": frames[best], "boxes": boxes,
                   "labels": [world.categories[k] for k in sorted(world.categories)]}
        self._world[kind] = out
        return out

    # ------------------------------------------------------------------ sections
    def run(self) -> dict:
        t0 = time.perf_counter()
        self.paths = model_paths(self.s)
        try:
            for section in SECTIONS:
                if section in self.s.only:
                    log.info("bench: %s", section)
                    self.load[section] = _load()
                    t1 = time.perf_counter()
                    try:
                        getattr(self, f"section_{section}")()
                    except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                        log.exception("bench: section %s failed", section)
                        self.errors[section] = f"{type(exc).__name__}: {exc}"
                    self.section_seconds[section] = round(time.perf_counter() - t1, 1)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.load["end"] = _load()
        return self.report(time.perf_counter() - t0)

    def section_images(self) -> None:
        rec, s = self.rec, self.s
        img = self.world("image")
        image, boxes, labels = img["image"], img["boxes"], img["labels"]
        prompts = labels
        fakes = {k: FixedBoxesDetector(self.detector, boxes[:k], np.arange(k)) for k in (1, IMAGE_OBJECTS)}
        segmenter = self.segmenter
        pipes = {k: self.pipeline(fakes[k]) for k in fakes}
        rec.context = "images:warmup"
        pipes[1].process_image(image, prompts)
        naive_segment(segmenter, image, boxes[:1])
        encodings: dict[str, list[int]] = defaultdict(list)
        for _ in range(s.repeats):  # variants interleaved, so that load changes hit them alike
            for k in (1, IMAGE_OBJECTS):
                rec.context = f"images:ours_{k}"
                before = segmenter.encodings
                with rec.timing(f"image.ours_{k}"):
                    result = pipes[k].process_image(image, prompts)
                encodings[f"ours_{k}"].append(segmenter.encodings - before)
                if len(result) != k:
                    raise SOWLv2Error(f"bench: expected {k} objects in the image, got {len(result)}")
            rec.context = f"images:naive_{IMAGE_OBJECTS}"
            before = segmenter.encodings
            with rec.timing(f"image.naive_{IMAGE_OBJECTS}"):
                dets = fakes[IMAGE_OBJECTS].detect(image, prompts)
                naive_segment(segmenter, image, dets.boxes)
            encodings[f"naive_{IMAGE_OBJECTS}"].append(segmenter.encodings - before)
        # decoding N boxes from one encoding (N = 1, the video's objects, 8)
        import torch

        rec.context = "images:decode"
        inputs = segmenter.processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            emb = segmenter.model.get_image_embeddings(inputs["pixel_values"].to(self.device, segmenter.dtype))
            for n in sorted({1, s.objects, IMAGE_OBJECTS}):
                b = segmenter.processor(images=image, input_boxes=[boxes[:n].tolist()],
                                        return_tensors="pt")["input_boxes"].to(self.device)
                segmenter.model(image_embeddings=emb, input_boxes=b, multimask_output=False)  # warm-up
                for _ in range(s.repeats):
                    with rec.timing(f"sam2.decode_{n}"):
                        segmenter.model(image_embeddings=emb, input_boxes=b, multimask_output=False)

        timed = lambda c: c.startswith("images:") and c != "images:warmup"  # noqa: E731
        m = self.measures
        m["owlv2_detect"] = summarize(rec.select("owlv2.detect", where=lambda x: timed(x.context)),
                                      "OWLv2 per image: pre-processing + forward + post-processing (NMS)")
        m["owlv2_forward"] = summarize(rec.select("owlv2.forward", where=lambda x: timed(x.context)),
                                       "OWLv2 per image: model forward only (image tower + heads)")
        m["sam2_image_encode"] = summarize(rec.select("sam2.image_encode", where=lambda x: timed(x.context)),
                                           "SAM 2 image encoder per image (1024 px)")
        for n in sorted({1, s.objects, IMAGE_OBJECTS}):
            m[f"sam2_decode_{n}_boxes"] = summarize(rec.select(f"sam2.decode_{n}"),
                                                    f"SAM 2 mask decoder, {n} box(es) in one call, cached encoding")
        for name in ("ours_1", f"ours_{IMAGE_OBJECTS}", f"naive_{IMAGE_OBJECTS}"):
            what = {"ours_1": "whole image, 1 object (detect + 1 encoding + decode)",
                    f"ours_{IMAGE_OBJECTS}": f"whole image, {IMAGE_OBJECTS} objects (detect + 1 encoding + "
                                             "1 batched decode)",
                    f"naive_{IMAGE_OBJECTS}": f"naive: whole image, {IMAGE_OBJECTS} objects, one SAM 2 encoding "
                                              "per box"}[name]
            m[f"image_{name}"] = summarize(rec.select(f"image.{name}"), what)
        self.runs["images"] = {"size": list(s.size), "encodings_per_image": {k: v for k, v in encodings.items()}}
        many = IMAGE_OBJECTS
        self.comparisons[f"image_{many}_vs_1_objects"] = _ratio(m[f"image_ours_{many}"], m["image_ours_1"],
                                                               f"image with {many} objects / with 1 object")
        self.comparisons[f"image_naive_vs_ours_{many}"] = _ratio(
            m[f"image_naive_{many}"], m[f"image_ours_{many}"],
            f"naive (encoding per box) / ours (one encoding), {many} objects: the gain")

    def section_io(self) -> None:
        from .data.config import PipelineBaseData
        from .io.inputs import InputItem, iter_frames
        from .io.sinks import InputWriter
        from .types import FrameResult, masks_to_boxes

        rec, s = self.rec, self.s
        vid = self.world("video")
        item = InputItem(vid["path"], "video", "world")
        n = len(vid["frames"])
        rec.context = "io"
        for k in range(s.repeats + 1):
            with rec.timing("io.decode_video" if k else "io.warmup"):
                count = sum(1 for _ in iter_frames(item))
            if count != n:
                raise SOWLv2Error(f"bench: decoded {count} frames, expected {n}")
        results = []
        labels = vid["labels"]
        for t, id_map in enumerate(vid["id_maps"]):
            ids = [k for k in range(1, len(labels) + 1) if (id_map == k).any()]
            masks = np.stack([id_map == k for k in ids]) if ids else np.zeros((0, *id_map.shape), bool)
            results.append(FrameResult(
                index=t, time=t / 24.0, size=id_map.shape, ids=np.array(ids, np.int64),
                labels=tuple(labels[k - 1] for k in ids), class_ids=np.array([k - 1 for k in ids], np.int64),
                scores=np.full(len(ids), 0.9, np.float32), boxes=masks_to_boxes(masks), masks=masks,
                keyframe=t == 0, source_index=t))
        config = PipelineBaseData(progress=False)
        for k in range(s.repeats + 1):
            out = self.tmp / f"write{k}"
            with rec.timing("io.write_video" if k else "io.warmup"):
                writer = InputWriter(out / "world", "video.mp4", "video", labels, results[0].size, config, fps=24.0)
                for r, frame in zip(results, vid["frames"]):
                    writer.write(r, frame)
                writer.close([0], [None], [], {"frames": n})
            shutil.rmtree(out, ignore_errors=True)
        self.measures["decode_per_frame"] = summarize(rec.select("io.decode_video"),
                                                      f"PyAV decoding to RGB, per {s.size[0]}x{s.size[1]} frame",
                                                      per=n)
        self.measures["write_per_frame"] = summarize(
            rec.select("io.write_video"), f"InputWriter per {s.size[0]}x{s.size[1]} frame with {s.objects} "
            "objects: PNG masks + overlays, merged, 2 H.264 videos, results/annotations JSON", per=n)

    def section_vjepa2(self) -> None:
        rec, s = self.rec, self.s
        opt = self.vjepa
        frames = self.world("video")["frames"][:16]
        rec.context = "vjepa2:warmup"
        opt.extract_video_features(frames, batch_size=1)
        rec.context = "vjepa2:clip"
        for _ in range(s.repeats):
            opt.extract_video_features(frames, batch_size=1)
        self.measures["vjepa2_clip"] = summarize(
            rec.select("vjepa2.clip", context="vjepa2:clip"),
            "V-JEPA 2 per 16-frame clip (resize + encoder forward, no predictor)")
        self.measures["vjepa2_forward"] = summarize(rec.select("vjepa2.forward", context="vjepa2:clip"),
                                                    "V-JEPA 2 encoder forward per 16-frame clip")

    def _video_run(self, name: str, video: Path, boxes: np.ndarray, prompts: list[str], **changes) -> dict:
        """One whole-pipeline run (``process``: decode, select, detect, track, write) with forced objects."""
        import torch

        rec = self.rec
        fake = FixedBoxesDetector(self.detector, boxes, np.arange(len(boxes)))
        selector = None
        if changes.get("enable_vjepa2"):
            from .keyframes import VJepa2Selector

            opt, cfg = self.vjepa, self.base_config(**changes)
            selector = lambda: VJepa2Selector(opt, budget=cfg.keyframe_budget,  # noqa: E731
                                              strategy=cfg.keyframe_strategy)
        self.tracker  # noqa: B018 - load (and instrument) the shared tracker before the pipeline takes it
        pipe = self.pipeline(fake, selector=selector, **changes)
        out = self.tmp / f"run-{name}"
        rec.context = f"video:{name}"
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        load = _load()
        with rec.timing("video.wall", run=name):
            reports = pipe.process(str(video), prompts, str(out))
        wall = rec.samples["video.wall"][-1]
        res = json.loads((Path(reports[0].output) / "results.json").read_text())
        shutil.rmtree(out, ignore_errors=True)
        st = res["stats"]
        sec = st["seconds"]
        ctx = rec.context
        forward = sum(x.wall for key in ("owlv2.forward", "sam2.video_forward", "vjepa2.forward")
                      for x in rec.select(key, context=ctx))
        detect_step = sum(x.wall for x in rec.select("owlv2.detect", context=ctx))
        owl_forward = sum(x.wall for x in rec.select("owlv2.forward", context=ctx))
        track_steps = sum(x.wall for key in ("sam2.track_step", "sam2.prompt", "sam2.segment_boxes")
                          for x in rec.select(key, context=ctx))
        track_forward = sum(x.wall for x in rec.select("sam2.video_forward", context=ctx))
        models = sec["detect"] + sec["track"] + sec["select"]
        run = {
            "wall_s": _r(wall.wall), "cpu_s": _r(wall.cpu), "frames": st["frames"],
            "detector_calls": st["detector_calls"], "keyframes": res["keyframes"], "tracks": len(res["tracks"]),
            "objects_per_frame": _r(np.mean([len(f["objects"]) for f in res["frames"]]), 3),
            "seconds": sec,
            "share_stats": _r(models / sec["total"], 4) if sec["total"] else None,
            "share_stats_of_wall": _r(models / wall.wall, 4),
            "share_forward_of_wall": _r(forward / wall.wall, 4),
            "glue_s": {"decode": sec["decode"], "write": sec.get("write", 0.0),
                       "detect_pre_post": _r(detect_step - owl_forward, 4),
                       "track_pre_post": _r(track_steps - track_forward, 4),
                       "other": _r(wall.wall - models - sec["decode"] - sec.get("write", 0.0), 4)},
            "load": load,
        }
        if self.device.type == "cuda":
            run["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        if run["tracks"] != len(boxes):
            raise SOWLv2Error(f"bench: run {name} tracked {run['tracks']} objects, expected {len(boxes)}")
        return run

    def section_video(self) -> None:
        s, rec = self.s, self.rec
        vid = self.world("video")
        boxes, prompts = vid["boxes"], vid["labels"]
        # warm-up of the tracker and the detector (a new model's first calls are slower)
        from .types import Frame

        tr = self.tracker
        rec.context = "video:warmup"
        tr.reset()
        for t in range(2):
            frame = Frame(index=t, time=t / 24.0, image=vid["frames"][t], source_index=t)
            tr.track(frame)
            if t == 0:
                tr.prompt({i + 1: b for i, b in enumerate(boxes)}, frame)
        if not self.rec.samples.get("owlv2.forward"):
            self.detector.detect(vid["frames"][0], prompts)
        runs = {
            "every_frame": dict(detect_every=1),
            "every_10": dict(detect_every=10),
            "vjepa2_25": dict(enable_vjepa2=True, keyframe_budget=0.25),
        }
        if "vjepa2" not in s.only:
            self.vjepa  # noqa: B018 - load (and warm) V-JEPA 2 outside the timed run
            rec.context = "video:warmup"
            self.vjepa.extract_video_features(vid["frames"][:16], batch_size=1)
        self.runs["video"] = {"size": list(s.size), "objects": s.objects, "runs": {}}
        for name, changes in runs.items():
            log.info("bench: video run %s", name)
            self.runs["video"]["runs"][name] = self._video_run(name, vid["path"], boxes, prompts, **changes)
        r = self.runs["video"]["runs"]
        m = self.measures
        for name in runs:
            m[f"video_{name}"] = summarize(rec.select("video.wall", context=f"video:{name}"),
                                           f"whole pipeline, {s.frames} frames {s.size[0]}x{s.size[1]}, "
                                           f"{s.objects} objects, {name.replace('_', ' ')} (outputs written)")
        steady = lambda x: x.tags.get("objects") == s.objects and x.tags.get("t", 0) > tr.num_maskmem  # noqa: E731
        samples = rec.select("sam2.track_step", prefix="video:every", where=steady)
        what = f"SAM 2 tracking step, {s.objects} objects, memory full ({tr.num_maskmem} frames)"
        if not samples:  # a short video: every step after the prompt
            samples = rec.select("sam2.track_step", prefix="video:every",
                                 where=lambda x: x.tags.get("objects") == s.objects)
            what = f"SAM 2 tracking step, {s.objects} objects (video shorter than the memory window)"
        m[f"sam2_track_step_{s.objects}_objects"] = summarize(samples, what + "; encode + memory attention + "
                                                              "decode + memory encode, pre/post-processing")
        m["sam2_track_forward"] = summarize(
            rec.select("sam2.video_forward", prefix="video:every_10",
                       where=lambda x: True), "SAM 2 video model forward calls (every_10 run)")
        self.comparisons["vjepa2_25_vs_every_frame"] = _ratio(m["video_vjepa2_25"], m["video_every_frame"],
                                                              "V-JEPA 2 key frames at 25% / detector on every frame")
        self.comparisons["every_10_vs_every_frame"] = _ratio(m["video_every_10"], m["video_every_frame"],
                                                             "--detect-every 10 / detector on every frame")
        self.comparisons["forward_share_every_10"] = {
            "value": r["every_10"]["share_forward_of_wall"],
            "what": "model forward passes / wall time, --detect-every 10 run"}

    def section_memory(self) -> None:
        from .eval.world import generate_world

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

        from .eval.world import generate_world

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
    def targets(self) -> list[dict]:
        c, s = self.comparisons, self.s
        applies = not s.quick and self.device.type == "cpu" and s.dtype == "float32"
        scope = None if applies else ("measured with tiny models: the targets are set for real-size models on "
                                      "the CPU" if s.quick else "the targets are set for the CPU in float32")
        out = []

        def add(name: str, key: str, limit: float, op: str, note: str | None = None) -> None:
            if key not in c:
                return
            value = c[key]["value"]
            ok = value >= limit if op == ">=" else value <= limit
            out.append({"name": name, "value": value, "limit": f"{op} {limit}", "pass": bool(ok),
                        "applies": applies if not key.startswith("rss") else True,
                        "note": note or (None if key.startswith("rss") else scope)})

        add("model forward passes share of a video run's wall time (detect every 10)",
            "forward_share_every_10", 0.85, ">=")
        add("V-JEPA 2 key frames at 25% / detector on every frame (wall)", "vjepa2_25_vs_every_frame", 0.7, "<=")
        add(f"image with {IMAGE_OBJECTS} objects / with 1 object (wall)", f"image_{IMAGE_OBJECTS}_vs_1_objects",
            1.3, "<=")
        if "rss_10n_vs_n_stream" in c:
            kind = self.runs["memory"]["models"]
            add("peak RSS, 10N / N frames (streaming)", "rss_10n_vs_n_stream", 1.2, "<=",
                f"{kind} models, in a process of their own")
        return out

    def report(self, seconds: float) -> dict:
        s = self.s
        for name, m in self.measures.items():
            if not m.get("n"):
                raise SOWLv2Error(f"bench: measure {name} has no samples")
        return {
            "schema": 1,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "sowlv2 bench " + " ".join(s.argv),
            "machine": machine_info(self.device),
            "versions": versions(),
            "settings": {"device": str(self.device), "dtype": s.dtype, "threads": s.threads, "frames": s.frames,
                         "size": f"{s.size[0]}x{s.size[1]}", "objects": s.objects, "quick": s.quick,
                         "repeats": s.repeats, "sections": list(s.only), "memory_frames": s.memory_frames,
                         "models": "tiny (random weights)" if s.quick else "real-size architectures, random weights"},
            "models": self.model_info,
            "load_average": self.load,
            "peak_rss_mb": _rss_mb(),
            "bench_seconds": round(seconds, 1),
            "section_seconds": self.section_seconds,
            "measures": self.measures,
            "comparisons": self.comparisons,
            "runs": self.runs,
            "targets": self.targets(),
            "errors": self.errors,
            "notes": self.notes + [
                "Random weights: speed and memory only, never quality. The detector's boxes are the synthetic "
                "world's ground truth (FixedBoxesDetector, after the real OWLv2 ran); association is forced "
                "to keep exactly the objects detected on the first key frame, without re-prompts.",
                "Timings are medians after a warm-up; cpu_median is the process CPU time (all threads).",
            ],
        }


def _ratio(a: dict, b: dict, what: str) -> dict:
    return {"value": _r(a["median"] / b["median"], 4), "what": what}


# ---------------------------------------------------------------------------------------------- memory child
def _memory_child_run(job: dict) -> dict:
    """Run :func:`memory_child` in a fresh Python process and return what it measured."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)
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

    from .data.config import PipelineBaseData
    from .io.inputs import InputItem, iter_frames
    from .pipeline import SOWLv2Pipeline

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
def write_report(report: dict, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    jpath, mpath = folder / f"{stem}.json", folder / f"{stem}.md"
    jpath.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    mpath.write_text(markdown(report), encoding="utf-8")
    return jpath, mpath


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:.1f} {unit}"


def markdown(report: dict) -> str:
    """The report as a markdown page: context, measures, comparisons, targets, runs."""
    m, st = report["machine"], report["settings"]
    lines = [f"# sowlv2 bench: {st['device']}, {st['dtype']}{', quick (tiny models)' if st['quick'] else ''}", "",
             f"- command: `{report['command']}`",
             f"- date: {report['date']}; bench took {report['bench_seconds']} s ("
             + ", ".join(f"{k} {v} s" for k, v in report["section_seconds"].items()) + ")",
             f"- machine: {m['cpu']}, {m['cpu_count']} cores ({m['torch_threads']} torch threads), "
             f"{m.get('ram_gb')} GB RAM" + (f"; {m['gpu']} ({m['gpu_memory_gb']} GB)" if "gpu" in m else ""),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- input: synthetic world, {st['frames']} frames {st['size']}, {st['objects']} objects; "
             f"{st['models']}" + "".join(f"; {k} {v}" for k, v in sorted(
                 (k, ", ".join(f"{a}={b}" for a, b in d.items())) for k, d in report["models"].items())),
             "- load average (1, 5, 15 min): " + "; ".join(f"{k} {v}" for k, v in report["load_average"].items()),
             "", "## Measures (median after a warm-up)", "",
             "| measure | median | min - max | n | CPU time | what |", "|---|---|---|---|---|---|"]
    for name, x in report["measures"].items():
        u = x["unit"]
        cpu = _fmt(x["cpu_median"], u) if "cpu_median" in x else ""
        lines.append(f"| {name} | {_fmt(x['median'], u)} | {_fmt(x['min'], u)} - {_fmt(x['max'], u)} | {x['n']} "
                     f"| {cpu} | {x['what']} |")
    lines += ["", "## Comparisons", "", "| comparison | value | what |", "|---|---|---|"]
    for name, x in report["comparisons"].items():
        lines.append(f"| {name} | {x['value']:.3f} | {x['what']} |")
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | value | limit | result |", "|---|---|---|---|"]
        for t in report["targets"]:
            verdict = "PASS" if t["pass"] else "FAIL"
            if not t["applies"]:
                verdict += " (not applicable)"
            note = f" ({t['note']})" if t.get("note") else ""
            lines.append(f"| {t['name']}{note} | {t['value']:.3f} | {t['limit']} | {verdict} |")
    video = report["runs"].get("video")
    if video:
        lines += ["", "## Video runs (results.json stats, seconds)", "",
                  "| run | wall | detector calls | decode | select | detect | track | write | "
                  "forward share | stats share | glue: pre/post detect, track |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in video["runs"].items():
            sec, g = r["seconds"], r["glue_s"]
            lines.append(f"| {name} | {r['wall_s']:.2f} | {r['detector_calls']} | {sec['decode']:.3f} | "
                         f"{sec['select']:.3f} | {sec['detect']:.3f} | {sec['track']:.3f} | "
                         f"{sec.get('write', 0):.3f} | {r['share_forward_of_wall']:.3f} | "
                         f"{r['share_stats']:.3f} | {g['detect_pre_post']:.3f}, {g['track_pre_post']:.3f} |")
    mem = report["runs"].get("memory")
    if mem:
        lines += ["", f"## Peak RSS ({mem['models']} models; {mem['settings']})", "",
                  "| run | frames | peak RSS of the process | peak while loading | peak during the run | "
                  "growth during the run | seconds |", "|---|---|---|---|---|---|---|"]
        for key, r in mem["rss"].items():
            run_peak = "n/a" if r["run_peak_rss_mb"] is None else f"{r['run_peak_rss_mb']:.1f} MiB"
            growth = "n/a" if r["run_growth_mb"] is None else f"{r['run_growth_mb']:+.1f} MiB"
            lines.append(f"| {key} | {r['frames']} | {r['peak_rss_mb']:.1f} MiB | {r['load_peak_rss_mb']:.1f} MiB "
                         f"| {run_peak} | {growth} | {r['seconds']} |")
    if report.get("errors"):
        lines += ["", "## Sections that failed", ""] + [f"- {k}: {v}" for k, v in report["errors"].items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- entry
def run_bench(settings: BenchSettings) -> tuple[dict, Path, Path]:
    """Run the benchmark and write ``<output>/<name>.json`` and ``.md``; the CLI is ``sowlv2 bench``.

    Returns:
        ``(report, json_path, markdown_path)``; ``report["errors"]`` names the sections that failed
        (the report is written all the same).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    report = Bench(settings).run()
    stem = settings.name or f"bench-{report['settings']['device'].split(':')[0]}-{settings.dtype}" + (
        "-quick" if settings.quick else "")
    jpath, mpath = write_report(report, settings.output, stem)
    return report, jpath, mpath


if __name__ == "__main__":  # the memory child: python -m sowlv2.bench _memory_child JOB RESULT_PATH
    if len(sys.argv) == 4 and sys.argv[1] == "_memory_child":
        from .io.sinks import atomic_write_json

        atomic_write_json(Path(sys.argv[3]), memory_child(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: python -m sowlv2.bench _memory_child JOB RESULT_PATH (use `sowlv2 bench` to benchmark)")
