"""The bench: models, synthetic inputs, the sections (mixins, one module each) and the report."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SOWLv2Error
from .fakes import ForcedTrackManager, world_boxes
from .machine import _load
from .memory import MemorySection
from .recorder import Recorder
from .report import ReportSection
from .sections import ImagesSection, VideoSection
from .settings import (
    IMAGE_OBJECTS,
    SECTIONS,
    BenchSettings,
    _make_present,
    _param_count,
    model_paths,
)

log = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------- the bench
class Bench(ImagesSection, VideoSection, MemorySection, ReportSection):
    """One ``sowlv2 bench`` run: models, synthetic inputs, sections, report."""

    def __init__(self, settings: BenchSettings) -> None:
        import torch

        from ..models.loading import resolve_device

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
        from ..data.config import PipelineBaseData

        cfg = PipelineBaseData(owl_model=str(self.paths["owl"]), sam_model=str(self.paths["sam"]),
                               vjepa2_model=str(self.paths["vjepa"]), device=str(self.device),
                               dtype=self.s.dtype, progress=False, overwrite=True, match_iou=0.0,
                               max_lost=10**9, threshold=0.1)
        return cfg.replace(**changes) if changes else cfg

    @property
    def detector(self):
        if self._detector is None:
            from ..models.owlv2 import Owlv2Detector

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
            from ..models.sam2_image import Sam2ImageSegmenter

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
            from ..models.sam2_video import Sam2VideoTracker

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
            from ..optimizations.vjepa2 import VJepa2VideoOptimizer

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
        from ..pipeline import SOWLv2Pipeline

        return SOWLv2Pipeline(self.base_config(**changes), detector=detector, segmenter=self._segmenter,
                              tracker=self._tracker, device=self.device, selector=selector,
                              association=ForcedTrackManager)

    # ------------------------------------------------------------------ inputs
    def world(self, kind: str):
        """Synthetic inputs: ``video`` (frames x size, ``objects`` objects, written as MP4) and ``image``."""
        if kind in self._world:
            return self._world[kind]
        from ..eval.world import generate_world, iter_world_video

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

