"""Adaptive compute, measured: where should the tracker and the detector run? (issue 13, item 4)

On held-out ``events`` world videos (``sowlv2 world --preset events``: objects that stop and go, a
static camera with long stretches of no change, rare entries and exits, one or two scene cuts) and
with the shipped demo models (``--detector demo --tracker demo --vjepa2-model demo``), this runs the
whole pipeline in several modes and scores every run with ``sowlv2.eval.metrics.evaluate``:

- ``default``: every frame tracked, the detector on every 10th frame (today's default);
- ``uniform@S``: a uniform stride: the tracker on a share S of the frames, the detector every 10th
  (``track_budget=S`` without V-JEPA 2: the schedule is a fixed stride);
- ``vjepa2@S``: V-JEPA 2 decides (``enable_vjepa2``, ``keyframe_budget=0.1``, ``track_budget=S``);
- ``pixel@S``: the pixel-difference selector (mean absolute frame difference) at the same budgets.

For each mode it reports DAVIS J&F over all objects of all videos, object recall (share of objects
with mean J >= 0.5), discovery latency (median over all objects, frames), id switches, detector
calls, tracker calls (share of frames tracked) and wall time (models loaded once per worker and
shared by every mode, so the wall is the per-video processing time: selection, detection, tracking,
filling and writing ``results.json``). It writes ``compare.json`` (every run), ``compare.md`` (tables
and targets) and ``compare.png`` (J&F and discovery latency against the share of frames tracked).

A mode whose settings this commit does not know (a ``PipelineBaseData`` key missing) is reported as
unavailable, with the reason, instead of failing the comparison.

Usage::

    python tools/compare_adaptive.py --seeds 0 20 --out benchmarks/results/adaptive --jobs 2
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

log = logging.getLogger("compare_adaptive")

SHARES = (1.0, 0.5, 0.35, 0.25)
DETECT_SHARE = 0.1
SELECTORS = ("uniform", "vjepa2", "pixel")
# Settings of each selector at a tracked share S (PipelineBaseData keys). The pixel-difference selector
# is a key-frame strategy of the adaptive engine; ``--pixel-settings`` overrides this if its name differs.
PIXEL_SETTINGS = {"keyframe_strategy": "pixel"}


def mode_settings(name: str, pixel: dict) -> dict:
    """PipelineBaseData overrides of one mode (``default``, ``uniform@0.35``, ``vjepa2@0.5``, ...)."""
    if name == "default":
        return {"detect_every": 10}
    selector, _, share = name.partition("@")
    s = float(share)
    if selector == "uniform":
        return {"detect_every": round(1 / DETECT_SHARE), "track_budget": s}
    if selector == "vjepa2":
        return {"enable_vjepa2": True, "keyframe_budget": DETECT_SHARE, "track_budget": s}
    if selector == "pixel":
        return {**pixel, "keyframe_budget": DETECT_SHARE, "track_budget": s}
    raise ValueError(f"unknown mode {name!r}")


def all_modes(shares=SHARES, selectors=SELECTORS) -> list[str]:
    """``default`` first, then every selector at every share (``uniform@1.0`` is ``default``: left out)."""
    modes = ["default"]
    for sel in selectors:
        modes += [f"{sel}@{s:g}" for s in shares if not (sel == "uniform" and s == 1.0)]
    return modes


# ------------------------------------------------------------------------------------------ worker
_STAGES: dict = {}


def label_association():
    """An experiment, not the pipeline's rule: ``TrackManager`` whose key-frame matches need the same label.

    The pipeline's association matches a detection to a track by mask IoU whatever their labels, and
    counts every live track when it asks whether a detection is already covered. At a scene cut SAM 2
    may carry an old track onto a new object of another label; the next key frame's detection then
    matches it (the old id and label go on) or is ignored as covered. Here IoU counts only between a
    track and a detection of the same label, and only same-label tracks cover a detection, so the new
    object gets a new track and the stale one ends as its duplicate (``deduplicate`` keeps the label a
    detection confirmed more recently). ``--association label`` runs the comparison with it.
    """
    import numpy as np

    from sowlv2.tracking.association import TrackManager

    class LabelTrackManager(TrackManager):
        def associate(self, frame_index, track_masks, detections, det_masks):
            ids = [i for i in track_masks if i in self.tracks]
            labels = {i: self.tracks[i].label for i in ids}
            out = None
            # one call per label: each label's tracks against that label's detections, all at once
            for lab in dict.fromkeys(detections.labels):
                cols = [c for c, x in enumerate(detections.labels) if x == lab]
                sub = detections[np.array(cols)]
                part = super().associate(frame_index, {i: track_masks[i] for i in ids if labels[i] == lab},
                                         sub, det_masks[cols])
                part.matched = [(t, cols[c]) for t, c in part.matched]
                part.reprompt = [(t, cols[c]) for t, c in part.reprompt]
                part.new = [(t, cols[c]) for t, c in part.new]
                part.ignored = [cols[c] for c in part.ignored]
                if out is None:
                    out = part
                else:
                    out.matched += part.matched
                    out.reprompt += part.reprompt
                    out.new += part.new
                    out.ignored += part.ignored
            if out is None:
                out = super().associate(frame_index, {}, detections, det_masks)
            return out

    return LabelTrackManager


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")


def _base_settings() -> dict:
    return dict(owl_model="demo", sam_model="demo", vjepa2_model="demo", device="cpu", threshold=0.2,
                progress=False, overwrite=True, no_binary=True, no_overlay=True, no_merged=True)


def _stages():
    """The demo detector, segmenter and tracker, loaded once per worker process and shared by the modes."""
    if not _STAGES:
        from sowlv2.data.config import PipelineBaseData
        from sowlv2.pipeline import SOWLv2Pipeline

        pipe = SOWLv2Pipeline(PipelineBaseData(**_base_settings()))
        _STAGES.update(detector=pipe.detector, segmenter=pipe.segmenter, tracker=pipe.tracker)
    return _STAGES


def _frame_kinds(res: dict) -> dict[str, int]:
    """How many frames were detected / tracked / filled (results.json ``frames[].kind`` when present)."""
    counts = {"detected": 0, "tracked": 0, "filled": 0}
    for f in res["frames"]:
        kind = f.get("kind") or ("detected" if f.get("keyframe") else "tracked")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _score(result) -> dict:
    """Per-video figures from an ``EvalResult`` (works with the J/F and the DAVIS J_mean/F_mean fields)."""
    d = result.to_dict()
    objects = [{"gt_id": o["gt_id"], "label": o.get("label"),
                "J": o.get("J_mean", o.get("J")), "F": o.get("F_mean", o.get("F")),
                "latency": o["latency"], "discovered": o["discovered"], "id_switches": o["id_switches"],
                "first_frame": o["first_frame"]} for o in d["objects"]]
    return {"JF": d.get("JF_mean", d.get("JF")), "recall": d.get("object_recall", d.get("recall")),
            "latency_median": d["discovery_latency"]["median"], "id_switches": d["id_switches"],
            "objects": objects}


def run_video(job: dict) -> list[dict]:
    """Every mode on one video; returns one row per mode (``error`` set when the mode could not run)."""
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.eval.metrics import evaluate
    from sowlv2.pipeline import SOWLv2Pipeline

    gt, work, prompts = Path(job["gt"]), Path(job["work"]), job["prompts"]
    stages = _stages()
    rows = []
    for mode in job["modes"]:
        row = {"seed": job["seed"], "mode": mode, "frames": job["frames"]}
        settings = {**_base_settings(), **mode_settings(mode, job["pixel"])}
        try:
            config = PipelineBaseData(**settings)
        except Exception as exc:  # noqa: BLE001 - a mode this commit cannot run is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        out = work / (mode.replace("@", "_") + ("_label" if job.get("association") == "label" else ""))
        extra = {"association": label_association()} if job.get("association") == "label" else {}
        pipe = SOWLv2Pipeline(config, **stages, **extra)
        t0 = time.perf_counter()
        c0 = time.process_time()
        try:
            result_dir = pipe.process_video(gt / "video.mp4", prompts, out)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        row["cpu_s"] = round(time.process_time() - c0, 3)
        res = json.loads((Path(result_dir) / "results.json").read_text())
        stats = res.get("stats", {})
        kinds = _frame_kinds(res)
        row["detector_calls"] = int(stats.get("detector_calls", kinds["detected"]))
        row["tracker_calls"] = int(stats.get("tracker_calls", kinds["detected"] + kinds["tracked"]))
        row["fills"] = int(stats.get("fills", kinds["filled"]))
        row["keyframes"] = res.get("keyframes", [])
        row["seconds"] = stats.get("seconds", {})
        row.update(_score(evaluate(result_dir, gt)))
        shutil.rmtree(out, ignore_errors=True)
        rows.append(row)
        log.warning("seed %d %-14s J&F %.3f  tracked %d/%d  detector %d  %.1f s", job["seed"], mode, row["JF"],
                    row["tracker_calls"], row["frames"], row["detector_calls"], row["wall_s"])
    return rows


# ------------------------------------------------------------------------------------------ aggregate
def aggregate(rows: list[dict]) -> dict:
    """Figures of one mode over its videos: DAVIS-style means over all objects of all videos."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"error": rows[0].get("error", "no runs") if rows else "no runs"}
    objs = [o for r in ok for o in r["objects"]]
    frames = sum(r["frames"] for r in ok)
    return {
        "videos": len(ok), "objects": len(objs),
        "JF": round(statistics.fmean((o["J"] + o["F"]) / 2 for o in objs), 4),
        "J": round(statistics.fmean(o["J"] for o in objs), 4),
        "F": round(statistics.fmean(o["F"] for o in objs), 4),
        "JF_video_mean": round(statistics.fmean(r["JF"] for r in ok), 4),
        "recall": round(statistics.fmean(o["J"] >= 0.5 for o in objs), 4),
        "latency_median": statistics.median(o["latency"] for o in objs),
        "latency_p90": sorted(o["latency"] for o in objs)[int(0.9 * (len(objs) - 1))],
        "undiscovered": sum(not o["discovered"] for o in objs),
        "id_switches": round(statistics.fmean(r["id_switches"] for r in ok), 3),
        "id_switches_max": max(r["id_switches"] for r in ok),
        "detector_calls": round(statistics.fmean(r["detector_calls"] for r in ok), 2),
        "tracker_calls": round(statistics.fmean(r["tracker_calls"] for r in ok), 2),
        "fills": round(statistics.fmean(r["fills"] for r in ok), 2),
        "share_tracked": round(sum(r["tracker_calls"] for r in ok) / frames, 4),
        "share_detected": round(sum(r["detector_calls"] for r in ok) / frames, 4),
        "wall_s": round(sum(r["wall_s"] for r in ok), 2),
        "wall_s_per_video": round(statistics.fmean(r["wall_s"] for r in ok), 3),
        "cpu_s": round(sum(r.get("cpu_s", 0.0) for r in ok), 2),
        "select_s": round(sum(r["seconds"].get("select", 0.0) for r in ok), 2),
    }


