"""Tiny random pipelines of the three supported families, built from configs offline.

For tests, benchmarks and trying the API without weights: ``build("sd")``,
``build("sd", prediction_type="v_prediction")``, ``build("sdxl")`` and ``build("sd3")``
return pipelines of about a million parameters (32x32 images, 16x16 latents) with a
character-level CLIP tokenizer. Save them with ``save_pretrained`` and reload with
``t2i.load_pipeline``. Their outputs are random: they are plumbing, not models.

``full_size("sdxl")`` swaps in the denoiser architecture of the published checkpoint
(random weights) and text encoders of its widths, so timings see the real denoiser cost.
"""

from __future__ import annotations

import string

import torch

IMAGE_SIZE = 32
MAX_TOKENS = 77  # characters, with the start and end tokens
FAMILIES = ("sd", "sdxl", "sd3")


def tokenizer():
    """A character-level CLIP tokenizer (no merges) covering printable ASCII."""
    from transformers import CLIPTokenizer

    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in chars:
        for piece in (char, f"{char}</w>"):
            vocab[piece] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def text_encoder(vocab_size: int, projection: bool, hidden: int = 32):
    """A 2-layer CLIP text encoder of width ``hidden`` (pooled projection of that width)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae(latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
        **extra,
    )


def _unet(cross_attention_dim: int, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=8,
        cross_attention_dim=cross_attention_dim,
        **extra,
    )


def sd_scheduler(prediction_type: str = "epsilon"):
    """Stable Diffusion's schedule (scaled-linear betas, 1000 steps) with DDIM sampling."""
    import diffusers

    return diffusers.DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def build(family: str = "sd", prediction_type: str = "epsilon", seed: int = 0):
    """A tiny random pipeline of ``family`` (``"sd"``, ``"sdxl"`` or ``"sd3"``)."""
    import diffusers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")
    torch.manual_seed(seed)
    tok = tokenizer()
    vocab = len(tok)
    if family == "sd3":
        return diffusers.StableDiffusion3Pipeline(
            transformer=diffusers.SD3Transformer2DModel(
                sample_size=IMAGE_SIZE // 2,
                patch_size=2,
                in_channels=4,
                out_channels=4,
                num_layers=2,
                attention_head_dim=8,
                num_attention_heads=4,
                joint_attention_dim=64,
                caption_projection_dim=32,
                pooled_projection_dim=64,
                pos_embed_max_size=16,
            ),
            scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(shift_factor=0.1, scaling_factor=1.5),
            text_encoder=text_encoder(vocab, projection=True),
            tokenizer=tok,
            text_encoder_2=text_encoder(vocab, projection=True),
            tokenizer_2=tokenizer(),
            text_encoder_3=None,
            tokenizer_3=None,
        )
    scheduler = sd_scheduler(prediction_type)
    if family == "sd":
        return diffusers.StableDiffusionPipeline(
            unet=_unet(32),
            scheduler=scheduler,
            vae=_vae(),
            text_encoder=text_encoder(vocab, projection=False),
            tokenizer=tok,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    return diffusers.StableDiffusionXLPipeline(
        unet=_unet(
            64,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,
        ),
        scheduler=scheduler,
        vae=_vae(),
        text_encoder=text_encoder(vocab, projection=False),
        tokenizer=tok,
        text_encoder_2=text_encoder(vocab, projection=True),
        tokenizer_2=tokenizer(),
    )


FULL_DENOISERS = {
    # the architectures in the published checkpoints' configs (diffusers layout)
    "sd": {  # stable-diffusion-2-1: 96x96 latents
        "sample_size": 96,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "attention_head_dim": (5, 10, 20, 20),
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
    },
    "sdxl": {  # stable-diffusion-xl-base-1.0: 128x128 latents
        "sample_size": 128,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (320, 640, 1280),
        "attention_head_dim": (5, 10, 20),
        "transformer_layers_per_block": (1, 2, 10),
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    },
    "sd3": {  # stable-diffusion-3.5-medium: 128x128 latents, 16 channels
        "sample_size": 128,
        "patch_size": 2,
        "in_channels": 16,
        "out_channels": 16,
        "num_layers": 24,
        "attention_head_dim": 64,
        "num_attention_heads": 24,
        "joint_attention_dim": 4096,
        "caption_projection_dim": 1536,
        "pooled_projection_dim": 2048,
        "pos_embed_max_size": 384,
        "dual_attention_layers": tuple(range(13)),
        "qk_norm": "rms_norm",
    },
}
"""Text widths that feed them: SD-2.1 1024; SDXL 768 + 1280; SD3 768 + 1280 (T5 absent)."""


def full_size(family: str = "sd", seed: int = 0):
    """A pipeline of ``family`` with the published denoiser architecture (random weights,
    2.6B parameters for SDXL), 2-layer text encoders of the real widths and a tiny VAE
    (so images are ``2 x`` the latent side). For timing, not for images. Build it under
    ``with torch.device("cuda"):`` to initialise on a GPU."""
    import diffusers

    pipe = build(family, seed=seed)
    vocab = len(pipe.tokenizer)
    config = FULL_DENOISERS[family]
    if family == "sd3":
        pipe.transformer = diffusers.SD3Transformer2DModel(**config)
        pipe.vae = _vae(latent_channels=16, shift_factor=0.1, scaling_factor=1.5)
        pipe.text_encoder = text_encoder(vocab, projection=True, hidden=768)
        pipe.text_encoder_2 = text_encoder(vocab, projection=True, hidden=1280)
    else:
        pipe.unet = diffusers.UNet2DConditionModel(in_channels=4, out_channels=4, **config)
        if family == "sd":
            pipe.text_encoder = text_encoder(vocab, projection=False, hidden=1024)
        else:
            pipe.text_encoder = text_encoder(vocab, projection=False, hidden=768)
            pipe.text_encoder_2 = text_encoder(vocab, projection=True, hidden=1280)
    return pipe
