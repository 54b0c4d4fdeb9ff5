"""Measure the demo checkpoints on held-out synthetic-world videos (seeds 0-99 by default).

- ``owl``: detector precision / recall at IoU 0.5 through the production ``Owlv2Detector`` (per-class
  NMS 0.5), prompted with each video's category labels, at several score thresholds. Ground truth:
  objects with at least ``--min-area`` visible pixels; a detection that matches (same label, IoU >= 0.5)
  only a smaller, barely visible object is ignored (neither true nor false positive).
- ``sam``: SAM 2 box -> mask IoU through the production ``Sam2ImageSegmenter`` given the true box.
- ``vjepa2``: whether the encoder's features change most at a scene cut (see ``eval_vjepa2``).
- ``pipeline``: ``sowlv2 demo`` end to end on each seed (DAVIS 2017 unsupervised J&F, J/F Mean, Recall,
  Decay; object recall, id switches; see ``sowlv2.demo`` and ``sowlv2.eval.metrics``).
- ``track``: SAM 2 propagation through a streaming ``Sam2VideoModel`` session: every object visible on
  frame 0 is prompted there with its true box, the next ``--track-frames`` frames are tracked; mask
  IoU per object averaged over the tracked frames where the object or its mask is non-empty.

Usage::

    python tools/eval_demo_models.py --what owl sam track vjepa2 --json src/sowlv2/demo_models/eval.json
    python tools/eval_demo_models.py --what pipeline --seeds 0 20
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sowlv2.eval.world import iter_world_video  # noqa: E402

log = logging.getLogger("eval_demo_models")
WORLD_SIZE = (320, 240)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (n, 4) and (m, 4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def frame_objects(id_map: np.ndarray, categories: dict[int, str]) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(label, box xyxy float32 pixels, mask (H, W) bool, area) of every visible object."""
    objs = []
    for oid, label in categories.items():
        mask = id_map == oid
        area = int(mask.sum())
        if area:
            ys, xs = np.nonzero(mask)
            objs.append((label, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32), mask, area))
    return objs


def match_frame(det_boxes, det_scores, det_labels, gts, min_area: int, threshold: float) -> tuple[int, int, int]:
    """Greedy matching by score at IoU 0.5 within a label. Returns (true positives, false positives, ground truth)."""
    keep = det_scores >= threshold
    boxes, scores = det_boxes[keep], det_scores[keep]
    labels = [lab for lab, k in zip(det_labels, keep) if k]
    big = [g for g in gts if g[3] >= min_area]
    small = [g for g in gts if g[3] < min_area]
    used = [False] * len(big)
    tp = fp = 0
    for i in np.argsort(-scores):
        best, best_iou = -1, 0.5
        for j, g in enumerate(big):
            if not used[j] and g[0] == labels[i]:
                iou = box_iou(boxes[i:i + 1], g[1][None])[0, 0]
                if iou >= best_iou:
                    best, best_iou = j, iou
        if best >= 0:
            used[best] = True
            tp += 1
        elif not any(g[0] == labels[i] and box_iou(boxes[i:i + 1], g[1][None])[0, 0] >= 0.5 for g in small):
            fp += 1
    return tp, fp, len(big)


