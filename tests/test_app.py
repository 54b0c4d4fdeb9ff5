"""The web UI (``sowlv2 serve``, ``sowlv2.app``).

Two parts:

* the page's logic without a browser (``WebApp``: upload checks, job folders, the model cache, a job
  on the real demo / tiny random models, Cancel), and the command line;
* the page in a real browser: Playwright drives Debian's headless Chromium (``/usr/bin/chromium``, or
  ``SOWLV2_CHROMIUM``) against ``sowlv2 serve`` started as a subprocess on a free loopback port with the
  demo models. Every request to a host other than 127.0.0.1 is aborted. Without Chromium, playwright
  or gradio these tests skip, naming what is missing; ``SOWLV2_REQUIRE_BROWSER=1`` (set by ``.ci/run``)
  turns that skip into a failure. A failing browser test saves a screenshot (its path is printed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sowlv2.app import JobCancelled, JobStore, Session, WebApp, split_prompts
from sowlv2.app.jobs import _check_uploads
from sowlv2.data.config import PipelineBaseData
from sowlv2.errors import UsageError

FRAMES = 16  # frames of the world video the browser tests upload
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


# ---------------------------------------------------------------------- helpers
def _png(path: Path, size=(64, 48)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 16-frame world video (320x240, 24 fps) and its labels."""
    from sowlv2.eval.world import generate_world

    folder = generate_world(tmp_path_factory.mktemp("world"), seed=0, frames=FRAMES)[0]
    labels = sorted(set(json.loads((folder / "categories.json").read_text()).values()))
    return folder / "video.mp4", labels, json.loads((folder / "world.json").read_text())


# ---------------------------------------------------------------------- logic, no browser
@pytest.mark.parametrize("text, expected", [
    ("cat", ["cat"]),
    ("red circle, blue square", ["red circle", "blue square"]),
    ("red circle\nblue  square\n\n", ["red circle", "blue square"]),
    ("cat, cat; dog", ["cat", "dog"]),
    (" , \n ;", []),
    (None, []),
])
def test_split_prompts(text, expected):
    assert split_prompts(text) == expected


