"""The whole pipeline on a held-out synthetic video with the shipped demo models, scored (``sowlv2 demo``).

Steps: write a world video with exact ground truth (``sowlv2.eval.world.generate_world``; its seeds
are ``(seed, 0)``, disjoint from the training seeds, which are integers >= 1000), run
``SOWLv2Pipeline.process_video`` with the demo OWLv2, SAM 2 and V-JEPA 2 checkpoints
(``sowlv2.demo_models``) and the video's category labels as prompts, then score the results with
``sowlv2.eval.metrics.evaluate`` (DAVIS 2017 unsupervised J&F, J and F Mean / Recall / Decay; object
recall, discovery latency, id switches) and write
``demo_metrics.json`` in the output folder. Runs on the CPU in seconds; no download. The command
line (printing the scores) is ``sowlv2.eval.cli.demo_main``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .errors import UsageError

log = logging.getLogger(__name__)


def run_demo(output: str | Path, seed: int = 0, frames: int = 48, *, models: str | Path | None = None,
             device: str = "cpu", threshold: float = 0.2, detect_every: int | None = None,
             enable_vjepa2: bool = True, progress: bool = True):
    """Generate a held-out world video, run the pipeline on it, score it and write ``demo_metrics.json``.

    Args:
        output: folder for ``world/``, ``results/`` and ``demo_metrics.json``.
        seed: held-out world seed, 0-99 (the video uses seeds ``(seed, 0)``).
        frames: frames of the video (>= 2).
        models: folder holding ``owl/``, ``sam/`` and ``vjepa2/`` checkpoints; None: the shipped ones.
        device, threshold, detect_every, enable_vjepa2, progress: pipeline settings
            (``detect_every`` None keeps the pipeline's default).

    Returns:
        ``(metrics, result)``: the dict written to ``demo_metrics.json`` and the ``EvalResult``.

    Raises:
        UsageError: ``seed`` outside 0..99 or ``frames`` < 2.
    """
    from .data.config import PipelineBaseData
    from .eval.metrics import evaluate
    from .eval.world import generate_world
    from .pipeline import SOWLv2Pipeline

    if not 0 <= seed <= 99:
        raise UsageError(f"sowlv2 demo: --seed must be a held-out seed in 0..99, got {seed}")
    if frames < 2:
        raise UsageError(f"sowlv2 demo: --frames must be >= 2, got {frames}")
    out = Path(output)
    gt = generate_world(out / "world", seed=seed, frames=frames, videos=1, progress=progress)[0]
    prompts = sorted(set(json.loads((gt / "categories.json").read_text()).values()))
    kinds = ("owl", "sam", "vjepa2")
    names = {k: "demo" if models is None else str(Path(models) / k) for k in kinds}  # loaders resolve "demo"
    settings = dict(owl_model=names["owl"], sam_model=names["sam"], vjepa2_model=names["vjepa2"],
                    enable_vjepa2=enable_vjepa2, device=device, threshold=threshold, progress=progress,
                    overwrite=True)
    if detect_every is not None:
        settings["detect_every"] = detect_every
    t0 = time.perf_counter()
    pipe = SOWLv2Pipeline(PipelineBaseData(**settings))
    result_dir = pipe.process_video(gt / "video.mp4", prompts, out / "results")
    seconds = time.perf_counter() - t0  # loading the models included
    result = evaluate(result_dir, gt)
    metrics = {"seed": [seed, 0], "frames": frames, "prompts": prompts, "settings": settings,
               "results": str(result_dir), "seconds": round(seconds, 2), **result.to_dict()}
    (out / "demo_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("demo: J&F-Mean %.3f in %.1f s, %s", result.JF_mean, seconds, out / "demo_metrics.json")
    return metrics, result
