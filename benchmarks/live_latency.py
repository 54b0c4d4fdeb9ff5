"""Latency of a live run, from capture to result, on a real-time HTTP stream on 127.0.0.1.

A synthetic world video (``sowlv2 world``, seed 0, 320x240, 3 objects) is served in a loop as H.264 in
MPEG-TS at ``--fps`` (tests/live_helpers.py's TsServer), and the ``sowlv2`` command reads it for
``--duration`` seconds with the given models. Prints the run's ``live`` statistics (run.json) as
one JSON line: frames read / processed / dropped, latency p50 / p95 / max / mean in ms.

    python benchmarks/live_latency.py --detector demo --tracker demo --duration 30 [--realtime]
"""

from __future__ import annotations

import argparse
import json
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "sowlv2", "world", "--output", str(tmp / "w"), "--seed", "0",
                        "--frames", "48"], check=True, capture_output=True)
        with av.open(str(tmp / "w/video_000/video.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        prompts = list(json.loads((tmp / "w/video_000/categories.json").read_text()).values())
        server = TsServer(sessions=[None], fps=args.fps, frames=frames)
        cmd = [sys.executable, "-m", "sowlv2", "--input", server.url, "--prompt", *prompts,
               "--detector", args.detector, "--tracker", args.tracker, "--device", args.device,
               "--dtype", args.dtype, "--duration", str(args.duration), "--detect-every", str(args.detect_every),
               "--output", str(tmp / "out"), "-q"] + (["--realtime"] if args.realtime else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            server.close()
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        run = json.loads((tmp / "out/run.json").read_text())
    live = run["live"]
    print(json.dumps({"models": [args.detector, args.tracker], "device": args.device, "fps": args.fps,
                      "realtime": args.realtime, "detect_every": args.detect_every, "duration": args.duration,
                      "frames_read": live["frames_read"], "frames": live["frames"], "dropped": live["dropped"],
                      "latency_ms": live["latency"]}))


if __name__ == "__main__":
    main()