def eval_owl(folder: str, seeds, frames: int, every: int, min_area: int, thresholds) -> dict:
    from sowlv2.models.owlv2 import Owlv2Detector

    det = Owlv2Detector.from_pretrained(folder, torch.device("cpu"))
    counts = {t: [0, 0, 0] for t in thresholds}
    best_ious = []
    t0 = time.time()
    n_frames = 0
    for seed in seeds:
        video = iter_world_video(seed, frames, WORLD_SIZE)
        prompts = sorted(set(video.categories.values()))
        for t, (rgb, id_map) in enumerate(video):
            if t % every:
                continue
            n_frames += 1
            d = det.detect(rgb, prompts, threshold=min(thresholds), nms_iou=0.5)
            gts = frame_objects(id_map, video.categories)
            for th in thresholds:
                tp, fp, n = match_frame(d.boxes, d.scores, list(d.labels), gts, min_area, th)
                c = counts[th]
                c[0] += tp
                c[1] += fp
                c[2] += n
            for label, box, _, area in gts:
                if area >= min_area:
                    same = np.array([lab == label for lab in d.labels], bool)
                    best_ious.append(float(box_iou(d.boxes[same], box[None]).max()) if same.any() else 0.0)
    res = {"frames": n_frames, "objects": counts[thresholds[0]][2], "seconds_per_frame": (time.time() - t0) / n_frames,
           "best_box_iou_mean": float(np.mean(best_ious))}
    for th, (tp, fp, n) in counts.items():
        res[f"t{th:g}"] = {"precision": tp / max(1, tp + fp), "recall": tp / max(1, n), "tp": tp, "fp": fp}
    return res


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def eval_sam_image(folder: str, seeds, frames: int, every: int, min_area: int) -> dict:
    from sowlv2.models.sam2_image import Sam2ImageSegmenter

    seg = Sam2ImageSegmenter.from_pretrained(folder, torch.device("cpu"))
    ious = []
    for seed in seeds:
        video = iter_world_video(seed, frames, WORLD_SIZE)
        for t, (rgb, id_map) in enumerate(video):
            if t % every:
                continue
            gts = [g for g in frame_objects(id_map, video.categories) if g[3] >= min_area]
            if not gts:
                continue
            masks, _ = seg.segment(rgb, np.stack([g[1] for g in gts]))
            ious += [mask_iou(m, g[2]) for m, g in zip(masks, gts)]
    return {"objects": len(ious), "mask_iou_mean": float(np.mean(ious)), "mask_iou_p10": float(np.percentile(ious, 10))}


@torch.inference_mode()
def eval_sam_track(folder: str, seeds, track_frames: int, min_area: int) -> dict:
    """Box prompt on frame 0 for every object visible there, then streaming propagation."""
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    model = Sam2VideoModel.from_pretrained(folder).eval()
    proc = Sam2VideoProcessor.from_pretrained(folder)
    per_object, per_frame = [], np.zeros(track_frames)
    frame_counts = np.zeros(track_frames)
    t0 = time.time()
    for seed in seeds:
        video = iter_world_video(seed, track_frames + 1, WORLD_SIZE)
        session = proc.init_video_session(video=None, inference_device="cpu", dtype=torch.float32)
        ids: list[int] = []
        inter: dict[int, list[float]] = {}
        for t, (rgb, id_map) in enumerate(video):
            pixels = proc(images=rgb, return_tensors="pt").pixel_values
            if t == 0:
                gts = {}
                for oid in video.categories:
                    m = id_map == oid
                    if m.sum() >= min_area:
                        ys, xs = np.nonzero(m)
                        gts[oid] = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
                if not gts:
                    break
                ids = list(gts)
                session.add_new_frame(pixels, frame_idx=0)
                proc.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=list(ids),
                                                     input_boxes=[[gts[i] for i in ids]],
                                                     original_size=id_map.shape)
                model(inference_session=session, frame_idx=0, frame=None)
                inter = {i: [] for i in ids}
                continue
            out = model(inference_session=session, frame=pixels, frame_idx=t)
            masks = proc.post_process_masks([out.pred_masks], original_sizes=[id_map.shape], binarize=True)[0]
            for k, oid in enumerate(out.object_ids):
                gt = id_map == oid
                pred = masks[k, 0].numpy().astype(bool)
                if gt.any() or pred.any():
                    iou = mask_iou(pred, gt)
                    inter[oid].append(iou)
                    per_frame[t - 1] += iou
                    frame_counts[t - 1] += 1
        per_object += [float(np.mean(v)) for v in inter.values() if v]
    curve = per_frame / np.maximum(frame_counts, 1)
    return {"videos": len(seeds), "objects": len(per_object), "track_frames": track_frames,
            "mask_iou_mean": float(np.mean(per_object)), "mask_iou_p10": float(np.percentile(per_object, 10)),
            "iou_by_frame": [round(float(x), 3) for x in curve[::5]],
            "seconds_per_frame": (time.time() - t0) / (len(seeds) * track_frames)}


