"""Live streams: a real HTTP MPEG-TS stream on 127.0.0.1 at real-time pace, drops, reconnects, stops,
crash-safe growing outputs, and the open timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from live_helpers import TsServer, fake_pipeline, synthetic_frame, ts_bytes

from sowlv2 import PipelineBaseData
from sowlv2.cli import main
from sowlv2.errors import InputError, UsageError
from sowlv2.io import rle
from sowlv2.io.live import LiveSource, is_live_input, live_name
from sowlv2.live import LatencyMeter, run_live, track_live

SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _check_outputs(folder: Path, frames: int) -> dict:
    """The finalised outputs agree: jsonl lines == results.json frames == frames; the segments play
    and hold every frame; annotations.json has one entry per frame and track. Returns results.json."""
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    results = json.loads((folder / "results.json").read_text())
    assert len(lines) == len(results["frames"]) == frames == results["stats"]["frames"]
    assert [x["index"] for x in lines] == list(range(frames))
    for line, rec in zip(lines, results["frames"]):
        assert line["objects"] == rec["objects"]  # the same per-object records
        assert "latency" not in rec and line["latency"] is not None and line["latency"] >= 0
    segments = sorted((folder / "video").glob("overlay_*.mp4"))
    assert sum(_decoded_frames(p) for p in segments) == frames
    ann = json.loads((folder / "annotations.json").read_text())
    assert ann["videos"][0]["length"] == frames
    present = {}
    for line in lines:
        for obj in line["objects"]:
            present[(obj["id"], line["index"])] = obj
    for a in ann["annotations"]:
        assert len(a["segmentations"]) == frames
        for k, seg in enumerate(a["segmentations"]):
            assert (seg is None) == ((a["id"], k) not in present)
            if seg is not None:
                assert rle.area(seg) == present[(a["id"], k)]["area"]
    assert not (folder / ".tracks").exists()
    return results


@pytest.mark.parametrize("text, live, name", [
    ("rtsp://user:pw@10.0.0.5:554/live/main", True, "main"),
    ("http://127.0.0.1:8080/cam.ts", True, "cam"),
    ("udp://239.0.0.1:1234", True, "239.0.0.1_1234"),
    ("srt://host:9000?mode=caller", True, "host_9000"),
    ("webcam:0", True, "webcam0"),
    ("-", True, "stdin"),
    ("clip.mp4", False, None),
    ("webcam:x", False, None),
    ("file:///tmp/a.mp4", False, None),
])
def test_live_inputs_and_names(text, live, name):
    assert is_live_input(text) is live
    if live:
        assert live_name(text) == name


@pytest.mark.parametrize("key, value, message", [
    ("duration", 0, "duration: must be a positive number"),
    ("open_timeout", -1.0, "open_timeout: must be a positive number"),
    ("segment_seconds", float("inf"), "segment_seconds: must be a positive number"),
    ("reconnect", -1, "reconnect: must be at least 0"),
    ("max_frames", 0, "max_frames: must be at least 1"),
    ("realtime", "yes", "realtime: must be true or false"),
])
def test_live_settings_are_validated(key, value, message):
    with pytest.raises(UsageError, match=message):
        PipelineBaseData(**{key: value})


def test_latency_meter_percentiles_within_one_percent():
    rng = np.random.default_rng(0)
    values = rng.lognormal(-3, 1, 5000)
    meter = LatencyMeter()
    for v in values:
        meter.add(v)
    for q in (50, 95):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert meter.percentile(q) == pytest.approx(exact, rel=0.011)
    s = meter.summary()
    assert s["max_ms"] == round(values.max() * 1000, 1) and s["frames"] == 5000
    assert s["p50_ms"] <= s["p95_ms"] <= s["max_ms"]


def test_cli_http_stream_tiny_models_duration(tiny_owl, tiny_sam, tmp_path, capsys):
    """The real adapters (tiny random OWLv2 / SAM 2) on a real-time HTTP stream, stopped by --duration."""
    server = TsServer(sessions=[None], fps=10)
    out = tmp_path / "out"
    try:
        t0 = time.monotonic()
        code = main(["--input", server.url, "--prompt", "red square", "--detector", str(tiny_owl),
                     "--tracker", str(tiny_sam), "--device", "cpu", "--output", str(out), "--duration", "2.5",
                     "--detect-every", "3", "--segment-seconds", "1", "--open-timeout", "5", "-q"])
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    rec = run["inputs"]["cam"]
    assert run["status"] == rec["status"] == "stopped" and rec["stop"] == "duration"
    assert rec["kind"] == "stream" and rec["path"] == server.url
    frames = rec["frames"]
    assert frames >= 1 and rec["live"]["dropped"] == 0  # without --realtime every frame read is kept
    results = _check_outputs(out / "cam", frames)
    assert results["keyframes"][:1] == [0] and all(k % 3 == 0 for k in results["keyframes"])
    lat = results["stats"]["live"]["latency"]
    assert lat["frames"] == frames and 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    assert elapsed < 60


def test_server_killed_mid_stream_reconnects_and_finalises(tmp_path):
    """Connection 1 is cut after 1.5 s, connection 2 after 1 s, then the server is gone: one gap
    that reconnected, one that did not (2 attempts), and every output finalised and playable."""
    server = TsServer(sessions=[1.5, 1.0], fps=10)
    pipe = fake_pipeline(output=str(tmp_path / "out"))
    report = run_live(pipe, server.url, ["thing"], tmp_path / "out", reconnect=2, open_timeout=3,
                      segment_seconds=1.0, handle_signals=False)
    assert report.status == "done" and report.exit_code == 0 and report.stop == "end of stream"
    gaps = report.live["gaps"]
    assert [g["reconnected"] for g in gaps] == [True, False], gaps
    assert gaps[0]["attempts"] >= 1 and gaps[0]["duration"] > 0 and gaps[1]["attempts"] == 2
    assert gaps[1]["start"] > gaps[0]["start"] + gaps[0]["duration"]
    assert report.frames == report.live["frames_read"] == server.frames_sent  # no drop without --realtime
    results = _check_outputs(tmp_path / "out" / "cam", report.frames)
    times = [f["time"] for f in results["frames"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[-1] >= 2.0  # stream time goes on across the reconnect (1.5 s + the gap + 1 s)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "done" and run["live"]["gaps"] == gaps
    assert len(run["inputs"]["cam"]["segments"]) >= 3  # 1 s segments over more than 2.5 s


@pytest.mark.parametrize("realtime", [True, False])
def test_realtime_drops_what_a_slow_model_cannot_keep_up_with(realtime):
    pipe = fake_pipeline(delay=0.03)
    source = LiveSource(realtime=realtime)
    n = 60

    def feed():
        for k in range(n):
            source.push(synthetic_frame(k), time_s=k / 200)
            time.sleep(0.005)
        source.end()

    run = track_live(pipe, source, ["thing"])
    feeder = threading.Thread(target=feed)
    feeder.start()
    results = list(run)
    feeder.join()
    stats = run.stats()
    assert stats["frames"] == len(results) and stats["frames_read"] == n
    assert stats["frames"] + stats["dropped"] == n  # every frame processed or counted as dropped
    sources = [r.source_index for r in results]
    assert sources == sorted(sources) and sources[-1] == n - 1  # the newest frame is never dropped
    if realtime:
        assert stats["dropped"] > 0 and len(set(np.diff(sources))) > 1
    else:
        assert stats["dropped"] == 0 and sources == list(range(n))
    lat = stats["latency"]
    assert lat["frames"] == len(results) and lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    assert all(r.extra["latency"] >= 0.03 for r in results)  # at least the detector's delay
    if not realtime:  # frames wait in the queue behind the slow model: latency grows
        assert lat["max_ms"] > 500


def _silent_listener():
    """A TCP port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/cam.ts"


