"""``OUTPUT/run.json``: settings, versions, timings and each input's status, kept current as a run goes.

It is also what ``--resume`` reads: inputs recorded ``done`` (from the same file, with their result
folder present) under the same settings are skipped; different settings are an error that says which
keys differ. Every save writes a temporary file and renames it, so run.json is never half-written.

Run status: ``running`` -> ``done`` (every input done), ``failed`` (some input failed) or
``interrupted`` (Ctrl-C / SIGTERM; rerun with --resume). Input status: ``running``, ``done``,
``failed`` (with ``error``), ``interrupted``; with the ray engine also ``worker`` (node:pid) and
``retries`` (one ``{"reason", "at"}`` per retry after a lost worker). ``engine`` records the engine
and its torch threads (and Ray's workers). Only the driver writes it. After ``kill -9`` the run and
the input it was on stay ``running``; ``--resume`` redoes that input.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import UsageError
from .io.sinks import atomic_write_json, is_result_folder

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
# Settings that do not change results (a resumed run may differ in them): run control, the engine
# (either engine continues a run of either), vjepa2_clips_per_pass (it only batches the encoder's clips)
# and how a live stream is (re)opened.
_RUN_CONTROL = {"overwrite", "resume", "progress", "input", "output", "vjepa2_clips_per_pass", "open_timeout",
                "reconnect", "input_list", "engine", "ray_address", "workers", "gpus_per_worker", "cpus_per_worker"}


def result_settings(config, prompts: list[str], torch_threads: int | None = None) -> dict:
    """The settings that determine results: everything but input/output paths and run control, plus
    torch's thread count (float sums, and so masks, can differ between thread counts): this process's,
    or ``torch_threads``, the count of the processes that do the work (the ray engine's workers)."""
    import torch

    data = {k: v for k, v in config.to_dict().items() if k not in _RUN_CONTROL}
    data["prompt"] = list(prompts)
    data["torch_threads"] = torch_threads or torch.get_num_threads()
    return data


def versions() -> dict:
    import numpy
    import torch
    import transformers

    from . import __version__

    return {"sowlv2": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__,
            "platform": platform.platform()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_output_dir(out_root: Path, config) -> None:
    """Check the output folder before anything is loaded or written; creates nothing.

    It must be a folder (or not exist yet, under a parent that can hold it); a non-empty one needs
    ``--overwrite`` or ``--resume``.

    Raises:
        UsageError: naming the path and what to do.
    """
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"output: {out_root} is a file, not a folder; choose another --output")
    if out_root.is_dir():
        if any(out_root.iterdir()) and not (config.overwrite or config.resume):
            raise UsageError(f"output: {out_root} is not empty; use --overwrite to replace results "
                             "or --resume to continue an interrupted run")
        if not os.access(out_root, os.W_OK | os.X_OK):
            raise UsageError(f"output: cannot write to {out_root} (permission denied)")
        return
    parent = out_root.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"output: cannot create {out_root}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"output: cannot create {out_root} (permission denied in {parent})")


def prepare_output_dir(out_root: Path) -> bool:
    """Create the output folder if needed and prove it writable. Returns whether it was created."""
    created = not out_root.exists()
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / ".sowlv2-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output: cannot write to {out_root} ({exc.strerror or exc})") from None
    return created


