"""The V-JEPA 2 encoder adapter (the seed's ``VJepa2VideoOptimizer`` API): video features and scores.

The pipeline owns one instance per run (``SOWLv2Pipeline.vjepa2``), loaded on first use and shared by
the key-frame selectors of every video; ``sowlv2.optimizations`` re-exports it under the seed's names.

The V-JEPA 2 *encoder* reads a clip of frames and returns one token per tubelet (``tubelet_size``
frames, 2 for the released models) and 16x16 patch: ``(T / tubelet) x (S / 16) x (S / 16)`` tokens of
width ``D`` for a clip of ``T`` frames at ``S x S`` pixels. The predictor (the self-supervised
training head) is never run, and neither is a classification head.

Preprocessing (a deliberate departure from ``VJEPA2VideoProcessor``): the processor resizes the
shorter side and centre-crops a square, which throws away both sides of a 16:9 frame, where new
objects usually enter. Here every frame is resized *whole* (anisotropically, no crop, no padding) to
the model's ``crop_size x crop_size`` (the encoder's rotary position grid is square) with bilinear
antialiased interpolation, rescaled and normalised with the processor's ``rescale_factor``,
``image_mean`` and ``image_std``. Squashing keeps every pixel of the frame in view and spends every
token on content; letterboxing would waste 44 % of the tokens of a 16:9 frame on padding. The aspect
distortion is the same for every frame of a video, so it does not create differences between frames,
which is all the scores below compare.

Scores (all in [0, 1], one per frame; defined once in ``sowlv2.keyframes.scores``):

* ``"novelty"`` (default): how much a frame's spatial feature map differs from a reference map. Per
  spatial position ``p``, ``n_p = (1 - cos(f_p, r_p)) / 2`` lies in [0, 1] by construction (0: same
  direction, 1: opposite). The frame's score is the mean of the largest ``ceil(topk_fraction * h * w)``
  values of ``n_p`` (5 % of the positions by default: 13 of the 256 tokens of a 256 px model). A plain
  mean over positions would dilute a small object entering at the edge (a 5 % object moves the mean by
  5 %); a plain max would let one noisy token decide. The top-5 % mean registers fully any change
  covering about 5 % of the frame and is robust to a single token's jitter; a scene cut scores high
  either way. No further normalisation is applied, so scores are comparable across clips and videos.
  In :meth:`VJepa2VideoOptimizer.get_temporal_importance_scores` the reference is the previous
  tubelet (frame 0, with nothing before it, scores 1.0); the streaming
  :class:`sowlv2.keyframes.VJepa2Selector` uses the last key frame instead.
* ``"variance"`` (the seed's definition): the variance of the frame's feature map over positions and
  channels (``keyframes.scores.feature_variance``), min-max normalised over the frames passed in (all
  0.0 when they are all equal). The streaming selector uses the relative change of the same variance.
* ``"uniform"``: every frame scores 1.0 (no model needed).
* ``"pixel"``: the mean absolute difference of each frame's small grey map against the previous
  frame's (``keyframes.scores.pixel_difference``; frame 0 scores 1.0; no model needed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.config import KEYFRAME_STRATEGIES
from ..errors import ModelLoadError, UsageError
from ..keyframes.scores import feature_variance, minmax, novelty_scores, pixel_difference, pixel_features

log = logging.getLogger(__name__)

DEFAULT_MODEL = "facebook/vjepa2-vitl-fpc16-256-ssv2"
STRATEGIES = KEYFRAME_STRATEGIES  # one list: novelty, variance, uniform, pixel (pixel needs no encoder)

ImageLike = Image.Image | np.ndarray

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> cuda, then mps, then cpu (as the pipeline does); anything else as given
    (an unavailable device then makes the optimizer unavailable, with the reason logged)."""
    if device is None or str(device) == "auto":
        from ..models.loading import resolve_device as resolve_auto

        return resolve_auto("auto")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"`` -> bfloat16 on CUDA, float32 elsewhere; a name or torch dtype as given."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or str(dtype) == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[key]


