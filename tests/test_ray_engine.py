"""``--engine ray`` on a local Ray cluster on loopback, with the tiny random models.

One cluster for the module (``ray.init`` takes seconds), started by the engine's own ``connect``;
each worker 1 CPU (2 each would stall the second worker on a 2-core machine). Workers inherit the
cluster's environment: a ``sitecustomize`` on its PYTHONPATH makes every result take at least 0.3 s
to close, so that a worker killed, or a driver interrupted, as a result appears is still in the
middle of an input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from sowlv2.cli import main  # noqa: E402
from sowlv2.io.video import VideoWriter  # noqa: E402

SRC = str(Path(__file__).parents[1] / "src")
_SLOW_CLOSE = """
import time
from sowlv2.io import sinks
_close = sinks.InputWriter.close
def close(self, *args, **kwargs):
    time.sleep(0.3)
    return _close(self, *args, **kwargs)
sinks.InputWriter.close = close
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Ray started the way the engine starts it without --ray-address (``ray_engine.connect``), shared by
    the module; yields its GCS address (later drivers join it as in-process calls or with --ray-address)."""
    from ray._private import ray_constants

    from sowlv2.engines.ray_engine import connect

    base = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under 108 bytes
    hook = base / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SLOW_CLOSE)
    (base / "t").mkdir()
    env = {"RAY_TMPDIR": str(base / "t"), "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(hook), SRC, os.environ.get("PYTHONPATH", "")]),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": None, "RAY_USAGE_STATS_ENABLED": None,
           "RAY_worker_niceness": None}  # None: the engine sets it
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    enable_cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = True  # Ray's default on Linux: listen on every interface
    try:
        assert connect(ray, None) is True
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = enable_cluster
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Six inputs: three images, two videos (mp4), and a file that claims to be an image but is not."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (40 + 4 * k, 56, 3), dtype=np.uint8)).save(folder / f"img{k}.png")
    for k in range(2):
        with VideoWriter(folder / f"clip{k}.mp4", fps=10.0) as vw:
            for t in range(4):
                frame = np.full((48, 64, 3), 30 * k, np.uint8)
                frame[8:24, 4 + 5 * t:20 + 5 * t] = (220, 40, 40)
                vw.write(frame)
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    return folder


def _args(inp: Path, owl, sam, out: Path) -> list[str]:
    return ["-i", str(inp), "-p", "cat", "a dog", "--owl-model", str(owl), "--sam-model", str(sam),
            "--device", "cpu", "--threshold", "0", "--max-objects", "2", "--detect-every", "2",
            "--output", str(out), "-q"]


_RAY = ["--engine", "ray", "--workers", "2", "--cpus-per-worker", "1"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mixed, tiny_owl, tiny_sam):
    """The local engine's results at 1 torch thread (the workers' count with --cpus-per-worker 1)."""
    import torch

    out = tmp_path_factory.mktemp("ref") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_args(mixed, tiny_owl, tiny_sam, out)) == 1
    finally:
        torch.set_num_threads(threads)
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == {"name": "local", "torch_threads": 1}
    return out


def _decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _assert_same_results(a: Path, b: Path) -> None:
    """Every result folder of ``a`` and ``b`` alike: the same files, PNGs and annotations.json byte for
    byte, results.json but for its timings, MP4s frame for frame."""
    names = sorted(p.name for p in a.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in b.iterdir() if p.is_dir())
    for name in names:
        files = sorted(p.relative_to(a / name) for p in (a / name).rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b / name) for p in (b / name).rglob("*") if p.is_file()), name
        for rel in files:
            x, y = a / name / rel, b / name / rel
            if rel.name == "results.json":
                dx, dy = json.loads(x.read_text()), json.loads(y.read_text())
                del dx["stats"]["seconds"], dy["stats"]["seconds"]
                assert dx == dy, f"{name}/{rel}"
            elif rel.suffix == ".mp4":
                fx, fy = _decoded(x), _decoded(y)
                assert len(fx) == len(fy) > 0 and all(np.array_equal(p, q) for p, q in zip(fx, fy)), f"{name}/{rel}"
            else:
                assert x.read_bytes() == y.read_bytes(), f"{name}/{rel}"


def _run_json(out: Path) -> dict:
    try:
        return json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def test_ray_started_by_the_engine_listens_on_loopback_only(cluster):
    """Without --ray-address the engine starts Ray for the run: on 127.0.0.1 only, no usage statistics."""
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0" and cluster.startswith("127.0.0.1:")
    me = psutil.Process()
    listening = [(p.name(), c.laddr) for p in [me, *me.children(recursive=True)]
                 for c in _connections(p) if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3  # gcs_server, raylet, the driver's core worker at least
    assert all(addr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for _, addr in listening), listening
    # Workers at the driver's priority (Ray's default is niceness 15).
    assert ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote()) == os.nice(0)


def _connections(p):
    try:
        return p.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_two_workers_one_killed_give_the_local_results(cluster, tmp_path, mixed, tiny_owl, tiny_sam, reference,
                                                       capsys):
    """2 workers over 6 inputs (one bad); one worker is killed (kill -9) in the middle of an input: its
    input is retried on a worker and recorded; every result is the local engine's; exit code 1."""
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_busy_worker():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            run = _run_json(out)
            inputs = run.get("inputs", {})
            busy = [r["worker"] for r in inputs.values() if r.get("status") == "running" and "worker" in r]
            if any(r.get("status") == "done" for r in inputs.values()) and busy:
                pid = int(busy[0].rsplit(":", 1)[1])
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_a_busy_worker, daemon=True)
    watcher.start()
    assert main(_args(mixed, tiny_owl, tiny_sam, out) + _RAY) == 1
    watcher.join(timeout=5)
    err = capsys.readouterr().err
    assert killed, "no worker was killed: the run ended first"
    run = _run_json(out)
    assert run["status"] == "failed" and run["engine"]["workers"] == 2 and run["engine"]["torch_threads"] == 1
    assert run["settings"]["torch_threads"] == 1  # the workers' count: a result setting
    assert killed[0] in [w["pid"] for w in run["engine"]["workers_at_start"]]
    statuses = {name: rec["status"] for name, rec in run["inputs"].items()}
    assert statuses == {"img0": "done", "img1": "done", "img2": "done", "clip0": "done", "clip1": "done",
                        "broken": "failed"}
    retried = {name: rec["retries"] for name, rec in run["inputs"].items() if "retries" in rec}
    assert len(retried) == 1 and len(next(iter(retried.values()))) == 1, retried
    assert f"pid {killed[0]}" in next(iter(retried.values()))[0]["reason"]
    assert "broken.png" in run["inputs"]["broken"]["error"] and "retries" not in run["inputs"]["broken"]
    assert err.count("broken.png") == 1 and "Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no .partial, no token left
    _assert_same_results(reference, out)


