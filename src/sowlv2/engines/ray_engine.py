"""``--engine ray``: the inputs of a run spread over Ray actors, on this machine or a Ray cluster.

    driver (this process)                               workers (Ray actors, one process each)
      open_run: checks, run.json                          SOWLv2Pipeline(config): models loaded once
      Ray: start one here, or join --ray-address          torch threads = --cpus-per-worker
      start: every worker reads a token file  ------->    start(path): the models loaded
      for each free worker, the next input    ------->    process(item): pipeline.process_input
      ray.wait: a result, an error, a lost worker <-----  {"status": done | failed | fatal, ...}
      run.json updated by the driver alone; one progress bar over inputs

Faults: a worker process that dies (``kill -9``, out of memory, a lost node) is restarted by Ray
(``max_restarts``) and its input is tried again on the first worker that is free, at most
``MAX_RETRIES`` times; each retry is recorded in run.json (``inputs.<name>.retries``). An input
that fails by itself (InputError, an unexpected exception) is recorded ``failed`` and not retried. A
model or setting error stops the run with the local engine's message. Ctrl-C (SIGINT / SIGTERM) kills
the workers, removes their unfinished results and marks run.json ``interrupted``.

Results are the local engine's, byte for byte, when the worker uses the same number of torch threads
(``--cpus-per-worker``; run.json records ``engine.torch_threads`` for both engines).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from ..errors import ModelLoadError, SOWLv2Error, UsageError
from ..runner import OpenRun, error_text, failed_report, open_run, plan_run, remove_partial, skipped_report

if TYPE_CHECKING:
    from ..io.inputs import InputItem
    from ..pipeline import InputReport, SOWLv2Pipeline

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # tries of one input after the first, when its worker is lost
MAX_RESTARTS = 2  # restarts of one worker process by Ray
_POLL_S = 0.5  # how often the driver wakes up while waiting (progress bar, Ctrl-C)
_KILL_WAIT_S = 10.0  # how long an interrupted driver waits for killed workers to be gone
TOKEN_PREFIX = ".sowlv2-ray-check-"


def import_ray():
    """Import Ray, or stop with one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("engine: --engine ray needs Ray, which is not installed; "
                         "pip install 'sowlv2[ray]' (or use --engine local)") from None
    return ray