def test_stream_that_does_not_answer_fails_within_the_open_timeout(tmp_path, capsys):
    sock, url = _silent_listener()
    try:
        t0 = time.monotonic()
        with pytest.raises(InputError, match=r"cannot open the stream \(no answer within 1 s"):
            LiveSource(url, open_timeout=1).open()
        assert time.monotonic() - t0 < 2.5
        out = tmp_path / "out"
        code = main(["--input", url, "--prompt", "cat", "--detector", "demo", "--tracker", "demo",
                     "--device", "cpu", "--output", str(out), "--open-timeout", "1", "-q"])
    finally:
        sock.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"sowlv2: error: {url}: cannot open the stream (no answer within 1 s (--open-timeout))"]
    assert not out.exists()  # nothing written


def test_signal_stops_cleanly_with_results_kept(tmp_path):
    """SIGTERM mid-stream: the frame in progress finishes, files are finalised, exit code 130."""
    pipe = fake_pipeline(output=str(tmp_path / "out"))
    source = LiveSource()
    stop = threading.Event()

    def feed():
        k = 0
        while not stop.is_set():
            try:
                source.push(synthetic_frame(k), time_s=k / 30)
            except RuntimeError:  # the run stopped the source
                return
            k += 1
            time.sleep(1 / 30)

    def on_frame(result):
        if result.index == 20:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        report = run_live(pipe, source, ["thing"], tmp_path / "out", on_frame=on_frame, warmup=False)
    finally:
        stop.set()
        feeder.join()
    assert report.status == "stopped" and report.stop == "signal" and report.exit_code == 130
    assert report.frames >= 21
    _check_outputs(tmp_path / "out" / "live", report.frames)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "stopped"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # restored


