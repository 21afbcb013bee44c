"""Train the toy world's models on a CPU: the shared VAE, then each family's denoiser.

``t2i toy train --family sd`` renders a pool of training-split scenes, trains (or reuses)
the VAE, encodes the pool to latents once, and trains the denoiser with the model's own
loss (:func:`t2i.finetune.loss_on_batch`: epsilon MSE over all DDPM timesteps for ``sd``,
flow matching with logit-normal times for ``sd3``), 10% of prompts dropped for
classifier-free guidance, and an EMA of the weights, which is what is saved. Checkpoints
every ``checkpoint_every`` steps; an interrupted run resumes from the last one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from t2i.families import model_for
from t2i.finetune import FinetuneConfig, loss_on_batch
from t2i.toy import models
from t2i.toy.world import CATEGORIES, sample, split

DROP_PROMPT = 0.1  # fraction of training rows without their prompt (for CFG)


@dataclass
class TrainConfig:
    """Hyper-parameters of one toy training run."""

    steps: int = 5000
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup: int = 200
    ema_decay: float = 0.999
    scenes_per_category: int = 6000
    vae_steps: int = 1000
    checkpoint_every: int = 250
    seed: int = 0


def render_pool(scenes_per_category: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Training-split scenes: uint8 images (n, 32, 32, 3) and their prompts; prompts drawn
    uniformly within each category, every category equally often."""
    rng = np.random.default_rng(seed)
    images, prompts = [], []
    for category in CATEGORIES:
        specs = split(category)["train"]
        for index in rng.integers(len(specs), size=scenes_per_category):
            images.append(sample(specs[index], rng))
            prompts.append(specs[index].prompt)
    return np.stack(images), prompts


def to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_vae(images: np.ndarray, out: Path, steps: int, seed: int, batch_size: int = 64):
    """Train the shared VAE (MSE plus a small KL) and set its latent shift and scale so
    that latents have zero mean and unit variance; saved in ``out``."""
    from diffusers import AutoencoderKL

    if (out / "config.json").exists():
        return AutoencoderKL.from_pretrained(out)
    torch.manual_seed(seed)
    vae = models.vae()
    pixels = to_pixels(images)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in (bar := tqdm(range(steps), desc="vae")):
        batch = pixels[torch.randint(len(pixels), (batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator)).sample
        loss = torch.nn.functional.mse_loss(reconstruction, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(chunk).latent_dist.mean for chunk in pixels[:4096].split(256)]
        )
    vae.register_to_config(
        shift_factor=float(latents.mean()), scaling_factor=float(1.0 / latents.std())
    )
    vae.save_pretrained(out)
    return vae


def train(family: str, out: str | Path, config: TrainConfig | None = None) -> Path:
    """Train the ``family`` model into ``out/<family>`` (the VAE into ``out/vae`` if it is
    not there yet); returns the model folder, loadable after :func:`models.complete`."""
    from diffusers.training_utils import EMAModel

    config = config or TrainConfig()
    out = Path(out)
    folder = out / family
    if (folder / "model_index.json").exists():
        return folder
    images, prompts = render_pool(config.scenes_per_category, config.seed)
    vae = train_vae(images, out / "vae", config.vae_steps, config.seed)
    pipe = models.build(family, vae, seed=config.seed)
    model = model_for(pipe)
    with torch.no_grad():
        latents = torch.cat(
            [model.encode_images(list(images[i : i + 256])) for i in range(0, len(images), 256)]
        )
        unique = sorted(set(prompts))
        conditions = model.encode_prompts(unique)
    prompt_rows = torch.tensor([unique.index(p) for p in prompts])
    denoiser = model.denoiser.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / config.warmup)
    )
    ema = EMAModel(denoiser.parameters(), decay=config.ema_decay)
    loss_config = FinetuneConfig(timestep_range=(0, 1000), flow_times="logit-normal")
    start, losses = _resume(folder, denoiser, optimizer, schedule, ema)
    started = time.perf_counter()
    for step in (
        bar := tqdm(
            range(start, config.steps), desc=f"train {family}", initial=start, total=config.steps
        )
    ):
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        rows = torch.randint(len(latents), (config.batch_size,), generator=generator)
        keep = torch.rand(config.batch_size, generator=generator) >= DROP_PROMPT
        batch = {
            key: torch.where(
                keep.view(-1, *[1] * (value.dim() - 1)),
                value[prompt_rows[rows]],
                conditions.without[key].expand(config.batch_size, *value.shape[1:]),
            )
            for key, value in conditions.with_prompt.items()
        }
        loss = loss_on_batch(model, latents[rows], batch, loss_config, generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        ema.step(denoiser.parameters())
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % config.checkpoint_every == 0:
            _checkpoint(folder, denoiser, optimizer, schedule, ema, step + 1, losses)
    ema.copy_to(denoiser.parameters())
    denoiser.eval().requires_grad_(False)
    partial = out / f".{family}.partial"
    models.save(pipe, partial)
    card = {
        "family": family,
        "config": asdict(config),
        "final_loss_last_200": float(np.mean(losses[-200:])),
        "train_seconds_this_run": round(time.perf_counter() - started, 1),
        "losses_every_50": [float(np.mean(losses[i : i + 50])) for i in range(0, len(losses), 50)],
    }
    (partial / "training.json").write_text(json.dumps(card, indent=1))
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    if folder.exists():
        folder.rmdir()
    partial.replace(folder)
    return folder


def _checkpoint(folder: Path, denoiser, optimizer, schedule, ema, step: int, losses) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "denoiser": denoiser.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "ema": ema.state_dict(),
        "step": step,
        "losses": losses,
        "rng": torch.get_rng_state(),
    }
    partial = folder / "checkpoint.pt.partial"
    torch.save(state, partial)
    partial.replace(folder / "checkpoint.pt")


def _resume(folder: Path, denoiser, optimizer, schedule, ema) -> tuple[int, list[float]]:
    path = folder / "checkpoint.pt"
    if not path.exists():
        return 0, []
    state = torch.load(path, weights_only=False)
    denoiser.load_state_dict(state["denoiser"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng"])
    return state["step"], list(state["losses"])
