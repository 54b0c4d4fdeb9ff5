"""``OUTPUT/run.json``: settings, versions, timings and each input's status, kept current as a run goes.

It is also what ``--resume`` reads: inputs recorded ``done`` (with their folder present) under the
same settings are skipped; different settings are an error that says which keys differ.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import UsageError
from .io.sinks import atomic_write_json

log = logging.getLogger(__name__)

# Settings that do not change results (a resumed run may differ in them).
_RUN_CONTROL = {"overwrite", "resume", "progress", "input", "output"}


def result_settings(config, prompts: list[str]) -> dict:
    data = {k: v for k, v in config.to_dict().items() if k not in _RUN_CONTROL}
    data["prompt"] = list(prompts)
    return data


def versions() -> dict:
    import numpy
    import torch
    import transformers

    from . import __version__

    return {"sowlv2": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__,
            "platform": platform.platform()}


def check_output_dir(out_root: Path, config) -> None:
    """The output must be a writable folder; a non-empty one needs --overwrite or --resume."""
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"output: {out_root} is a file, not a folder")
    if out_root.is_dir() and any(out_root.iterdir()) and not (config.overwrite or config.resume):
        raise UsageError(f"output: {out_root} is not empty; use --overwrite to replace results "
                         "or --resume to continue an interrupted run")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / ".sowlv2-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output: cannot write to {out_root} ({exc.strerror or exc})") from None


class RunLog:
    def __init__(self, out_root: Path, config, prompts: list[str], resume: bool = False) -> None:
        self.path = out_root / "run.json"
        self.out_root = out_root
        settings = result_settings(config, prompts)
        previous = self._read() if resume else None
        if previous is not None:
            before = previous.get("settings", {})
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            if changed:
                raise UsageError(f"resume: settings differ from the interrupted run in {', '.join(changed)}; "
                                 "use the same settings, or --overwrite to start again")
        self.data = previous or {"settings": settings, "inputs": {}}
        self.data.update({"status": "running", "versions": versions(),
                          "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        self.t0 = time.perf_counter()
        self._save()

    def _read(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            log.warning("%s is unreadable; starting the run afresh", self.path)
            return None

    def _save(self) -> None:
        atomic_write_json(self.path, self.data)

    def is_done(self, item) -> bool:
        rec = self.data["inputs"].get(item.name)
        return bool(rec and rec.get("status") == "done" and (self.out_root / item.name).is_dir())

    def start(self, item) -> None:
        self.data["inputs"][item.name] = {"path": str(item.path), "kind": item.kind, "status": "running"}
        self._save()

    def finish(self, item, report) -> None:
        rec = {k: v for k, v in vars(report).items() if v is not None and k != "name"}
        self.data["inputs"][item.name] = rec
        self._save()

    def close(self) -> None:
        inputs = self.data["inputs"].values()
        failed = sum(1 for r in inputs if r.get("status") == "failed")
        self.data["status"] = "failed" if failed else "done"
        self.data["seconds"] = round(time.perf_counter() - self.t0, 3)
        self._save()
