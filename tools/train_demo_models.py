"""Train the small demo checkpoints of SOWLv2's production model classes on the synthetic world.

The checkpoints let the whole pipeline be measured offline (no hub download): an
``Owlv2ForObjectDetection`` that finds the world's shapes from text, a ``Sam2VideoModel`` (which
``Sam2Model`` also loads) that turns boxes into masks and tracks them, and a ``VJEPA2Model``.
They are trained from scratch, on the CPU, from videos drawn by ``sowlv2.eval.world`` (320x240).

Seed ranges of the world videos (``iter_world_video(seed, ...)``, integer seeds):

- training: 1000 and above: OWLv2 frames from 1000, SAM 2 frames from 200000, SAM 2 short clips
  from 300000 and long clips from 400000;
- validation (looked at while developing): 500-599;
- held-out test: 0-99, never seen in training (``tools/eval_demo_models.py`` and ``sowlv2 demo``;
  ``generate_world(seed=s)`` draws ``(s, i)`` tuples, also disjoint from the training seeds).

What is trained (details in each function's docstring):

1. OWLv2 (``train_owl``): DETR-style set loss per image (Hungarian matching, sigmoid focal loss on
   the class logits of 19 queries: 12 names, 4 colours, 3 shapes; L1 + GIoU on boxes; BCE on
   objectness), frames preprocessed by the checkpoint's own ``Owlv2ImageProcessor``.
2. SAM 2 (``train_sam``): phase A, box -> mask on single frames (every module); phase B, the memory
   path on clips (vision encoder frozen) through the production per-frame methods of
   ``Sam2VideoModel``, checked against ``Sam2VideoModel.forward`` before training. Every memory
   clip holds two prompted objects of one colour (``--sam-distractor``): the memory must follow
   each object, not its colour.
3. V-JEPA 2 (``make_vjepa2``): random weights, seeded (see its docstring for why).

Usage (everything is seeded; the defaults reproduce the shipped checkpoints)::

    python tools/train_demo_models.py --threads 2          # writes src/sowlv2/demo_models/
    python tools/train_demo_models.py --only owl --owl-steps 200 --out /tmp/demo   # a short try

Use ``--threads 1`` on a machine whose cores are busy with other work: two threads that wait for a
shared core run several times slower than one. Recipe and API details: shared/notes/models.md,
"Training small models on a synthetic shapes world".
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou, generalized_box_iou_loss, sigmoid_focal_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sowlv2.eval.world import COLOURS, KINDS, SHAPES, iter_world_video  # noqa: E402

log = logging.getLogger("train_demo_models")

WORLD_SIZE = (320, 240)  # (width, height) of every training video, as in the demo
OWL_SEED0, SAM_IMAGE_SEED0, SAM_CLIP_SEED0 = 1000, 200_000, 300_000
VAL_SEEDS = range(500, 600)
HELD_OUT_SEEDS = range(0, 100)

NAMES = [f"{c} {s}" for c, s in KINDS]  # 12 full names, index = kind index
QUERIES = NAMES + list(COLOURS) + list(SHAPES)  # 19 text queries used in training
# query indices that are positive for an object of each kind: its name, its colour, its shape
POSITIVES = [(k, len(NAMES) + list(COLOURS).index(c), len(NAMES) + len(COLOURS) + SHAPES.index(s))
             for k, (c, s) in enumerate(KINDS)]


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_seed(seed: int) -> int:
    if seed in HELD_OUT_SEEDS or seed in VAL_SEEDS:
        raise ValueError(f"seed {seed} is held out")
    return seed


def world_frames(seed0: int, videos: int, frames: int, every: int, min_area: int,
                 **world_kwargs) -> Iterator[tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]]:
    """Frames of training videos ``seed0 .. seed0 + videos - 1``, every ``every``-th frame (offset by seed).

    Yields:
        rgb (H, W, 3) uint8 and a list of (kind index, box [x0, y0, x1, y1] float32 pixels, mask (H, W) bool)
        of the objects with at least ``min_area`` visible pixels.
    """
    for i in range(videos):
        seed = _check_seed(seed0 + i)
        video = iter_world_video(seed, frames, WORLD_SIZE, **world_kwargs)
        kind_of = {oid: NAMES.index(label) for oid, label in video.categories.items()}
        for t, (rgb, id_map) in enumerate(video):
            if (t + seed) % every:
                continue
            objs = []
            for oid, kind in kind_of.items():
                mask = id_map == oid
                if mask.sum() >= min_area:
                    ys, xs = np.nonzero(mask)
                    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
                    objs.append((kind, box, mask))
            yield rgb, objs


# ---------------------------------------------------------------------------------------------------
# OWLv2


def owl_config_kwargs(args) -> dict:
    return dict(image_size=args.owl_image_size, patch=args.owl_patch, vision_hidden=args.owl_vision_hidden,
                vision_layers=args.owl_vision_layers, text_hidden=args.owl_text_hidden,
                text_layers=args.owl_text_layers, max_len=args.owl_max_len)


def build_owl(image_size: int, patch: int, vision_hidden: int, vision_layers: int, text_hidden: int,
              text_layers: int, max_len: int):
    """A fresh ``Owlv2ForObjectDetection`` + ``Owlv2Processor`` (byte-level CLIP tokenizer).

    The text hidden size equals ``projection_dim``: the class head compares image features mapped
    to the text hidden size with the projected query embeddings.
    """
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    from sowlv2.models.random_init import byte_tokenizer

    tok = byte_tokenizer(max_length=max_len)
    text = dict(vocab_size=len(tok), hidden_size=text_hidden, intermediate_size=2 * text_hidden,
                num_hidden_layers=text_layers, num_attention_heads=max(1, text_hidden // 32),
                max_position_embeddings=max_len, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden, num_hidden_layers=vision_layers,
                  num_attention_heads=max(1, vision_hidden // 32), image_size=image_size, patch_size=patch)
    config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=text_hidden)
    model = Owlv2ForObjectDetection(config)
    with torch.no_grad():  # random heads give logits near +-100 and collapsed boxes: start them neutral
        model.class_head.logit_shift.weight.zero_()
        model.class_head.logit_shift.bias.fill_(-0.3)
        model.class_head.logit_scale.weight.zero_()
        model.class_head.logit_scale.bias.fill_(9.0)
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
        model.objectness_head.dense2.weight.zero_()
        model.objectness_head.dense2.bias.fill_(-3.0)
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": image_size, "width": image_size}),
                               tokenizer=tok)
    return model, processor


def owl_dataset(processor, videos: int, frames: int, every: int, seed0: int = OWL_SEED0):
    """Preprocess training frames with the Owlv2 image processor (as at inference).

    Returns:
        pixels (N, 3, S, S) float16 and targets: per image a (n, 5) float32 array of
        [kind, cx, cy, w, h] with boxes normalised to the padded square (side max(H, W)).
    """
    side = float(max(WORLD_SIZE))
    rgbs, targets, chunks = [], [], []

    def flush():
        if rgbs:
            px = processor.image_processor(images=rgbs, return_tensors="pt")["pixel_values"]
            chunks.append(px.to(torch.float16))
            rgbs.clear()

    for rgb, objs in world_frames(seed0, videos, frames, every, min_area=40, min_objects=1, max_objects=6):
        rgbs.append(rgb)
        rows = []
        for kind, (x0, y0, x1, y1), _ in objs:
            rows.append([kind, (x0 + x1) / 2 / side, (y0 + y1) / 2 / side, (x1 - x0) / side, (y1 - y0) / side])
        targets.append(np.array(rows, np.float32).reshape(-1, 5))
        if len(rgbs) == 64:
            flush()
    flush()
    return torch.cat(chunks), targets


def owl_text_inputs(processor, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    tok = processor.tokenizer
    text = tok(queries, padding="max_length", truncation=True, max_length=tok.model_max_length,
               return_tensors="pt")
    return text["input_ids"], text["attention_mask"]


def owl_forward(model, pixel_values, input_ids, attention_mask):
    """Training forward of the production modules: logits (B, P, Q), boxes (B, P, 4) cxcywh, objectness (B, P)."""
    feature_map, _ = model.image_embedder(pixel_values=pixel_values)
    b, h, w, d = feature_map.shape
    image_feats = feature_map.reshape(b, h * w, d)
    query = model.owlv2.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    query = query[None].expand(b, -1, -1)
    query_mask = (input_ids[:, 0] > 0)[None].expand(b, -1)
    logits, _ = model.class_predictor(image_feats, query, query_mask)
    boxes = model.box_predictor(image_feats, feature_map)
    objectness = model.objectness_predictor(image_feats)
    return logits, boxes, objectness


def owl_loss(logits, boxes, objectness, targets, weights=(2.0, 5.0, 2.0, 1.0)):
    """DETR-style loss: Hungarian matching per image, then focal + L1 + GIoU + objectness BCE.

    Matching cost (per prediction patch, per ground-truth object): w_cls * focal class cost averaged
    over the object's three positive queries (name, colour, shape) + w_l1 * L1 of the cxcywh boxes +
    w_giou * (-GIoU). Losses: sigmoid focal loss on every (patch, query) logit, positive for the
    matched patches' positive queries; L1 + GIoU on matched boxes; BCE on objectness (matched
    patches positive). Class, box and GIoU terms are normalised by the number of objects.

    Args:
        logits: (B, P, Q) class logits; boxes: (B, P, 4) normalised cxcywh; objectness: (B, P).
        targets: per image a (n, 5) tensor [kind, cx, cy, w, h].
    """
    w_cls, w_l1, w_giou, w_obj = weights
    alpha, gamma = 0.25, 2.0
    cls_target = torch.zeros_like(logits)
    obj_target = torch.zeros_like(objectness)
    pred_idx, gt_boxes = [], []
    with torch.no_grad():
        prob = logits.sigmoid()
        for b, tgt in enumerate(targets):
            if len(tgt) == 0:
                continue
            kinds = tgt[:, 0].long()
            pos = torch.tensor([POSITIVES[k] for k in kinds.tolist()], device=logits.device)  # (n, 3)
            p = prob[b][:, pos]  # (P, n, 3)
            pos_cost = alpha * (1 - p) ** gamma * -(p + 1e-8).log()
            neg_cost = (1 - alpha) * p ** gamma * -(1 - p + 1e-8).log()
            cost_cls = (pos_cost - neg_cost).mean(-1)
            cost_l1 = torch.cdist(boxes[b], tgt[:, 1:], p=1)
            cost_giou = -generalized_box_iou(box_convert(boxes[b], "cxcywh", "xyxy"),
                                             box_convert(tgt[:, 1:], "cxcywh", "xyxy"))
            cost = w_cls * cost_cls + w_l1 * cost_l1 + w_giou * cost_giou
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            rows, cols = torch.as_tensor(rows, device=logits.device), torch.as_tensor(cols, device=logits.device)
            for r, c in zip(rows.tolist(), cols.tolist()):
                cls_target[b, r, list(POSITIVES[int(kinds[c])])] = 1.0
                obj_target[b, r] = 1.0
            pred_idx.append(torch.stack([torch.full_like(rows, b), rows], 1))
            gt_boxes.append(tgt[cols, 1:])
    n = max(1, sum(len(t) for t in targets))
    loss_cls = sigmoid_focal_loss(logits, cls_target, alpha=alpha, gamma=gamma, reduction="sum") / n
    loss_obj = F.binary_cross_entropy_with_logits(objectness, obj_target)
    if pred_idx:
        idx = torch.cat(pred_idx)
        pb, gb = boxes[idx[:, 0], idx[:, 1]], torch.cat(gt_boxes)
        loss_l1 = (pb - gb).abs().sum() / n
        loss_giou = generalized_box_iou_loss(box_convert(pb, "cxcywh", "xyxy"), box_convert(gb, "cxcywh", "xyxy"),
                                             reduction="sum") / n
    else:
        loss_l1 = loss_giou = logits.sum() * 0
    total = w_cls * loss_cls + w_l1 * loss_l1 + w_giou * loss_giou + w_obj * loss_obj
    return total, {"cls": loss_cls.item(), "l1": loss_l1.item(), "giou": loss_giou.item(), "obj": loss_obj.item()}


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def train_owl(args, out: Path) -> dict:
    set_seed(args.seed)
    dev = torch.device(args.device)
    model, processor = build_owl(**owl_config_kwargs(args))
    model.to(dev)
    t0 = time.time()
    pixels, targets = owl_dataset(processor, args.owl_videos, 40, args.owl_every)
    log.info("OWLv2 data: %d frames, %.0f s", len(pixels), time.time() - t0)
    input_ids, attention_mask = (x.to(dev) for x in owl_text_inputs(processor, QUERIES))
    params = sum(p.numel() for p in model.parameters())
    log.info("OWLv2: %d parameters", params)
    opt = torch.optim.AdamW(model.parameters(), lr=args.owl_lr, weight_decay=0.05)
    model.train()
    gen = torch.Generator().manual_seed(args.seed)
    t1 = time.time()
    running = None
    for step in range(args.owl_steps):
        if args.time_limit and time.time() - t1 > args.time_limit:
            log.info("owl: time limit reached at step %d", step)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.owl_steps, args.owl_lr, warmup=200)
        idx = torch.randint(len(pixels), (args.owl_batch,), generator=gen)
        flip = torch.rand(args.owl_batch, generator=gen) < 0.5
        px = pixels[idx].to(dev).float()
        flip_d = flip.to(dev)
        px[flip_d] = px[flip_d].flip(-1)  # the padding is at the bottom only: a horizontal flip is exact
        tgts = []
        for j, i in enumerate(idx.tolist()):
            t = torch.from_numpy(targets[i]).clone()
            if flip[j] and len(t):
                t[:, 1] = 1.0 - t[:, 1]
            tgts.append(t.to(dev))
        logits, boxes, objectness = owl_forward(model, px, input_ids, attention_mask)
        loss, parts = owl_loss(logits, boxes, objectness, tgts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        done = step + 1
        if step % 100 == 0 or step == args.owl_steps - 1:
            log.info("owl step %d/%d loss %.3f (%s) %.2f s/step", step, args.owl_steps, running,
                     " ".join(f"{k} {v:.3f}" for k, v in parts.items()), (time.time() - t1) / (step + 1))
    train_s = time.time() - t1
    model.eval().to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"parameters": params, "steps": done, "batch": args.owl_batch, "frames": len(pixels),
            "data_s": round(t1 - t0, 1), "train_s": round(train_s, 1), "final_loss": round(running, 4),
            "config": owl_config_kwargs(args)}


# ---------------------------------------------------------------------------------------------------
# SAM 2


def sam_config_kwargs(args) -> dict:
    return dict(image_size=args.sam_image_size, hiera_hidden=args.sam_hiera_hidden, hidden=args.sam_hidden)


def build_sam(image_size: int, hiera_hidden: int = 16, hidden: int = 128):
    """A fresh ``Sam2VideoModel`` + ``Sam2VideoProcessor``.

    Small Hiera (4 stages, 5 blocks, embed dims hiera_hidden x [1, 2, 4, 8]); FPN / decoder / memory
    attention width ``hidden`` (a multiple of the memory channels, 64, and above it, or tracking
    crashes). Only the single-mask output is trained, so the config never switches to the
    multimask tokens: ``multimask_output_for_tracking=False`` and no dynamic multimask.
    """
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    s = image_size
    h = hiera_hidden
    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=h, image_size=[s, s],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[h, 2 * h, 4 * h, 8 * h],
                    num_attention_heads_per_stage=[1, 1, 2, 4], window_size_per_stage=[4, 4, 4, 4],
                    global_attention_blocks=[3], window_positional_embedding_background_size=[4, 4])
    vision = dict(backbone_config=backbone, backbone_channel_list=[8 * h, 4 * h, 2 * h, h],
                  backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                  fpn_hidden_size=hidden)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=hidden, image_size=s, patch_size=16),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=2 * hidden, num_attention_heads=4,
                                 iou_head_hidden_dim=hidden, dynamic_multimask_via_stability=False),
        image_size=s, multimask_output_for_tracking=False,
        memory_attention_hidden_size=hidden, memory_attention_num_layers=2, memory_attention_num_attention_heads=1,
        memory_attention_feed_forward_hidden_size=2 * hidden, memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=hidden, memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden, memory_fuser_embed_dim=hidden, memory_fuser_intermediate_dim=2 * hidden,
    )
    model = Sam2VideoModel(config).eval()
    with torch.no_grad():
        # The image's and the prompts' random Fourier position encodings are two separate buffers,
        # drawn independently at init (the released checkpoints hold one matrix in both): boxes would
        # be encoded in a different coordinate code than the image and the decoder ignores them.
        model.prompt_encoder.shared_embedding.positional_embedding.copy_(
            model.shared_image_embedding.positional_embedding)
        # start with "object present" so that masks are not gated off (no gradient)
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(3.0)
    size = {"height": s, "width": s}
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size, mask_size={"height": s // 4, "width": s // 4}),
        video_processor=Sam2VideoVideoProcessor(size=size),
    )
    return model, processor


def resize_masks(masks: np.ndarray, s: int) -> torch.Tensor:
    """(n, H, W) bool -> (n, s, s) float32 soft masks (area average), like the processor's image resize."""
    m = torch.from_numpy(masks.astype(np.float32))[:, None]
    return F.interpolate(m, size=(s, s), mode="area")[:, 0]


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Move each side of (n, 4) xyxy boxes by N(0, scale x box side), as a detector's boxes would be."""
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    noise = rng.normal(0, scale, size=boxes.shape) * np.concatenate([w, h, w, h], 1)
    out = boxes + noise
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 2)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 2)
    return out.astype(np.float32)


