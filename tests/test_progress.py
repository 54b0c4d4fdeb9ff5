"""Progress on a pipe or in a file: sparse plain lines, never carriage-return updates."""

from __future__ import annotations

import io
import subprocess
import sys

from sowlv2.progress import PlainProgress


def test_plain_progress_writes_one_line_per_interval_and_one_at_the_end(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("sowlv2.progress.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = PlainProgress(100, "clip", interval=10.0, file=out)
    for _ in range(100):
        clock[0] += 0.5  # 2 frames per second: a line every 20 frames
        bar.update(1)
        bar.set_postfix(objects=2)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 6  # at 10, 20, 30, 40, 50 s and at the end
    assert lines[0] == "clip: 20/100 frames (20%), 2.00 frame/s, objects=2"
    assert lines[-1] == "clip: 100/100 frames (100%), 2.00 frame/s, objects=2"


def test_the_cli_on_a_pipe_writes_no_carriage_returns(tmp_path, tiny_owl, tiny_sam):
    from sowlv2.eval.world import generate_world

    (folder,) = generate_world(tmp_path / "w", seed=3, frames=6, size=(64, 48))
    proc = subprocess.run([sys.executable, "-m", "sowlv2", "-i", str(folder / "video.mp4"), "-p", "red square",
                           "--detector", str(tiny_owl), "--tracker", str(tiny_sam), "--device", "cpu",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert "video: 6/6 frames (100%)" in proc.stderr  # the closing line of the plain progress
    assert proc.stderr.index("loading the detector") < proc.stderr.index("video: 6/6 frames")
