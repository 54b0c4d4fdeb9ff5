"""The image, I/O, V-JEPA 2 and video sections of ``sowlv2 bench``."""

from __future__ import annotations

import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import SOWLv2Error
from .fakes import FixedBoxesDetector, naive_segment
from .machine import _load
from .recorder import _r, summarize
from .report import _ratio
from .settings import (
    IMAGE_OBJECTS,
)

log = logging.getLogger(__name__)


class ImagesSection:
    """The ``images`` and ``io`` sections (methods of :class:`~sowlv2.bench.core.Bench`)."""

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
        from ..data.config import PipelineBaseData
        from ..io.inputs import InputItem, iter_frames
        from ..io.sinks import InputWriter
        from ..types import FrameResult, masks_to_boxes

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



class VideoSection:
    """The ``vjepa2`` and ``video`` sections (methods of :class:`~sowlv2.bench.core.Bench`)."""

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
            from ..keyframes import VJepa2Selector

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

    def warm_up(self, vid: dict, detector: bool = True) -> None:
        """A new model's first calls are slower: track two frames of ``vid`` (its boxes prompted on the
        first) and, if ``detector``, detect its labels on the first."""
        from ..types import Frame

        tr = self.tracker
        tr.reset()
        for t in range(2):
            frame = Frame(index=t, time=t / 24.0, image=vid["frames"][t], source_index=t)
            tr.track(frame)
            if t == 0:
                tr.prompt({i + 1: b for i, b in enumerate(vid["boxes"])}, frame)
        if detector:
            self.detector.detect(vid["frames"][0], vid["labels"])

    def section_video(self) -> None:
        s, rec = self.s, self.rec
        vid = self.world("video")
        boxes, prompts = vid["boxes"], vid["labels"]
        tr = self.tracker
        rec.context = "video:warmup"
        self.warm_up(vid, detector=not self.rec.samples.get("owlv2.forward"))
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

