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

    kind = {"owl_model": "owl", "sam_model": "sam", "vjepa2_model": "vjepa2"}.get(what)
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
