"""Build checkpoints of the real model classes with random weights, offline.

Used by the tests (tiny models that run in milliseconds through the production ``from_pretrained``
path) and by the benchmark (real-size architectures: speed does not depend on weight values).
Random weights prove plumbing and cost, never quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_IMAGE_SIZE = 128


def _byte_vocab() -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary with no merges: every character is its own token."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, []


def byte_tokenizer(max_length: int = 16):
    """A CLIPTokenizer over a byte-level vocabulary (no download needed)."""
    from transformers import CLIPTokenizer

    vocab, merges = _byte_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def build_owlv2(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save an ``Owlv2ForObjectDetection`` + ``Owlv2Processor`` with random weights to ``folder``.

    Args:
        size: ``"tiny"`` (128 px, hidden 32, 2 layers; about 1 MB) or ``"base"`` (the real
            B/16 architecture at 960 px).
    """
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    if size == "tiny":
        max_len = 16
        tok = byte_tokenizer(max_length=max_len)
        text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, max_position_embeddings=max_len,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=TINY_IMAGE_SIZE, patch_size=16)
        config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
        image_size = TINY_IMAGE_SIZE
    elif size == "base":
        tok = byte_tokenizer(max_length=16)
        config = Owlv2Config(text_config=dict(vocab_size=49408), vision_config=dict(image_size=960,
                                                                                      patch_size=16))
        image_size = 960
    else:
        raise ValueError(f"unknown OWLv2 size {size!r}; use 'tiny' or 'base'")
    model = Owlv2ForObjectDetection(config).eval()
    image_processor = Owlv2ImageProcessor(size={"height": image_size, "width": image_size})
    Owlv2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def _sam2_config_kwargs(size: str) -> dict:
    if size == "tiny":
        s = TINY_IMAGE_SIZE
        backbone = dict(model_type="sam2_hiera_det_model", hidden_size=16, image_size=[s, s],
                        blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                        num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
                        global_attention_blocks=[3], window_positional_embedding_background_size=[4, 4])
        vision = dict(backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                      backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                      fpn_hidden_size=128)
        # transformers' video tracker needs fpn_hidden_size to be a multiple of, and larger than,
        # the memory channels (64): every hidden size is 128.
        return dict(
            vision_config=vision,
            prompt_encoder_config=dict(hidden_size=128, image_size=s, patch_size=16),
            mask_decoder_config=dict(hidden_size=128, mlp_dim=128, num_attention_heads=2,
                                     iou_head_hidden_dim=64),
            image_size=s,
            memory_attention_hidden_size=128, memory_attention_num_layers=1,
            memory_attention_feed_forward_hidden_size=128,
            memory_attention_rope_feat_sizes=[s // 16, s // 16],
            memory_encoder_hidden_size=128, memory_encoder_output_channels=64,
            mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=128,
        )
    if size == "hiera-tiny":  # facebook/sam2.1-hiera-tiny
        backbone = dict(model_type="sam2_hiera_det_model", blocks_per_stage=[1, 2, 7, 2],
                        global_attention_blocks=[5, 7, 9])
        return dict(vision_config=dict(backbone_config=backbone))
    if size == "hiera-small":  # facebook/sam2.1-hiera-small
        backbone = dict(model_type="sam2_hiera_det_model", blocks_per_stage=[1, 2, 11, 2],
                        global_attention_blocks=[7, 10, 13])
        return dict(vision_config=dict(backbone_config=backbone))
    raise ValueError(f"unknown SAM 2 size {size!r}; use 'tiny', 'hiera-tiny' or 'hiera-small'")


def build_sam2(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a ``Sam2VideoModel`` checkpoint (which ``Sam2Model`` also loads, like the hub's sam2.1
    repos) and a ``Sam2VideoProcessor`` with random weights to ``folder``."""
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    kwargs = _sam2_config_kwargs(size)
    config = Sam2VideoConfig(**kwargs)
    model = Sam2VideoModel(config).eval()
    if size == "tiny":
        # Random weights put the object score near 0, so half the masks come out empty; tests of the
        # plumbing need objects, so the tiny model is made to always "see" its object.
        with torch.no_grad():
            model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(20.0)
    model.save_pretrained(folder)
    s = config.image_size
    image_size = {"height": s, "width": s}
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=image_size, mask_size={"height": s // 4, "width": s // 4}),
        video_processor=Sam2VideoVideoProcessor(size=image_size),
    )
    processor.save_pretrained(folder)
    return folder


def build_vjepa2(folder: str | Path, size: str = "tiny", seed: int = 0, classifier: bool = False) -> Path:
    """Save a V-JEPA 2 checkpoint with random weights.

    Args:
        size: ``"tiny"`` (128 px, hidden 32, 2 layers) or ``"vitl"`` (the real ViT-L at 256 px).
        classifier: save a ``VJEPA2ForVideoClassification`` (like the seed's default
            ``facebook/vjepa2-vitl-fpc16-256-ssv2``) instead of a bare ``VJEPA2Model``.
    """
    from transformers import VJEPA2Config, VJEPA2ForVideoClassification, VJEPA2Model, VJEPA2VideoProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    if size == "tiny":
        config = VJEPA2Config(crop_size=TINY_IMAGE_SIZE, patch_size=16, tubelet_size=2, hidden_size=32,
                              num_attention_heads=2, num_hidden_layers=2, frames_per_clip=16,
                              pred_hidden_size=32, pred_num_attention_heads=2, pred_num_hidden_layers=1)
        crop = TINY_IMAGE_SIZE
    elif size == "vitl":
        config = VJEPA2Config(crop_size=256, frames_per_clip=16)
        crop = 256
    else:
        raise ValueError(f"unknown V-JEPA 2 size {size!r}; use 'tiny' or 'vitl'")
    if classifier:
        config.num_labels = 4
        model = VJEPA2ForVideoClassification(config).eval()
    else:
        model = VJEPA2Model(config).eval()
    model.save_pretrained(folder)
    VJEPA2VideoProcessor(crop_size={"height": crop, "width": crop},
                         size={"shortest_edge": int(crop * 256 / 224)}).save_pretrained(folder)
    return folder