class SOWLv2Worker:
    """One Ray worker: a SOWLv2Pipeline whose models are loaded once, fed one input at a time.

    Args:
        config: the run's PipelineBaseData (progress bars off in the worker).
        background_write: as ``SOWLv2Pipeline(background_write=)``.
        threads: torch CPU threads of this process (the local engine's count gives identical results).
    """

    def __init__(self, config, background_write: bool, threads: int) -> None:
        import torch

        from ..pipeline import SOWLv2Pipeline

        torch.set_num_threads(threads)
        self.pipeline = SOWLv2Pipeline(config.replace(progress=False), background_write=background_write)

    def info(self) -> dict:
        """Where this worker runs: {"pid", "node", "torch_threads"}."""
        import ray
        import torch

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "torch_threads": torch.get_num_threads()}

    def start(self, token_path: str, sample_input: str, roles: list[str]) -> dict:
        """Whether this worker sees the output folder (the token file's text) and the first input; then
        load the models of ``roles`` (``detector``, ``segmenter`` for images, ``tracker`` for videos).

        Returns:
            ``info()`` with "token" (the text read, or None), "input_visible", "seconds" (to load the
            models), and "fatal" / "type" when a model cannot be loaded.
        """
        try:
            token = Path(token_path).read_text(encoding="utf-8")
        except OSError:
            token = None
        out = {**self.info(), "token": token, "input_visible": Path(sample_input).exists()}
        if token is None or not out["input_visible"]:
            return out
        t0 = time.perf_counter()
        try:
            for role in roles:
                getattr(self.pipeline, role)
        except (UsageError, ModelLoadError) as exc:
            return {**out, "fatal": str(exc), "type": type(exc).__name__}
        return {**out, "seconds": round(time.perf_counter() - t0, 3)}

    def process(self, item: InputItem, prompts: list[str], out_root: str) -> dict:
        """Process one input with ``SOWLv2Pipeline.process_input``.

        Returns:
            {"status": "done", "report": InputReport} |
            {"status": "failed", "error": one line, "type": exception class, "traceback": text} (this input) |
            {"status": "fatal", "error": message, "type": "ModelLoadError" | "UsageError"} (the run cannot go on).
        """
        try:
            report = self.pipeline.process_input(item, prompts, Path(out_root))
        except (UsageError, ModelLoadError) as exc:
            return {"status": "fatal", "error": str(exc), "type": type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - one input's failure: reported, the run goes on
            return {"status": "failed", "error": error_text(item, exc), "type": type(exc).__name__,
                    "traceback": traceback.format_exc()}
        return {"status": "done", "report": report}


def plan_workers(config, resources: dict[str, float]) -> dict[str, Any]:
    """The number of workers and each one's CPUs, GPUs and torch threads, from the settings and the
    cluster's resources (``ray.cluster_resources()``).

    Defaults: with GPUs, one worker per GPU (``gpus_per_worker`` 1) and the CPUs shared among them;
    without (or ``gpus_per_worker`` 0), one worker per ``cpus_per_worker`` (default 2) CPU cores.

    Raises:
        UsageError: the workers need more CPUs or GPUs than the cluster has.
    """
    cpus = int(resources.get("CPU", 0)) or 1
    gpus = float(resources.get("GPU", 0))
    gpw = config.gpus_per_worker if config.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if gpw > 0:
        workers = config.workers or max(1, int(gpus // gpw))
        cpw = config.cpus_per_worker or max(1, cpus // workers)
    else:
        workers = config.workers or max(1, cpus // (config.cpus_per_worker or 2))
        cpw = config.cpus_per_worker or max(1, min(2, cpus // workers))
    if workers * cpw > cpus:
        raise UsageError(f"workers: {workers} worker(s) x {cpw} CPU(s) need {workers * cpw} CPUs, the Ray cluster "
                         f"has {cpus}; lower --workers or --cpus-per-worker")
    if workers * gpw > gpus + 1e-9:
        raise UsageError(f"workers: {workers} worker(s) x {gpw:g} GPU(s) need {workers * gpw:g} GPUs, the Ray "
                         f"cluster has {gpus:g}; lower --workers or --gpus-per-worker (fractions share a GPU)")
    return {"workers": workers, "cpus_per_worker": cpw, "gpus_per_worker": gpw, "torch_threads": cpw}


def connect(ray, address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (``auto`` or HOST:PORT), or start Ray on this machine when
    it is None (or use the connection this process already has). Returns whether Ray was started here.

    Raises:
        UsageError: no cluster answers at ``address``.
    """
    if ray.is_initialized():
        return False
    verbose = logging.getLogger("sowlv2").isEnabledFor(logging.DEBUG)
    common = {"logging_level": logging.WARNING, "log_to_driver": verbose, "namespace": "sowlv2"}
    t0 = time.perf_counter()
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"ray-address: cannot join the Ray cluster at {address}: {first}") from None
        started = False
    else:
        _local_only(ray)
        # The engine moves paths and reports only: a small object store is plenty.
        ray.init(include_dashboard=False, object_store_memory=256 * 2**20, **common)
        started = True
    log.info("Ray %s in %.1f s", "started" if started else f"joined at {address}", time.perf_counter() - t0)
    return started


def _local_only(ray) -> None:
    """Make the Ray that this process starts for itself listen on 127.0.0.1 only (what Ray does on
    macOS and Windows), send no usage statistics, and run its workers at the driver's priority (Ray's
    default niceness of 15 makes them yield to every other process on the machine, where the local
    engine would not); a cluster started with ``ray start`` is the user's to configure. Environment
    variables already set are left as they are."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))  # read by the raylet at start
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read by Ray's processes at start
    try:  # this process imported Ray already, and Ray reads the variable when imported
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"].lower() in ("1", "true")
    except (ImportError, AttributeError):
        log.debug("Ray's local-only switch not found; its default applies")


def run_ray(pipeline: SOWLv2Pipeline, input=None, prompts=None, output_dir=None) -> list[InputReport]:  # noqa: A002
    """The ray engine of ``sowlv2.runner.run``: same arguments, returns and errors as the local engine.

    Raises (besides the local engine's): UsageError when Ray is missing, no cluster answers at
    ``ray_address``, the workers need more than the cluster has, or a worker cannot see the output
    folder or the inputs.
    """
    ray = import_ray()
    config = pipeline.config
    plan_ = plan_run(pipeline, input, prompts, output_dir)  # every check before Ray starts
    t0 = time.perf_counter()
    started_here = connect(ray, config.ray_address)
    opened = None
    actors: list = []
    token = None
    try:
        plan = plan_workers(config, ray.cluster_resources())
        opened = open_run(pipeline, plan_, engine={"name": "ray"}, torch_threads=plan["torch_threads"])
        if config.resume or config.overwrite:  # a token left by a driver killed while starting
            for stale in opened.out_root.glob(f"{TOKEN_PREFIX}*"):
                stale.unlink(missing_ok=True)
        if all(opened.log.is_done(it) for it in opened.items):  # --resume of a complete run: no workers
            return _schedule(ray, opened, [], {}, config.progress)
        remote = ray.remote(num_cpus=plan["cpus_per_worker"], num_gpus=plan["gpus_per_worker"],
                            max_restarts=MAX_RESTARTS, max_task_retries=0)(SOWLv2Worker)
        log.info("starting %d Ray worker(s): %d CPU(s), %g GPU(s), %d torch thread(s) each", plan["workers"],
                 plan["cpus_per_worker"], plan["gpus_per_worker"], plan["torch_threads"])
        actors = [remote.remote(config, pipeline.background_write, plan["torch_threads"])
                  for _ in range(plan["workers"])]
        token = opened.out_root / f"{TOKEN_PREFIX}{uuid.uuid4().hex}"
        token.write_text(token.name, encoding="utf-8")
        sample = str(opened.items[0].path)
        kinds = {it.is_video for it in opened.items}
        roles = ["detector"] + (["segmenter"] if False in kinds else []) + (["tracker"] if True in kinds else [])
        seen = ray.get([a.start.remote(str(token), sample, roles) for a in actors])
        for where in seen:
            node = f"{where['node']} (pid {where['pid']})"
            if where["token"] != token.name:
                raise UsageError(f"output: the Ray worker on {node} cannot see {opened.out_root}; the output folder "
                                 "must be on a filesystem every node shares, at the same path")
            if not where["input_visible"]:
                raise UsageError(f"input: the Ray worker on {node} cannot see {sample}; the inputs must be on a "
                                 "filesystem every node shares, at the same path")
            if "fatal" in where:
                raise getattr(errors, where["type"], SOWLv2Error)(where["fatal"])
        token.unlink()
        token = None
        opened.log.set("engine", {"name": "ray", "address": config.ray_address, "started_here": started_here,
                                  **plan, "workers_at_start": [{k: w[k] for k in ("node", "pid", "seconds")}
                                                               for w in seen],
                                  "start_seconds": round(time.perf_counter() - t0, 3)})
        return _schedule(ray, opened, actors, {a: w for a, w in zip(actors, seen)}, config.progress)
    except KeyboardInterrupt:
        raise  # _schedule marked run.json; during start-up, below
    except BaseException as exc:
        if token is not None:
            token.unlink(missing_ok=True)
        if opened is not None and opened.log.data.get("status") == "running":
            opened.abort(exc, [])
        raise
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
        if token is not None:
            token.unlink(missing_ok=True)
        if started_here:
            ray.shutdown()
        if opened is not None and opened.log.data.get("status") == "running":  # interrupted while starting
            opened.interrupt([])


def _schedule(ray, opened: OpenRun, actors: list, where: dict, progress: bool) -> list[InputReport]:
    """Feed the inputs to the workers, one at a time each, and record results as they arrive."""
    from ray.exceptions import RayActorError

    from ..progress import progress_bar

    items, run_log, out_root = opened.items, opened.log, opened.out_root
    reports: dict[str, InputReport] = {}
    for item in items:
        if run_log.is_done(item):
            log.info("%s: already complete, skipped (--resume)", item.name)
            reports[item.name] = skipped_report(item, out_root)
    pending = deque(it for it in items if it.name not in reports)
    free = list(actors)
    running: dict = {}  # ObjectRef of process() -> (actor, item)
    restarting: dict = {}  # ObjectRef of info() -> actor (a worker Ray is restarting)
    tries: dict[str, int] = {}
    frames, t_start = 0, time.perf_counter()
    bar = progress_bar(len(pending), "inputs", progress, unit="input")
    try:
        while pending or running:
            while pending and free:
                actor, item = free.pop(0), pending.popleft()
                run_log.start(item, worker=_worker_name(where[actor]))
                tries[item.name] = tries.get(item.name, 0) + 1
                running[actor.process.remote(item, opened.prompts, str(out_root))] = (actor, item)
            if not running and not restarting:
                raise SOWLv2Error(f"every Ray worker was lost ({len(pending)} input(s) not done); "
                                  "rerun with --resume when the cluster is back")
            ready, _ = ray.wait([*running, *restarting], num_returns=1, timeout=_POLL_S)
            for ref in ready:
                if ref in restarting:
                    actor = restarting.pop(ref)
                    try:
                        where[actor] = ray.get(ref)
                        free.append(actor)
                        log.info("a Ray worker is back (pid %s on %s)", where[actor]["pid"], where[actor]["node"])
                    except RayActorError:
                        log.warning("a Ray worker is gone for good (restarted %d times)", MAX_RESTARTS)
                    continue
                actor, item = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as exc:  # the worker process died, or its node
                    w = where.get(actor, {})
                    reason = f"worker lost (pid {w.get('pid')} on {w.get('node')}): {type(exc).__name__}"
                    remove_partial(out_root, item)
                    restarting[actor.info.remote()] = actor
                    if tries[item.name] > MAX_RETRIES:
                        error = f"{item.path}: {reason}; tried {tries[item.name]} times"
                        log.error("%s", error)
                        reports[item.name] = failed_report(item, error)
                        run_log.finish(item, reports[item.name])
                        bar.update(1)
                    else:
                        log.warning("%s: %s; trying again", item.name, reason)
                        run_log.retry(item, reason)
                        pending.appendleft(item)
                    continue
                free.append(actor)
                worker = _worker_name(where[actor])
                if result["status"] == "fatal":
                    running[ref] = (actor, item)  # recorded failed with the run's error
                    raise getattr(errors, result["type"], SOWLv2Error)(result["error"])
                if result["status"] == "failed":
                    log.error("%s", result["error"])
                    log.debug("traceback of %s (on %s):\n%s", item.path, worker, result["traceback"])
                    report = failed_report(item, result["error"])
                    if len(items) == 1:
                        run_log.finish(item, report, worker=worker)
                        cls = getattr(errors, result["type"], None)
                        raise (cls if isinstance(cls, type) and issubclass(cls, SOWLv2Error)
                               else SOWLv2Error)(result["error"])
                else:
                    report = result["report"]
                    frames += report.frames
                reports[item.name] = report
                run_log.finish(item, report, worker=worker)
                bar.update(1)
                bar.set_postfix(fps=f"{frames / max(time.perf_counter() - t_start, 1e-9):.1f}", refresh=False)
    except KeyboardInterrupt:
        _stop(ray, actors, running, where)
        opened.interrupt([item for _, item in running.values()])
        for item in items:  # any unfinished attempt (e.g. one submitted as the signal came) goes too
            if item.name not in reports:
                remove_partial(out_root, item)
        raise
    except BaseException as exc:
        _stop(ray, actors, running, where)
        opened.abort(exc, [item for _, item in running.values()])
        raise
    finally:
        bar.close()
    opened.close()
    return [reports[it.name] for it in items]


def _worker_name(where: dict) -> str:
    return f"{where['node']}:{where['pid']}"


def _stop(ray, actors: list, running: dict, where: dict | None = None) -> None:
    """Kill the workers and wait (briefly) until the inputs they were on have ended and the worker
    processes on this node are gone, so that their unfinished ``.partial`` folders can be removed
    without a worker still writing into them (a task's result can fail before its process is dead)."""
    for a in actors:
        ray.kill(a, no_restart=True)
    if running:
        ray.wait(list(running), num_returns=len(running), timeout=_KILL_WAIT_S)
    try:
        here = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - no node address: nothing to wait for here
        return
    pids = [w["pid"] for w in (where or {}).values() if w.get("node") == here and w.get("pid")]
    deadline = time.monotonic() + _KILL_WAIT_S
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        if pids:
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, killed but not yet reaped, writes nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