def test_max_frames_and_push_api(tmp_path):
    pipe = fake_pipeline(output=str(tmp_path / "out"), no_overlay=True)
    source = LiveSource()
    for k in range(10):
        source.push(synthetic_frame(k))
    source.end()
    report = run_live(pipe, source, ["thing"], tmp_path / "out", max_frames=4, warmup=False)
    assert report.status == "stopped" and report.stop == "max_frames" and report.exit_code == 0
    assert report.frames == 4
    folder = tmp_path / "out" / "live"
    assert len((folder / "results.jsonl").read_text().splitlines()) == 4
    assert not (folder / "video").exists()  # --no-overlay: no video
    with pytest.raises(RuntimeError):
        source.push(synthetic_frame(0))


_KILL_CHILD = """
import sys, time
sys.path[:0] = [{src!r}, {tests!r}]
from live_helpers import fake_pipeline, synthetic_frame
from sowlv2.io.live import LiveSource
from sowlv2.live import run_live
source = LiveSource()
def feed():
    for k in range(100000):
        source.push(synthetic_frame(k), time_s=k / 10)
        time.sleep(0.01)
import threading
threading.Thread(target=feed, daemon=True).start()
run_live(fake_pipeline(output={out!r}), source, ["thing"], {out!r}, segment_seconds=1.0, warmup=False)
"""


def test_kill_9_leaves_readable_results_and_playable_video(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", _KILL_CHILD.format(src=SRC, tests=TESTS, out=str(out))],
                             stderr=subprocess.PIPE)
    jsonl = out / "live" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if jsonl.exists() and len(jsonl.read_bytes().splitlines()) >= 35:
            break
        if child.poll() is not None:
            pytest.fail(child.stderr.read().decode())
        time.sleep(0.05)
    child.kill()
    child.wait()
    lines = jsonl.read_bytes().splitlines()
    complete = [json.loads(x) for x in lines if x.endswith(b"}")]  # a last line may be cut mid-write
    assert len(complete) >= 35 and [r["index"] for r in complete] == list(range(len(complete)))
    segments = sorted((out / "live" / "video").glob("overlay_*.mp4"))
    assert len(segments) >= 3  # 10 frames a segment
    counts = [_decoded_frames(p) for p in segments]  # every segment opens, the last one too
    assert counts[:3] == [10, 10, 10]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "running"  # what kill -9 leaves


def test_stdin_source_reads_a_piped_stream():
    data = ts_bytes(12)
    code = (f"import sys; sys.path.insert(0, {SRC!r})\n"
            "from sowlv2.io.live import LiveSource\n"
            "src = LiveSource('-', open_timeout=5)\n"
            "frames = list(src.frames())\n"
            "print(len(frames), frames[0].image.shape, src.stats()['end'])\n")
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split("\n")[0] == "12 (64, 96, 3) end of stream"