def test_check_uploads(tmp_path, world):
    video = world[0]
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n")
    fake_png = tmp_path / "fake.png"
    fake_png.write_text("not a png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(300_000))
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.jpg")
    assert _check_uploads([video], 10) == "video"
    assert _check_uploads([a, b], 10) == "images"
    cases = [([], "upload an image"), ([fake], "fake.mp4 is not a video"), ([fake_png], "fake.png is not an image"),
             ([text], "notes.txt is neither an image nor a video"), ([big], "over this server's upload limit"),
             ([video, a], "one video at a time")]
    for files, message in cases:
        with pytest.raises(UsageError, match=message):
            _check_uploads(files, 0.25)


def test_job_store_ttl_and_new_job(tmp_path):
    store = JobStore(tmp_path / "work", ttl_s=60)
    s1, s2 = store.session("a"), store.session("b")
    first = store.new_job(s1)
    other = store.new_job(s2)
    (first / "x").write_text("x")
    second = store.new_job(s1)  # the session's previous job folder goes
    assert not first.exists() and second.is_dir() and other.is_dir()
    assert store.sweep(now=time.time() + 30) == 0
    old = time.time() - 120
    os.utime(other, (old, old))
    assert store.sweep() == 1
    assert not other.exists() and second.is_dir() and s2.job_dir is None
    os.utime(second, (old, old))
    store.running = second  # a job still being written is never swept
    assert store.sweep() == 0 and second.is_dir()
    store.running = None
    assert store.sweep() == 1 and s1.job_dir is None
    store.new_job(s1)
    store.clear()  # the server stops: no job folder, no (empty) work folder
    assert not store.workdir.exists()


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    from sowlv2.pipeline import SOWLv2Pipeline

    pipe = SOWLv2Pipeline(PipelineBaseData(owl_model="demo", sam_model="demo", device="cpu", progress=False))
    return WebApp(pipe, tmp_path_factory.mktemp("work"), max_upload_mb=5)


def _settings(detector="demo", tracker="demo", **kw):
    s = {"detector": detector, "tracker": tracker, "threshold": 0.2, "keyframes": "every N frames", "every": 5,
         "budget": 0.25}
    s.update(kw)
    return s


def test_image_job_zip_and_typed_model_cached(demo_app, tmp_path, tiny_owl, monkeypatch):
    """Two images through the real demo models: a zip of both result folders, a view per image; a
    detector typed in the page (a tiny random OWLv2 folder) is loaded once and reused."""
    from sowlv2.eval.world import iter_world_video
    from sowlv2.models import registry

    frames = [rgb for rgb, _ in iter_world_video((0, 0), 2)]
    files = []
    for k, rgb in enumerate(frames):
        Image.fromarray(rgb).save(tmp_path / f"frame{k}.png")
        files.append(str(tmp_path / f"frame{k}.png"))
    session = Session()
    calls = []
    progress = []
    view = demo_app.run(session, files, ["red triangle", "yellow square"], _settings(),
                        progress=lambda d, t, desc: progress.append((d, t)))
    assert view.kind == "images" and [r.name for r in view.results] == ["frame0", "frame1"]
    assert (2, 2) in progress
    zpath = demo_app.zip_path(session)
    names = zipfile.ZipFile(zpath).namelist()
    for r in ("frame0", "frame1"):
        assert f"{r}/results.json" in names and f"{r}/annotations.json" in names
    data = json.loads(zipfile.ZipFile(zpath).read("frame1/results.json"))
    assert [[o["id"] for o in f["objects"]] for f in data["frames"]] == [[i for i, _, _ in view.frames[1]]]
    merged, objects = demo_app.frame_files(view, 1)
    assert merged is not None and merged.parent.parent.parent.name == "frame1"
    assert len(objects) == len(view.frames[1])
    assert not (session.job_dir / "inputs").exists()  # uploads are not kept once the job is done

    real_load = registry.load
    monkeypatch.setattr(registry, "load", lambda *a, **k: calls.append(a[:2]) or real_load(*a, **k))
    first_job = session.job_dir
    for _ in range(2):
        demo_app.run(session, files[:1], ["red triangle"], _settings(detector=str(tiny_owl)))
    assert calls == [("detector", str(tiny_owl))]
    assert not first_job.exists()  # a new job removes the session's previous one


def test_cancel_and_failure_leave_no_job_folder(demo_app, world):
    video, labels, _ = world
    session = Session()
    seen, jobs = [], set()

    def progress(done, total, desc):
        seen.append(desc)
        jobs.add(session.job_dir)
        if total and done >= 3 and "frames" in desc:
            session.cancel.set()  # what the Cancel button does, mid-run

    with pytest.raises(JobCancelled):
        demo_app.run(session, [str(video)], labels, _settings(), progress=progress)
    assert any("3/16 frames" in d for d in seen)
    jobs.discard(None)
    assert len(jobs) == 1 and not jobs.pop().exists() and session.job_dir is None
    session.cancel.clear()
    from sowlv2.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="model folder not found"):
        demo_app.run(session, [str(video)], labels, _settings(detector="./no/such/model"),
                     progress=lambda d, t, desc: jobs.add(session.job_dir))
    jobs.discard(None)
    assert len(jobs) == 1 and not jobs.pop().exists() and session.job_dir is None


def test_vjepa2_key_frames_reuse_one_encoder(demo_app):
    """Key frames "V-JEPA 2 (budget)": each job gets a fresh selector with the page's budget, and the
    encoder (loaded on first use) is made once for every job."""
    config = demo_app.job_config("demo", "demo", 0.2, "V-JEPA 2 (budget)", 5, 0.3)
    assert config.enable_vjepa2 and config.keyframe_budget == 0.3
    first, second = demo_app.models.selector_factory(config)(), demo_app.models.selector_factory(config)()
    assert first is not second and first.optimizer is second.optimizer and first.budget == 0.3
    assert demo_app.models.selector_factory(demo_app.job_config("demo", "demo", 0.2, "every N frames", 5, 0.3)) is None


def test_serve_without_gradio_is_one_clear_line(monkeypatch, capsys):
    from sowlv2.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--detector", "demo"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "sowlv2: error: the web UI needs gradio, which is not installed: pip install 'sowlv2[app]'"


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port: must be in 0..65535"),
    (["--max-upload-mb", "0"], "--max-upload-mb: must be positive"),
    (["--threshold", "2"], "threshold: must be in [0, 1]"),
    (["--detector", "demo", "--owl-model", "demo"], "give one"),
    (["--input", "x.mp4"], "unrecognized arguments: --input"),
])
def test_serve_usage_errors(argv, message, capsys):
    from sowlv2.cli import main

    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_parser_takes_model_flags_and_yaml(tmp_path):
    from sowlv2.app import SERVER_KEYS, serve_parser
    from sowlv2.cli import config_from_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text("detector: demo\nthreshold: 0.3\ndetect_every: 4\n")
    ns = serve_parser().parse_args(["--config", str(cfg), "--tracker", "demo", "--threshold", "0.4", "--port", "0"])
    assert (ns.host, ns.port, ns.share, ns.max_upload_mb) == ("127.0.0.1", 0, False, 500.0)
    for k in SERVER_KEYS:
        delattr(ns, k)
    config = config_from_args(ns)
    assert (config.detector, config.tracker, config.threshold, config.detect_every) == ("demo", "demo", 0.4, 4)


