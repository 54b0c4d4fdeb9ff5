"""Random-weight checkpoints of the other backends' real transformers classes, built offline.

Like ``random_init`` (OWLv2, SAM 2, V-JEPA 2): ``tiny`` instances run in milliseconds through the
production ``from_pretrained`` path in tests; ``real`` instances have the released architectures
for cost measurements (``sowlv2.bench_backends``). Random weights prove plumbing and cost, never
quality. Tokenizers are built from small in-memory vocabularies (no download). Every ``build_*`` saves
to ``folder`` and returns it, or with ``folder=None`` returns ``(model, processor)`` in memory.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

TINY_SIDE = 128  # tiny detectors' input side
SAM3_TINY_SIDE = 112  # SAM 3's tiny ViT: patch 14, 8x8 tokens


def _save(folder, model, processor):
    """``folder`` given: save both there and return the folder; None: return (model, processor)."""
    if folder is None:
        return model, processor
    folder = Path(folder)
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------- tokenizers

def bert_tokenizer(size: str = "tiny"):
    """A lower-casing WordPiece ``BertTokenizerFast`` over letters, digits and punctuation.

    Every character is a token (and ``##``-continuation token), plus a few whole words, so that any
    prompt tokenizes without unknown tokens. ``size="real"`` pads the vocabulary to BERT's 30,522.
    """
    from transformers import BertTokenizerFast

    chars = string.ascii_lowercase + string.digits
    words = ["car", "red", "dog", "cat", "person", "a", "the"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *chars,
             *[f"##{c}" for c in chars], *words]
    vocab = list(dict.fromkeys(vocab))
    if size == "real":
        vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)


# ---------------------------------------------------------------------------- Grounding DINO

def build_grounding_dino(folder: str | Path | None, size: str = "tiny", mm: bool = False, seed: int = 0) -> Path:
    """Save a ``GroundingDinoForObjectDetection`` (or ``MMGroundingDinoForObjectDetection`` with
    ``mm=True``) + ``GroundingDinoProcessor`` with random weights.

    Args:
        size: ``"tiny"`` (Swin embed 16, d_model 32, 2 decoder layers, 128 px) or ``"real"`` (the
            Swin-T release: default config, 800 px shortest edge).
    """
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        MMGroundingDinoConfig,
        MMGroundingDinoForObjectDetection,
    )

    torch.manual_seed(seed)
    tok = bert_tokenizer(size)
    config_cls, model_cls = ((MMGroundingDinoConfig, MMGroundingDinoForObjectDetection) if mm
                             else (GroundingDinoConfig, GroundingDinoForObjectDetection))
    if size == "tiny":
        backbone = dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                        window_size=4, image_size=TINY_SIDE, out_features=["stage2", "stage3", "stage4"])
        text = dict(model_type="bert", vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        config = config_cls(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                            decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
                            decoder_attention_heads=2, num_queries=20, max_text_len=64)
        image_size = {"shortest_edge": TINY_SIDE, "longest_edge": TINY_SIDE * 4 // 3}
    elif size == "real":
        config = config_cls()
        image_size = {"shortest_edge": 800, "longest_edge": 1333}
    else:
        raise ValueError(f"unknown Grounding DINO size {size!r}; use 'tiny' or 'real'")
    model = model_cls(config).eval()
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(size=image_size), tokenizer=tok)
    return _save(folder, model, processor)


# ---------------------------------------------------------------------------- EdgeTAM

def _sam_processor(side: int, mask_side: int):
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    size = {"height": side, "width": side}
    return Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size=size, mask_size={"height": mask_side,
                                                                                        "width": mask_side}),
                              video_processor=Sam2VideoVideoProcessor(size=size))


def build_edgetam(folder: str | Path | None, size: str = "tiny", seed: int = 0) -> Path:
    """Save an ``EdgeTamVideoModel`` checkpoint (``EdgeTamModel`` loads it too) + ``Sam2VideoProcessor``.

    Args:
        size: ``"tiny"`` (RepViT-M1 at 128 px, hidden 128, 16+16 perceiver latents) or ``"real"``
            (the released EdgeTAM: RepViT-M1 at 1024 px, 13.9 M parameters).
    """
    from transformers import EdgeTamVideoConfig, EdgeTamVideoModel, EdgeTamVisionConfig, TimmWrapperConfig

    from .random_init import _sam2_config_kwargs

    torch.manual_seed(seed)
    # A dict backbone_config fails in TimmWrapperConfig.from_dict: pass a config object.
    backbone = TimmWrapperConfig(architecture="repvit_m1", model_args={"in_chans": 3, "features_only": True,
                                                                        "out_indices": [0, 1, 2, 3]})
    if size == "tiny":
        s = TINY_SIDE
        backbone = TimmWrapperConfig(architecture="repvit_m1", model_args={
            "in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3], "embed_dim": [8, 16, 32, 64],
            "depth": [1, 1, 1, 1]})  # a narrow RepViT: the real one costs seconds per frame on busy CPUs
        kw = _sam2_config_kwargs("tiny")
        kw.pop("memory_attention_feed_forward_hidden_size")
        vision = EdgeTamVisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                                     backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                                     fpn_hidden_size=128)
        kw.update(vision_config=vision, memory_attention_mlp_hidden_size=128, memory_attention_rope_k_sizes=[4, 4],
                  perceiver_resampler_num_latents=16, perceiver_resampler_num_latents_2d=16,
                  perceiver_resampler_hidden_size=64, perceiver_resampler_mlp_intermediate_size=64)
        config = EdgeTamVideoConfig(**kw)
    elif size == "real":
        config = EdgeTamVideoConfig(vision_config=EdgeTamVisionConfig(backbone_config=backbone))
    else:
        raise ValueError(f"unknown EdgeTAM size {size!r}; use 'tiny' or 'real'")
    model = EdgeTamVideoModel(config).eval()
    if size == "tiny":  # as random_init.build_sam2: random tiny models would see no object half the time
        with torch.no_grad():
            model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(20.0)
    s = int(config.image_size)
    return _save(folder, model, _sam_processor(s, s // 4))


# ---------------------------------------------------------------------------- SAM 3

def build_sam3(folder: str | Path | None, size: str = "tiny", seed: int = 0) -> Path:
    """Save a ``Sam3VideoModel`` checkpoint (``sam3_video``, like ``facebook/sam3``: ``Sam3Model`` and
    ``Sam3TrackerVideoModel`` both load it) + ``Sam3VideoProcessor`` with random weights.

    Args:
        size: ``"tiny"`` (ViT hidden 32 at 112 px, patch 14: 8x8 tokens; hidden 128) or ``"real"`` (the
            release: ViT-L-like 32 layers at 1008 px, 860 M parameters).
    """
    from transformers import (
        Sam2VideoVideoProcessor,
        Sam3Config,
        Sam3ImageProcessor,
        Sam3VideoConfig,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )

    from .random_init import byte_tokenizer

    torch.manual_seed(seed)
    if size == "tiny":
        s, d = SAM3_TINY_SIDE, 128
        tok = byte_tokenizer(32)
        vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, image_size=s, patch_size=14, window_size=4, global_attn_indexes=[1],
                   pretrain_image_size=s)
        vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=d,
                      backbone_feature_sizes=[[s // 14 * 4] * 2, [s // 14 * 2] * 2, [s // 14] * 2])
        text = dict(model_type="clip_text_model", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                    num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32, projection_dim=d,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        small = dict(hidden_size=d, num_layers=1, num_attention_heads=2, intermediate_size=64)
        detector = Sam3Config(vision_config=vision, text_config=text, geometry_encoder_config=small,
                              detr_encoder_config=small, detr_decoder_config=dict(small, num_queries=20),
                              mask_decoder_config=dict(hidden_size=d, num_attention_heads=2))
        tracker = dict(model_type="sam3_tracker_video", vision_config=vision, image_size=s,
                       prompt_encoder_config=dict(hidden_size=d, image_size=s, patch_size=14),
                       mask_decoder_config=dict(hidden_size=d, mlp_dim=128, num_attention_heads=2,
                                                iou_head_hidden_dim=64),
                       memory_attention_hidden_size=d, memory_attention_num_layers=1,
                       memory_attention_feed_forward_hidden_size=128, memory_attention_rope_feat_sizes=[s // 14] * 2,
                       memory_encoder_hidden_size=d, memory_encoder_output_channels=64, mask_downsampler_embed_dim=d,
                       memory_fuser_embed_dim=d, memory_fuser_intermediate_dim=128)
        config = Sam3VideoConfig(detector_config=detector, tracker_config=tracker)
        mask_side = s // 14 * 4
    elif size == "real":
        from .random_init import byte_tokenizer as _bt

        tok = _bt(32)
        config = Sam3VideoConfig()
        config.detector_config.text_config.vocab_size = max(config.detector_config.text_config.vocab_size, len(tok))
        s, mask_side = 1008, 288
    else:
        raise ValueError(f"unknown SAM 3 size {size!r}; use 'tiny' or 'real'")
    model = Sam3VideoModel(config).eval()
    if size == "tiny":  # as random_init.build_sam2: a random tiny tracker would see no object half the time
        with torch.no_grad():
            model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(20.0)
    side = {"height": s, "width": s}
    processor = Sam3VideoProcessor(image_processor=Sam3ImageProcessor(size=side, mask_size={"height": mask_side,
                                                                                            "width": mask_side}),
                                   video_processor=Sam2VideoVideoProcessor(size=side), tokenizer=tok)
    return _save(folder, model, processor)


# ---------------------------------------------------------------------------- OmDet-Turbo

def build_omdet_turbo(folder: str | Path | None, size: str = "tiny", seed: int = 0) -> Path:
    """Save an ``OmDetTurboForObjectDetection`` + ``OmDetTurboProcessor`` with random weights.

    Args:
        size: ``"tiny"`` (HF Swin embed 16 at 128 px, hidden 64) or ``"real"`` (the release: timm
            Swin-T at 640 px, 115 M parameters; needs timm).
    """
    from transformers import (
        DetrImageProcessor,
        OmDetTurboConfig,
        OmDetTurboForObjectDetection,
        OmDetTurboProcessor,
    )

    from .random_init import byte_tokenizer

    torch.manual_seed(seed)
    if size == "tiny":
        s = TINY_SIDE
        tok = byte_tokenizer(16)
        backbone = dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                        image_size=s, out_indices=[2, 3, 4])
        text = dict(model_type="clip_text_model", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                    num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16, projection_dim=32,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        # Pitfalls: an HF Swin needs apply_layernorm_after_vision_backbone=False; class_embed_dim must
        # equal the text hidden size and differ from decoder_hidden_dim.
        config = OmDetTurboConfig(
            backbone_config=backbone, text_config=text, apply_layernorm_after_vision_backbone=False, image_size=s,
            text_projection_in_dim=32, text_projection_out_dim=32, task_encoder_hidden_dim=64, class_embed_dim=32,
            num_queries=20, encoder_hidden_dim=64, vision_features_channels=[64, 64, 64],
            encoder_in_channels=[32, 64, 128], encoder_attention_heads=2, encoder_dim_feedforward=64,
            decoder_hidden_dim=64, decoder_num_heads=2, decoder_num_layers=2, decoder_dim_feedforward=64)
    elif size == "real":
        s = 640
        tok = byte_tokenizer(77)
        config = OmDetTurboConfig()  # timm Swin-T at 640 px, CLIP text (vocab 49,408 >= the byte vocabulary)
    else:
        raise ValueError(f"unknown OmDet-Turbo size {size!r}; use 'tiny' or 'real'")
    model = OmDetTurboForObjectDetection(config).eval()
    processor = OmDetTurboProcessor(image_processor=DetrImageProcessor(size={"height": s, "width": s}, do_pad=False),
                                    tokenizer=tok)
    return _save(folder, model, processor)
