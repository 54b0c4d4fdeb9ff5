"""``sowlv2 world``, ``sowlv2 eval`` and ``sowlv2 demo``: the command-line layer over ``world``, ``metrics``
and ``sowlv2.demo``.

The top-level ``sowlv2`` command dispatches here; it catches ``SOWLv2Error``, prints its message as one
line and exits with ``exc.exit_code``. These functions parse, call the library, and print.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from ..errors import InputError, UsageError
from .metrics import PROTOCOLS, EvalResult, boundary_radius, evaluate, write_davis_pngs
from .world import PRESETS, generate_world


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting (``--help`` still exits 0)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def world_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sowlv2 world",
                description="Write synthetic videos of coloured shapes with exact DAVIS-style ground truth.")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for video_000/, video_001/, ...")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames per video (default 40; 150 for --preset events)")
    p.add_argument("--size", type=_size, default=(320, 240), metavar="WxH",
                   help="frame size (default 320x240)")
    p.add_argument("--videos", type=int, default=1, metavar="K", help="number of videos (default 1)")
    p.add_argument("--cut-at", type=int, default=None, metavar="N",
                   help="force a scene cut (new background) at this frame")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the MP4 (default 24)")
    p.add_argument("--preset", choices=PRESETS, default="default",
                   help="default: objects always moving, panning camera; events: objects that stop and go, "
                        "static camera, rare entries and exits, one or two scene cuts (>= 60 frames)")
    return p


def eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sowlv2 eval",
                description="Score SOWLv2 video results against DAVIS-style ground truth with the DAVIS 2017 "
                            "definitions (J&F-Mean, J/F Mean, Recall, Decay), plus object recall, discovery "
                            "latency and id switches.")
    p.add_argument("--pred", required=True, metavar="OUT",
                   help="results.json, its folder, or an --output folder with exactly one "
                        "<name>/results.json")
    p.add_argument("--gt", required=True, metavar="GT_DIR",
                   help="folder with Annotations/*.png (+ categories.json), as `sowlv2 world` writes, "
                        "or a folder of annotation PNGs")
    p.add_argument("--protocol", choices=PROTOCOLS, default="davis",
                   help="davis: DAVIS 2017 unsupervised, tracks assigned to objects by the Hungarian algorithm "
                        "on (J+F)/2, every frame scored (default); semi-supervised: track id k is object k, "
                        "first and last frame not scored")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the scores as JSON here")
    p.add_argument("--bound-th", type=float, default=0.008,
                   help="boundary tolerance as a fraction of the image diagonal, or whole pixels when >= 1 "
                        "(default 0.008)")
    p.add_argument("--davis-pngs", metavar="DIR", default=None,
                   help="also write the predictions as DAVIS result PNGs (DIR/00000.png, ...) for the official "
                        "davis2017-evaluation code; tracks renumbered 1, 2, ... for --protocol davis")
    return p


def world_main(argv: list[str]) -> int:
    """Run ``sowlv2 world``; returns the exit code (0)."""
    args = world_parser().parse_args(argv)
    if args.frames is None:
        args.frames = 150 if args.preset == "events" else 40
    if args.preset == "events" and args.cut_at is not None:
        raise UsageError("sowlv2 world: --cut-at applies to the default preset only (events draws its own cuts)")
    if args.frames < 1:
        raise UsageError(f"sowlv2 world: --frames must be >= 1, got {args.frames}")
    if args.videos < 1:
        raise UsageError(f"sowlv2 world: --videos must be >= 1, got {args.videos}")
    if args.cut_at is not None and not 1 <= args.cut_at < args.frames:
        raise UsageError(f"sowlv2 world: --cut-at must be in 1..{args.frames - 1} for {args.frames} frames, "
                         f"got {args.cut_at}")
    try:
        extra = {} if args.preset == "events" else {"cut_at": args.cut_at}
        folders = generate_world(args.output, seed=args.seed, frames=args.frames, size=args.size,
                                 videos=args.videos, fps=args.fps, preset=args.preset, **extra)
    except UsageError as exc:
        raise UsageError(f"sowlv2 world: {exc}") from exc
    for folder in folders:
        cats = json.loads((folder / "categories.json").read_text())
        print(f"{folder}: {args.frames} frames, {len(cats)} objects ({', '.join(cats.values())})")
    return 0


def format_table(result: EvalResult) -> str:
    """A plain-text table of per-object rows and the video's summary."""
    lines = [f"{'gt':>4}  {'label':<16} {'pred':>5}  {'J':>6} {'J-rec':>6} {'J-dec':>6}  {'F':>6} {'F-rec':>6} "
             f"{'F-dec':>6}  {'first':>5} {'latency':>7} {'switches':>8}"]
    for o in result.objects:
        pred = "-" if o.pred_id is None else str(o.pred_id)
        lat = f"{o.latency}" if o.discovered else f"{o.latency}*"
        lines.append(f"{o.gt_id:>4}  {(o.label or '')[:16]:<16} {pred:>5}  {o.J_mean:6.3f} {o.J_recall:6.3f} "
                     f"{o.J_decay:6.3f}  {o.F_mean:6.3f} {o.F_recall:6.3f} {o.F_decay:6.3f}  "
                     f"{o.first_frame:>5} {lat:>7} {o.id_switches:>8}")
    lat = result.discovery_latency
    calls = "n/a" if result.detector_calls is None else str(result.detector_calls)
    r = result
    lines += [
        "",
        f"DAVIS 2017 {'unsupervised' if r.protocol == 'davis' else 'semi-supervised'}, "
        f"{r.frames_scored} of {r.frames} frames scored",
        f"J&F-Mean {r.JF_mean:.3f}   J-Mean {r.J_mean:.3f}   J-Recall {r.J_recall:.3f}   J-Decay {r.J_decay:.3f}   "
        f"F-Mean {r.F_mean:.3f}   F-Recall {r.F_recall:.3f}   F-Decay {r.F_decay:.3f}",
        f"object recall {r.object_recall:.3f} ({sum(o.J_mean >= 0.5 for o in r.objects)}/{len(r.objects)} "
        "objects with J-Mean >= 0.5)",
        f"discovery latency (frames): median {lat['median']:g}, p95 {lat['p95']:g}, max {lat['max']:g}"
        + ("   (* never discovered: frames to the end)" if any(not o.discovered for o in r.objects)
           else ""),
        f"id switches {r.id_switches}   tracks {r.tracks} ({r.unmatched_tracks} unmatched)   "
        f"detector calls {calls}",
    ]
    return "\n".join(lines)