def box_to_model(boxes: np.ndarray, s: int) -> np.ndarray:
    """xyxy pixels of the WORLD_SIZE frame -> the s x s model frame (what the processor does)."""
    w, h = WORLD_SIZE
    return boxes * np.array([s / w, s / h, s / w, s / h], np.float32)


def mask_losses(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mask BCE and dice of (n, s, s) logits against (n, s, s) soft targets, each (n,)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce, dice


class SamPool:
    """Training frames for box -> mask, preprocessed once by the SAM 2 processor (as at inference).

    Frames come from videos ``seed0 ..`` (every ``every``-th frame), so that a batch mixes many
    videos. Per frame: the objects with at least 60 visible pixels, their tight boxes (WORLD_SIZE
    pixels) and their masks resized to the model's s x s frame (area average, stored as uint8).
    """

    def __init__(self, proc, videos: int, every: int, s: int, seed0: int = SAM_IMAGE_SEED0) -> None:
        rgbs, chunks = [], []
        self.boxes: list[np.ndarray] = []
        self.masks: list[torch.Tensor] = []
        for rgb, objs in world_frames(seed0, videos, 40, every, min_area=60, max_objects=6):
            if not objs:
                continue
            rgbs.append(rgb)
            self.boxes.append(np.stack([o[1] for o in objs]))
            self.masks.append((resize_masks(np.stack([o[2] for o in objs]), s) * 255).round().to(torch.uint8))
            if len(rgbs) == 64:
                chunks.append(proc(images=rgbs, return_tensors="pt").pixel_values.to(torch.float16))
                rgbs.clear()
        if rgbs:
            chunks.append(proc(images=rgbs, return_tensors="pt").pixel_values.to(torch.float16))
        self.pixels = torch.cat(chunks)
        self.s = s

    def __len__(self) -> int:
        return len(self.pixels)

    def batch(self, rng: np.random.Generator, n_images: int, boxes_per_image: int):
        """pixels (B, 3, s, s), jittered boxes (B, n, 4) in model pixels, soft target masks (B, n, s, s).

        The n boxes of an image are distinct objects while the image has enough of them.
        """
        idx = rng.integers(len(self), size=n_images)
        boxes, masks = [], []
        for i in idx:
            k = len(self.boxes[i])
            pick = np.concatenate([rng.permutation(k) for _ in range(-(-boxes_per_image // k))])[:boxes_per_image]
            boxes.append(box_to_model(jitter_boxes(self.boxes[i][pick], rng, 0.08), self.s))
            masks.append(self.masks[i][pick].float() / 255)
        return self.pixels[idx].float(), torch.from_numpy(np.stack(boxes)), torch.stack(masks)


def sam_image_forward(model, pixels: torch.Tensor, boxes: torch.Tensor):
    """Box -> mask forward with gradients: (B, 3, s, s) pixels, (B, n, 4) boxes in model pixels.

    What ``get_image_embeddings`` does (it runs under ``no_grad``), then ``_single_frame_forward`` with
    one box per batch row: the video model's decoder gates masks per row, so the image features are
    repeated for each box instead of decoding n boxes in one row. Returns outputs for B * n rows.
    """
    b, n = boxes.shape[:2]
    feats = model.get_image_features(pixels, return_dict=True).fpn_hidden_states
    feats = list(feats)
    feats[-1] = feats[-1] + model.no_memory_embedding
    embeddings = [f.permute(1, 2, 0).reshape(b, -1, *size).repeat_interleave(n, 0)
                  for f, size in zip(feats, model.backbone_feature_sizes)]
    return model._single_frame_forward(image_embeddings=embeddings, input_boxes=boxes.reshape(b * n, 1, 4),
                                       multimask_output=False)


def train_sam_image(model, proc, args, s: int) -> dict:
    """Phase A: box -> mask on single frames (every module that the image path uses)."""
    model.eval()  # eval mode throughout: the video forward needs it, and the image path has no dropout
    model.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.sam_lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    pool = SamPool(proc, args.sam_videos, 5, s)
    log.info("SAM 2 image data: %d frames, %.0f s", len(pool), time.time() - t0)
    t0 = time.time()
    running = None
    for step in range(args.sam_image_steps):
        if args.time_limit and time.time() - t0 > args.time_limit:
            log.info("sam image: time limit reached at step %d", step)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.sam_image_steps, args.sam_lr, warmup=100)
        pixels, boxes, target = pool.batch(rng, args.sam_batch, 4)
        pixels, boxes, target = pixels.to(args.device), boxes.to(args.device), target.to(args.device)
        out = sam_image_forward(model, pixels, boxes)
        logits = out.high_res_masks[:, 0]  # (B * 4, s, s), bilinear from the low-res masks
        tgt = target.flatten(0, 1)
        bce, dice = mask_losses(logits, tgt)
        with torch.no_grad():
            pred = logits > 0
            hard = tgt > 0.5
            iou = (pred & hard).flatten(1).sum(1) / (pred | hard).flatten(1).sum(1).clamp(min=1)
        iou_loss = F.mse_loss(out.iou_scores.flatten(), iou)
        obj_loss = F.binary_cross_entropy_with_logits(out.object_score_logits.flatten(),
                                                      torch.ones_like(out.object_score_logits.flatten()))
        loss = 5 * bce.mean() + dice.mean() + iou_loss + obj_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        done = step + 1
        if step % 100 == 0 or step == args.sam_image_steps - 1:
            log.info("sam image step %d/%d loss %.3f iou %.3f %.2f s/step", step, args.sam_image_steps, running,
                     iou.mean().item(), (time.time() - t0) / (step + 1))
    return {"steps": done, "batch": f"{args.sam_batch} images x 4 boxes",
            "train_s": round(time.time() - t0, 1), "final_loss": round(running, 4)}


def same_colour_pairs(categories: dict[int, str]) -> list[tuple[int, int]]:
    """Pairs of object ids whose labels share their colour (``"red circle"``, ``"red square"``)."""
    ids = sorted(categories)
    return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]
            if categories[a].split()[0] == categories[b].split()[0]]


def sam_clips(proc, rng: np.random.Generator, seed0: int, length: int, max_objects: int, s: int,
              frames: int = 48, distractor: float = 0.0):
    """Training clips, endlessly: consecutive ``length``-frame pieces of world videos ``seed0, seed0 + 1, ...``
    (``frames`` frames each), separated by random gaps of 0-7 frames; a clip whose first frame has no
    object of at least 100 visible pixels is skipped.

    With probability ``distractor`` a clip must hold a same-colour pair: two objects of one colour
    (``"red circle"`` and ``"red square"``), both with at least 100 visible pixels on the clip's first
    frame and both prompted, so that the memory has to keep each mask on its own object rather than
    on the colour (videos without such a pair are skipped while looking for one).

    Yields:
        pixels (length, 3, s, s), the prompted object ids (at most ``max_objects``), their jittered boxes
        on the clip's first frame in WORLD_SIZE pixels (n, 4), target masks (length, n, s, s) and
        visibility (length, n) bool.
    """
    seed = seed0
    want_pair = rng.random() < distractor
    while True:
        video = iter_world_video(_check_seed(seed), frames, WORLD_SIZE)
        seed += 1
        pairs = same_colour_pairs(video.categories)
        if want_pair and not pairs:
            continue
        gap = int(rng.integers(0, 8))
        rgbs, maps = [], []
        for rgb, id_map in video:
            if gap:
                gap -= 1
                continue
            rgbs.append(rgb)
            maps.append(id_map)
            if len(rgbs) < length:
                continue
            ids = [i for i in video.categories if (maps[0] == i).sum() >= 100]
            first = []
            if want_pair:
                seen = [p for p in pairs if p[0] in ids and p[1] in ids]
                first = list(seen[int(rng.integers(len(seen)))]) if seen else []
            if ids and (first or not want_pair):
                rest = [i for i in ids if i not in first]
                ids = [int(i) for i in first + list(rng.permutation(rest))][:max_objects]
                boxes = []
                for i in ids:
                    ys, xs = np.nonzero(maps[0] == i)
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                boxes = jitter_boxes(np.array(boxes, np.float32), rng, 0.05)
                masks = np.stack([np.stack([m == i for i in ids]) for m in maps])  # (T, n, H, W)
                target = resize_masks(masks.reshape(-1, *masks.shape[2:]), s).reshape(length, len(ids), s, s)
                visible = torch.from_numpy(masks.reshape(length, len(ids), -1).sum(-1) > 0)
                yield proc(images=rgbs, return_tensors="pt").pixel_values, ids, boxes, target, visible
                want_pair = rng.random() < distractor
            rgbs, maps = [], []
            gap = int(rng.integers(0, 8))


def _batch_layout_hook(module, inputs, output: torch.Tensor) -> torch.Tensor:
    """Forward hook on ``memory_attention`` so that its caller reshapes batches of more than one row.

    ``_prepare_memory_conditioned_features`` does ``out.squeeze(1).transpose(1, 2).view(B, C, H, W)``,
    right only for B = 1 (the streaming forward runs one object at a time). The hook returns the same
    values as (B, 1, HW, C), strided so that this chain yields row b's map for batch index b. For
    B = 1 it changes nothing.
    """
    rows = output.transpose(0, 1).squeeze(1)  # (B, HW, C)
    return rows.transpose(1, 2).contiguous().transpose(1, 2).unsqueeze(1)


def unroll(model, proc, pixels: torch.Tensor, rows: torch.Tensor, boxes: torch.Tensor):
    """Box prompt on frame 0, then track frames 1..T-1, for many (clip, object) rows at once.

    The rows share one streaming session whose single object holds batched tensors (row = batch
    index), and each frame goes through the production per-frame methods of ``Sam2VideoModel``
    (``_run_single_frame_inference`` for the memory read, the mask decoder and the object pointer;
    ``_encode_new_memory`` for the memory write), i.e. what ``Sam2VideoModel.forward`` runs for one
    object, batched over rows. Each row gets its own clip's image features. ``check_unroll`` compares
    this with ``forward`` itself.

    Args:
        pixels: (C, T, 3, s, s) processed frames of C clips.
        rows: (B,) long, the clip of each row.
        boxes: (B, 4) float xyxy box prompts on frame 0 in model pixels (s x s frame).

    Yields:
        Per frame t: mask logits (B, 1, s/4, s/4) and object score logits (B,).
    """
    session = proc.init_video_session(video=None, inference_device=pixels.device, dtype=torch.float32)
    obj = session.obj_id_to_idx(1)
    outputs = session.output_dict_per_obj[obj]
    b = len(rows)
    points = {"point_coords": boxes.reshape(b, 1, 2, 2),
              "point_labels": torch.tensor([2, 3], dtype=torch.int32, device=pixels.device).repeat(b, 1, 1)}
    for t in range(pixels.shape[1]):
        with torch.no_grad():
            session.add_new_frame(pixels[0, t], frame_idx=t)  # only counts the frame
        image = model.get_image_features(pixels[:, t], return_dict=True)
        feats = [f.index_select(1, rows) for f in image.fpn_hidden_states]
        pos = [p.index_select(1, rows) for p in image.fpn_position_encoding]
        session.cache.cache_vision_features(t, {"vision_feats": feats, "vision_pos_embeds": pos})
        first = t == 0
        out = model._run_single_frame_inference(
            inference_session=session, frame_idx=t, obj_idx=obj, batch_size=1, is_init_cond_frame=first,
            point_inputs=points if first else None, mask_inputs=None, reverse=False, streaming=True)
        session.store_output(obj, t, output_value=out, is_conditioning_frame=first)
        memory, memory_pos = model._encode_new_memory(
            current_vision_feats=feats[-1], pred_masks_high_res=out["high_res_masks"],
            object_score_logits=out["object_score_logits"], is_mask_from_pts=first)
        stored = outputs["cond_frame_outputs" if first else "non_cond_frame_outputs"][t]
        stored["maskmem_features"], stored["maskmem_pos_enc"] = memory, memory_pos
        yield out["pred_masks"], out["object_score_logits"].flatten()


@torch.inference_mode()
def check_unroll(model, proc, clip, s: int) -> float:
    """Largest difference between :func:`unroll` and ``Sam2VideoModel.forward`` (the production
    streaming path, one object at a time) on one clip: mask logits and object scores."""
    pixels, ids, boxes, _, _ = clip
    session = proc.init_video_session(video=None, inference_device=pixels.device, dtype=torch.float32)
    session.add_new_frame(pixels[0], frame_idx=0)
    proc.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=list(ids), input_boxes=[boxes.tolist()],
                                         original_size=WORLD_SIZE[::-1])
    rows = torch.zeros(len(ids), dtype=torch.long)
    batched = unroll(model, proc, pixels[None], rows, torch.from_numpy(box_to_model(boxes, s)))
    worst = 0.0
    for t in range(len(pixels)):
        ref = model(inference_session=session, frame_idx=0) if t == 0 else \
            model(inference_session=session, frame=pixels[t], frame_idx=t)
        masks, scores = next(batched)
        worst = max(worst, (ref.pred_masks - masks).abs().max().item(),
                    (ref.object_score_logits.flatten() - scores).abs().max().item())
    return worst


def train_sam_memory(model, proc, args, s: int) -> dict:
    """Phase B: the memory path (vision encoder frozen), with :func:`unroll` over several clips at once.

    The model stays in eval mode (train mode drops ``object_score_logits`` from the outputs; the
    memory attention's dropout is then off, as at inference). Each step takes ``--sam-clips`` clips
    of ``--sam-clip-len`` frames with up to ``--sam-clip-objects`` box-prompted objects each; the
    prompted frame 0 and frames 1..k are scored: 5 BCE + dice on the masks where the object score is
    positive (a negative score replaces the mask by a constant, without gradient) and BCE of the
    object score against visibility.
    """
    model.eval()
    model.requires_grad_(True)
    model.vision_encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.sam_memory_lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed + 1)
    # curriculum: short clips (the memory of the prompted frame) first, then longer ones
    short = sam_clips(proc, rng, SAM_CLIP_SEED0, args.sam_clip_len, args.sam_clip_objects, s,
                      distractor=args.sam_distractor)
    long = sam_clips(proc, rng, SAM_CLIP_SEED0 + 100_000, args.sam_long_clip_len, args.sam_clip_objects, s,
                     distractor=args.sam_distractor)
    long_from = int(args.sam_long_from * args.sam_memory_steps)
    hook = model.memory_attention.register_forward_hook(_batch_layout_hook)
    worst = check_unroll(model, proc, next(c for c in long if len(c[1]) >= 2), s)
    log.info("batched unroll vs Sam2VideoModel.forward: largest difference %.2e", worst)
    if worst > 1e-3:
        raise RuntimeError(f"the batched memory unroll differs from Sam2VideoModel.forward by {worst:.3g}; "
                           "the installed transformers changed its video internals")
    t0 = time.time()
    running = running_iou = None
    step = 0
    while step < args.sam_memory_steps:
        if args.time_limit and time.time() - t0 > args.time_limit:
            log.info("sam memory: time limit reached at step %d", step)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.sam_memory_steps, args.sam_memory_lr, warmup=50)
        clips = short if step < long_from else long
        batch = [next(clips) for _ in range(args.sam_clips)]
        pixels = torch.stack([c[0] for c in batch]).to(args.device)  # (C, T, 3, s, s)
        rows = torch.tensor([i for i, c in enumerate(batch) for _ in c[1]], device=args.device)
        boxes = torch.from_numpy(np.concatenate([box_to_model(c[2], s) for c in batch])).to(args.device)
        target = torch.cat([c[3] for c in batch], 1).to(args.device)  # (T, B, s, s)
        visible = torch.cat([c[4] for c in batch], 1).to(args.device)  # (T, B)
        losses, ious = [], []
        for t, (masks, score) in enumerate(unroll(model, proc, pixels, rows, boxes)):
            logits = F.interpolate(masks.float(), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
            bce, dice = mask_losses(logits, target[t])
            use = (score.detach() > 0).float()
            loss = ((5 * bce + dice) * use).mean() + F.binary_cross_entropy_with_logits(score, visible[t].float())
            losses.append(loss)
            if t > 0:
                with torch.no_grad():
                    pred, hard = logits > 0, target[t] > 0.5
                    inter = (pred & hard).flatten(1).sum(1).float()
                    union = (pred | hard).flatten(1).sum(1).float()
                    ious += [(i / u).item() for i, u in zip(inter, union) if u > 0]
        loss = torch.stack(losses).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        miou = float(np.mean(ious)) if ious else 0.0
        running_iou = miou if running_iou is None else 0.98 * running_iou + 0.02 * miou
        if step % 50 == 0 or step == args.sam_memory_steps - 1:
            log.info("sam memory step %d/%d loss %.3f tracked IoU %.3f %.2f s/step", step, args.sam_memory_steps,
                     running, running_iou, (time.time() - t0) / (step + 1))
        step += 1
    hook.remove()
    return {"steps": step, "clips_per_step": args.sam_clips, "clip_length": args.sam_clip_len,
            "long_clip_length": args.sam_long_clip_len, "long_clips_from_step": long_from,
            "objects_per_clip": args.sam_clip_objects, "same_colour_pair_share": args.sam_distractor,
            "unroll_vs_forward_max_diff": worst,
            "train_s": round(time.time() - t0, 1), "final_loss": round(running, 4),
            "final_tracked_iou_train": round(running_iou, 4)}


def train_sam(args, out: Path) -> dict:
    set_seed(args.seed)
    if args.sam_init:  # development: continue from a saved checkpoint
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        model = Sam2VideoModel.from_pretrained(args.sam_init).eval()
        proc = Sam2VideoProcessor.from_pretrained(args.sam_init)
    else:
        model, proc = build_sam(**sam_config_kwargs(args))
    model.to(args.device)
    params = sum(p.numel() for p in model.parameters())
    log.info("SAM 2: %d parameters", params)
    s = model.config.image_size
    report = {"parameters": params, "config": sam_config_kwargs(args)}
    if args.sam_image_steps:
        report["image"] = train_sam_image(model, proc, args, s)
    if args.sam_memory_steps:
        report["memory"] = train_sam_memory(model, proc, args, s)
    model.requires_grad_(False).to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return report


# ---------------------------------------------------------------------------------------------------
# V-JEPA 2


def make_vjepa2(args, out: Path) -> dict:
    """V-JEPA 2 is shipped with random weights (seeded), built by the production tiny builder.

    Why not trained: the pipeline only compares the encoder's feature maps between frames (novelty
    of a key frame). Random patch embeddings followed by random attention layers are a fixed,
    locally sensitive function of the pixels: a scene cut or an object entering changes the maps
    where the pixels change, which is all the selector needs (measured by
    ``tools/eval_demo_models.py --what vjepa2``). Training the self-supervised JEPA objective would
    spend the CPU budget on invariances the demo does not need.
    """
    from sowlv2.models.random_init import build_vjepa2

    t0 = time.time()
    build_vjepa2(out, size="tiny", seed=args.seed)
    from transformers import VJEPA2Model

    params = sum(p.numel() for p in VJEPA2Model.from_pretrained(out).parameters())
    return {"trained": False, "parameters": params, "seconds": round(time.time() - t0, 1),
            "config": "sowlv2.models.random_init.build_vjepa2(size='tiny'): crop 128, patch 16, tubelet 2, "
                      "hidden 32, 2 layers, 16 frames per clip"}


# ---------------------------------------------------------------------------------------------------
# main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "src" / "sowlv2" / "demo_models")
    p.add_argument("--only", choices=["owl", "sam", "vjepa2"], action="append",
                   help="train only this model (repeatable)")
    p.add_argument("--threads", type=int, default=2,
                   help="CPU threads; with 2 or more, OWLv2 trains in a second process beside SAM 2 (1 thread each)")
    p.add_argument("--report", type=Path, help="write the report here instead of OUT/training.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (the shipped checkpoints) or cuda (experiments)")
    p.add_argument("--time-limit", type=float, default=0.0,
                   help="experiments only: stop each training loop after this many seconds (0: never)")
    g = p.add_argument_group("OWLv2")
    g.add_argument("--owl-image-size", type=int, default=192)
    g.add_argument("--owl-patch", type=int, default=16)
    g.add_argument("--owl-vision-hidden", type=int, default=96)
    g.add_argument("--owl-vision-layers", type=int, default=4)
    g.add_argument("--owl-text-hidden", type=int, default=64)
    g.add_argument("--owl-text-layers", type=int, default=2)
    g.add_argument("--owl-max-len", type=int, default=24)
    g.add_argument("--owl-videos", type=int, default=600)
    g.add_argument("--owl-every", type=int, default=5)
    g.add_argument("--owl-steps", type=int, default=12000)
    g.add_argument("--owl-batch", type=int, default=16)
    g.add_argument("--owl-lr", type=float, default=1e-3)
    g = p.add_argument_group("SAM 2")
    g.add_argument("--sam-image-size", type=int, default=256)
    g.add_argument("--sam-init", help="development: start from this saved SAM 2 folder instead of a fresh model")
    g.add_argument("--sam-hiera-hidden", type=int, default=16)
    g.add_argument("--sam-hidden", type=int, default=128)
    g.add_argument("--sam-image-steps", type=int, default=2000)
    g.add_argument("--sam-batch", type=int, default=8)
    g.add_argument("--sam-videos", type=int, default=400)
    g.add_argument("--sam-lr", type=float, default=3e-4,
                   help="box -> mask learning rate (at 256 px, 1e-3 stalls at a mask IoU near 0.35 for most seeds)")
    g.add_argument("--sam-memory-steps", type=int, default=1500)
    g.add_argument("--sam-memory-lr", type=float, default=1e-3)
    g.add_argument("--sam-clip-len", type=int, default=3)
    g.add_argument("--sam-long-clip-len", type=int, default=8)
    g.add_argument("--sam-long-from", type=float, default=0.6, help="share of memory steps before long clips")
    g.add_argument("--sam-clip-objects", type=int, default=5, help="objects prompted per clip (at most)")
    g.add_argument("--sam-clips", type=int, default=2, help="clips per memory training step")
    g.add_argument("--sam-distractor", type=float, default=1.0,
                   help="share of memory-training clips that hold a prompted same-colour pair (0..1)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    only = set(args.only or ["owl", "sam", "vjepa2"])
    import platform
    import subprocess

    import transformers

    report = {
        "command": "python tools/train_demo_models.py " + " ".join(argv),
        "seeds": {"train_min": OWL_SEED0, "owl": OWL_SEED0, "sam_images": SAM_IMAGE_SEED0,
                  "sam_short_clips": SAM_CLIP_SEED0, "sam_long_clips": SAM_CLIP_SEED0 + 100_000,
                  "validation": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
                  "held_out": [HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.stop - 1]},
        "world_size": list(WORLD_SIZE), "threads": args.threads, "device": args.device,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }
    t0 = time.time()
    child = None
    if args.threads >= 2 and {"owl", "sam"} <= only:
        # OWLv2 and SAM 2 train at the same time, one thread each: on two cores this is faster than
        # both in turn with two threads (these small models keep a second thread mostly waiting)
        part = args.out / "training_owl.json"
        rest = [a for i, a in enumerate(argv)
                if not (a == "--only" or a.startswith("--only=") or (i and argv[i - 1] == "--only"))]
        child = subprocess.Popen([sys.executable, __file__, *rest, "--only", "owl", "--threads", "1",
                                  "--report", str(part)])
        only.discard("owl")
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(args.threads)
    if "owl" in only:
        report["owl"] = train_owl(args, args.out / "owl")
    if "sam" in only:
        report["sam"] = train_sam(args, args.out / "sam")
    if "vjepa2" in only:
        report["vjepa2"] = make_vjepa2(args, args.out / "vjepa2")
    if child is not None:
        if child.wait() != 0:
            raise RuntimeError(f"OWLv2 training failed (exit code {child.returncode})")
        report["owl"] = json.loads(part.read_text())["owl"]
        part.unlink()
    report["total_s"] = round(time.time() - t0, 1)
    log.info("done: %s", json.dumps(report))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    elif {"owl", "sam", "vjepa2"} <= set(report):
        (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
