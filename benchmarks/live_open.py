"""Time from opening a live HTTP stream to its first frame, for FFmpeg probe settings.

Serves the 10 fps MPEG-TS test stream (tests/live_helpers.py) on 127.0.0.1 and opens it with
``sowlv2.io.live.LiveSource`` three times per setting. Prints one JSON line of seconds.

    python benchmarks/live_open.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

SETTINGS = {
    "ffmpeg default": {},
    "probesize 32 KB, analyzeduration 0.5 s": {"probesize": "32768", "analyzeduration": "500000"},
    "probesize 32 KB, analyzeduration 0.1 s (sowlv2)": {"probesize": "32768", "analyzeduration": "100000"},
}


def main() -> None:
    from live_helpers import TsServer

    import sowlv2.io.live as live

    shipped = dict(live.PROBE_OPTIONS)
    out = {}
    try:
        for label, options in SETTINGS.items():
            live.PROBE_OPTIONS.clear()
            live.PROBE_OPTIONS.update(options)
            seconds = []
            for _ in range(3):
                server = TsServer(sessions=[None], fps=10)
                source = live.LiveSource(server.url, open_timeout=10)
                t0 = time.monotonic()
                source.open()
                next(source.frames())
                seconds.append(round(time.monotonic() - t0, 2))
                source.close()
                server.close()
            out[label] = seconds
    finally:
        live.PROBE_OPTIONS.clear()
        live.PROBE_OPTIONS.update(shipped)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
