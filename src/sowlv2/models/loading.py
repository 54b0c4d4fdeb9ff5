"""Device and dtype resolution, and model loading with errors a user can act on."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch

from ..errors import ModelLoadError, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu. An explicitly requested device that is not available
    is a UsageError, never a silent fallback."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device: {device} was requested but CUDA is not available "
                             "(use --device cpu or --device auto)")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device: {device} was requested but only {torch.cuda.device_count()} "
                             "CUDA device(s) exist")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device: mps was requested but Apple MPS is not available "
                         "(use --device cpu or --device auto)")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Map a dtype name to torch; half precision on the CPU falls back to float32 with a warning
    only for float16 (CPU float16 kernels are missing or slow); bfloat16 is honoured."""
    torch_dtype = _DTYPES[dtype]
    if device.type == "cpu" and torch_dtype == torch.float16:
        log.warning("float16 is not supported well on the CPU; using float32")
        return torch.float32
    return torch_dtype


def _looks_like_path(name: str) -> bool:
    """A local folder rather than a hub id (``org/name`` has exactly one slash)."""
    return (name.startswith((".", "/", "~")) or name.count("/") >= 2 or "\\" in name
            or Path(name).expanduser().exists())


def _first_sentence(text: str, limit: int = 200) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    if len(text) > limit and ". " in text[:limit]:
        text = text[: text.index(". ") + 1]
    return text


def load_pretrained(loader: Callable[..., T], name: str, what: str, **kwargs) -> T:
    """Call ``loader(name, **kwargs)`` (a ``from_pretrained``), turning failures into ModelLoadError.

    ``name`` is a hub id (``google/owlv2-base-patch16-ensemble``), a local folder, or ``"demo"`` (the
    shipped demo checkpoint of ``what``: ``owl_model``, ``sam_model`` or ``vjepa2_model``). Weights load
    from safetensors only (never pickle) and remote code is never trusted.
    """
    from ..demo_models import resolve

    kind = {"owl_model": "owl", "sam_model": "sam", "detector": "owl", "tracker": "sam",
            "vjepa2_model": "vjepa2"}.get(what)
    if kind is not None:
        name = resolve(name, kind)  # "demo" -> the shipped demo checkpoint
    path = Path(name).expanduser()
    local = _looks_like_path(name)
    if local:
        if not path.is_dir():
            raise ModelLoadError(f"{what}: model folder not found: {name}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{what}: {name} is not a model folder (no config.json)")
        if kwargs.get("use_safetensors") and not any(path.glob("*.safetensors")):
            raise ModelLoadError(f"{what}: {name} holds no safetensors weights (*.safetensors); SOWLv2 loads "
                                 "weights from safetensors only")
        name = str(path)
    kwargs["trust_remote_code"] = False
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        first = _first_sentence(str(exc)) or type(exc).__name__
        if local:
            hint = " (the folder lacks files or holds another model's)"
        elif os.environ.get("HF_HUB_OFFLINE") == "1":
            hint = " (offline: HF_HUB_OFFLINE=1 is set and the model is not in the local cache)"
        else:
            hint = ""
        raise ModelLoadError(f"{what}: cannot load {name!r}{hint}: {first}") from exc


def load_model(model_cls, name: str, what: str, device: torch.device, dtype: torch.dtype):
    """Load a transformers model with safetensors weights, in eval mode on ``device``."""
    model = load_pretrained(model_cls.from_pretrained, name, what, dtype=dtype, use_safetensors=True)
    return model.to(device).eval()


@contextmanager
def loading_bars(show: bool) -> Iterator[None]:
    """While active, transformers' "Loading weights" progress bars are shown only if ``show``.

    The caller's switch (``progress=False``, ``--quiet``) covers model loading too; the global
    transformers setting is restored on exit.
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not show and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not show and was:
            hf_logging.enable_progress_bar()


_HUB_REACHABLE: dict[str, bool] = {}


def _hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether the Hugging Face hub endpoint answers a TCP connection within ``timeout`` seconds.

    Without this check a machine with no network waits for the hub client's retries (minutes)
    before the first run fails; with it, such a run fails within seconds with one line.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    if host not in _HUB_REACHABLE:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                _HUB_REACHABLE[host] = True
        except OSError:
            _HUB_REACHABLE[host] = False
    return _HUB_REACHABLE[host], host


def hub_file(name: str, filename: str, what: str) -> str:
    """Path of ``filename`` of hub repository ``name``: from the local cache, else downloaded.

    Raises:
        ModelLoadError: not cached and offline (``HF_HUB_OFFLINE=1``) or the hub cannot be reached
            (fails within seconds, saying how to use a local folder or the offline cache), or the hub
            has no such repository or file.
    """
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(name, filename, local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the cache (or a malformed id: asked of the hub below)
        pass
    local_hint = ("download it once with network access (it is then cached), or pass a local folder "
                  "holding config.json and the weights (save_pretrained)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(f"{what}: {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                             f"{local_hint}")
    reachable, host = _hub_reachable()
    if not reachable:
        raise ModelLoadError(f"{what}: could not download {name!r}: the Hugging Face hub ({host}) cannot be "
                             f"reached and the model is not in the local cache; {local_hint}, then set "
                             "HF_HUB_OFFLINE=1 to use only the cache")
    try:
        return hf_hub_download(name, filename)
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one line for the user
        first = _first_sentence(str(exc)) or type(exc).__name__
        raise ModelLoadError(f"{what}: cannot load {name!r} from the Hugging Face hub: {first}") from exc