# ---------------------------------------------------------------------- the page in a real browser
def _missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    missing = []
    for module in ("playwright", "gradio"):
        if importlib.util.find_spec(module) is None:  # not imported here: gradio takes seconds to import
            missing.append(f"the Python package {module} (pip install -e '.[dev]')")
    exe = _chromium()
    if not Path(exe).is_file():
        missing.append(f"Chromium ({exe}; apt-get install -y chromium)")
    return "browser tests need " + " and ".join(missing) if missing else None


def _chromium() -> str:
    return os.environ.get("SOWLV2_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip() -> str:
    """The Chromium executable, or skip (fail with SOWLV2_REQUIRE_BROWSER=1) naming what is missing."""
    reason = _missing_browser()
    if reason:
        if os.environ.get("SOWLV2_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SOWLV2_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return _chromium()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _serve_process(request, tmp_path_factory):
    """Start ``sowlv2 serve`` (demo models, free loopback port, 1 MB upload limit) as the module starts
    when a browser test is selected, so that its start-up overlaps the tests without a browser."""
    wanted = any(item.module is request.module and "page" in item.fixturenames for item in request.session.items)
    if not wanted or _missing_browser():
        yield None
        return
    workdir = tmp_path_factory.mktemp("serve")
    log_path = workdir / "serve.log"
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "sowlv2", "serve", "--detector", "demo", "--tracker", "demo", "--device", "cpu",
           "--host", "127.0.0.1", "--port", str(port), "--workdir", str(workdir / "jobs"), "--max-upload-mb", "1"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield f"http://127.0.0.1:{port}/", workdir / "jobs", proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # SIGTERM stops the server cleanly and takes the job folders (and the emptied work folder) along.
    assert proc.returncode == 0 and "sowlv2 serve: stopped" in log_path.read_text(), log_path.read_text()
    assert not (workdir / "jobs").exists()


@pytest.fixture(scope="module")
def server(_serve_process):
    """``(url, job folder, process)`` of the running ``sowlv2 serve``, once it answers."""
    _browser_or_skip()
    url, jobs, proc, log_path = _serve_process
    deadline = time.monotonic() + 240  # model loading on a busy 2-core machine
    while url not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"sowlv2 serve did not start (exit {proc.poll()}):\n{log_path.read_text()}")
        time.sleep(0.2)
    return url, jobs, proc


@pytest.fixture(scope="module")
def browser():
    exe = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, request, tmp_path_factory):
    """A fresh page on the server; only 127.0.0.1 is reachable; a screenshot when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

    def only_loopback(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_loopback)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server[0])
    pg.wait_for_selector("#sowlv2-run")
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:
        shot = tmp_path_factory.mktemp("screenshots") / f"{request.node.name}.png"
        pg.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
    context.close()


def _start(page, files, prompts: str) -> None:
    page.locator("#sowlv2-files input[type=file]").set_input_files(files)
    page.wait_for_selector("#sowlv2-files .file-preview", state="attached")
    page.locator("#sowlv2-prompts textarea").fill(prompts)
    page.click("#sowlv2-run")


def _toast(page, text: str, timeout_ms: int = 30_000) -> str:
    """Wait for a toast (gr.Error / gr.Warning / an upload refusal) containing ``text``; return it."""
    loc = page.locator(".toast-body").filter(has_text=text)
    loc.first.wait_for(timeout=timeout_ms)
    return loc.first.inner_text()


def _status(page, prefix: str, timeout_ms: int = 120_000) -> str:
    page.wait_for_function("(p) => { const e = document.querySelector('#sowlv2-status'); "
                           "return e && e.innerText.trim().startsWith(p); }", arg=prefix, timeout=timeout_ms)
    return page.locator("#sowlv2-status").inner_text().strip()


def test_page_errors(page, tmp_path, world):
    """A text file named .mp4, an empty prompt and an upload over the limit: a message in the page."""
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is not a video\n")
    _start(page, str(fake), "red triangle")
    assert "clip.mp4 is not a video that can be read" in _toast(page, "clip.mp4")

    page.reload()
    page.wait_for_selector("#sowlv2-run")
    _start(page, str(world[0]), " , \n")
    assert "type at least one prompt" in _toast(page, "prompt")

    page.reload()
    page.wait_for_selector("#sowlv2-run")
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(2 * 2**20))
    page.locator("#sowlv2-files input[type=file]").set_input_files(str(big))
    assert "big.png" in _toast(page, "exceed the maximum allowed size")
    assert "Traceback" not in page.content()


def test_queue_and_cancel_leave_no_job_folder(page, browser, server, world):
    """A second browser's job waits in the queue with its position shown; Cancel mid-run stops the
    first, Cancel while queued drops the second; no job folder is left."""
    video, labels, _ = world
    before = set(server[1].glob("job-*"))  # other pages' finished jobs stay until their TTL
    _start(page, str(video), ", ".join(labels))
    page.wait_for_function("() => /[1-9]\\d*\\/16 frames/.test(document.body.innerText)", timeout=90_000)
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    other.route("**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1:") else r.abort())
    second = other.new_page()
    try:
        second.goto(server[0])
        second.wait_for_selector("#sowlv2-run")
        _start(second, str(video), labels[0])
        second.wait_for_function("() => /queue: *1\\/1/.test(document.querySelector('#sowlv2-status').innerText)",
                                 timeout=30_000)
        second.click("#sowlv2-cancel")
        page.click("#sowlv2-cancel")
        assert _status(page, "Cancelled").startswith("Cancelled: nothing was kept")
        assert _status(second, "Cancelled").startswith("Cancelled: nothing was kept")
    finally:
        other.close()
    assert set(server[1].glob("job-*")) == before


_DROP_JS = """([selector, files]) => {
    const dt = new DataTransfer();
    for (const [name, b64, type] of files) {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        dt.items.add(new File([bytes], name, {type}));
    }
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"])
        target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""


def _rows(page) -> list[list[str]]:
    """The cells of the tracks table, row by row."""
    return [[c.strip() for c in r.locator("[role=gridcell]").all_inner_texts()]
            for r in page.locator("#sowlv2-tracks .virtual-body [role=row]").all()]


@pytest.fixture(scope="module")
def lib_pipe():
    """The library's own pipeline with the page's default settings (for comparisons)."""
    from sowlv2.pipeline import SOWLv2Pipeline

    return SOWLv2Pipeline(PipelineBaseData(owl_model="demo", sam_model="demo", device="cpu", progress=False))


def test_images_dropped_into_the_page(page, tmp_path, lib_pipe):
    """Two images dropped onto the upload area (a drag-and-drop event): one overlay per image, a slider
    over the images, and the tracks table equal to the library's own run of each image."""
    import base64

    from sowlv2.eval.world import iter_world_video
    from sowlv2.io.inputs import discover_inputs

    files = []
    for k, (rgb, _) in enumerate(iter_world_video((0, 0), 2)):
        path = tmp_path / f"img{k}.png"
        Image.fromarray(rgb).save(path)
        files.append([path.name, base64.b64encode(path.read_bytes()).decode(), "image/png"])
    page.evaluate(_DROP_JS, ["#sowlv2-files button", files])
    page.wait_for_function("() => document.querySelectorAll('#sowlv2-files .file-preview tr').length === 2")
    page.locator("#sowlv2-prompts textarea").fill("red triangle\nyellow square")
    page.click("#sowlv2-run")
    lib = []
    for k in range(2):
        out = lib_pipe.process_input(discover_inputs(tmp_path / f"img{k}.png")[0], ["red triangle", "yellow square"],
                                 tmp_path / "lib")
        lib += [[f"img{k}", str(t["id"]), t["label"], "0", "0", f"{round(t['best_score'], 3):g}"]
                for t in json.loads((Path(out.output) / "results.json").read_text())["tracks"]]
    assert _status(page, "Done").startswith(f"Done: {len(lib)} object(s) in 2 image(s)")
    page.wait_for_function("() => { const i = document.querySelector('#sowlv2-frame img'); "
                           "return i && i.complete && i.naturalWidth === 320; }")
    assert "Image" in page.locator("#sowlv2-slider").inner_text()
    page.wait_for_function("(n) => document.querySelectorAll('#sowlv2-tracks .virtual-body [role=row]').length === n",
                           arg=len(lib))
    assert [[*r[:5], f"{float(r[5]):g}"] for r in _rows(page)] == lib


def _library_run(pipe, video: Path, labels: list[str], out: Path) -> dict:
    """The library's own run of the same input."""
    from sowlv2.io.inputs import discover_inputs

    report = pipe.process_input(discover_inputs(video)[0], labels, out)
    return json.loads((Path(report.output) / "results.json").read_text())


def test_failing_job_then_video_run(page, server, world, tmp_path, lib_pipe):
    """A job that fails (a detector folder that does not exist, typed in the page) is reported and the
    server goes on; then the world video runs: the overlay video plays, the tracks table and the zip's
    results.json agree with the library's own run of the same video."""
    video, labels, info = world
    before = set(server[1].glob("job-*"))  # other pages' finished jobs stay until their TTL
    page.click("text=Models and settings")
    det = page.locator("#sowlv2-detector input")
    det.fill("./no/such/detector")
    det.press("Enter")
    _start(page, str(video), ", ".join(labels))
    assert "model folder not found" in _toast(page, "no/such/detector")
    assert set(server[1].glob("job-*")) == before and server[2].poll() is None

    det.fill("demo")
    det.press("Enter")
    page.click("#sowlv2-run")
    expected = _library_run(lib_pipe, video, labels, tmp_path / "lib")  # meanwhile, in this process
    status = _status(page, "Done", timeout_ms=150_000)
    assert f"{len(expected['tracks'])} object(s) in {FRAMES} frames" in status

    # The overlay video: loaded, as long as the input, and a drawn frame is not blank.
    page.wait_for_function("() => { const v = document.querySelector('#sowlv2-video video'); "
                           "return v && v.readyState >= 2; }", timeout=30_000)
    duration, std = page.evaluate("""async () => {
        const v = document.querySelector('#sowlv2-video video');
        v.currentTime = 0.2;
        await new Promise(r => v.addEventListener('seeked', r, {once: true}));
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(v, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let s = 0, s2 = 0, n = 0;
        for (let i = 0; i < d.length; i += 4) { const g = d[i] + d[i + 1] + d[i + 2]; s += g; s2 += g * g; n++; }
        return [v.duration, Math.sqrt(s2 / n - (s / n) ** 2)];
    }""")
    assert duration == pytest.approx(FRAMES / info["fps"], abs=0.5 / info["fps"])
    assert std > 5.0  # a blank or single-colour frame has ~0

    # The tracks table is results.json's "tracks".
    rows = _rows(page)
    table = [(int(r[1]), r[2], int(r[3]), int(r[4]), float(r[5])) for r in rows]
    lib = [(t["id"], t["label"], t["first_frame"], t["last_frame"], round(t["best_score"], 3))
           for t in expected["tracks"]]
    assert table == lib and len(lib) > 0

    # The objects of a chosen frame.
    last = FRAMES - 1
    page.locator("#sowlv2-slider input[type=number]").fill(str(last))
    page.locator("#sowlv2-slider input[type=number]").press("Enter")
    want = [f"#{o['id']} {o['label']} ({o['score']:.2f})" for o in expected["frames"][last]["objects"]]
    page.wait_for_function("(w) => { const g = document.querySelector('#sowlv2-gallery'); "
                           "return g.querySelectorAll('img').length === w.length && "
                           "w.every(t => g.innerText.includes(t)); }",
                           arg=want, timeout=30_000)
    seconds = page.evaluate("() => document.querySelector('#sowlv2-video video').currentTime")
    assert int(seconds * info["fps"]) == last  # the slider moved the video to that frame

    # The zip: the whole result folder; its results.json has the library's tracks.
    with page.expect_download() as dl:
        page.locator("#sowlv2-zip a[download]").click()
    zpath = tmp_path / "result.zip"
    dl.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        got = json.loads(zf.read("video/results.json"))
    assert {"video/results.json", "video/annotations.json", "video/video/overlay.mp4",
            "video/video/binary.mp4"} <= names
    assert any(n.startswith("video/binary/frames/") for n in names)
    assert [(t["id"], t["label"], t["first_frame"], t["last_frame"]) for t in got["tracks"]] == \
        [(t["id"], t["label"], t["first_frame"], t["last_frame"]) for t in expected["tracks"]]
    assert [t["best_score"] for t in got["tracks"]] == pytest.approx([t["best_score"] for t in expected["tracks"]],
                                                                     abs=1e-4)
    assert "Traceback" not in page.content()
