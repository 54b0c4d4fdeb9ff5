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

Modules: ``settings`` (options, cached models), ``recorder`` (timings), ``fakes`` (fixed boxes, forced
tracks, the naive baseline), ``machine``, ``sections`` and ``memory`` (the sections, mixins of
``core.Bench``), ``report``. Other benchmarks: ``sowlv2.bench_backends``, ``sowlv2.bench_adaptive``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .core import Bench
from .fakes import FixedBoxesDetector, ForcedTrackManager, naive_segment, world_boxes
from .machine import machine_info, versions
from .memory import MemorySection, memory_child
from .recorder import Recorder, Sample, summarize
from .report import ReportSection, markdown, write_report
from .sections import ImagesSection, VideoSection
from .settings import (
    BUILD_VERSION,
    DEFAULT_CACHE,
    IMAGE_OBJECTS,
    SAM_SIZES,
    SECTIONS,
    BenchSettings,
    build_parser,
    model_paths,
    parse_args,
    tiny_model_paths,
)

__all__ = [
    "SECTIONS", "SAM_SIZES", "IMAGE_OBJECTS", "BUILD_VERSION", "DEFAULT_CACHE", "BenchSettings", "build_parser",
    "parse_args", "model_paths", "tiny_model_paths", "Sample", "Recorder", "summarize", "FixedBoxesDetector",
    "ForcedTrackManager", "naive_segment", "world_boxes", "machine_info", "versions", "MemorySection",
    "memory_child", "ReportSection", "write_report", "markdown", "ImagesSection", "VideoSection", "Bench",
    "run_bench",
]



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

