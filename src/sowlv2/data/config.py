"""Every setting of a SOWLv2 run, with defaults and validation.

Keys are the CLI's long flag names with ``_`` for ``-`` (``--owl-model`` is ``owl_model``); a YAML
config file uses the same keys (with ``-`` or ``_``). Precedence: flags given on the command line >
YAML file > defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError

DTYPES = ("float32", "bfloat16", "float16")
KEYFRAME_STRATEGIES = ("novelty", "variance", "uniform", "pixel")  # the one list (keyframes, models.vjepa2)
FILL_MODES = ("interpolate", "carry")  # the one list (sowlv2.fill, sowlv2.engine)
DEFAULT_OWL_MODEL = "google/owlv2-base-patch16-ensemble"
DEFAULT_SAM_MODEL = "facebook/sam2.1-hiera-small"
DEFAULT_VJEPA2_MODEL = "facebook/vjepa2-vitl-fpc16-256-ssv2"
ENGINES = ("local", "ray")
_RAY_KEYS = ("ray_address", "workers", "gpus_per_worker", "cpus_per_worker")
ALIASES = {"detector": "owl_model", "tracker": "sam_model"}  # generic key -> the stored (seed) key


@dataclass
class PipelineBaseData:
    """Settings of a SOWLv2 run (the seed document's name for it).

    Example:
        >>> PipelineBaseData(owl_model="google/owlv2-base-patch16-ensemble",
        ...                  sam_model="facebook/sam2.1-hiera-small", threshold=0.1, device="cuda")
    """

    # What to process (the CLI's --input / --prompt / --output; optional for the Python API).
    input: str | None = None
    prompt: list[str] = field(default_factory=list)
    output: str = "output"
    # Models: a Hugging Face hub id or a local folder; the checkpoint's model_type picks the adapter
    # (sowlv2.models.registry). ``detector`` / ``tracker`` are the generic names of these two keys.
    owl_model: str = DEFAULT_OWL_MODEL
    sam_model: str = DEFAULT_SAM_MODEL
    device: str = "auto"
    dtype: str = "float32"
    # Detection.
    threshold: float = 0.1
    nms_iou: float = 0.5
    max_objects: int | None = None
    # Outputs.
    no_merged: bool = False
    no_binary: bool = False
    no_overlay: bool = False
    mask_videos: bool = False
    # Exports for training data (sowlv2.export): formats written under <result>/export/<format>/.
    export: list[str] = field(default_factory=list)
    # Video.
    frames: bool = False
    fps: float | None = None
    detect_every: int = 10
    match_iou: float = 0.5
    max_lost: int = 30
    # V-JEPA 2 key frames.
    enable_vjepa2: bool = False
    vjepa2_model: str = DEFAULT_VJEPA2_MODEL
    vjepa2_frames_per_clip: int = 16
    vjepa2_clips_per_pass: int = 1
    keyframe_budget: float = 0.25
    keyframe_strategy: str = "novelty"
    # Adaptive compute: share of frames the tracker processes, longest fill, how frames are filled.
    track_budget: float = 1.0
    max_gap: int = 4
    fill: str = "interpolate"
    # Live streams (--input URL | webcam:N | -; sowlv2.live).
    open_timeout: float = 10.0
    reconnect: int = 0
    realtime: bool = False
    duration: float | None = None
    max_frames: int | None = None
    segment_seconds: float = 60.0
    # Run control.
    overwrite: bool = False
    resume: bool = False
    progress: bool = True
    # Many inputs, engines (sowlv2.runner; --engine ray: sowlv2.engines.ray_engine).
    input_list: str | None = None  # a file of input paths, one per line
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join that cluster
    workers: int | None = None  # Ray workers (default: one per GPU, else one per 2 CPU cores)
    gpus_per_worker: float | None = None  # default 1 when the cluster has GPUs, else 0
    cpus_per_worker: int | None = None  # also each worker's torch threads (default 2, or CPUs / GPUs)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise UsageError naming the first key whose value is wrong."""
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, value, _FIELD_TYPES[f.name]))
        if isinstance(self.prompt, str):
            self.prompt = [self.prompt]
        for p in self.prompt:
            if not p.strip():
                raise UsageError("prompt: an empty prompt cannot be detected; give text such as 'cat'")
        _in_range("threshold", self.threshold, 0.0, 1.0)
        _in_range("nms_iou", self.nms_iou, 0.0, 1.0)
        _in_range("match_iou", self.match_iou, 0.0, 1.0)
        _min("max_objects", self.max_objects, 1)
        _min("detect_every", self.detect_every, 1)
        _min("max_lost", self.max_lost, 1)
        _min("vjepa2_frames_per_clip", self.vjepa2_frames_per_clip, 2)
        _min("vjepa2_clips_per_pass", self.vjepa2_clips_per_pass, 1)
        for key in ("open_timeout", "duration", "segment_seconds"):  # live streams
            value = getattr(self, key)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise UsageError(f"{key}: must be a positive number of seconds, got {value}")
        _min("reconnect", self.reconnect, 0)
        _min("max_frames", self.max_frames, 1)
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise UsageError(f"fps: must be a positive number, got {self.fps}")
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype: must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.keyframe_strategy not in KEYFRAME_STRATEGIES:
            raise UsageError(f"keyframe_strategy: must be one of {', '.join(KEYFRAME_STRATEGIES)}, "
                             f"got {self.keyframe_strategy!r}")
        # Adaptive compute (budgets in (0, 1], the tracker's at least the detector's, fills kept short).
        for key in ("keyframe_budget", "track_budget"):
            if not 0 < getattr(self, key) <= 1:
                raise UsageError(f"{key}: must be in (0, 1] (a share of frames), got {getattr(self, key):g}")
        if self.fill not in FILL_MODES:
            raise UsageError(f"fill: must be one of {', '.join(FILL_MODES)}, got {self.fill!r}")
        content = self.enable_vjepa2 or self.keyframe_strategy == "pixel"
        check_budgets(self.keyframe_budget if content else 1 / self.detect_every, self.track_budget,
                      self.max_gap, key="keyframe_budget" if content else "detect_every")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise UsageError(f"device: must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")
        from ..export import check_formats

        self.export = check_formats(self.export)
        if self.engine not in ENGINES:
            raise UsageError(f"engine: must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        _min("workers", self.workers, 1)
        _min("cpus_per_worker", self.cpus_per_worker, 1)
        gpus = self.gpus_per_worker
        if gpus is not None and not (gpus >= 0 and math.isfinite(gpus)):
            raise UsageError(f"gpus_per_worker: must be 0 or more (a fraction shares a GPU), got {gpus}")
        if self.engine == "local" and any(getattr(self, k) is not None for k in _RAY_KEYS):
            given = ", ".join(k for k in _RAY_KEYS if getattr(self, k) is not None)
            raise UsageError(f"{given}: settings of the ray engine; add --engine ray")
        if self.input is not None and self.input_list is not None:
            raise UsageError("input and input_list exclude each other: give --input or --input-list")
        if self.overwrite and self.resume:
            raise UsageError("overwrite and resume exclude each other: choose one")

    # ------------------------------------------------------------------ construction
    @property
    def detector(self) -> str:
        """The detector checkpoint (``--detector``, alias of the seed's ``--owl-model``)."""
        return self.owl_model

    @property
    def tracker(self) -> str:
        """The tracker checkpoint (``--tracker``, alias of the seed's ``--sam-model``)."""
        return self.sam_model

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> PipelineBaseData:
        """Build from a mapping whose keys are flag names (``-`` or ``_``); unknown keys are errors.

        ``detector`` and ``tracker`` are accepted for ``owl_model`` and ``sam_model``; giving both
        spellings of one setting is an error.
        """
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name in ALIASES:
                canonical = ALIASES[name]
                if any(str(k).replace("-", "_") == canonical for k in data):
                    raise UsageError(f"{source}: {name} and {canonical} name the same setting; give one")
                name = canonical
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(f"{source}: unknown key {key!r}{hint}")
            values[name] = value
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineBaseData:
        """Read a YAML file (safe loading) and apply ``overrides`` on top of it."""
        data = load_yaml(path)
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        data.update(overrides or {})
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> PipelineBaseData:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config: cannot read {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or ""
        if isinstance(exc, yaml.constructor.ConstructorError):
            # e.g. !!python/object: safe loading builds plain values only, never objects.
            raise UsageError(f"{path}: YAML tag not allowed{where}: {problem}; a config holds plain "
                             "values only") from None
        raise UsageError(f"{path}: malformed YAML{where}" + (f": {problem}" if problem else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must be a mapping of flag names to values")
    return data


# ---------------------------------------------------------------------- type checks
_FIELD_TYPES: dict[str, str] = {
    "input": "str?", "prompt": "strlist", "output": "str", "owl_model": "str", "sam_model": "str",
    "device": "str", "dtype": "str", "threshold": "float", "nms_iou": "float", "max_objects": "int?",
    "no_merged": "bool", "no_binary": "bool", "no_overlay": "bool", "mask_videos": "bool",
    "frames": "bool", "fps": "float?", "detect_every": "int", "match_iou": "float", "max_lost": "int",
    "enable_vjepa2": "bool", "vjepa2_model": "str", "vjepa2_frames_per_clip": "int", "vjepa2_clips_per_pass": "int",
    "keyframe_budget": "float", "keyframe_strategy": "str", "overwrite": "bool", "resume": "bool",
    "progress": "bool",
    "export": "strlist",
    "track_budget": "float", "max_gap": "int", "fill": "str",
    "open_timeout": "float", "reconnect": "int", "realtime": "bool", "duration": "float?", "max_frames": "int?",
    "segment_seconds": "float",
    "input_list": "str?", "engine": "str", "ray_address": "str?", "workers": "int?", "gpus_per_worker": "float?",
    "cpus_per_worker": "int?",
}


def _coerce(name: str, value: Any, kind: str) -> Any:
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and optional:
        return None
    if kind == "str":
        if isinstance(value, (str, Path)):
            return str(value)
    elif kind == "strlist":
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    expected = {"str": "a string", "strlist": "a list of strings", "bool": "true or false",
                "int": "a whole number", "float": "a number"}[kind]
    raise UsageError(f"{name}: must be {expected}, got {value!r}")


def check_budgets(keyframe_share: float, track_budget: float, max_gap: int, *,
                  key: str = "keyframe_budget") -> None:
    """Raise UsageError (naming the key) unless the budgets can be kept together.

    ``track_budget`` must be in (0, 1], at least the detector's share of frames ``keyframe_share``
    (every detector frame is tracked; ``key`` names where that share comes from) and at least
    ``1 / (max_gap + 1)`` (fills of at most ``max_gap`` frames track one frame in ``max_gap + 1``);
    ``max_gap`` is a whole number >= 1.
    """
    from fractions import Fraction

    try:
        t = Fraction(str(track_budget))
    except (TypeError, ValueError):
        raise UsageError(f"track_budget: must be a number in (0, 1], got {track_budget!r}") from None
    if not 0 < t <= 1:
        raise UsageError(f"track_budget: must be in (0, 1] (share of frames the tracker runs on), "
                         f"got {track_budget!r}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 1:
        raise UsageError(f"max_gap: must be a whole number >= 1 (frames a fill may span), got {max_gap!r}")
    if t < Fraction(str(keyframe_share)) - Fraction(1, 10**9):
        raise UsageError(f"track_budget: {float(t):g} is below the detector's share of frames ({key} gives "
                         f"{float(keyframe_share):.3g}); every detector frame is also tracked")
    if t < Fraction(1, max_gap + 1):
        need = -(-t.denominator // t.numerator) - 1  # ceil(1 / t) - 1
        raise UsageError(f"track_budget: {float(t):g} cannot be kept with max_gap {max_gap} (a fill of at most "
                         f"{max_gap} frames tracks 1 frame in {max_gap + 1}); raise max_gap to {need} or "
                         f"track_budget to {1 / (max_gap + 1):.3g}")


def _in_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise UsageError(f"{name}: must be in [{lo:g}, {hi:g}], got {value:g}")


def _min(name: str, value: int | None, lo: int) -> None:
    if value is not None and value < lo:
        raise UsageError(f"{name}: must be at least {lo}, got {value}")