@torch.inference_mode()
def eval_vjepa2(folder: str, seeds, frames: int = 48) -> dict:
    """Does the (random) encoder see scene cuts? Novelty of each tubelet against the previous one.

    Each held-out video gets a forced cut at frame 24 (a tubelet boundary). Frames are squashed to the
    crop size (no crop), normalised with the processor's mean / std, encoded in 16-frame clips; the
    novelty of a tubelet is the mean of the top 5 % of per-position (1 - cos) / 2 against the
    previous tubelet. Reports the novelty at the cut, the largest novelty elsewhere, and how often
    the cut scores highest in its video.
    """
    import math

    import torch.nn.functional as F
    from transformers import VJEPA2Model, VJEPA2VideoProcessor

    model = VJEPA2Model.from_pretrained(folder).eval()
    proc = VJEPA2VideoProcessor.from_pretrained(folder)
    s, tub = model.config.crop_size, model.config.tubelet_size
    mean = torch.tensor(proc.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    cut_scores, other_max, wins = [], [], 0
    for seed in seeds:
        video = iter_world_video(seed, frames, WORLD_SIZE, cut_at=24)
        x = torch.from_numpy(np.stack([rgb for rgb, _ in video])).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        x = (x - mean) / std
        feats = []
        for c in range(0, frames, 16):
            out = model.get_vision_features(x[c:c + 16][None])  # (1, 8 * g * g, D)
            g = s // model.config.patch_size
            feats.append(out[0].reshape(-1, g * g, out.shape[-1]))
        f = torch.cat(feats)  # (tubelets, g*g, D)
        nov = ((1 - F.cosine_similarity(f[1:], f[:-1], dim=-1)) / 2).clamp(0, 1)
        k = max(1, math.ceil(0.05 * nov.shape[1]))
        score = nov.topk(k, dim=1).values.mean(1)  # novelty of tubelet i + 1
        cut = 24 // tub - 1
        cut_scores.append(float(score[cut]))
        rest = torch.cat([score[:cut], score[cut + 1:]])
        other_max.append(float(rest.max()))
        wins += int(score[cut] > rest.max())
    return {"videos": len(seeds), "cut_novelty_mean": float(np.mean(cut_scores)),
            "other_max_novelty_mean": float(np.mean(other_max)), "cut_is_top_share": wins / len(seeds)}


PIPELINE_MODES = {
    "every": {"enable_vjepa2": False, "detect_every": 1},  # the detector on every frame
    "cadence4": {"enable_vjepa2": False, "detect_every": 4},  # a key frame every 4th frame: a 25% budget
    "vjepa2": {},  # V-JEPA 2 key frames at the default 25% budget (what ``sowlv2 demo`` runs)
}


def eval_pipeline(models: Path, seeds, frames: int, work: Path, threshold: float, modes) -> dict:
    """End to end: ``sowlv2 demo`` (``sowlv2.demo.run_demo``) on each seed and mode, then the scores.

    Scores are DAVIS 2017 unsupervised (``sowlv2 eval``'s default): the headline figures average over
    all objects of all videos, as DAVIS does (``sowlv2.eval.metrics.aggregate``), and are also given
    separately for the videos with and without two objects of one colour (by the labels of the
    objects scored); ``JF_mean_per_video`` is the mean of the per-video J&F-Mean.
    """
    from sowlv2.demo import run_demo
    from sowlv2.eval.metrics import aggregate

    res = {"videos": len(seeds), "seeds": [min(seeds), max(seeds) + 1], "frames": frames, "threshold": threshold,
           "protocol": "davis"}
    for mode in modes:
        rows, results, pair = [], [], []
        t0 = time.time()
        for seed in seeds:
            out = work / mode / f"seed_{seed:03d}"
            m, r = run_demo(out, seed, frames, models=models, threshold=threshold, progress=False,
                            **PIPELINE_MODES[mode])
            colours = [o.label.split()[0] for o in r.objects if o.label]
            pair.append(len(colours) != len(set(colours)))
            results.append(r)
            rows.append({k: m[k] for k in ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall",
                                           "F_decay", "object_recall", "id_switches", "detector_calls", "tracks",
                                           "unmatched_tracks")}
                        | {"seed": seed, "objects": len(m["objects"]), "same_colour_pair": pair[-1],
                           "latencies": [o["latency"] for o in m["objects"]]})
        seconds = (time.time() - t0) / len(rows)

        def mean(k: str, rows=rows) -> float:
            return float(np.mean([r[k] for r in rows]))

        lat = [x for r in rows for x in r.pop("latencies")]
        split = {}
        for name, flag in (("same_colour_pair", True), ("no_same_colour_pair", False)):
            sel = [r for r, p in zip(results, pair, strict=True) if p == flag]
            split[name] = aggregate(sel) | {"id_switches": int(sum(r.id_switches for r in sel))} if sel else None
        res[mode] = {**aggregate(results), "JF_mean_per_video": mean("JF_mean"),
                     "JF_min_per_video": float(min(r["JF_mean"] for r in rows)),
                     "discovery_latency_median": float(np.median(lat)) if lat else None,
                     "id_switches_mean": mean("id_switches"),
                     "id_switches_max": int(max(r["id_switches"] for r in rows)),
                     "videos_with_at_most_1_id_switch": int(sum(r["id_switches"] <= 1 for r in rows)),
                     "detector_calls_mean": mean("detector_calls"), **split,
                     "seconds_per_video": seconds, "per_video": rows}
        log.info("pipeline %s: %s", mode, json.dumps({k: v for k, v in res[mode].items() if k != "per_video"}))
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=ROOT / "src" / "sowlv2" / "demo_models")
    p.add_argument("--what", nargs="+", default=["owl", "sam", "track"],
                   choices=["owl", "sam", "track", "vjepa2", "pipeline"])
    p.add_argument("--seeds", type=int, nargs=2, default=[0, 100], metavar=("FIRST", "END"),
                   help="world seeds FIRST..END-1 (default the held-out 0 100)")
    p.add_argument("--min-area", type=int, default=100, help="ground-truth objects: visible pixels (default 100)")
    p.add_argument("--track-frames", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pipeline-frames", type=int, default=48)
    p.add_argument("--pipeline-threshold", type=float, default=0.2)
    p.add_argument("--pipeline-modes", nargs="+", default=list(PIPELINE_MODES), choices=list(PIPELINE_MODES))
    p.add_argument("--work", type=Path, default=Path("/tmp/sowlv2_demo_eval"), help="pipeline outputs go here")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--merge", action="store_true",
                   help="keep the sections of an existing --json file that this run does not measure")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    seeds = range(*args.seeds)
    res = {"seeds": list(args.seeds)}
    if "owl" in args.what:
        res["owl"] = eval_owl(str(args.models / "owl"), seeds, 40, 10, args.min_area, [0.1, 0.2, 0.3, 0.5])
        log.info("owl: %s", json.dumps(res["owl"]))
    if "sam" in args.what:
        res["sam"] = eval_sam_image(str(args.models / "sam"), seeds, 40, 10, args.min_area)
        log.info("sam: %s", json.dumps(res["sam"]))
    if "track" in args.what:
        res["track"] = eval_sam_track(str(args.models / "sam"), seeds, args.track_frames, args.min_area)
        log.info("track: %s", json.dumps(res["track"]))
    if "vjepa2" in args.what:
        res["vjepa2"] = eval_vjepa2(str(args.models / "vjepa2"), seeds)
        log.info("vjepa2: %s", json.dumps(res["vjepa2"]))
    if "pipeline" in args.what:
        res["pipeline"] = eval_pipeline(args.models, seeds, args.pipeline_frames, args.work, args.pipeline_threshold,
                                        args.pipeline_modes)
    if args.merge and args.json and args.json.is_file():
        old = json.loads(args.json.read_text())
        if "seeds" in old and old["seeds"] != res["seeds"]:  # the seeds of the sections kept
            for key in ("owl", "sam", "track", "vjepa2"):
                if key in old and key not in res and isinstance(old[key], dict):
                    old[key].setdefault("seeds", old["seeds"])
        res = {k: v for k, v in old.items() if k != "seeds"} | res
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