def test_interrupted_driver_then_resume_with_the_local_engine(cluster, tmp_path, mixed, tiny_owl, tiny_sam,
                                                              reference):
    """Ctrl-C on a ray driver (a subprocess joined to the cluster): exit 130, run.json interrupted, no
    unfinished result; --resume with the local engine does the rest and nothing twice."""
    import torch

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "sowlv2", *_args(mixed, tiny_owl, tiny_sam, out), *_RAY,
                             "--ray-address", cluster], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    while sum(r.get("status") == "done" for r in _run_json(out).get("inputs", {}).values()) < 2:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - t0 < 120, "the run never got going"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    run = _run_json(out)
    assert run["status"] == "interrupted"
    done = sorted(n for n, r in run["inputs"].items() if r["status"] == "done")
    assert len(done) >= 2 and len(done) < 6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # unfinished results removed
    stamps = {n: ((out / n / "results.json").stat().st_mtime_ns, run["inputs"][n]) for n in done}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_args(mixed, tiny_owl, tiny_sam, out) + ["--resume"]) == 1  # broken.png fails again
    finally:
        torch.set_num_threads(threads)
    run = _run_json(out)
    assert run["engine"]["name"] == "local"
    assert {n: r["status"] for n, r in run["inputs"].items()} == {
        "img0": "done", "img1": "done", "img2": "done", "clip0": "done", "clip1": "done", "broken": "failed"}
    for n, stamp in stamps.items():  # not redone
        assert ((out / n / "results.json").stat().st_mtime_ns, run["inputs"][n]) == stamp, n
    _assert_same_results(reference, out)

    # And the ray engine continues the local engine's run: only broken.png is left to do (and fails).
    before = {n: (out / n / "results.json").stat().st_mtime_ns for n in run["inputs"] if n != "broken"}
    assert main(_args(mixed, tiny_owl, tiny_sam, out) + _RAY + ["--resume"]) == 1
    run = _run_json(out)
    assert run["engine"]["name"] == "ray" and run["inputs"]["broken"]["status"] == "failed"
    assert before == {n: (out / n / "results.json").stat().st_mtime_ns for n in before}


def test_a_model_that_cannot_be_loaded_stops_the_run_with_the_local_message(cluster, tmp_path, mixed, tiny_owl,
                                                                           tiny_sam, capsys):
    assert main(_args(mixed, tmp_path / "no-such-model", tiny_sam, tmp_path / "local")) == 1
    local_err = capsys.readouterr().err.strip().splitlines()[-1]  # after broken.png's own error
    args = _args(mixed, tmp_path / "no-such-model", tiny_sam, tmp_path / "out")
    assert main(args + ["--engine", "ray", "--workers", "1", "--cpus-per-worker", "1"]) == 1
    err = capsys.readouterr().err.strip()  # the workers load the models at start, before any input
    assert err == local_err and "no-such-model" in err
    assert not (tmp_path / "out").exists()  # nothing done in a new folder: nothing left


