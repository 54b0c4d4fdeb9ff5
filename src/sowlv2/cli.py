"""The ``sowlv2`` command: parses flags into a PipelineBaseData and calls the library.

``sowlv2 --input ... --prompt ...`` runs the pipeline; ``sowlv2 demo|eval|world|bench ...`` are
subcommands. Only this module (and the subcommands' CLI functions) print.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .errors import SOWLv2Error, UsageError

PROG = "sowlv2"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(message)


def _float01(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    """Parser of the default run. Every option defaults to 'not given' so that precedence
    (flags > YAML > defaults) can tell an explicit flag from a default."""
    S = argparse.SUPPRESS
    p = _Parser(prog=PROG, argument_default=S,
                description="Text-prompted segmentation and tracking in images and videos "
                            "(OWLv2 + SAM 2 + V-JEPA 2).",
                epilog="Subcommands: sowlv2 demo | eval | world | bench | export | serve (each has --help).")
    io = p.add_argument_group("input and output")
    io.add_argument("-i", "--input", help="image file, folder of images, video file, or folder of frames "
                                          "(with --frames)")
    io.add_argument("-p", "--prompt", nargs="+", help="one or more text prompts, e.g. --prompt cat 'a red bus'")
    io.add_argument("-o", "--output", help="output folder (default: output)")
    io.add_argument("--config", dest="config_file", metavar="FILE.yaml",
                    help="YAML file of settings (keys are the long flag names)")
    io.add_argument("--frames", action="store_true", help="read a folder of images as the frames of one video")
    io.add_argument("--no-merged", action="store_true", help="do not write merged masks/overlays")
    io.add_argument("--no-binary", action="store_true", help="do not write binary masks (nor binary.mp4)")
    io.add_argument("--no-overlay", action="store_true", help="do not write overlays (nor overlay.mp4)")
    io.add_argument("--mask-videos", action="store_true", help="also write one mask video per object")
    io.add_argument("--export", nargs="+", metavar="FORMAT",
                    help="also write training-data exports into <result>/export/<format>/: "
                         "yolo, cvat, labelstudio, davis, mots")
    io.add_argument("--overwrite", action="store_true", help="replace results in a non-empty output folder")
    io.add_argument("--resume", action="store_true", help="skip inputs an interrupted run completed")

    e = p.add_argument_group("many inputs, engines (see README: Many inputs, clusters)")
    e.add_argument("--input-list", metavar="FILE", help="a file listing inputs, one path per line (relative "
                   "to the file's folder); instead of --input")
    e.add_argument("--engine", choices=("local", "ray"), help="local (default): one input after another here; "
                   "ray: Ray workers on this machine or a cluster (pip install 'sowlv2[ray]')")
    e.add_argument("--ray-address", metavar="ADDR", help="auto or HOST:PORT: join a running Ray cluster "
                   "(default: start Ray on this machine for the run)")
    e.add_argument("--workers", type=int, help="Ray workers, each loads the models once (default: one per "
                   "GPU, else one per 2 CPU cores)")
    e.add_argument("--gpus-per-worker", type=float, help="GPUs per worker; fractions share a GPU "
                   "(default 1 with GPUs, else 0)")
    e.add_argument("--cpus-per-worker", type=int, help="CPU cores per worker, also its torch threads "
                   "(default 2, or CPUs per GPU)")

    m = p.add_argument_group("models")
    m.add_argument("--detector", metavar="MODEL", help="detector checkpoint: hub id, local folder or 'demo'; its "
                   "model_type picks the adapter (default google/owlv2-base-patch16-ensemble)")
    m.add_argument("--tracker", metavar="MODEL", help="tracker / segmenter checkpoint: hub id, local folder or "
                   "'demo' (default facebook/sam2.1-hiera-small)")
    m.add_argument("--owl-model", help="the seed's name of --detector")
    m.add_argument("--sam-model", help="the seed's name of --tracker")
    m.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    m.add_argument("--dtype", help="float32 (default), bfloat16, float16")

    d = p.add_argument_group("detection")
    d.add_argument("--threshold", type=_float01, help="minimum detection score in [0, 1] (default 0.1)")
    d.add_argument("--nms-iou", type=_float01, help="per-prompt NMS IoU (default 0.5; 1 disables)")
    d.add_argument("--max-objects", type=int, help="keep the N best detections per key frame / image")

    v = p.add_argument_group("video")
    v.add_argument("--fps", type=float, help="process the video at this many frames per second "
                                             "(default: every frame)")
    v.add_argument("--detect-every", type=int, help="run the detector every N frames (default 10)")
    v.add_argument("--match-iou", type=_float01, help="mask IoU for a detection to keep a track's id (0.5)")
    v.add_argument("--max-lost", type=int, help="end a track after N frames with an empty mask (30)")
    v.add_argument("--enable-vjepa2", action="store_true", help="choose key frames with V-JEPA 2")
    v.add_argument("--vjepa2-model", help="V-JEPA 2 hub id or folder (default facebook/vjepa2-vitl-fpc16-256-ssv2)")
    v.add_argument("--vjepa2-frames-per-clip", type=int, help="frames per V-JEPA 2 clip (default 16)")
    v.add_argument("--vjepa2-clips-per-pass", type=int, help="V-JEPA 2 clips per forward pass (default 1; "
                                                                "4 suits a GPU)")
    v.add_argument("--keyframe-budget", type=_float01, help="share of frames the detector may run on (0.25)")
    v.add_argument("--keyframe-strategy", help="novelty (default), variance, uniform (with --enable-vjepa2), or "
                                                  "pixel (frame differences, no model)")
    # Adaptive compute: what runs on each frame (detect, track or fill).
    v.add_argument("--track-budget", type=_float01, help="share of frames the tracker processes, in (0, 1] "
                   "(default 1: every frame); the others are filled; without V-JEPA 2 a uniform stride")
    v.add_argument("--max-gap", type=int, help="a fill never spans more than N frames (default 4)")
    v.add_argument("--fill", help="interpolate (default: between the tracked frames around, output lags "
                                  "up to --max-gap frames) or carry (copy the last tracked frame, no lag)")

    live = p.add_argument_group("live streams (--input rtsp://... | http://... | udp://... | webcam:N | -)")
    live.add_argument("--realtime", action="store_true", help="process the newest frame and drop (and count) "
                      "the ones the models cannot keep up with; default: every frame")
    live.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    live.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    live.add_argument("--open-timeout", type=float, metavar="S", help="seconds for the stream to open, and "
                      "of silence before it counts as dropped (default 10)")
    live.add_argument("--reconnect", type=int, metavar="N", help="reopen a dropped stream up to N times, with "
                      "backoff (default 0)")
    live.add_argument("--segment-seconds", type=float, metavar="S", help="seconds per overlay video segment "
                      "(default 60)")

    o = p.add_argument_group("output to the terminal")
    o.add_argument("-v", "--verbose", action="store_true", help="more logging; tracebacks on errors")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    o.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def config_from_args(ns: argparse.Namespace):
    """Merge defaults < YAML < flags given on the command line into a PipelineBaseData."""
    from .data.config import ALIASES, PipelineBaseData, load_yaml

    given = {k: v for k, v in vars(ns).items() if k not in ("config_file", "verbose", "quiet")}
    data: dict = {}
    if getattr(ns, "config_file", None):
        data = {str(k).replace("-", "_"): v for k, v in load_yaml(ns.config_file).items()}
        source = ns.config_file
    else:
        source = "config"
    for alias, key in ALIASES.items():  # a flag replaces the YAML's value under either spelling
        if alias in given or key in given:
            data.pop(alias, None)
            data.pop(key, None)
    data.update(given)
    if getattr(ns, "quiet", False):
        data["progress"] = False
    return PipelineBaseData.from_dict(data, source=source)


class _Formatter(logging.Formatter):
    """Errors and warnings as ``sowlv2: error: ...`` / ``sowlv2: warning: ...``; information as is."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"{PROG}: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"{PROG}: warning: {text}"
        return text


