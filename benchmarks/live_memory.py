"""Memory of a long live run: RSS at 10% and 100% of a synthetic stream pushed at full speed.

The frames go through the whole live path (LiveSource queue -> SOWLv2Pipeline.track with the key-frame
cadence and association -> results.jsonl -> fragmented-MP4 overlay segments -> results.json and
annotations.json at the end) with fake models (tests/live_helpers.py), so nothing but the live
machinery and the outputs can grow. Prints one JSON line.

    python benchmarks/live_memory.py --frames 20000 [--size 64x96] [--fps 30] [--realtime]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def rss_mib() -> float:
    """Resident set size of this process now (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    from live_helpers import fake_pipeline, synthetic_frame

    from sowlv2.io.live import LiveSource
    from sowlv2.live import run_live

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--size", default="64x96", help="HxW")
    ap.add_argument("--fps", type=float, default=30.0, help="stream time per frame = 1/fps")
    ap.add_argument("--detect-every", type=int, default=10)
    ap.add_argument("--realtime", action="store_true")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    n = args.frames
    samples: dict[str, float] = {}
    frames = [synthetic_frame(k, (h, w)) for k in range(64)]  # reused: the pusher makes no garbage

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        source = LiveSource(realtime=args.realtime)

        def feed():
            for k in range(n):
                source.push(frames[k % 64].copy(), time_s=k / args.fps)
            source.end()

        def on_frame(result):
            done = result.index + 1
            if done in (n // 10, n) or done == report_at:
                samples[f"{round(100 * done / n)}%"] = round(rss_mib(), 1)

        report_at = n // 2
        pipe = fake_pipeline(output=str(out), detect_every=args.detect_every)
        t0 = time.perf_counter()
        threading.Thread(target=feed, daemon=True).start()
        report = run_live(pipe, source, ["thing"], out, segment_seconds=60.0, on_frame=on_frame, warmup=False,
                          handle_signals=False)
        seconds = time.perf_counter() - t0
        samples["after finalising"] = round(rss_mib(), 1)
        folder = out / report.name
        sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        segments = len(list((folder / "video").glob("*.mp4")))
    print(json.dumps({"frames": report.frames, "dropped": report.live["dropped"], "size": args.size,
                      "seconds": round(seconds, 1), "frames_per_s": round(report.frames / seconds, 1),
                      "rss_mib": samples, "ratio_100_vs_10": round(samples["100%"] / samples["10%"], 3),
                      "segments": segments, "bytes": sizes}))


if __name__ == "__main__":
    main()