def targets(summary: dict) -> list[dict]:
    """Issue 13's targets, each with its figure and met / not met (None when a mode is missing)."""
    def jf(mode):
        s = summary.get(mode, {})
        return s.get("JF")

    out = []
    d, v, u = jf("default"), jf("vjepa2@0.35"), jf("uniform@0.35")
    out.append({"target": "V-JEPA 2 at 35% tracked / 10% detected: J&F within 0.02 of the default",
                "value": None if None in (d, v) else round(v - d, 4), "limit": ">= -0.02",
                "met": None if None in (d, v) else v - d >= -0.02})
    out.append({"target": "V-JEPA 2 at 35% / 10%: J&F >= 0.03 above a uniform stride at the same budgets",
                "value": None if None in (u, v) else round(v - u, 4), "limit": ">= 0.03",
                "met": None if None in (u, v) else v - u >= 0.03})
    lat = summary.get("vjepa2@0.35", {}).get("latency_median")
    out.append({"target": "V-JEPA 2 at 35% / 10%: median discovery latency <= 2 frames", "value": lat,
                "limit": "<= 2", "met": None if lat is None else lat <= 2})
    for s in SHARES:
        a, b = jf(f"vjepa2@{s:g}"), jf(f"pixel@{s:g}")
        out.append({"target": f"V-JEPA 2 beats the pixel-difference selector at {s:g} tracked (J&F difference)",
                    "value": None if None in (a, b) else round(a - b, 4), "limit": "> 0",
                    "met": None if None in (a, b) else a > b})
    return out