def clean_stale_partials(out_root: Path) -> list[Path]:
    """Delete ``.<name>.partial`` folders (unfinished results of an interrupted run: ours), the
    temporary files of an interrupted save and the write probe. Returns what was removed."""
    removed = []
    for p in out_root.glob(".*.partial"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            removed.append(p)
    for p in [*out_root.glob(".*.json.tmp"), out_root / ".sowlv2-write-test"]:
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p)
    if removed:
        log.info("removed %d unfinished result(s) of an interrupted run", len(removed))
    return removed


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class RunLog:
    """The run's record in ``OUTPUT/run.json``, saved (atomically) at every change.

    Args:
        out_root: the output folder (must exist).
        config: the run's PipelineBaseData.
        prompts: the prompts of the run.
        resume: read a previous run.json and keep its completed inputs (settings must match).
        torch_threads: torch's thread count of the processes that do the work (default: this one's).
    """

    def __init__(self, out_root: Path, config, prompts: list[str], resume: bool = False,
                 torch_threads: int | None = None) -> None:
        self.path = out_root / RUN_FILE
        self.out_root = out_root
        settings = result_settings(config, prompts, torch_threads)
        previous = self._read() if resume else None
        if previous is not None:
            before = previous.get("settings", {})
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            if changed:
                diffs = ", ".join(f"{k} ({_short(before.get(k))} -> {_short(settings.get(k))})" for k in changed)
                raise UsageError(f"resume: settings differ from the previous run's in {diffs}; "
                                 "use the same settings, or --overwrite to start again")
        self.resumed = previous is not None
        self.data = previous or {"settings": settings, "inputs": {}}
        self.data.update({"status": "running", "versions": versions(), "started": _now(),
                          "output": str(out_root)})
        self.data.pop("finished", None)
        self.data.pop("error", None)
        self.t0 = time.perf_counter()
        self._retried: set[str] = set()  # inputs retried in this run (their records keep "retries")
        self._save()

    def _read(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
            log.warning("%s is unreadable; every input will be processed again", self.path)
            return None
        return data

    def _save(self) -> None:
        atomic_write_json(self.path, self.data)

    def set(self, key: str, value) -> None:
        """Record ``value`` under ``key`` (e.g. ``engine``: the engine, its workers, torch threads)."""
        self.data[key] = value
        self._save()

    def retry(self, item, reason: str) -> None:
        """Record that ``item`` is tried again (its worker was lost: ``reason``)."""
        rec = self.data["inputs"].setdefault(item.name, {"path": str(item.path), "kind": item.kind})
        rec["status"] = "running"
        if item.name not in self._retried:
            rec["retries"] = []
            self._retried.add(item.name)
        rec.setdefault("retries", []).append({"reason": reason, "at": _now()})
        self._save()

    def is_done(self, item) -> bool:
        """Whether a previous run completed ``item`` (same input file, result folder present)."""
        rec = self.data["inputs"].get(item.name)
        if not (rec and rec.get("status") == "done" and is_result_folder(self.out_root / item.name)):
            return False
        try:
            return Path(rec.get("path", "")).resolve() == Path(item.path).resolve()
        except OSError:
            return False

    def start(self, item, **extra) -> None:
        """Mark ``item`` running (``extra``: e.g. ``worker``, where it runs); the retries recorded by
        ``retry`` are kept."""
        retries = self.data["inputs"].get(item.name, {}).get("retries") if item.name in self._retried else None
        self.data["inputs"][item.name] = {"path": str(item.path), "kind": item.kind, "status": "running",
                                          "started": _now(), **({"retries": retries} if retries else {}), **extra}
        self._save()

    def finish(self, item, report, **extra) -> None:
        """Record ``report`` (an InputReport) for ``item``, with ``extra`` (e.g. ``worker``) and its retries."""
        rec = {k: v for k, v in vars(report).items() if v is not None and k != "name"}
        retries = self.data["inputs"].get(item.name, {}).get("retries") if item.name in self._retried else None
        if retries:
            rec["retries"] = retries
        self.data["inputs"][item.name] = {**rec, **extra}
        self._save()

    def interrupt(self, item=None) -> None:
        """Mark the run (and the input it was on) interrupted."""
        if item is not None:
            rec = self.data["inputs"].setdefault(item.name, {"path": str(item.path), "kind": item.kind})
            rec["status"] = "interrupted"
        self._end("interrupted")

    def abort(self, error: str) -> None:
        """Mark the run stopped by an error that is not one input's (a model, a setting)."""
        self.data["error"] = error
        self._end("failed")

    def close(self) -> None:
        inputs = self.data["inputs"].values()
        failed = sum(1 for r in inputs if r.get("status") == "failed")
        self._end("failed" if failed else "done")

    def _end(self, status: str) -> None:
        self.data["status"] = status
        self.data["finished"] = _now()
        self.data["seconds"] = round(time.perf_counter() - self.t0, 3)
        self._save()

    def any_done(self) -> bool:
        return any(r.get("status") == "done" for r in self.data["inputs"].values())

    def discard(self, remove_folder: bool) -> None:
        """Remove run.json (a run that produced nothing leaves nothing behind), and the output folder
        too when this run created it and it is empty."""
        self.path.unlink(missing_ok=True)
        if remove_folder:
            try:
                self.out_root.rmdir()
            except OSError:
                pass
