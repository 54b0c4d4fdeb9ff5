"""Settings of ``sowlv2 bench``: the options, their parser, and the cached real-size models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

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
    from ..models import random_init

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
