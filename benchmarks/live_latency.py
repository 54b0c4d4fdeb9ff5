"""Latency of a live run, from capture to result, on a real-time HTTP stream on 127.0.0.1.

A synthetic world video (``sowlv2 world``, seed 0, 320x240, 3 objects) is served in a loop as H.264 in
MPEG-TS at ``--fps`` (tests/live_helpers.py's TsServer), and the ``sowlv2`` command reads it for
``--duration`` seconds with the given models. Prints the run's ``live`` statistics (run.json) as
one JSON line: frames read / processed / dropped, latency p50 / p95 / max / mean in ms.

    python benchmarks/live_latency.py --detector demo --tracker demo --duration 30 [--realtime]
    python benchmarks/live_latency.py --fake --duration 30     # the live path alone: fake models, in-process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def main() -> None:
    import av
    from live_helpers import TsServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="demo")
    ap.add_argument("--tracker", default="demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--detect-every", type=int, default=10)
    ap.add_argument("--realtime", action="store_true")
    ap.add_argument("--max-objects", type=int, help="passed on (bounds the objects that random-weight models track)")
    ap.add_argument("--fake", action="store_true", help="fake models (tests/live_helpers.py) through "
                    "sowlv2.live.run_live in this process: what the live path itself costs")
    args = ap.parse_args()
    # The subprocesses import this checkout's sowlv2.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "sowlv2", "world", "--output", str(tmp / "w"), "--seed", "0",
                        "--frames", "48"], check=True, capture_output=True, env=env)
        with av.open(str(tmp / "w/video_000/video.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        prompts = list(json.loads((tmp / "w/video_000/categories.json").read_text()).values())
        server = TsServer(sessions=[None], fps=args.fps, frames=frames)
        cmd = [sys.executable, "-m", "sowlv2", "--input", server.url, "--prompt", *prompts,
               "--detector", args.detector, "--tracker", args.tracker, "--device", args.device,
               "--dtype", args.dtype, "--duration", str(args.duration), "--detect-every", str(args.detect_every),
               "--output", str(tmp / "out"), "-q"] + (["--realtime"] if args.realtime else []) \
            + (["--max-objects", str(args.max_objects)] if args.max_objects else [])
        try:
            if args.fake:
                from live_helpers import fake_pipeline

                from sowlv2.live import run_live

                pipe = fake_pipeline(output=str(tmp / "out"), detect_every=args.detect_every)
                run_live(pipe, server.url, prompts, tmp / "out", realtime=args.realtime, duration=args.duration)
            else:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    sys.exit(proc.stderr)
        finally:
            server.close()
        run = json.loads((tmp / "out/run.json").read_text())
    live = run["live"]
    models = ["fake", "fake"] if args.fake else [args.detector, args.tracker]
    print(json.dumps({"models": models, "device": args.device, "fps": args.fps,
                      "realtime": args.realtime, "detect_every": args.detect_every, "duration": args.duration,
                      "max_objects": args.max_objects, "dtype": args.dtype,
                      "frames_read": live["frames_read"], "frames": live["frames"], "dropped": live["dropped"],
                      "latency_ms": live["latency"]}))


if __name__ == "__main__":
    main()