def uniform_indices(n: int, k: int) -> list[int]:
    """``min(k, n)`` evenly spaced, sorted, unique indices in ``range(n)``, starting at 0."""
    k = max(0, min(int(k), n))
    if k == 0:
        return []
    # floor(i * n / k) is strictly increasing for k <= n and starts at 0.
    return [(i * n) // k for i in range(k)]


class VJepa2VideoOptimizer:
    """V-JEPA 2 encoder features for key-frame selection, loaded lazily on first use.

    Args:
        config: the pipeline settings (``PipelineBaseData`` or any object; may be ``None``). Read:
            ``device`` ("auto"), ``dtype`` ("auto": bfloat16 on CUDA, float32 on CPU),
            ``keyframe_strategy`` ("novelty").
        model_name: hub id or local folder of a ``VJEPA2Model`` or ``VJEPA2ForVideoClassification``
            checkpoint (for the latter only its ``.vjepa2`` encoder is used) with a
            ``VJEPA2VideoProcessor``.
        frames_per_clip: frames the encoder reads per clip (at least the tubelet size, 2).
        device: overrides ``config.device``.

    Attributes:
        strategy: ``"novelty"``, ``"variance"``, ``"uniform"`` or ``"pixel"``; scores of
            :meth:`get_temporal_importance_scores`.
        topk_fraction: share of spatial positions averaged by the novelty score.
    """

    def __init__(
        self,
        config: Any = None,
        model_name: str = DEFAULT_MODEL,
        frames_per_clip: int = 16,
        device: str | None = None,
    ) -> None:
        if int(frames_per_clip) < 1:
            raise UsageError(f"vjepa2_frames_per_clip must be >= 1, got {frames_per_clip}")
        self.config = config
        self._model_name = str(model_name)
        self._frames_per_clip = int(frames_per_clip)
        self._device = resolve_device(device if device is not None else getattr(config, "device", "auto"))
        try:
            self._dtype = resolve_dtype(getattr(config, "dtype", "auto"), self._device)
        except ValueError as exc:
            raise UsageError(f"dtype: {exc}") from exc
        strategy = getattr(config, "keyframe_strategy", None) or "novelty"
        if strategy not in STRATEGIES:
            raise UsageError(f"keyframe_strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy: str = strategy
        self.topk_fraction = 0.05
        self._model: torch.nn.Module | None = None
        self._available: bool | None = None
        self._failure: str | None = None
        self._size = 0
        self._tubelet = 2
        self._patch = 16
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None
        self._rescale = 1.0 / 255.0

    # ------------------------------------------------------------------ properties
    @property
    def model_name(self) -> str:
        """Hub id or folder of the checkpoint."""
        return self._model_name

    @property
    def frames_per_clip(self) -> int:
        """Frames per encoder clip."""
        return self._frames_per_clip

    @property
    def device(self) -> torch.device:
        """Device the encoder runs on."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the encoder's weights and inputs (features are returned as float32)."""
        return self._dtype

    @property
    def model(self) -> torch.nn.Module | None:
        """The loaded ``VJEPA2Model`` (encoder; its predictor is never called), or ``None``."""
        return self._model

    @property
    def tubelet_size(self) -> int:
        """Frames per temporal token (2 for the released models; read from the checkpoint)."""
        self._ensure_loaded()
        return self._tubelet

    @property
    def is_available(self) -> bool:
        """Whether the encoder is usable. The first access loads it; a failure is logged once
        (with its reason) and makes every method fall back (``None`` features, uniform frames)."""
        return self._ensure_loaded()

    @property
    def failure_reason(self) -> str | None:
        """Why loading or running failed, when it did."""
        return self._failure

    # ------------------------------------------------------------------ loading
    def _mark_unavailable(self, reason: str) -> None:
        self._available = False
        self._failure = reason
        self._model = None
        log.warning("V-JEPA 2 key-frame selection unavailable (%s); falling back to uniform frame "
                    "selection.", reason)

    def _ensure_loaded(self) -> bool:
        if self._available is not None:
            return self._available
        from ..models.loading import loading_bars

        try:
            with loading_bars(bool(getattr(self.config, "progress", True))):
                self._load()
        except ImportError as exc:
            self._mark_unavailable(f"this transformers has no V-JEPA 2 ({exc}); install transformers>=5.0")
        except (OSError, ValueError, KeyError, ModelLoadError) as exc:
            self._mark_unavailable(f"cannot load {self._model_name!r}: {exc}")
        except (torch.OutOfMemoryError, MemoryError) as exc:
            self._mark_unavailable(f"out of memory loading {self._model_name!r} on {self._device}: {exc}")
        except RuntimeError as exc:  # e.g. CUDA errors, "out of memory" from other allocators
            self._mark_unavailable(f"cannot load {self._model_name!r} on {self._device}: {exc}")
        else:
            self._available = True
        return bool(self._available)

    def _load(self) -> None:
        from transformers import AutoConfig, AutoVideoProcessor, VJEPA2ForVideoClassification, VJEPA2Model

        from ..demo_models import resolve

        self._model_name = resolve(self._model_name, "vjepa2")  # "demo" -> the shipped demo checkpoint
        cfg = AutoConfig.from_pretrained(self._model_name)
        if getattr(cfg, "model_type", None) != "vjepa2":
            raise ValueError(f"model_type is {getattr(cfg, 'model_type', None)!r}, not a V-JEPA 2 checkpoint")
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available on this machine; use device='cpu' or 'auto'")
        processor = AutoVideoProcessor.from_pretrained(self._model_name)
        archs = list(getattr(cfg, "architectures", None) or [])
        if any("Classification" in a for a in archs):
            full = VJEPA2ForVideoClassification.from_pretrained(self._model_name, dtype=self._dtype,
                                                                use_safetensors=True, trust_remote_code=False)
            model = full.vjepa2  # the encoder; the pooler and classifier are dropped with `full`
            del full
        else:
            model = VJEPA2Model.from_pretrained(self._model_name, dtype=self._dtype, use_safetensors=True,
                                                trust_remote_code=False)
        model = model.eval().to(self._device)
        for p in model.parameters():
            p.requires_grad_(False)
        self._size = int(cfg.crop_size)
        self._tubelet = int(cfg.tubelet_size)
        self._patch = int(cfg.patch_size)
        self._rescale = float(getattr(processor, "rescale_factor", 1.0 / 255.0))
        mean = torch.tensor(list(processor.image_mean), dtype=torch.float32)
        std = torch.tensor(list(processor.image_std), dtype=torch.float32)
        self._mean = mean.view(1, 3, 1, 1).to(self._device)
        self._std = std.view(1, 3, 1, 1).to(self._device)
        self._model = model
        log.info("loaded V-JEPA 2 encoder %s on %s (%s, %d px, tubelet %d)", self._model_name, self._device,
                 self._dtype, self._size, self._tubelet)

    # ------------------------------------------------------------------ encoding
    @property
    def _padded_clip_len(self) -> int:
        return math.ceil(self._frames_per_clip / self._tubelet) * self._tubelet

    @staticmethod
    def _as_array(frame: ImageLike) -> np.ndarray:
        if isinstance(frame, Image.Image):
            return np.array(frame.convert("RGB"))
        arr = np.asarray(frame)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"a frame must be an RGB PIL image or an (H, W, 3) uint8 array, got "
                             f"{arr.dtype} {arr.shape}")
        return arr

    def _resize(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 on the device -> (N, 3, S, S) float32 in [0, 255], whole frame, no crop."""
        if tuple(batch.shape[-2:]) == (self._size, self._size):
            return batch.float()
        if self._device.type == "cpu":  # torch's uint8 antialiased path is ~10x faster on the CPU
            out = F.interpolate(batch, size=(self._size, self._size), mode="bilinear", align_corners=False,
                                antialias=True)
            return out.float()
        return F.interpolate(batch.float(), size=(self._size, self._size), mode="bilinear",
                             align_corners=False, antialias=True)

    def _clip_tensor(self, frames: Sequence[ImageLike]) -> torch.Tensor:
        """Frames -> (T, 3, S, S) float32 normalised on the device (each frame resized whole)."""
        arrays = [self._as_array(f) for f in frames]
        out: list[torch.Tensor] = []
        i = 0
        while i < len(arrays):  # one resize call per run of same-size frames
            j = i + 1
            while j < len(arrays) and arrays[j].shape == arrays[i].shape:
                j += 1
            chunk = torch.from_numpy(np.stack(arrays[i:j])).to(self._device, non_blocking=True)
            out.append(self._resize(chunk.permute(0, 3, 1, 2)))
            i = j
        pixels = torch.cat(out) if len(out) > 1 else out[0]
        return (pixels * self._rescale - self._mean) / self._std

    def _encode_clips(self, clips: Sequence[Sequence[ImageLike]]) -> list[torch.Tensor] | None:
        """Encode clips in one forward pass.

        Each clip is padded to the padded clip length by repeating its last frame.

        Returns:
            One (len(clip), h, w, D) float32 CPU tensor per clip (a frame's features are those of its
            tubelet), or ``None`` when the encoder ran out of memory (then it is unavailable).
        """
        assert self._model is not None
        length = self._padded_clip_len
        batch = []
        for clip in clips:
            pixels = self._clip_tensor(clip)
            if len(clip) < length:
                pixels = torch.cat([pixels, pixels[-1:].expand(length - len(clip), -1, -1, -1)])
            batch.append(pixels)
        pixel_values = torch.stack(batch).to(self._dtype)  # (B, T, 3, S, S)
        try:
            with torch.inference_mode():
                tokens = self._model.get_vision_features(pixel_values)  # (B, T/t * h * w, D)
        except torch.OutOfMemoryError as exc:
            del pixel_values
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
            self._mark_unavailable(f"out of memory encoding {len(clips)} clip(s) of {length} frames on "
                                   f"{self._device}: {exc}")
            return None
        g = self._size // self._patch
        b, _, d = tokens.shape
        tokens = tokens.float().reshape(b, length // self._tubelet, g, g, d).cpu()
        out = []
        for i, clip in enumerate(clips):
            per_frame = tokens[i].repeat_interleave(self._tubelet, dim=0)[: len(clip)]
            out.append(per_frame.contiguous())
        return out

    # ------------------------------------------------------------------ public API
    def batch_process_video_clips(
        self, all_frames: Sequence[ImageLike], batch_size: int = 4
    ) -> list[tuple[list[ImageLike], torch.Tensor]]:
        """Split frames into clips of ``frames_per_clip`` and encode ``batch_size`` clips per forward pass.

        Args:
            all_frames: RGB PIL images (or (H, W, 3) uint8 RGB arrays), in video order.
            batch_size: clips per forward pass.

        Returns:
            ``(clip_frames, features)`` per clip, in order; ``features`` is (len(clip_frames), h, w, D)
            float32 on the CPU. The last clip may be shorter: it is padded by repeating its last frame
            for the forward pass and its features are trimmed back. ``[]`` when unavailable.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        frames = list(all_frames)
        if not frames or not self.is_available:
            return []
        fpc = self._frames_per_clip
        clips = [frames[i : i + fpc] for i in range(0, len(frames), fpc)]
        result: list[tuple[list[ImageLike], torch.Tensor]] = []
        for start in range(0, len(clips), batch_size):
            group = clips[start : start + batch_size]
            feats = self._encode_clips(group)
            if feats is None:
                return []
            result.extend(zip(group, feats, strict=True))
        return result

    def extract_video_features(self, frames: Sequence[ImageLike], batch_size: int = 4) -> torch.Tensor | None:
        """Per-frame spatial feature maps of the V-JEPA 2 encoder.

        Args:
            frames: RGB PIL images (or (H, W, 3) uint8 RGB arrays), in video order; any size (each
                frame is resized whole to the model's square input, never cropped).
            batch_size: clips per forward pass.

        Returns:
            (T, h, w, D) float32 CPU tensor, T = len(frames), h = w = crop_size / patch_size (8 for a
            128 px model, 16 for 256 px), D the encoder width. The video is encoded in clips of
            ``frames_per_clip``; frames of one tubelet (2 consecutive frames of a clip) share that
            tubelet's features. ``None`` when the encoder is unavailable or ``frames`` is empty.
        """
        frames = list(frames)
        if not frames:
            return None
        clips = self.batch_process_video_clips(frames, batch_size=batch_size)
        if not clips:
            return None
        return torch.cat([f for _, f in clips], dim=0)

    def _tubelet_start(self, i: int) -> int:
        """Index of the first frame of frame ``i``'s tubelet (clips start every ``frames_per_clip``)."""
        fpc = self._frames_per_clip
        return (i // fpc) * fpc + ((i % fpc) // self._tubelet) * self._tubelet

    def _scores(self, features: torch.Tensor, strategy: str) -> list[float]:
        """Scores in [0, 1] from (T, h, w, D) features of :meth:`extract_video_features`."""
        n = int(features.shape[0])
        if strategy == "uniform" or n == 0:
            return [1.0] * n
        if strategy == "variance":
            return minmax(feature_variance(features))
        # novelty: each tubelet against the previous one (the frame just before its first frame);
        # the first tubelet has nothing before it and scores 1.0.
        starts = [self._tubelet_start(i) for i in range(n)]
        firsts = sorted({s for s in starts if s > 0})
        scores = dict.fromkeys(firsts, 0.0)
        if firsts:
            idx = torch.tensor(firsts)
            vals = novelty_scores(features[idx], features[idx - 1], self.topk_fraction)
            scores = dict(zip(firsts, vals.tolist(), strict=True))
        return [1.0 if s == 0 else float(scores[s]) for s in starts]

    def get_temporal_importance_scores(self, frames: Sequence[ImageLike]) -> list[float] | None:
        """One score in [0, 1] per frame, higher = more worth running the detector on.

        The strategy is ``self.strategy`` (from ``config.keyframe_strategy``, default ``"novelty"``);
        see the module docstring for the definitions and normalisation.

        Returns:
            ``len(frames)`` floats, or ``None`` when the encoder is unavailable (``"uniform"`` needs no
            encoder and always answers).
        """
        if self.strategy not in STRATEGIES:
            raise UsageError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        frames = list(frames)
        if self.strategy == "uniform":
            return [1.0] * len(frames)
        if self.strategy == "pixel":
            feats = pixel_features([self._as_array(f) for f in frames])
            rest = pixel_difference(feats[1:], feats[:-1]).tolist() if len(frames) > 1 else []
            return [1.0, *rest][: len(frames)]
        if not frames:
            return []
        feats = self.extract_video_features(frames)
        if feats is None:
            return None
        return self._scores(feats, self.strategy)

    def optimize_frame_selection(self, frames: Sequence[ImageLike], target_frames: int) -> list[int]:
        """Choose the frames to run the detector on.

        Frame 0 is always chosen; the rest are the highest-scoring frames, preferring one frame per
        tubelet (two frames of one tubelet share its features) before a second one; ties go to the
        earlier frame. Strategy ``"uniform"`` or an unavailable encoder gives evenly spaced frames.

        Args:
            frames: the video's frames, in order.
            target_frames: how many to choose (clamped to ``[0, len(frames)]``).

        Returns:
            Exactly ``min(max(target_frames, 0), len(frames))`` sorted unique indices, including 0
            when any.
        """
        frames = list(frames)
        n = len(frames)
        k = max(0, min(int(target_frames), n))
        if k == 0:
            return []
        if self.strategy == "uniform" or k == n:
            return uniform_indices(n, k)
        scores = self.get_temporal_importance_scores(frames)
        if scores is None:
            return uniform_indices(n, k)
        order = sorted(range(1, n), key=lambda i: (-scores[i], i))
        chosen = [0]
        seen_tubelets = {0}
        second: list[int] = []
        for i in order:
            if len(chosen) == k:
                break
            t = self._tubelet_start(i)
            if t in seen_tubelets:
                second.append(i)
                continue
            seen_tubelets.add(t)
            chosen.append(i)
        chosen.extend(second[: k - len(chosen)])
        return sorted(chosen)


def create_vjepa2_optimizer(config: Any, enable_vjepa2: bool = True) -> VJepa2VideoOptimizer | None:
    """Build the optimizer from the pipeline settings, or ``None`` when disabled.

    Reads ``config.vjepa2_model`` (default ``facebook/vjepa2-vitl-fpc16-256-ssv2``) and
    ``config.vjepa2_frames_per_clip`` (default 16) when present. Nothing is loaded until first use.
    """
    if not enable_vjepa2:
        return None
    model = getattr(config, "vjepa2_model", None) or DEFAULT_MODEL
    fpc = getattr(config, "vjepa2_frames_per_clip", None) or 16
    return VJepa2VideoOptimizer(config, model_name=model, frames_per_clip=int(fpc))


def load_encoder(name: str, device, dtype: str = "float32") -> VJepa2VideoOptimizer:
    """Registry loader (role ``encoder``): the adapter of checkpoint ``name``, loaded now.

    Raises:
        ModelLoadError: the checkpoint cannot be loaded (the reason is in the message).
    """
    from types import SimpleNamespace

    enc = VJepa2VideoOptimizer(SimpleNamespace(device=str(device), dtype=dtype), model_name=name)
    if not enc.is_available:
        raise ModelLoadError(f"vjepa2_model: {enc.failure_reason}")
    return enc
