"""Point-wise MI between prompts and given images (Monte Carlo over ``(t, eps)``).

Each image is encoded to latents with the pipeline's VAE; ``n_draws`` pairs
``(t, eps)`` per image from the time sampler noise it; the denoiser is evaluated with
and without the prompt in one batched call; miest's integrator (``miest.integrate``)
turns the outputs into the point-wise forms, in nats, with Monte Carlo standard errors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from miest.integrate import POINTWISE_FORM, PointwiseMI, pointwise_mi
from miest.timesamplers import TimeSampler, make_time_sampler
from t2i.families import DiffusersModel
from t2i.loading import as_model

TRUNCATION = 0.05
"""Distance of the integral from the data end: DDPM ``t > 50`` of 1000, SD3 ``sigma > 0.05``."""


def score(
    model,
    prompts: str | list[str],
    images=None,
    *,
    latents: torch.Tensor | None = None,
    n_draws: int = 32,
    batch_size: int = 16,
    sampler: str | TimeSampler | None = None,
    seed: int = 0,
    progress: bool = False,
) -> PointwiseMI:
    """Point-wise MI (nats) of each ``(prompt, image)`` pair, every form with standard errors.

    ``model``: a diffusers pipeline (SD-2.1, SDXL or SD3 family) or its directory.
    ``prompts``: one string (for every image) or one per image. ``images``: a PIL image,
    an array (h, w, 3) in [0, 1] or uint8, a path, or a list of them; or pass
    ``latents`` (n, c, h, w) already in the denoiser's space instead. ``batch_size``
    pairs go through the network at once (twice that many rows: with and without
    the prompt). ``sampler`` draws the times (default: the family's ``time_sampler``:
    uniform for SD and SDXL as in MI-TUNE, Lambert W for SD3 as in RFMI). The same ``seed``
    gives the same values.
    """
    model = as_model(model)
    if (images is None) == (latents is None):
        raise ValueError("pass exactly one of images or latents")
    if latents is None:
        latents = model.encode_images(images)
    prompts = [prompts] * len(latents) if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(latents):
        raise ValueError(f"{len(prompts)} prompts for {len(latents)} images")
    if not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be strings")
    sampler = make_time_sampler(sampler or model.time_sampler, TRUNCATION)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conditions = model.encode_prompts(prompts)
    return pointwise_mi(
        model.predict(conditions),
        latents.to(model.device, torch.float32),
        model.path,
        model.parametrisation,
        sampler,
        n_draws=n_draws,
        batch_size=batch_size,
        generator=generator,
        progress=progress,
    )


def pointwise(model, prompts, images, form: str = POINTWISE_FORM, **options):
    """``miest.pointwise(pipeline, prompt, image)``: per-image MI in nats, shape (n,), in
    the same default form as the estimators' per-sample values
    (``miest.integrate.POINTWISE_FORM``, MMSE-gap)."""
    return score(model, prompts, images, **options).values(form)


def accepts(model) -> bool:
    """Whether ``miest.pointwise`` should route ``model`` here."""
    if isinstance(model, (str, Path)):
        return (Path(model) / "model_index.json").exists()
    return isinstance(model, DiffusersModel) or (
        hasattr(model, "vae") and (hasattr(model, "unet") or hasattr(model, "transformer"))
    )


POINTWISE = (accepts, pointwise)  # the miest.pointwise entry point (pyproject.toml)
