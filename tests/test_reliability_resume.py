"""kill -9 at several moments, Ctrl-C, then --resume: the same results as a run never interrupted.

Real subprocesses of ``python -m sowlv2`` with the tiny random models over a folder of six images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sowlv2.cli import main

SRC = str(Path(__file__).parents[1] / "src")
NAMES = [f"img{k}" for k in range(1, 7)]
# Loaded by the child interpreters (``sitecustomize``): every result takes at least this long to
# finish, so that a signal sent as a result appears lands while the run still has inputs to do (with
# the tiny models the last inputs could otherwise finish before the signal is handled).
_SLOW_CLOSE = """
import time
from sowlv2.io import sinks
_close = sinks.InputWriter.close
def close(self, *args, **kwargs):
    time.sleep(0.25)
    return _close(self, *args, **kwargs)
sinks.InputWriter.close = close
"""


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    folder = tmp_path_factory.mktemp("six")
    rng = np.random.default_rng(0)
    for k, name in enumerate(NAMES):
        image = rng.integers(0, 256, (48 + 4 * k, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


def _args(six, tiny_owl, tiny_sam, out: Path) -> list[str]:
    return ["-i", str(six), "-p", "cat", "a dog", "--owl-model", str(tiny_owl), "--sam-model", str(tiny_sam),
            "--device", "cpu", "--threshold", "0", "--max-objects", "2", "--output", str(out), "-q"]


def _start(args: list[str]) -> subprocess.Popen:
    hook = Path(args[args.index("--output") + 1]).parent / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_SLOW_CLOSE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), SRC]), "HF_HUB_OFFLINE": "1"}
    # A shell without job control starts background jobs with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give the child the default disposition, as a terminal would.
    return subprocess.Popen([sys.executable, "-m", "sowlv2", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _results(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) if out.exists() else []


def _signal_when(proc: subprocess.Popen, ready, sig: int, timeout: float = 120.0) -> tuple[str, str]:
    """Send ``sig`` as soon as ``ready()`` holds (polling every 2 ms) while the run is still going."""
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"the run ended before the moment to stop it:\n{proc.communicate()[1]}"
        assert time.monotonic() - t0 < timeout, "the moment to stop never came"
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    return proc.communicate(timeout=timeout)


def _assert_consistent(out: Path) -> None:
    """What a stopped run leaves: run.json readable; every result folder complete (no half files)."""
    run = json.loads((out / "run.json").read_text())
    for name in _results(out):
        res = json.loads((out / name / "results.json").read_text())
        assert res["stats"]["frames"] == 1
        json.loads((out / name / "annotations.json").read_text())
        for obj in res["frames"][0]["objects"]:
            assert list((out / name / "binary/frames").glob(f"000000_obj{obj['id']:02d}_*_mask.png"))
        if run["inputs"].get(name, {}).get("status") == "done":
            assert run["inputs"][name]["output"] == str(out / name)


def _snapshot(out: Path) -> dict[str, object]:
    """Every file of the results (not run.json): JSON without timings, other files as bytes."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if p.is_dir() or rel == "run.json":
            continue
        if p.name == "results.json":
            data = json.loads(p.read_text())
            del data["stats"]["seconds"]
            files[rel] = data
        else:
            files[rel] = p.read_bytes()
    return files


def test_kill_and_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, six, tiny_owl, tiny_sam, capsys):
    reference = tmp_path / "reference"
    assert main(_args(six, tiny_owl, tiny_sam, reference)) == 0
    expected = _snapshot(reference)
    assert len([f for f in expected if f.endswith("results.json")]) == 6

    out = tmp_path / "out"
    # 1. kill -9 as soon as the first result folder appears.
    proc = _start(_args(six, tiny_owl, tiny_sam, out))
    _signal_when(proc, lambda: len(_results(out)) >= 1, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    _assert_consistent(out)
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # as kill -9 left it

    # Without --resume or --overwrite, the half-done folder is refused (and left as it is).
    before = _snapshot(out)
    assert main(_args(six, tiny_owl, tiny_sam, out)) == 2
    assert "is not empty; use --overwrite to replace results or --resume" in capsys.readouterr().err
    assert _snapshot(out) == before

    # 2. --resume, then Ctrl-C (SIGINT) once one more result exists: a clean stop with exit code 130.
    before = len(_results(out))
    proc = _start(_args(six, tiny_owl, tiny_sam, out) + ["--resume"])
    _, err = _signal_when(proc, lambda: len(_results(out)) > before, signal.SIGINT)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("sowlv2: interrupted; finished inputs are kept, rerun with --resume "
                                            "to continue")
    assert "Traceback" not in err
    assert not list(out.glob(".*")), "no .partial folder (nor temporary file) is left behind"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert {r["status"] for r in run["inputs"].values()} <= {"done", "interrupted"}
    _assert_consistent(out)

    # 3. --resume, kill -9 mid-way: as soon as a result is being written (.partial) or two more appeared.
    before = len(_results(out))
    assert before < 5
    proc = _start(_args(six, tiny_owl, tiny_sam, out) + ["--resume"])
    _signal_when(proc, lambda: bool(list(out.glob(".*.partial"))) or len(_results(out)) >= before + 2,
                 signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    _assert_consistent(out)

    # 4. --resume to the end: the same files as the uninterrupted run, byte for byte (timings aside).
    proc = _start(_args(six, tiny_owl, tiny_sam, out) + ["--resume"])
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert _results(out) == NAMES and not list(out.glob(".*"))
    assert _snapshot(out) == expected
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and sorted(run["inputs"]) == NAMES
    assert all(r["status"] == "done" for r in run["inputs"].values())