@pytest.mark.parametrize("argv, message", [
    (["--input", "clip.mp4", "--realtime"], "sowlv2: error: realtime: applies to live input only"),
    (["--input", "clip.mp4", "--duration", "5"], "sowlv2: error: duration: applies to live input only"),
    (["--input", "http://127.0.0.1:9/x.ts", "--fps", "5"], "sowlv2: error: fps: does not apply to a live stream"),
    (["--input", "webcam:0", "--resume"], "sowlv2: error: resume: a live stream cannot be resumed"),
    (["--input", "-", "--max-frames", "0"], "sowlv2: error: max_frames: must be at least 1, got 0"),
])
def test_live_flag_errors(argv, message, tmp_path, capsys):
    code = main([*argv, "--prompt", "cat", "--output", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "out").exists()


def test_duration_ends_a_stalled_stream(tmp_path):
    """No frame arrives after the first few: --duration still ends the run on time."""
    pipe = fake_pipeline(output=str(tmp_path / "out"))
    source = LiveSource()
    for k in range(3):
        source.push(synthetic_frame(k))
    t0 = time.monotonic()
    report = run_live(pipe, source, ["thing"], tmp_path / "out", duration=1.0, warmup=False, handle_signals=False)
    assert report.status == "stopped" and report.stop == "duration" and report.frames == 3
    assert 0.9 < time.monotonic() - t0 < 5


def test_realtime_over_http_copes_with_the_opening_burst(tmp_path):
    """A slow model on a real-time HTTP stream with --realtime: frames are dropped and counted,
    latency stays near one frame's processing time (it would grow without --realtime)."""
    server = TsServer(sessions=[None], fps=10)
    try:
        pipe = fake_pipeline(delay=0.25, output=str(tmp_path / "out"))
        report = run_live(pipe, server.url, ["thing"], tmp_path / "out", realtime=True, duration=3.0,
                          open_timeout=5, handle_signals=False)
    finally:
        server.close()
    live = report.live
    assert report.status == "stopped" and live["realtime"] is True
    assert live["dropped"] > 0 and live["frames"] + live["dropped"] <= live["frames_read"]
    results = _check_outputs(tmp_path / "out" / "cam", report.frames)
    sources = [f["source_index"] for f in results["frames"]]
    assert len(sources) == report.frames and max(np.diff(sources)) > 1  # the gaps are the drops
    assert live["latency"]["max_ms"] < 2000  # bounded: no queue builds up behind the model


def test_overwrite_replaces_a_previous_live_result_only(tmp_path):
    out = tmp_path / "out"

    def once(**kw):
        source = LiveSource()
        for k in range(3):
            source.push(synthetic_frame(k))
        source.end()
        return run_live(fake_pipeline(output=str(out), **kw), source, ["thing"], out, warmup=False,
                        handle_signals=False)

    once()
    with pytest.raises(UsageError, match="is not empty"):
        once()
    (out / "live" / "results.json").unlink()  # a crashed live run: results.jsonl only, still ours
    assert once(overwrite=True).frames == 3
    (out / "live" / "results.json").unlink()
    (out / "live" / "results.jsonl").unlink()  # not a SOWLv2 result folder any more
    with pytest.raises(UsageError, match="is not a SOWLv2 result folder"):
        once(overwrite=True)


def test_cli_sigint_stops_with_results_kept(tiny_owl, tiny_sam, tmp_path, capsys):
    """The command (in this process, main thread) on a live stream, Ctrl-C mid-stream: exit 130,
    status stopped, every file finalised."""
    server = TsServer(sessions=[None], fps=10)
    out = tmp_path / "out"
    done = threading.Event()

    def interrupt_after_two_frames():
        jsonl = out / "cam" / "results.jsonl"
        while not done.wait(0.05):
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=interrupt_after_two_frames)
    watcher.start()
    try:
        code = main(["--input", server.url, "--prompt", "red square", "--detector", str(tiny_owl), "--tracker",
                     str(tiny_sam), "--device", "cpu", "--output", str(out), "--duration", "60", "-q"])
    finally:
        done.set()
        watcher.join()
        server.close()
    assert code == 130, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and run["inputs"]["cam"]["stop"] == "signal"
    _check_outputs(out / "cam", run["inputs"]["cam"]["frames"])


def test_silent_stream_counts_as_dropped_and_keeps_the_decoders_frames():
    """A server that stops sending but keeps the connection: after --open-timeout of silence the
    stream has dropped, and the frames still inside the decoder are handed out too (2 here)."""
    server = TsServer(sessions=[1.0], fps=10, stall=10)
    try:
        source = LiveSource(server.url, open_timeout=1, reconnect=0)
        t0 = time.monotonic()
        frames = list(source.frames())
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert len(frames) == server.frames_sent == 10
    assert source.stats()["end"] == "no data for 1 s" and elapsed < 6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="V4L2 device names")
def test_missing_webcam_is_one_clear_error():
    assert LiveSource("webcam:3").spec == "webcam:3"
    with pytest.raises(InputError, match=r"^webcam:97 \(/dev/video97\): cannot open the stream \(No such file"):
        LiveSource("webcam:97", open_timeout=2).open()


def test_vjepa2_key_frames_on_a_live_source(tiny_vjepa, tmp_path):
    """V-JEPA 2 chooses key frames on a live source too (it reads one clip ahead: a clip of delay)."""
    pipe = fake_pipeline(output=str(tmp_path / "out"), enable_vjepa2=True, vjepa2_model=str(tiny_vjepa),
                         vjepa2_frames_per_clip=4, keyframe_budget=0.25)
    source = LiveSource()
    for k in range(30):
        source.push(synthetic_frame(k), time_s=k / 10)
    source.end()
    report = run_live(pipe, source, ["thing"], tmp_path / "out", handle_signals=False)
    assert report.status == "done" and report.frames == 30
    results = _check_outputs(tmp_path / "out" / "live", 30)
    keys = results["keyframes"]
    assert keys[0] == 0 and 1 < len(keys) <= 9  # at most ceil(0.25 x 30) + 1
    assert all(s is not None and 0 <= s <= 1 for s in results["keyframe_scores"][1:])
    assert [f["index"] for f in results["frames"] if f["keyframe"]] == keys
