"""Make docs/webui.png, the README's screenshot of the web UI with a result.

Serves the page in this process (``sowlv2.app.serve``) with the shipped demo models on the CPU, writes a
16-frame world video (``sowlv2.eval.world``), and drives Debian's headless Chromium with Playwright
(loopback only): upload, type the video's labels, run, pick a frame, take a screenshot. The PNG is
reduced to 256 colours to stay small. Needs ``pip install -e '.[dev]'`` and ``apt-get install chromium``.

    python tools/screenshot_app.py [--output docs/webui.png] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "webui.png"))
    p.add_argument("--chromium", default=os.environ.get("SOWLV2_CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--frame", type=int, default=12, help="frame shown in the slider (default 12)")
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    from sowlv2.app import serve
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.eval.world import generate_world

    tmp = Path(tempfile.mkdtemp(prefix="sowlv2-shot-"))
    video = generate_world(tmp / "world", seed=0, frames=16)[0]
    labels = sorted(set(json.loads((video / "categories.json").read_text()).values()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = PipelineBaseData(owl_model="demo", sam_model="demo", device="cpu", threshold=0.2, detect_every=5)
    blocks, url = serve(config, host="127.0.0.1", port=port, workdir=tmp / "jobs", block=False, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1:", "data:",
                                                                                     "blob:")) else r.abort())
            page.goto(url)
            page.wait_for_selector("#sowlv2-run")
            page.locator("#sowlv2-files input[type=file]").set_input_files(str(video / "video.mp4"))
            page.wait_for_selector("#sowlv2-files .file-preview", state="attached")
            page.locator("#sowlv2-prompts textarea").fill(", ".join(labels))
            t0 = time.time()
            page.click("#sowlv2-run")
            page.wait_for_function("() => document.querySelector('#sowlv2-status').innerText.startsWith('Done')",
                                   timeout=600_000)
            page.wait_for_function("() => { const v = document.querySelector('#sowlv2-video video'); "
                                   "return v && v.readyState >= 2; }")
            slider = page.locator("#sowlv2-slider input[type=number]")
            slider.fill(str(args.frame))
            slider.press("Enter")
            page.wait_for_timeout(2000)
            out = Path(args.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            raw = tmp / "raw.png"
            page.screenshot(path=str(raw), full_page=True)
            browser.close()
    finally:
        blocks.close()
    from PIL import Image

    with Image.open(raw) as im:
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB; the job took {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