# ---------------------------------------------------------------------- without a cluster
def test_ray_engine_without_ray_is_one_line(monkeypatch, tmp_path, mixed, tiny_owl, tiny_sam, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(_args(mixed, tiny_owl, tiny_sam, tmp_path / "out") + _RAY) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'sowlv2[ray]'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("resources, flags, expected", [
    ({"CPU": 2}, {}, (1, 2, 0.0)),  # one worker per 2 cores, 2 cores (and torch threads) each
    ({"CPU": 16}, {}, (8, 2, 0.0)),
    ({"CPU": 2}, {"workers": 2}, (2, 1, 0.0)),  # 2 workers on 2 cores: 1 core each
    ({"CPU": 1}, {}, (1, 1, 0.0)),
    ({"CPU": 32, "GPU": 4}, {}, (4, 8, 1.0)),  # one worker per GPU, the cores shared
    ({"CPU": 32, "GPU": 4}, {"gpus_per_worker": 0.5}, (8, 4, 0.5)),  # fractions share a GPU
    ({"CPU": 32, "GPU": 4}, {"gpus_per_worker": 0.0, "cpus_per_worker": 4}, (8, 4, 0.0)),
    ({"CPU": 2}, {"workers": 2, "cpus_per_worker": 2}, "need 4 CPUs, the Ray cluster has 2"),
    ({"CPU": 8, "GPU": 1}, {"workers": 2}, "need 2 GPUs, the Ray cluster has 1"),
])
def test_plan_workers(resources, flags, expected):
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.engines.ray_engine import plan_workers
    from sowlv2.errors import UsageError

    config = PipelineBaseData(engine="ray", **flags)
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected):
            plan_workers(config, resources)
        return
    plan = plan_workers(config, resources)
    assert (plan["workers"], plan["cpus_per_worker"], plan["gpus_per_worker"]) == expected
    assert plan["torch_threads"] == plan["cpus_per_worker"]


@pytest.mark.parametrize("settings, message", [
    ({"workers": 2}, "workers: settings of the ray engine; add --engine ray"),
    ({"engine": "ray", "workers": 0}, "workers: must be at least 1"),
    ({"engine": "ray", "cpus_per_worker": 0}, "cpus_per_worker: must be at least 1"),
    ({"engine": "ray", "gpus_per_worker": -1.0}, "gpus_per_worker: must be 0 or more"),
    ({"engine": "spark"}, "engine: must be one of local, ray"),
    ({"input": "a.jpg", "input_list": "l.txt"}, "input and input_list exclude each other"),
])
def test_engine_settings_are_checked(settings, message):
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.errors import UsageError

    with pytest.raises(UsageError, match=message):
        PipelineBaseData(**settings)


def test_engine_settings_do_not_change_result_settings():
    """--resume may continue a run of either engine with either engine."""
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.run_log import result_settings

    local = PipelineBaseData()
    ray_run = PipelineBaseData(engine="ray", workers=3, cpus_per_worker=1, ray_address="auto", input_list="l.txt")
    assert result_settings(local, ["cat"]) == result_settings(ray_run, ["cat"])


def test_input_list_and_glob(tmp_path, mixed):
    from sowlv2.errors import UsageError
    from sowlv2.io.inputs import collect_inputs

    lists = tmp_path / "lists"
    lists.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "img0.png").write_bytes((mixed / "img0.png").read_bytes())
    listing = lists / "inputs.txt"
    listing.write_text(f"# my inputs\n{mixed / 'clip1.mp4'}\n\n  ../other/img0.png  \n{mixed / 'img0.png'}\n")
    items = collect_inputs(input_list=listing)
    assert [(it.path, it.kind, it.name) for it in items] == [
        (mixed / "clip1.mp4", "video", "clip1"), (other / "img0.png", "image", "img0"),
        (mixed / "img0.png", "image", "img0_png")]  # relative to the list's folder; names made unique
    many = lists / "many.txt"
    many.write_text("\n".join([str(mixed / "img1.png")] * 3000))  # thousands of lines
    assert len(collect_inputs(input_list=many)) == 3000
    listing.write_text(f"{mixed / 'img0.png'}\nmissing.png\n")
    with pytest.raises(UsageError, match=r"missing.png \(entry 2 of .*inputs.txt\) does not exist"):
        collect_inputs(input_list=listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="lists no inputs"):
        collect_inputs(input_list=listing)
    with pytest.raises(UsageError, match="does not exist"):
        collect_inputs(input_list=lists / "nope.txt")
    items = collect_inputs(str(mixed / "clip*.mp4"))
    assert [it.name for it in items] == ["clip0", "clip1"] and all(it.path.is_absolute() for it in items)
    with pytest.raises(UsageError, match="matches no files"):
        collect_inputs(str(mixed / "*.avi"))



def test_a_live_stream_with_the_ray_engine_is_a_usage_error(tmp_path, capsys):
    assert main(["-i", "webcam:0", "-p", "cat", "--engine", "ray", "-o", str(tmp_path / "out")]) == 2
    assert "--engine ray takes files, folders and lists" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
