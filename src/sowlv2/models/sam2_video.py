"""Streaming SAM 2 video tracker over transformers' ``Sam2VideoModel``, with bounded memory.

Use::

    tracker = Sam2VideoTracker.from_pretrained("facebook/sam2.1-hiera-tiny", device="cuda")
    tracker.reset()                          # start of a video
    for frame in frames:
        masks = tracker.track(frame)         # {obj_id: TrackedMask} of the objects already known
        if keyframe:
            masks |= tracker.prompt({7: box_xyxy}, frame)   # new or re-prompted objects, same frame
        tracker.remove([3])                  # end a track

How the transformers session is driven (transformers 5.x, streaming mode):

- One ``Sam2VideoInferenceSession`` per video; frames get consecutive session indices 0, 1, 2, ...
  passed explicitly (the session would otherwise number a new frame by how many it holds, which
  eviction changes).
- ``track`` preprocesses the frame once and runs ``model(inference_session=, frame_idx=, frame=)``;
  the image encoder runs once and its features stay in the session's one-frame cache. With no
  object yet, the frame is only stored: the encoder runs lazily on the first prompt of the frame.
- ``prompt`` adds boxes with ``processor.add_inputs_to_inference_session`` on the current frame and
  runs the model again on that frame (streaming mode, same pixels): features come from the cache,
  so the image is not encoded again. A new object gets an initial conditioning output. A
  re-prompted object already tracked on this frame loses its tracked output first, so the box is
  also taken as an initial conditioning prompt (no memory, stored as a conditioning frame) instead
  of a correction of the tracked mask that memory would forget after ``num_maskmem`` frames. Objects
  not prompted are parked for the call as conditioning outputs of the frame, which makes the model
  reuse their masks and memories instead of running memory attention for them again (and instead of
  re-encoding their memory from binarised masks, which the model does to every object of a batch as
  soon as one of them has a prompt).

What ``Sam2VideoModel.forward`` reads for object ``o`` on frame ``t`` (checked in the source):
every conditioning output of ``o`` (memory features; object pointers of those at or before ``t``);
the non-conditioning outputs of frames ``t-1 .. t-(num_maskmem-1)`` (memory features) and
``t-1 .. t-(max_object_pointers_in_encoder-1)`` (object pointers); ``pred_masks`` of a conditioning
output on ``t`` itself; the stored pixels of ``t`` only when its features are not cached; the
inputs and the tracked-frame marks of ``t`` only. The session never frees anything, so after
every call, with ``t`` the current frame, ``M = num_maskmem`` and ``P = max_object_pointers_in_encoder``:

1. non-conditioning outputs of frames before ``t-(P-1)`` are dropped; those before ``t-(M-1)`` keep
   only their object pointer (a vector per object);
2. conditioning outputs per object are capped at ``max_cond_frames``: the first prompt and the most
   recent ones are kept;
3. ``high_res_masks`` (image_size x image_size per object, never read back) are dropped from every
   stored output, and ``pred_masks`` from every frame before ``t``;
4. stored pixel frames, tracked-frame marks and prompt inputs of frames before ``t`` are dropped
   (the session's vision-feature cache holds one frame by itself).

So the session holds at most 1 frame, 1 set of image features, and per object ``M`` full + ``P-M``
pointer-only non-conditioning outputs and ``max_cond_frames`` conditioning outputs, whatever the
video length. The windows are kept relative to ``t`` (one frame more than frame ``t+1`` needs) so
that a re-run of frame ``t`` would still find what it reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from sowlv2.errors import ModelLoadError
from sowlv2.types import Frame, TrackedMask

logger = logging.getLogger(__name__)

_KEEP_OLD_KEYS = ("object_pointer", "object_score_logits")  # what an output outside the memory window keeps


class Sam2VideoTracker:
    """Tracks box-prompted objects through a streamed video with SAM 2 (see the module docstring).

    Args:
        model: a ``transformers.Sam2VideoModel`` in eval mode on ``device``.
        processor: the matching ``transformers.Sam2VideoProcessor``.
        device: torch device string the model runs on ("cpu", "cuda", "cuda:1", "mps").
        dtype: dtype of the model and the session (float32, bfloat16 or float16).
        max_cond_frames: conditioning (prompted) frames kept per object: the first and the most
            recent ``max_cond_frames - 1``. At least 2.
    """

    def __init__(self, model, processor, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 max_cond_frames: int = 3):
        if max_cond_frames < 2:
            raise ValueError(f"max_cond_frames must be >= 2 (first prompt + latest), got {max_cond_frames}")
        self.model = model
        self.processor = processor
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_cond_frames = max_cond_frames
        self.num_maskmem = int(model.config.num_maskmem)
        self.max_pointers = int(model.config.max_object_pointers_in_encoder)
        self.reset()

    # The transformers classes and the family name of this tracker; subclasses for other SAM 2-style
    # video models (EdgeTAM, SAM 3's tracker) change only these (``sowlv2.models.sam_family``).
    model_class = "Sam2VideoModel"
    processor_class = "Sam2VideoProcessor"
    family = "SAM 2"
    example = "facebook/sam2.1-hiera-tiny"

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "cpu",
                        dtype: torch.dtype = torch.float32, max_cond_frames: int = 3) -> Sam2VideoTracker:
        """Load ``cls.model_class`` + ``cls.processor_class`` (``Sam2VideoModel`` + ``Sam2VideoProcessor``
        here) from a hub id or a local folder.

        Raises:
            ModelLoadError: the folder / hub id cannot be loaded, or its configuration is one that
                transformers' video tracker cannot run.
        """
        import transformers

        from ..demo_models import resolve

        name = resolve(str(name_or_path), "sam")  # "demo" -> the shipped demo checkpoint
        model_cls, processor_cls = getattr(transformers, cls.model_class), getattr(transformers, cls.processor_class)
        try:
            model = model_cls.from_pretrained(name, dtype=dtype, use_safetensors=True, trust_remote_code=False)
            processor = processor_cls.from_pretrained(name)
        except (OSError, ValueError) as err:
            where = "the folder exists but" if Path(name).is_dir() else "there is no such local folder and"
            raise ModelLoadError(
                f"cannot load the {cls.family} video model {name!r}: {where} it could not be loaded as a "
                f"{cls.model_class} + {cls.processor_class} ({type(err).__name__}: {err}). Pass a folder holding "
                "config.json, the weights and the processor files, or a hub id such as "
                f"'{cls.example}' (downloads need network access)."
            ) from err
        hidden, mem = model.config.vision_config.fpn_hidden_size, model.config.memory_encoder_output_channels
        if hidden <= mem or hidden % mem:
            # _process_object_pointers only reshapes pointers when mem < hidden: tracking would crash.
            raise ModelLoadError(
                f"{cls.family} model {name!r} has fpn_hidden_size={hidden} and "
                f"memory_encoder_output_channels={mem}; transformers' {cls.model_class} can only track when "
                "fpn_hidden_size is a larger multiple of the memory channels (the released checkpoints use "
                "256 and 64). Use another checkpoint."
            )
        model.to(torch.device(device)).eval().requires_grad_(False)
        logger.info("loaded %s video model %s on %s (%s)", cls.family, name, device, dtype)
        return cls(model, processor, device=device, dtype=dtype, max_cond_frames=max_cond_frames)

    @classmethod
    def load(cls, name: str, device, dtype: str = "float32") -> Sam2VideoTracker:
        """The registry's loader (``sowlv2.models.registry``): a dtype name, the device's dtype rule."""
        from .loading import resolve_dtype

        device = torch.device(device)
        return cls.from_pretrained(name, device=str(device), dtype=resolve_dtype(dtype, device))

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget every object and frame: call at the start of each video."""
        self.session = self.processor.init_video_session(
            video=None, inference_device=self.device, dtype=self.dtype)
        check_session(self.session)
        self._t = -1                      # session index of the current frame
        self._frame_index: int | None = None
        self._size: tuple[int, int] | None = None

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects being tracked, in the order they were added."""
        return list(self.session.obj_ids)

    @torch.inference_mode()
    def track(self, frame: Frame) -> dict[int, TrackedMask]:
        """Propagate all current objects to ``frame`` (the next frame of the video).

        Args:
            frame: the next frame; ``frame.image`` is (H, W, 3) uint8 RGB.

        Returns:
            ``{obj_id: TrackedMask}`` for every current object (empty before the first prompt).
        """
        pixels = self.processor(images=frame.image, return_tensors="pt").pixel_values
        self._t += 1
        self._frame_index, self._size = frame.index, frame.size
        if not self.session.obj_ids:
            self.session.add_new_frame(pixels.to(self.device), frame_idx=self._t)  # encoded on first prompt
            self._evict()
            return {}
        out = self.model(inference_session=self.session, frame_idx=self._t, frame=pixels.to(self.device))
        self._evict()
        return self._to_masks(out, out.object_ids)

    @torch.inference_mode()
    def prompt(self, boxes: dict[int, np.ndarray], frame: Frame) -> dict[int, TrackedMask]:
        """Add new objects or re-prompt existing ones with boxes on the current frame.

        The frame's image features are reused (no second encoding). If ``frame`` is not the frame
        last given to :meth:`track`, it is tracked first.

        Args:
            boxes: ``{obj_id: box}``, box = [x0, y0, x1, y1] float pixels of the original frame.
            frame: the frame the boxes were found on.

        Returns:
            ``{obj_id: TrackedMask}`` for the prompted ids.
        """
        if not boxes:
            return {}
        if frame.index != self._frame_index or self._t < 0:
            self.track(frame)
        s, t = self.session, self._t
        ids = [int(i) for i in boxes]
        box_list = []
        for obj_id in ids:
            box = np.asarray(boxes[obj_id], dtype=np.float32)
            if box.shape != (4,):
                raise ValueError(f"box of object {obj_id} must be [x0, y0, x1, y1], got shape {box.shape}")
            box_list.append(box.tolist())
        for obj_id in ids:  # a re-prompt becomes an initial conditioning prompt (module docstring)
            if obj_id in s._obj_id_to_idx:
                o = s._obj_id_to_idx[obj_id]
                s.output_dict_per_obj[o]["non_cond_frame_outputs"].pop(t, None)
                s.frames_tracked_per_obj[o].pop(t, None)
        # A copy: the session keeps this list as obj_with_new_inputs and empties it during forward.
        self.processor.add_inputs_to_inference_session(
            s, frame_idx=t, obj_ids=list(ids), input_boxes=[box_list], original_size=self._size)
        parked = []
        for o in range(s.get_obj_num()):
            outs = s.output_dict_per_obj[o]
            if s.obj_idx_to_id(o) not in ids and t in outs["non_cond_frame_outputs"]:
                outs["cond_frame_outputs"][t] = outs["non_cond_frame_outputs"].pop(t)
                parked.append(o)
        try:
            out = self.model(inference_session=s, frame_idx=t, frame=s.processed_frames[t])
        finally:
            for o in parked:
                outs = s.output_dict_per_obj[o]
                outs["non_cond_frame_outputs"][t] = outs["cond_frame_outputs"].pop(t)
        self._evict()
        return self._to_masks(out, ids)

    @torch.inference_mode()
    def masks_for_boxes(self, boxes: np.ndarray, frame: Frame) -> np.ndarray:
        """Decode boxes into masks on the current frame without adding objects or touching memory.

        Used on key frames to compare detections with tracked masks. The frame's cached image
        features are reused (encoded here if no object has been tracked yet, then cached for
        :meth:`prompt`), and all boxes go through the mask decoder in one batched call, exactly as
        an initial prompt would (no-memory embedding, single-mask output).

        Args:
            boxes: (n, 4) float [x0, y0, x1, y1] in original pixels.
            frame: the frame last given to :meth:`track`.

        Returns:
            (n, H, W) bool masks at the frame's original resolution.
        """
        return self.decode_boxes(boxes, frame)[0]

    @torch.inference_mode()
    def decode_boxes(self, boxes: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`masks_for_boxes` with the decoder's predicted mask quality.

        Returns:
            (masks (n, H, W) bool, iou_scores (n,) float32).
        """
        if frame.index != self._frame_index or self._t < 0:
            self.track(frame)
        h, w = self._size
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros((0,), np.float32)
        model, n = self.model, len(boxes)
        # The video model decodes one object per batch row: expand the features (a view, no copy).
        feats, _ = model._prepare_vision_features(self.session, self._t, batch_size=1)
        feats = [f.expand(-1, n, -1) for f in feats]  # (HW, 1, C) -> (HW, n, C)
        sizes = model.backbone_feature_sizes
        high_res = [x.permute(1, 2, 0).reshape(x.size(1), x.size(2), *sz) for x, sz in zip(feats[:-1], sizes[:-1])]
        pix = (feats[-1] + model.no_memory_embedding).permute(1, 2, 0).reshape(n, -1, *sizes[-1])
        scale = torch.tensor([model.image_size / w, model.image_size / h] * 2, dtype=torch.float32)
        input_boxes = (torch.from_numpy(boxes) * scale)[:, None].to(self.device, pix.dtype)  # (n, 1, 4)
        out = model._single_frame_forward(image_embeddings=high_res + [pix], input_boxes=input_boxes,
                                          multimask_output=False)
        logits = out.pred_masks.float().reshape(n, 1, *out.pred_masks.shape[-2:])
        masks = self.processor.post_process_masks([logits], [[h, w]], binarize=True)[0]
        return masks[:, 0].cpu().numpy(), out.iou_scores.float().reshape(n, -1)[:, 0].cpu().numpy()

    segment_boxes = masks_for_boxes  # the name before the stage protocols (sowlv2.stages.VideoTracker)

    def remove(self, obj_ids) -> None:
        """Stop tracking ``obj_ids`` and free their state (unknown ids are ignored)."""
        s = self.session
        gone = {int(i) for i in obj_ids}
        keep = [(obj_id, o) for obj_id, o in s._obj_id_to_idx.items() if obj_id not in gone]
        if len(keep) == len(s._obj_id_to_idx):
            return
        # The session numbers objects 0..n-1 and loops over range(n): renumber the survivors.
        for name in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj",
                     "frames_tracked_per_obj"):
            old = getattr(s, name)
            setattr(s, name, {new: old[o] for new, (_, o) in enumerate(keep)})
        s._obj_id_to_idx.clear()
        s._obj_idx_to_id.clear()
        for new, (obj_id, _) in enumerate(keep):
            s._obj_id_to_idx[obj_id] = new
            s._obj_idx_to_id[new] = obj_id
        s.obj_ids = [obj_id for obj_id, _ in keep]
        s.obj_with_new_inputs = [i for i in s.obj_with_new_inputs if i not in gone]

    def state_size(self) -> dict[str, int]:
        """Counts of what the session holds, to check that memory does not grow with video length.

        Returns:
            frames (stored pixel frames), vision_features (cached frame features), objects,
            cond_outputs / non_cond_outputs (per-object per-frame outputs), memory_outputs (those
            holding memory features), tracked_marks, prompt_inputs, and tensor_bytes (bytes of the
            distinct tensor storages the session references).
        """
        s = self.session
        outs = [d for o in s.output_dict_per_obj.values() for d in o.values()]
        return {
            "frames": len(s.processed_frames or {}),
            "vision_features": len(s.cache._vision_features),
            "objects": s.get_obj_num(),
            "cond_outputs": sum(len(o["cond_frame_outputs"]) for o in s.output_dict_per_obj.values()),
            "non_cond_outputs": sum(len(o["non_cond_frame_outputs"]) for o in s.output_dict_per_obj.values()),
            "memory_outputs": sum("maskmem_features" in v for d in outs for v in d.values()),
            "tracked_marks": sum(len(v) for v in s.frames_tracked_per_obj.values()),
            "prompt_inputs": sum(len(v) for v in s.point_inputs_per_obj.values())
            + sum(len(v) for v in s.mask_inputs_per_obj.values()),
            "tensor_bytes": _storage_bytes([s.processed_frames, s.cache._vision_features,
                                            s.output_dict_per_obj, s.point_inputs_per_obj,
                                            s.mask_inputs_per_obj]),
        }

    # ------------------------------------------------------------------ internals

    def _to_masks(self, out, ids: list[int]) -> dict[int, TrackedMask]:
        """Model output -> ``{obj_id: TrackedMask}`` for ``ids``, masks resized to the frame size."""
        rows = [out.object_ids.index(i) for i in ids]
        logits = out.pred_masks[rows].float()                       # (n, 1, h, w) low-res logits
        masks = self.processor.post_process_masks([logits], [list(self._size)], binarize=True)[0]
        masks = masks[:, 0].cpu().numpy()                           # (n, H, W) bool
        scores = torch.sigmoid(out.object_score_logits.reshape(-1)[rows].float()).cpu().tolist()
        return {i: TrackedMask(mask=m, score=float(p)) for i, m, p in zip(ids, masks, scores, strict=True)}

    def _evict(self) -> None:
        """Drop what lies outside SAM 2's memory window (rules in the module docstring)."""
        s, t = self.session, self._t
        full_from, ptr_from = t - (self.num_maskmem - 1), t - (self.max_pointers - 1)
        for outs in s.output_dict_per_obj.values():
            non_cond, cond = outs["non_cond_frame_outputs"], outs["cond_frame_outputs"]
            for f in [f for f in non_cond if f < min(full_from, ptr_from)]:
                del non_cond[f]
            for f in [f for f in non_cond if f < full_from]:
                non_cond[f] = {k: v for k, v in non_cond[f].items() if k in _KEEP_OLD_KEYS}
            order = sorted(cond)
            for f in order[1:len(order) - (self.max_cond_frames - 1)]:
                del cond[f]
            for f, d in list(non_cond.items()) + list(cond.items()):
                d.pop("high_res_masks", None)
                if f < t:
                    d.pop("pred_masks", None)
        for per_obj in (s.frames_tracked_per_obj, s.point_inputs_per_obj, s.mask_inputs_per_obj):
            for frames in per_obj.values():
                for f in [f for f in frames if f < t]:
                    del frames[f]
        for f in [f for f in (s.processed_frames or {}) if f < t]:
            del s.processed_frames[f]


# The inference session's fields that the bounded session reads and prunes (private to transformers
# 5.x; pyproject pins transformers < 6 and this check names the version when they are gone).
SESSION_FIELDS = ("obj_ids", "output_dict_per_obj", "frames_tracked_per_obj", "point_inputs_per_obj",
                  "mask_inputs_per_obj", "processed_frames", "cache")


def check_session(session) -> None:
    """Raise ModelLoadError if the session lacks a field the bounded session relies on."""
    missing = [f for f in SESSION_FIELDS if not hasattr(session, f)]
    if not missing and not hasattr(session.cache, "_vision_features"):
        missing = ["cache._vision_features"]
    if missing:
        import transformers

        raise ModelLoadError(
            f"transformers {transformers.__version__} changed the video session that SOWLv2's bounded "
            f"tracker prunes (missing: {', '.join(missing)}); install the supported version: "
            "pip install 'transformers>=5,<6'")


def _storage_bytes(obj, seen: set | None = None) -> int:
    """Bytes of the distinct tensor storages found in nested dicts / lists / tuples."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_storage_bytes(v, seen) for v in obj)
    return 0