def recommend_track_budget(summary: dict, tolerance: float = 0.02) -> dict:
    """The smallest tracked share whose V-JEPA 2 J&F stays within ``tolerance`` of the default (else 1.0)."""
    d = summary.get("default", {}).get("JF")
    best = 1.0
    for s in sorted(SHARES):
        v = summary.get(f"vjepa2@{s:g}", {}).get("JF")
        if d is not None and v is not None and v >= d - tolerance:
            best = s
            break
    return {"track_budget": best, "tolerance": tolerance, "default_JF": d}


# ------------------------------------------------------------------------------------------ report
def _fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(report: dict) -> str:
    summary, cfg = report["summary"], report["config"]
    lines = [
        "# Adaptive compute on the events world",
        "",
        "- command: " + "; then ".join(f"`python tools/compare_adaptive.py {c}`" for c in cfg.get("parts", []))
        if len(cfg.get("parts", [])) > 1 else f"- command: `{cfg['command']}`",
        f"- date: {report['date']}; took {report['seconds']:.0f} s with {cfg['jobs']} worker(s) x "
        f"{cfg['threads']} torch thread(s); load average at start {report['load_start']}, end {report['load_end']}",
        f"- videos: `sowlv2 world --preset events`, seeds {cfg['seeds'][0]}..{cfg['seeds'][-1]} (held out; "
        f"{len(cfg['seeds'])} videos), {cfg['frames']} frames {cfg['size'][0]}x{cfg['size'][1]}",
        "- models: the shipped demo models (`--detector demo --tracker demo --vjepa2-model demo`; V-JEPA 2 has "
        "random weights), threshold 0.2; detector budget 10% in every mode",
        "- J&F: DAVIS-style mean over all objects of all videos; recall: share of objects with mean J >= 0.5; "
        "latency: median over objects of the frames from an object's first appearance to its first frame "
        "tracked with IoU >= 0.5; wall: sum over videos of the per-video processing time (models loaded once)",
        "",
        "## J&F against the share of frames tracked",
        "",
        "| selector | " + " | ".join(f"{s:g}" for s in SHARES) + " |",
        "|---|" + "---|" * len(SHARES),
    ]
    for sel in SELECTORS:
        cells = []
        for s in SHARES:
            mode = "default" if sel == "uniform" and s == 1.0 else f"{sel}@{s:g}"
            jf = summary.get(mode, {}).get("JF")
            cells.append(_fmt(jf))
        lines.append(f"| {sel} | " + " | ".join(cells) + " |")
    lines += ["", "(uniform at 1.0 is the default: every frame tracked, detector every 10th.)", "",
              "## Every mode", "",
              "| mode | videos | J&F | J | F | recall | latency median (p90) | undiscovered | id switches (max) | "
              "detector calls | tracker calls | share tracked | wall s (per video) | CPU s | select s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, s in summary.items():
        if "error" in s:
            lines.append(f"| {mode} | unavailable: {s['error']} |" + " |" * 13)
            continue
        lines.append(
            f"| {mode} | {s['videos']} | {_fmt(s['JF'])} | {_fmt(s['J'])} | {_fmt(s['F'])} | {_fmt(s['recall'])} | "
            f"{_fmt(s['latency_median'])} ({_fmt(s['latency_p90'])}) | {s['undiscovered']} | "
            f"{_fmt(s['id_switches'], 2)} ({s['id_switches_max']}) | {_fmt(s['detector_calls'], 1)} | "
            f"{_fmt(s['tracker_calls'], 1)} | {_fmt(s['share_tracked'])} | {_fmt(s['wall_s'], 0)} "
            f"({_fmt(s['wall_s_per_video'], 1)}) | {_fmt(s.get('cpu_s'), 0)} | {_fmt(s['select_s'], 1)} |")
    lines += ["", "## Targets (issue 13)", "", "| target | value | limit | result |", "|---|---|---|---|"]
    for t in report["targets"]:
        res = "n/a" if t["met"] is None else ("met" if t["met"] else "**not met**")
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['limit']} | {res} |")
    rec = report["recommended"]
    lines += ["", f"Recommended default `--track-budget` with `--enable-vjepa2`: **{rec['track_budget']:g}** "
              f"(the smallest share whose J&F is within {rec['tolerance']} of the default's "
              f"{_fmt(rec['default_JF'])}; 1.0 when none is).", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """J&F and median discovery latency against the share of frames tracked, one line per selector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    styles = {"uniform": ("tab:grey", "s"), "vjepa2": ("tab:blue", "o"), "pixel": ("tab:orange", "^")}
    for sel in SELECTORS:
        pts = []
        for s in SHARES:
            mode = "default" if sel == "uniform" and s == 1.0 else f"{sel}@{s:g}"
            m = summary.get(mode, {})
            if "JF" in m:
                pts.append((m["share_tracked"], m["JF"], m["latency_median"]))
        if pts:
            colour, marker = styles[sel]
            xs, jfs, lats = zip(*sorted(pts), strict=True)
            axes[0].plot(xs, jfs, marker=marker, color=colour, label=sel)
            axes[1].plot(xs, lats, marker=marker, color=colour, label=sel)
    d = summary.get("default", {})
    if "JF" in d:
        axes[0].axhline(d["JF"] - 0.02, color="tab:green", ls=":", lw=1, label="default - 0.02")
        axes[0].plot([d["share_tracked"]], [d["JF"]], "*", color="black", ms=12, label="default")
        axes[1].plot([d["share_tracked"]], [d["latency_median"]], "*", color="black", ms=12, label="default")
    axes[0].set(xlabel="share of frames tracked (measured)", ylabel="J&F (all objects)",
                title="accuracy, detector on 10% of frames")
    axes[1].set(xlabel="share of frames tracked (measured)", ylabel="median discovery latency (frames)",
                title="discovery latency")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    cfg = report["config"]
    fig.suptitle(f"events world, {len(cfg['seeds'])} held-out videos x {cfg['frames']} frames, demo models",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs=2, default=[0, 20], metavar=("FIRST", "END"),
                   help="held-out seeds FIRST..END-1 (default 0 20)")
    p.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    p.add_argument("--size", default="320x240", help="frame size (default 320x240, the demo models' world)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/adaptive")
    p.add_argument("--work", type=Path, default=Path("/tmp/sowlv2_compare_adaptive"),
                   help="scratch folder (videos and outputs); give each concurrent run its own: the videos are "
                        "rewritten at the start of a run")
    p.add_argument("--modes", nargs="+", default=None, help="modes to run (default: all); e.g. default vjepa2@0.35")
    p.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    p.add_argument("--pixel-settings", type=json.loads, default=PIXEL_SETTINGS,
                   help="PipelineBaseData keys of the pixel-difference selector "
                        f"(default {json.dumps(PIXEL_SETTINGS)})")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one video at a time each (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--association", choices=["pipeline", "label"], default="pipeline",
                   help="pipeline (default): the pipeline's association; label: an experiment where key-frame "
                        "matches need the same label (see label_association)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: make the report from the rows.jsonl an earlier (possibly stopped) run left "
                        "in --out")
    p.add_argument("--merge", type=Path, default=None, metavar="COMPARE_JSON",
                   help="take the runs of modes not in --modes from an earlier compare.json of the same seeds, "
                        "frames and size (a comparison run in parts; its walls were measured at another time)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from sowlv2.eval.world import generate_world

    w, h = (int(v) for v in args.size.lower().split("x"))
    seeds = list(range(*args.seeds))
    if any(not 0 <= s <= 99 for s in seeds) or not seeds:
        p.error("--seeds must name held-out seeds in 0..99")
    modes = args.modes or all_modes(tuple(args.shares))
    t0 = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "rows.jsonl"  # every finished run, appended as it finishes
    rows: list[dict] = []
    if args.report_only:
        rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
        modes = [m for m in modes if any(r["mode"] == m for r in rows)]
    else:
        jobs = []
        videos = {}
        for seed in seeds:
            gt = generate_world(args.work / "world" / f"seed_{seed:03d}", seed=seed, frames=args.frames,
                                size=(w, h), preset="events")[0]
            prompts = sorted(set(json.loads((gt / "categories.json").read_text()).values()))
            videos[seed] = (gt, prompts)
        for mode in modes:  # mode-major: a run stopped early still has whole modes
            for seed in seeds:
                gt, prompts = videos[seed]
                jobs.append({"seed": seed, "gt": str(gt), "work": str(args.work / "runs" / f"seed_{seed:03d}"),
                             "prompts": prompts, "modes": [mode], "frames": args.frames,
                             "pixel": args.pixel_settings, "association": args.association})
        rows_file.write_text("")

        def keep(part: list[dict]) -> None:
            rows.extend(part)
            with rows_file.open("a") as f:
                for r in part:
                    f.write(json.dumps(r) + "\n")

        if args.jobs > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker,
                                     initargs=(args.threads,)) as ex:
                for part in ex.map(run_video, jobs):
                    keep(part)
        else:
            _init_worker(args.threads)
            for job in jobs:
                keep(run_video(job))
    parts = [" ".join(argv if argv is not None else sys.argv[1:])]
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        ec = earlier["config"]
        if (ec["seeds"], ec["frames"], ec["size"]) != (seeds, args.frames, [w, h]):
            p.error(f"--merge: {args.merge} has other seeds, frames or size")
        extra = [r for r in earlier["runs"] if r["mode"] not in modes]
        rows = extra + rows
        modes = list(dict.fromkeys([*(r["mode"] for r in extra), *modes]))
        parts = [*earlier["config"].get("parts", [ec["command"]]), *parts]
    summary = {m: aggregate([r for r in rows if r["mode"] == m]) for m in modes}
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - t0, 1),
        "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()],
        "config": {"command": "python tools/compare_adaptive.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
                   "seeds": seeds, "frames": args.frames, "size": [w, h], "jobs": args.jobs,
                   "threads": args.threads, "modes": modes, "pixel_settings": args.pixel_settings,
                   "detect_share": DETECT_SHARE, "parts": parts, "association": args.association},
        "summary": summary,
    }
    report["targets"] = targets(summary)
    report["recommended"] = recommend_track_budget(summary)
    report["runs"] = rows
    (args.out / "compare.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "compare.md").write_text(markdown(report))
    plot(report, args.out / "compare.png")
    print(markdown(report))
    print(f"wrote {args.out / 'compare.md'}, compare.json, compare.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