def eval_main(argv: list[str]) -> int:
    """Run ``sowlv2 eval``; returns the exit code (0)."""
    args = eval_parser().parse_args(argv)
    try:
        boundary_radius(1, 1, args.bound_th)
    except ValueError as exc:
        raise UsageError(f"sowlv2 eval: --bound-th: {exc}") from exc
    result = evaluate(args.pred, args.gt, protocol=args.protocol, bound_th=args.bound_th)
    print(format_table(result))
    if args.davis_pngs:
        folder = write_davis_pngs(args.pred, args.davis_pngs, frames=result.frames,
                                  renumber=args.protocol == "davis")
        print(f"DAVIS result PNGs: {folder}")
    if args.json:
        out = Path(args.json)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise InputError(f"{out}: cannot write the JSON scores ({exc.strerror or exc})") from exc
    return 0


def demo_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sowlv2 demo",
                description="Run SOWLv2 with the shipped demo models on a held-out synthetic video and score it.")
    p.add_argument("--output", default="sowlv2_demo", metavar="DIR", help="output folder (default sowlv2_demo)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="held-out world seed, 0-99 (default 0); the video uses seeds (N, 0)")
    p.add_argument("--frames", type=int, default=48, metavar="N", help="frames of the video (default 48)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.add_argument("--threshold", type=float, default=0.2, help="detection score threshold (default 0.2)")
    p.add_argument("--detect-every", type=int, default=None, metavar="N",
                   help="cadence of detector key frames (default: the pipeline's)")
    p.add_argument("--no-vjepa2", action="store_true", help="choose key frames by cadence only")
    p.add_argument("--models", default=None, metavar="DIR",
                   help="folder holding owl/, sam/ and vjepa2/ checkpoints (default: the shipped demo models)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def demo_main(argv: list[str]) -> int:
    """``sowlv2 demo``: :func:`sowlv2.demo.run_demo`, then the score table and where the outputs are."""
    from ..cli import setup_logging
    from ..demo import run_demo

    args = demo_parser().parse_args(argv)
    setup_logging(False, args.quiet)  # as the main command: no transformers loading bars, our log lines
    metrics, result = run_demo(args.output, args.seed, args.frames, models=args.models, device=args.device,
                               threshold=args.threshold, detect_every=args.detect_every,
                               enable_vjepa2=not args.no_vjepa2, progress=not args.quiet)
    print(format_table(result))
    overlay = Path(metrics["results"]) / "video" / "overlay.mp4"
    if overlay.is_file():
        print(f"overlay video: {overlay}")
    print(f"{result.detector_calls} detector calls for {args.frames} frames, {metrics['seconds']:.1f} s")
    print(f"metrics: {Path(args.output) / 'demo_metrics.json'}")
    return 0
