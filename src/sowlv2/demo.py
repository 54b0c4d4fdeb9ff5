"""``sowlv2 demo``: the whole pipeline on a held-out synthetic video with the shipped demo models, scored.

Steps: write a world video with exact ground truth (``sowlv2.eval.world.generate_world``; its seeds
are ``(seed, 0)``, disjoint from the training seeds, which are integers >= 1000), run
``SOWLv2Pipeline.process_video`` with the demo OWLv2, SAM 2 and V-JEPA 2 checkpoints
(``sowlv2.demo_models``) and the video's category labels as prompts, then score the results with
``sowlv2.eval.metrics.evaluate`` (J, F, J&F, recall, discovery latency, id switches). Prints the
score table and the overlay video's path, and writes ``demo_metrics.json`` in the output folder.
Runs on the CPU in seconds to minutes; no download.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .errors import UsageError
from .eval.cli import _Parser, format_table

log = logging.getLogger(__name__)


def demo_parser() -> _Parser:
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
    """Run ``sowlv2 demo``; returns the exit code (0)."""
    from .data.config import PipelineBaseData
    from .eval.metrics import evaluate
    from .eval.world import generate_world
    from .pipeline import SOWLv2Pipeline

    args = demo_parser().parse_args(argv)
    if not 0 <= args.seed <= 99:
        raise UsageError(f"sowlv2 demo: --seed must be a held-out seed in 0..99, got {args.seed}")
    if args.frames < 2:
        raise UsageError(f"sowlv2 demo: --frames must be >= 2, got {args.frames}")
    out = Path(args.output)
    gt = generate_world(out / "world", seed=args.seed, frames=args.frames, videos=1, progress=not args.quiet)[0]
    prompts = sorted(set(json.loads((gt / "categories.json").read_text()).values()))
    if args.models is None:
        models = {kind: "demo" for kind in ("owl", "sam", "vjepa2")}  # the loaders resolve the name
    else:
        models = {kind: str(Path(args.models) / kind) for kind in ("owl", "sam", "vjepa2")}
    settings = dict(owl_model=models["owl"], sam_model=models["sam"],
                    vjepa2_model=models["vjepa2"], enable_vjepa2=not args.no_vjepa2,
                    device=args.device, threshold=args.threshold, progress=not args.quiet, overwrite=True)
    if args.detect_every is not None:
        settings["detect_every"] = args.detect_every
    t0 = time.perf_counter()
    pipe = SOWLv2Pipeline(PipelineBaseData(**settings))
    result_dir = pipe.process_video(gt / "video.mp4", prompts, out / "results")
    seconds = time.perf_counter() - t0  # loading the models included
    result = evaluate(result_dir, gt)
    metrics = {"seed": [args.seed, 0], "frames": args.frames, "prompts": prompts, "settings": settings,
               "results": str(result_dir), "seconds": round(seconds, 2), **result.to_dict()}
    (out / "demo_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table(result))
    overlay = result_dir / "video" / "overlay.mp4"
    if overlay.is_file():
        print(f"overlay video: {overlay}")
    print(f"{result.detector_calls} detector calls for {args.frames} frames, {seconds:.1f} s")
    print(f"metrics: {out / 'demo_metrics.json'}")
    return 0