def setup_logging(verbose: bool, quiet: bool) -> None:
    """Log lines of the 'sowlv2' logger to stderr (errors as 'sowlv2: error: ...'); transformers quiet."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose
                         else _Formatter("%(message)s"))
    root = logging.getLogger("sowlv2")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_info() if verbose else hf_logging.set_verbosity_error()
        if not verbose:
            hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _run_live(config) -> int:
    """``sowlv2 --input URL|webcam:N|- ...``: run_live with the config's settings; prints a summary."""
    from .live import run_live
    from .pipeline import SOWLv2Pipeline

    if config.fps is not None:
        raise UsageError("fps: does not apply to a live stream (every frame is processed, or the newest "
                         "with --realtime)")
    if config.frames:
        raise UsageError("frames: a live stream is a video already; drop --frames")
    report = run_live(SOWLv2Pipeline(config), config.input, config.prompt, config.output,
                      realtime=config.realtime, open_timeout=config.open_timeout, reconnect=config.reconnect,
                      duration=config.duration, max_frames=config.max_frames,
                      segment_seconds=config.segment_seconds)
    if config.progress:
        lat = report.live.get("latency", {})
        print(f"{report.name}: {report.objects} object(s) in {report.frames} frames "
              f"({report.status}: {report.stop}; dropped {report.live.get('dropped', 0)}, "
              f"{len(report.live.get('gaps', []))} gap(s); latency p50 {lat.get('p50_ms')} ms, "
              f"p95 {lat.get('p95_ms')} ms) -> {report.output}")
    return report.exit_code


