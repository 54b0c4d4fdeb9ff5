"""Facts of the machine and the process: CPU, memory, versions, load, peak RSS."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------- machine
def machine_info(device) -> dict:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "ram_gb": _ram_gb()}
    if getattr(device, "type", "") == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def versions() -> dict:
    import av
    import torch
    import transformers

    from .. import __version__

    out = {"sowlv2": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "av": av.__version__, "numpy": np.__version__}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5)
        if commit.returncode == 0:
            out["git"] = commit.stdout.strip()
    return out


def _proc_status_mb(key: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or the last reset) in MiB; None without /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS, ``VmHWM`` (Linux >= 4.0: ``/proc/self/clear_refs``).

    ``ru_maxrss`` is not a substitute: it also keeps the peak of threads that have exited.

    Returns False where that is not possible (then only the whole process's peak is known)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rss_mb() -> float:
    """Peak RSS of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
