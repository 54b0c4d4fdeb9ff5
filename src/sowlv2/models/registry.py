"""Models chosen by their checkpoint: ``config.json``'s ``model_type`` picks the adapter.

A backend is one adapter (a class satisfying a protocol of ``sowlv2.stages``) plus one
:class:`Backend` entry here. ``load("detector", "google/owlv2-base-patch16-ensemble", ...)`` reads the
checkpoint's ``config.json`` (a local folder, the hub cache, or the hub), finds the entry whose
``model_types`` holds its ``model_type`` for that role, and calls the entry's loader.

Loaders are named as ``"module:attribute"`` strings so that importing this module imports no model
code; an entry may list extra packages it needs (``requires``), and a missing one is a clear error
that names the package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

log = logging.getLogger(__name__)

ROLES = ("detector", "segmenter", "tracker", "encoder")
_WHAT = {"detector": "detector", "segmenter": "tracker", "tracker": "tracker", "encoder": "vjepa2_model"}
_DEMO_KIND = {"detector": "owl", "segmenter": "sam", "tracker": "sam", "encoder": "vjepa2"}


@dataclass(frozen=True)
class Backend:
    """One adapter for one role.

    Attributes:
        role: ``detector``, ``segmenter`` (boxes -> masks on images), ``tracker`` (videos) or
            ``encoder`` (the key-frame selector's video encoder).
        model_types: the ``config.json`` ``model_type`` values it loads.
        loader: ``"module:attr"`` (``attr`` may be dotted, e.g. ``Class.from_pretrained``) of a callable
            ``(name_or_folder, device: torch.device, dtype: str) -> adapter``.
        requires: importable packages the adapter needs besides transformers (e.g. ``("timm",)``).
        example: a hub id of such a checkpoint (docs and error messages).
    """

    role: str
    model_types: tuple[str, ...]
    loader: str
    requires: tuple[str, ...] = ()
    example: str = ""

    def load_fn(self) -> Callable[..., Any]:
        module, _, attr = self.loader.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


BACKENDS: list[Backend] = [
    Backend("detector", ("owlv2",), "sowlv2.models.owlv2:Owlv2Detector.from_pretrained",
            example="google/owlv2-base-patch16-ensemble"),
    Backend("segmenter", ("sam2_video", "sam2"), "sowlv2.models.sam2_image:Sam2ImageSegmenter.from_pretrained",
            example="facebook/sam2.1-hiera-small"),
    Backend("tracker", ("sam2_video", "sam2"), "sowlv2.models.sam2_video:Sam2VideoTracker.load",
            example="facebook/sam2.1-hiera-small"),
    # Other backends (issue 14). timm: EdgeTAM's RepViT and OmDet-Turbo's Swin are timm models.
    Backend("detector", ("grounding-dino",), "sowlv2.models.grounding_dino:GroundingDinoDetector.from_pretrained",
            example="IDEA-Research/grounding-dino-tiny"),
    Backend("detector", ("mm-grounding-dino",),
            "sowlv2.models.grounding_dino:MMGroundingDinoDetector.from_pretrained",
            example="openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det"),
    Backend("detector", ("omdet-turbo",), "sowlv2.models.omdet_turbo:OmDetTurboDetector.from_pretrained",
            requires=("timm",), example="omlab/omdet-turbo-swin-tiny-hf"),
    Backend("detector", ("sam3_video", "sam3"), "sowlv2.models.sam3:Sam3Detector.from_pretrained",
            example="facebook/sam3"),
    Backend("segmenter", ("edgetam_video", "edgetam"), "sowlv2.models.sam_family:EdgeTamImageSegmenter.from_pretrained",
            requires=("timm",), example="yonigozlan/EdgeTAM-hf"),
    Backend("tracker", ("edgetam_video",), "sowlv2.models.sam_family:EdgeTamVideoTracker.load",
            requires=("timm",), example="yonigozlan/EdgeTAM-hf"),
    Backend("segmenter", ("sam3_video", "sam3_tracker_video"), "sowlv2.models.sam_family:TrackerImageSegmenter.sam3",
            example="facebook/sam3"),
    Backend("tracker", ("sam3_video", "sam3_tracker_video"), "sowlv2.models.sam_family:Sam3VideoTracker.load",
            example="facebook/sam3"),
    Backend("encoder", ("vjepa2",), "sowlv2.models.vjepa2:load_encoder",
            example="facebook/vjepa2-vitl-fpc16-256-ssv2"),
]


def register(backend: Backend) -> None:
    """Add a backend (an entry for the same role and model type added later wins)."""
    if backend.role not in ROLES:
        raise ValueError(f"unknown role {backend.role!r}; use one of {', '.join(ROLES)}")
    BACKENDS.insert(0, backend)


def supported(role: str) -> list[str]:
    """The model types that ``role`` can load, sorted."""
    return sorted({t for b in BACKENDS if b.role == role for t in b.model_types})


def resolve_name(name: str, role: str) -> str:
    """``"demo"`` -> the shipped demo checkpoint folder of the role; other names unchanged."""
    from ..demo_models import resolve

    return resolve(str(name), _DEMO_KIND[role])


def read_config(name: str, what: str) -> dict:
    """The checkpoint's ``config.json`` as a dict, from a local folder, the hub cache or the hub.

    Raises:
        ModelLoadError: no such folder, no config.json, or the hub cannot give it (message says how
            to use a local folder or the offline cache).
    """
    from .loading import _looks_like_path

    path = Path(name).expanduser()
    if _looks_like_path(name):
        if not path.is_dir():
            raise ModelLoadError(f"{what}: model folder not found: {name}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{what}: {name} is not a model folder (no config.json)")
        try:
            return json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{what}: {path / 'config.json'} is not readable JSON ({exc})") from exc
    from .loading import hub_file

    return json.loads(Path(hub_file(name, "config.json", what)).read_text(encoding="utf-8"))


def model_type(name: str, what: str) -> str:
    """The ``model_type`` of a checkpoint (hub id or folder)."""
    config = read_config(name, what)
    kind = config.get("model_type")
    if not isinstance(kind, str) or not kind:
        raise ModelLoadError(f"{what}: {name} has no model_type in its config.json")
    return kind


def backend_for(role: str, kind: str, name: str = "", what: str | None = None) -> Backend:
    """The backend that loads ``model_type`` ``kind`` for ``role``.

    Raises:
        ModelLoadError: no backend for it (the message lists the supported model types), or a package
            it needs is not installed (the message names it).
    """
    what = what or _WHAT[role]
    for backend in BACKENDS:
        if backend.role == role and kind in backend.model_types:
            missing = [p for p in backend.requires if importlib.util.find_spec(p) is None]
            if missing:
                raise ModelLoadError(f"{what}: {name or kind} ({kind}) needs the package(s) {', '.join(missing)}: "
                                     f"pip install {' '.join(missing)}")
            return backend
    raise ModelLoadError(f"{what}: {name or 'the checkpoint'} is a {kind!r} model, which SOWLv2 cannot use as a "
                         f"{role}; supported model types: {', '.join(supported(role))}")


def load(role: str, name: str, device, dtype: str = "float32", what: str | None = None):
    """Load the adapter of ``role`` for checkpoint ``name`` (hub id, local folder, or ``"demo"``).

    Args:
        role: one of ``ROLES``.
        name: the checkpoint.
        device: a torch.device.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        what: the setting's name for messages (default: the role's flag).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    what = what or _WHAT[role]
    folder = resolve_name(name, role)
    backend = backend_for(role, model_type(folder, what), name, what)
    log.debug("%s %s -> %s", role, name, backend.loader)
    return backend.load_fn()(folder, device, dtype)
