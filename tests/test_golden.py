"""Golden outputs: a fixed video run and a fixed image run with the tiny models give exactly the
recorded outputs (every PNG's pixels, results.json / run.json / annotations.json minus timings and
machine facts, the decoded frames of every MP4).

This guards refactors: moving code must not change a single output. An intended change of outputs
regenerates the record with ``SOWLV2_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` in the commit that
makes the change (say in its message what changed and why). Torch runs on one thread here: results
are identical only at equal thread counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from sowlv2.cli import main
from sowlv2.eval.world import generate_world

GOLDEN = Path(__file__).parent / "golden" / "outputs.json"
# Keys whose values depend on the machine, the clock or the temporary folders (the tiny models live
# in one), not on the results.
VOLATILE = {"seconds", "started", "finished", "versions", "output", "path", "torch_threads", "owl_model", "sam_model"}


def _canonical(data):
    if isinstance(data, dict):
        return {k: _canonical(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [_canonical(v) for v in data]
    return data


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.suffix == ".json":
        h.update(json.dumps(_canonical(json.loads(path.read_text(encoding="utf-8"))), sort_keys=True).encode())
    elif path.suffix == ".png":
        with Image.open(path) as im:
            h.update(f"{im.mode}{im.size}".encode())
            h.update(np.asarray(im).tobytes())
    elif path.suffix == ".mp4":
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                h.update(frame.to_ndarray(format="rgb24").tobytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_outputs_match_the_golden_record(tmp_path, tiny_owl, tiny_sam, one_thread):
    (folder,) = generate_world(tmp_path / "world", seed=7, frames=12, size=(96, 72))
    video = folder / "video.mp4"
    with av.open(str(video)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    image = tmp_path / "still.png"
    Image.fromarray(first).save(image)
    base = ["--detector", str(tiny_owl), "--tracker", str(tiny_sam), "--device", "cpu", "-q",
            "-p", "red square", "blue disc"]
    runs = {"video": ["-i", str(video), "--detect-every", "4", "--mask-videos"],
            "image": ["-i", str(image)]}
    got = {}
    for name, args in runs.items():
        out = tmp_path / f"out_{name}"
        assert main([*base, *args, "-o", str(out)]) == 0
        got[name] = _digests(out)
    if os.environ.get("SOWLV2_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden record rewritten")
    want = json.loads(GOLDEN.read_text())
    for name in runs:
        assert sorted(got[name]) == sorted(want[name]), f"{name}: the set of output files changed"
        changed = [p for p in want[name] if got[name][p] != want[name][p]]
        assert not changed, f"{name}: outputs differ from the golden record: {changed}"
