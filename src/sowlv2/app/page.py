"""The gradio page of the web UI (:func:`build_app`) and its server (:func:`serve`)."""

# No "from __future__ import annotations": gradio reads the handlers' annotations (gr.Request) at runtime.
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from ..data.config import PipelineBaseData
from ..errors import SOWLv2Error
from .jobs import (
    DEFAULT_HOST,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    DEFAULT_TTL_S,
    TRACK_HEADERS,
    VIDEO_ELEM_ID,
    JobCancelled,
    JobStore,
    WebApp,
    _clean_message,
    _track_rows,
)

log = logging.getLogger(__name__)


def import_gradio():
    """Import gradio with its analytics off; a clear SOWLv2Error when it is not installed."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise SOWLv2Error("the web UI needs gradio, which is not installed: pip install 'sowlv2[app]'") from None
    return gr


# ---------------------------------------------------------------------- the page
def build_app(pipeline_or_config=None, *, workdir: str | Path | None = None,
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, ttl_s: float = DEFAULT_TTL_S, preload: bool = True):
    """Build the Gradio page (``gr.Blocks``) around a pipeline, for ``launch()`` or embedding.

    Args:
        pipeline_or_config: a ``SOWLv2Pipeline`` (its models serve every job), a ``PipelineBaseData``,
            or None (the default settings).
        workdir: folder of the job folders (default: a new temporary folder).
        max_upload_mb: largest upload accepted per file, in MB (also pass it to ``launch(max_file_size=)``,
            as :func:`serve` does, so the browser refuses it before uploading).
        ttl_s: seconds a job folder is kept.
        preload: load the configured detector and tracker now rather than at the first job.

    Returns:
        The ``gr.Blocks``; its ``sowlv2`` attribute is the :class:`WebApp` behind it.

    Raises:
        SOWLv2Error: gradio is not installed; ModelLoadError: a configured model cannot be loaded.
    """
    gr = import_gradio()
    from ..pipeline import SOWLv2Pipeline

    if isinstance(pipeline_or_config, SOWLv2Pipeline):
        pipeline = pipeline_or_config
    else:
        config = pipeline_or_config if pipeline_or_config is not None else PipelineBaseData()
        pipeline = SOWLv2Pipeline(config.replace(progress=False))
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="sowlv2-serve-")
    web = WebApp(pipeline, Path(workdir), max_upload_mb=max_upload_mb, ttl_s=ttl_s)
    if preload:
        web.models.preload()
    _start_sweeper(web.jobs)
    cfg = pipeline.config
    det_choices = list(dict.fromkeys([cfg.detector, "demo"]))
    trk_choices = list(dict.fromkeys([cfg.tracker, "demo"]))

    with gr.Blocks(title="SOWLv2", analytics_enabled=False, delete_cache=(int(max(60, ttl_s)), int(ttl_s))) as blocks:
        gr.Markdown("## SOWLv2 — text-prompted segmentation and tracking\n"
                    "Upload an image, several images or a video, say what to find, and run.")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="Image(s) or a video", file_count="multiple", file_types=["image", "video"],
                                elem_id="sowlv2-files")
                prompts = gr.Textbox(label="Prompts (one per line, or comma separated)", lines=3,
                                     placeholder="red circle\nblue square", elem_id="sowlv2-prompts")
                with gr.Accordion("Models and settings", open=False):
                    detector = gr.Dropdown(det_choices, value=cfg.detector, allow_custom_value=True,
                                           label="Detector (hub id, folder or 'demo')", elem_id="sowlv2-detector")
                    tracker = gr.Dropdown(trk_choices, value=cfg.tracker, allow_custom_value=True,
                                          label="Tracker (hub id, folder or 'demo')", elem_id="sowlv2-tracker")
                    threshold = gr.Slider(0.0, 1.0, value=cfg.threshold, step=0.01, label="Detection threshold",
                                          elem_id="sowlv2-threshold")
                    keyframes = gr.Radio(["every N frames", "V-JEPA 2 (budget)"],
                                         value="V-JEPA 2 (budget)" if cfg.enable_vjepa2 else "every N frames",
                                         label="Key frames (where the detector runs)")
                    every = gr.Number(value=cfg.detect_every, precision=0, minimum=1, label="N (every N frames)",
                                      elem_id="sowlv2-every")
                    budget = gr.Slider(0.01, 1.0, value=cfg.keyframe_budget, step=0.01,
                                       label="V-JEPA 2 budget (share of frames)")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="sowlv2-run")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="sowlv2-cancel")
                status = gr.Markdown("", elem_id="sowlv2-status")
            with gr.Column(scale=2):
                video = gr.Video(label="Overlay video", visible=False, interactive=False, elem_id=VIDEO_ELEM_ID,
                                 buttons=["download"], height=360)
                frame_image = gr.Image(label="Overlay", type="filepath", interactive=False, visible=False,
                                       elem_id="sowlv2-frame", height=360)
                slider = gr.Slider(0, 1, value=0, step=1, label="Frame", visible=False, elem_id="sowlv2-slider")
                fps = gr.Number(value=0.0, visible=False)
                gallery = gr.Gallery(label="Objects of this frame", columns=4, height=260, visible=False,
                                     object_fit="contain", elem_id="sowlv2-gallery")
                tracks = gr.Dataframe(headers=TRACK_HEADERS, label="Tracks", interactive=False, visible=False,
                                      elem_id="sowlv2-tracks")
                download = gr.File(label="Download the results (zip)", visible=False, elem_id="sowlv2-zip")

        settings_inputs = [detector, tracker, threshold, keyframes, every, budget]

        def _settings(det, trk, thr, kf, ev, bud) -> dict:
            return {"detector": det, "tracker": trk, "threshold": thr, "keyframes": kf,
                    "every": int(ev) if ev is not None else 1, "budget": bud}

        def arm(file_list, text, det, trk, thr, kf, ev, bud, request: gr.Request):
            """Checks before queueing (a visible error, nothing queued) and arms the Cancel flag."""
            session = web.jobs.session(request.session_hash)
            session.cancel.clear()
            try:
                web.check(file_list, text, _settings(det, trk, thr, kf, ev, bud))
            except SOWLv2Error as exc:
                raise gr.Error(_clean_message(exc), print_exception=False) from None
            return "Queued…"

        def run(file_list, text, det, trk, thr, kf, ev, bud, request: gr.Request,
                progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress tracker
            session = web.jobs.session(request.session_hash)

            def report(done, total, desc):
                progress((done, total) if total else None, desc=desc, unit="frames")

            hidden = [gr.update(visible=False)] * 6
            try:
                _, prompt_list = web.check(file_list, text, _settings(det, trk, thr, kf, ev, bud))
                t0 = time.perf_counter()
                view = web.run(session, list(file_list), prompt_list, _settings(det, trk, thr, kf, ev, bud),
                               progress=report)
            except JobCancelled:
                gr.Warning("Cancelled: nothing was kept.")
                return ["Cancelled: nothing was kept.", *hidden, gr.update(value=0.0)]
            except SOWLv2Error as exc:
                raise gr.Error(_clean_message(exc, web.jobs.workdir), print_exception=False) from None
            except Exception as exc:  # noqa: BLE001 - the server goes on; the page gets one line
                log.exception("a job failed")
                raise gr.Error(_clean_message(exc, web.jobs.workdir), print_exception=False) from None
            seconds = time.perf_counter() - t0
            rows = _track_rows(view.results)
            merged, objects = web.frame_files(view, 0)
            n = len(view.frames)
            what = f"{n} frames" if view.kind == "video" else f"{n} image(s)"
            text_out = f"Done: {len(rows)} object(s) in {what}, {seconds:.1f} s."
            return [
                text_out,
                gr.update(value=str(view.results[0] / "video/overlay.mp4"), visible=True) if view.kind == "video"
                else gr.update(value=None, visible=False),
                gr.update(value=str(merged) if merged else None, visible=True,
                          label="Overlay of the chosen frame" if view.kind == "video" else "Overlay"),
                gr.update(maximum=max(1, n - 1), value=0, visible=n > 1,
                          label="Frame" if view.kind == "video" else "Image"),
                gr.update(value=objects, visible=True),
                gr.update(value=rows, visible=True),
                gr.update(value=str(web.zip_path(session)), visible=True),
                gr.update(value=view.fps),
            ]

        def show(index, fps_value, request: gr.Request):
            session = web.jobs.session(request.session_hash)
            if session.view is None:
                return gr.update(), gr.update()
            merged, objects = web.frame_files(session.view, index)
            return gr.update(value=str(merged) if merged else None), gr.update(value=objects)

        def cancel(request: gr.Request):
            web.jobs.session(request.session_hash).cancel.set()
            gr.Info("Cancelling: the job stops after the current frame.")

        outputs = [status, video, frame_image, slider, gallery, tracks, download, fps]
        run_btn.click(arm, [files, prompts, *settings_inputs], [status], concurrency_limit=None,
                      show_progress="hidden").success(
            run, [files, prompts, *settings_inputs], outputs, concurrency_limit=1, concurrency_id="models")
        cancel_btn.click(cancel, None, None, concurrency_limit=None, show_progress="hidden")
        seek = (f"(f, fps) => {{ const v = document.querySelector('#{VIDEO_ELEM_ID} video'); "
                "if (v && fps > 0) { v.pause(); v.currentTime = (f + 0.5) / fps; } return [f, fps]; }")
        slider.change(show, [slider, fps], [frame_image, gallery], js=seek, concurrency_limit=None,
                      show_progress="hidden")
    blocks.sowlv2 = web
    return blocks


def _start_sweeper(jobs: JobStore) -> None:
    """Remove expired job folders in the background (a daemon thread per store)."""
    period = max(1.0, min(60.0, jobs.ttl_s / 4))

    def loop():
        while True:
            time.sleep(period)
            try:
                jobs.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping
                log.debug("sweeping job folders failed", exc_info=True)

    threading.Thread(target=loop, name="sowlv2-job-sweeper", daemon=True).start()


def serve(pipeline_or_config=None, *, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
          workdir: str | Path | None = None, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          ttl_s: float = DEFAULT_TTL_S, share: bool = False, block: bool = True, quiet: bool = False):
    """Build the page and serve it on ``host:port`` (loopback by default; ``share`` makes a public
    gradio.live link and is off by default).

    Args:
        block: wait until the server stops (Ctrl-C); False returns at once.

    Returns:
        ``(blocks, local_url)``; ``blocks.close()`` stops a server started with ``block=False``.
    """
    blocks = build_app(pipeline_or_config, workdir=workdir, max_upload_mb=max_upload_mb, ttl_s=ttl_s)
    blocks.queue(default_concurrency_limit=1)
    _, url, _ = blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                              max_file_size=f"{max_upload_mb:g}mb", allowed_paths=[str(blocks.sowlv2.jobs.workdir)],
                              ssr_mode=False, mcp_server=False, quiet=quiet, footer_links=[])
    if block:
        wait(blocks)
    return blocks, url


def wait(blocks) -> None:
    """Wait until the server stops; Ctrl-C (or SIGTERM under ``sowlv2``) closes it, removes the job
    folders, and returns."""
    try:
        while blocks.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        blocks.close()
        web = getattr(blocks, "sowlv2", None)
        if web is not None:
            web.jobs.clear()