def run(argv: list[str]) -> int:
    ns = build_parser().parse_args(argv)
    setup_logging(getattr(ns, "verbose", False), getattr(ns, "quiet", False))
    config = config_from_args(ns)
    if not config.input and not config.input_list:
        raise UsageError("input: give an image, a folder or a video with --input (or --input-list FILE)")
    if not config.prompt:
        raise UsageError("prompt: give at least one text prompt with --prompt")
    from .io.live import is_live_input
    from .live import LIVE_KEYS

    if is_live_input(config.input):  # a stream URL, webcam:N or - (stdin): the live runner
        if config.engine != "local":
            raise UsageError("engine: a live stream is processed here, one frame after another; "
                             "--engine ray takes files, folders and lists")
        return _run_live(config)
    for key, default in LIVE_KEYS.items():
        if getattr(config, key) != default:
            raise UsageError(f"{key}: applies to live input only (--input rtsp://..., http://..., webcam:N or -)")
    from .pipeline import SOWLv2Pipeline

    reports = SOWLv2Pipeline(config).process()
    done = [r for r in reports if r.status == "done"]
    failed = [r for r in reports if r.status == "failed"]
    skipped = [r for r in reports if r.status == "skipped"]
    if not getattr(ns, "quiet", False):
        for r in done:
            what = f"{r.objects} object(s)" + (f" in {r.frames} frames" if r.kind != "image" else "")
            if r.objects == 0:
                what = "nothing found for " + ", ".join(repr(p) for p in config.prompt)
            print(f"{r.name}: {what} -> {r.output}")
        summary = f"{len(done)} done"
        if skipped:
            summary += f", {len(skipped)} skipped (already complete)"
        if failed:
            where = "; see run.json" if (Path(config.output).expanduser() / "run.json").is_file() else ""
            summary += f", {len(failed)} failed ({', '.join(r.name for r in failed)}{where})"
        print(f"{summary}; results in {config.output}")
    # Each failed input was reported on stderr (one line) as it failed.
    return 1 if failed else 0


def bench_main(argv: list[str]) -> int:
    """``sowlv2 bench ...``: run :func:`sowlv2.bench.run_bench` and print where the report is and the targets;
    ``sowlv2 bench backends|adaptive|engine ...`` runs the backend, adaptive-compute or engine benchmark.

    Returns:
        0, or 1 when a section failed (the report is still written, with the error).
    """
    sections = {"backends": "sowlv2.bench_backends", "adaptive": "sowlv2.bench_adaptive",
                "engine": "sowlv2.engines.bench_engine"}
    if argv and argv[0] in sections:  # sowlv2 bench backends|adaptive|engine ARGS: their own commands
        import importlib

        try:
            text = importlib.import_module(sections[argv[0]]).command(argv[1:])
        except SOWLv2Error as exc:
            print(f"{PROG}: error: bench {argv[0]}: {exc}", file=sys.stderr)
            return exc.exit_code
        if text:
            print(text)
        return 0
    from .bench import parse_args, run_bench

    settings = parse_args(argv)
    if not logging.getLogger("sowlv2").handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    report, jpath, mpath = run_bench(settings)
    print(f"wrote {jpath} and {mpath} ({report['bench_seconds']} s)")
    for t in report["targets"]:
        flag = "PASS" if t["pass"] else "FAIL"
        print(f"  {flag}{'' if t['applies'] else ' (n/a)'}: {t['name']} = {t['value']:.3f} ({t['limit']})")
    for section, error in report["errors"].items():
        print(f"{PROG}: error: bench: section {section} failed: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


def _subcommands() -> dict[str, Callable[[list[str]], int]]:
    def lazy(module: str, func: str) -> Callable[[list[str]], int]:
        def call(argv: list[str]) -> int:
            import importlib

            return getattr(importlib.import_module(module), func)(argv)
        return call

    return {"eval": lazy("sowlv2.eval.cli", "eval_main"), "world": lazy("sowlv2.eval.cli", "world_main"),
            "bench": bench_main, "demo": lazy("sowlv2.eval.cli", "demo_main"),
            "export": lazy("sowlv2.export.cli", "export_main"),
            "serve": lazy("sowlv2.app", "serve_main")}  # the web UI (needs the app extra: gradio)


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler API
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sowlv2`` / ``sowlv2-detect`` / ``python -m sowlv2``; returns the exit code.

    SIGTERM (what batch schedulers and ``kill`` send) stops the run like Ctrl-C: unfinished results
    are removed, run.json is marked ``interrupted`` and the exit code is 130.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        subs = _subcommands()
        if argv and argv[0] in subs:
            return subs[argv[0]](argv[1:])
        return run(argv)
    except SOWLv2Error as exc:
        if verbose:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished inputs are kept, rerun with --resume to continue",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if verbose:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{PROG}: internal error: {type(exc).__name__}: {first} (rerun with -v for details)",
              file=sys.stderr)
        return 1
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


if __name__ == "__main__":
    sys.exit(main())
