"""The runner: many inputs into one output folder, with ``run.json``, ``--resume`` and the error policy.

    collect inputs (--input file | folder | glob, or --input-list FILE)
        -> check everything (inputs, output folder, result folders it would replace, resume settings)
        -> RunPlan (checked, nothing written) -> OpenRun (output folder ready, run.json open)
        -> an engine: ``run_local`` (one input after another in this process) or
           ``engines.ray_engine.run_ray`` (Ray actors on one or many machines)
        -> run.json closed: done | failed | interrupted

Every engine calls the same per-input function, ``SOWLv2Pipeline.process_input``, and the driver
alone writes run.json. An input that fails (InputError, or an unexpected failure on that input) is
recorded ``failed`` and the others go on; a model or setting error (ModelLoadError, UsageError)
stops the run; Ctrl-C marks run.json ``interrupted`` and removes unfinished results.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelLoadError, SOWLv2Error, UsageError
from .io.inputs import InputItem, collect_inputs
from .io.sinks import check_replaceable, partial_dir
from .run_log import RunLog, check_output_dir, clean_stale_partials, prepare_output_dir

if TYPE_CHECKING:
    from .pipeline import InputReport, SOWLv2Pipeline

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass
class OpenRun:
    """A run whose output folder is ready and whose run.json is open.

    Attributes:
        items: the inputs, in order (result-folder names unique).
        prompts: the text prompts.
        out_root: the output folder (absolute).
        log: the run's RunLog (``out_root/run.json``); only the driver writes it.
        was_empty: the output folder was empty or absent before the run.
        created: the run created the output folder.
    """

    items: list[InputItem]
    prompts: list[str]
    out_root: Path
    log: RunLog
    was_empty: bool
    created: bool

    def close(self) -> None:
        """Mark the run done (or failed, when an input failed); a run that completed nothing in an
        output folder that was empty leaves nothing behind."""
        self.log.close()
        self._discard_if_empty()

    def abort(self, exc: BaseException, running: list[InputItem]) -> None:
        """The run stops on an error that is not one input's: the inputs it was on are recorded
        failed with that error, the run failed, and an empty run leaves nothing."""
        for item in running:
            if self.log.data["inputs"].get(item.name, {}).get("status") == "running":
                self.log.finish(item, failed_report(item, error_text(item, exc)))
            remove_partial(self.out_root, item)
        self.log.abort(error_text(running[0], exc) if running else str(exc))
        self._discard_if_empty()

    def interrupt(self, running: list[InputItem]) -> None:
        """Ctrl-C / SIGTERM: the inputs it was on (``running``, and any other input run.json says is
        running, e.g. one waiting for a retry) and the run are marked interrupted; their unfinished
        results are removed."""
        by_name = {item.name: item for item in self.items}
        waiting = [by_name[name] for name, rec in self.log.data["inputs"].items()
                   if rec.get("status") == "running" and name in by_name]
        for item in {it.name: it for it in [*running, *waiting]}.values():
            remove_partial(self.out_root, item)
            rec = self.log.data["inputs"].setdefault(item.name, {"path": str(item.path), "kind": item.kind})
            rec["status"] = "interrupted"
        self.log.interrupt()

    def _discard_if_empty(self) -> None:
        if self.was_empty and not self.log.any_done():
            self.log.discard(remove_folder=self.created)


def error_text(item: InputItem, exc: BaseException) -> str:
    """One line for run.json and the log: the SOWLv2Error's message (it names the file), or the
    input, the exception type and its first line for an unexpected failure."""
    if isinstance(exc, SOWLv2Error):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{item.path}: internal error: {type(exc).__name__}: {first} (rerun with -v for details)"


def failed_report(item: InputItem, error: str) -> InputReport:
    from .pipeline import InputReport

    return InputReport(item.name, str(item.path), item.kind, "failed", error=error)


def skipped_report(item: InputItem, out_root: Path) -> InputReport:
    from .pipeline import InputReport

    return InputReport(item.name, str(item.path), item.kind, "skipped", output=str(out_root / item.name))


def remove_partial(out_root: Path, item: InputItem) -> None:
    """Remove what an unfinished attempt at ``item`` left (its ``.<name>.partial`` folder), if anything."""
    p = partial_dir(out_root / item.name)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)


@dataclass
class RunPlan:
    """What a run will do, checked, before anything is written: its inputs, prompts and output folder."""

    items: list[InputItem]
    prompts: list[str]
    out_root: Path


def plan_run(pipeline: SOWLv2Pipeline, input=None, prompts=None, output_dir=None) -> RunPlan:  # noqa: A002
    """Check everything that can be checked before anything is written.

    Args:
        pipeline: its config gives the settings (``input``, ``input_list``, ``frames``, ``resume``...).
        input: a file, folder or glob (default: ``config.input``; ``config.input_list`` when neither).
        prompts: text prompts (default: the config's).
        output_dir: the output folder (default: ``config.output``).

    Raises:
        UsageError: no input, a missing input, an unusable output folder, or a result folder that
            SOWLv2 did not write.
        InputError: a folder without images or videos.
    """
    config = pipeline.config
    input = input if input is not None else config.input
    input_list = config.input_list if input is None else None
    if not input and not input_list:
        raise UsageError("input: give an image, a folder, a video or a glob with --input, or a list "
                         "of them with --input-list")
    prompts = pipeline._prompts(prompts)
    out_root = Path(output_dir or config.output).expanduser().absolute()
    items = collect_inputs(input, input_list, frames=config.frames)
    check_output_dir(out_root, config)
    for item in items:
        check_replaceable(out_root / item.name)
    return RunPlan(items, prompts, out_root)


def open_run(pipeline: SOWLv2Pipeline, plan: RunPlan, engine: dict, torch_threads: int | None = None) -> OpenRun:
    """Prepare the output folder and open run.json (recording ``engine``: its name, workers...).

    Args:
        torch_threads: torch's thread count of the processes that process the inputs (default: this
            process's); a result setting, so ``--resume`` needs the same.

    Raises:
        UsageError: the output folder cannot be written, or ``--resume`` with different settings.
    """
    config = pipeline.config
    out_root = plan.out_root
    was_empty = not out_root.is_dir() or not any(out_root.iterdir())
    created = prepare_output_dir(out_root)
    run_log = RunLog(out_root, config, plan.prompts, resume=config.resume,  # checks --resume settings
                     torch_threads=torch_threads)
    run_log.set("engine", engine)
    if config.resume or config.overwrite:
        clean_stale_partials(out_root)
    return OpenRun(plan.items, plan.prompts, out_root, run_log, was_empty, created)


def run(pipeline: SOWLv2Pipeline, input=None, prompts=None, output_dir=None) -> list[InputReport]:  # noqa: A002
    """``SOWLv2Pipeline.process``: every input into the output folder, on ``config.engine``.

    Returns:
        one InputReport per input (status ``done``, ``failed`` or ``skipped``), in input order.

    Raises:
        UsageError, ModelLoadError: the run cannot go on (nothing half-written is left).
        InputError: the only input is bad.
        KeyboardInterrupt: after marking run.json ``interrupted`` (unfinished results removed).
    """
    if pipeline.config.engine == "ray":
        from .engines.ray_engine import run_ray

        return run_ray(pipeline, input, prompts, output_dir)
    import torch

    plan = plan_run(pipeline, input, prompts, output_dir)
    opened = open_run(pipeline, plan, engine={"name": "local", "torch_threads": torch.get_num_threads()})
    return run_local(pipeline, opened)


def run_local(pipeline: SOWLv2Pipeline, opened: OpenRun) -> list[InputReport]:
    """The local engine: each input in turn in this process, through ``pipeline.process_input``."""
    items, prompts, out_root, run_log = opened.items, opened.prompts, opened.out_root, opened.log
    reports: list[InputReport] = []
    current = None
    try:
        for k, item in enumerate(items):
            if run_log.is_done(item):
                log.info("%s: already complete, skipped (--resume)", item.name)
                reports.append(skipped_report(item, out_root))
                continue
            log.info("[%d/%d] %s", k + 1, len(items), item.path.name)
            current = item
            run_log.start(item)
            try:
                report = pipeline._run_item(item, prompts, out_root)  # process_input (tests wrap _run_item)
            except (UsageError, ModelLoadError):
                raise  # not this input's fault: the run cannot go on
            except Exception as exc:
                if len(items) == 1:
                    run_log.finish(item, failed_report(item, error_text(item, exc)))
                    raise
                error = error_text(item, exc)
                log.error("%s", error)
                log.debug("traceback of %s", item.path, exc_info=True)
                report = failed_report(item, error)
            run_log.finish(item, report)
            reports.append(report)
            current = None
    except KeyboardInterrupt:
        run_log.interrupt(current)
        raise
    except BaseException as exc:
        opened.abort(exc, [current] if current is not None else [])
        raise
    opened.close()
    return reports
