"""``sowlv2 serve``: the command line of the web UI (only this module prints)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .jobs import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, DEFAULT_TTL_S
from .page import import_gradio, serve, wait

SERVER_KEYS = ("host", "port", "workdir", "max_upload_mb", "share", "ttl")


def serve_parser() -> argparse.ArgumentParser:
    """``sowlv2 serve``: the server's flags plus the main command's model, detection and video flags."""
    from ..cli import _Parser, build_parser

    p = _Parser(prog="sowlv2 serve", argument_default=argparse.SUPPRESS,
                description="Serve the SOWLv2 web page (Gradio): upload images or a video, type prompts, "
                            "look at and download the results.")
    s = p.add_argument_group("server")
    s.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860; 0: any free port)")
    s.add_argument("--workdir", default=None, metavar="DIR", help="folder of the job folders (default: a temp folder)")
    s.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="largest upload accepted, per file (default 500)")
    s.add_argument("--ttl", type=float, default=DEFAULT_TTL_S, metavar="SECONDS",
                   help="remove a job's folder this long after it ran (default 3600)")
    s.add_argument("--share", action="store_true", default=False,
                   help="also serve on a public gradio.live link (off by default)")
    s.add_argument("--config", dest="config_file", metavar="FILE.yaml",
                   help="YAML file of settings, as for the main command (input/prompt keys are ignored)")
    s.add_argument("-v", "--verbose", action="store_true", help="more logging; tracebacks on errors")
    s.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    for group in build_parser()._action_groups:
        if group.title in ("models", "detection", "video"):
            target = p.add_argument_group(group.title)
            for action in group._group_actions:
                target._add_action(action)
    return p


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_main(argv: list[str]) -> int:
    """``sowlv2 serve ...``: parse, load the models, serve until Ctrl-C. Returns the exit code."""
    from ..cli import _setup_logging, config_from_args

    ns = serve_parser().parse_args(argv)
    verbose, quiet = getattr(ns, "verbose", False), getattr(ns, "quiet", False)
    _setup_logging(verbose, quiet)
    server = {k: getattr(ns, k) for k in SERVER_KEYS}
    for k in SERVER_KEYS:
        delattr(ns, k)
    if not 0 <= server["port"] <= 65535:
        raise UsageError(f"--port: must be in 0..65535, got {server['port']}")
    if not server["max_upload_mb"] > 0:
        raise UsageError(f"--max-upload-mb: must be positive, got {server['max_upload_mb']:g}")
    if not server["ttl"] > 0:
        raise UsageError(f"--ttl: must be positive, got {server['ttl']:g}")
    config = config_from_args(ns).replace(input=None, prompt=[], progress=False)
    import_gradio()  # before loading models: a missing gradio is reported at once
    from ..pipeline import SOWLv2Pipeline

    pipeline = SOWLv2Pipeline(config)
    port = server["port"] or _free_port(server["host"])
    blocks, url = serve(pipeline, host=server["host"], port=port, workdir=server["workdir"],
                        max_upload_mb=server["max_upload_mb"], ttl_s=server["ttl"], share=server["share"],
                        block=False, quiet=True)
    print(f"sowlv2 serve: {url} (models {config.detector}, {config.tracker} on {pipeline.device}; "
          f"jobs in {blocks.sowlv2.jobs.workdir}; Ctrl-C stops)", flush=True)
    wait(blocks)
    print("sowlv2 serve: stopped", flush=True)
    return 0
