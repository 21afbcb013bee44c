"""One class per diffusers text-to-image family: its denoiser on a miest path.

- :class:`SDModel`   ``StableDiffusionPipeline`` (SD-2.1 style): UNet, discrete DDPM
  schedule, epsilon or v prediction (``miest.paths.DiscreteSchedulePath``, timestep
  ``t (T - 1)``);
- :class:`SDXLModel` ``StableDiffusionXLPipeline``: as SD plus the pooled text embedding
  and the added time ids;
- :class:`SD3Model`  ``StableDiffusion3Pipeline``: MMDiT transformer, flow matching.
  diffusers writes ``x_sigma = (1 - sigma) x + sigma eps`` and predicts ``v = eps - x``;
  with ``t = 1 - sigma`` this is ``miest.paths.LinearFlowPath`` and the velocity
  ``u = -v`` (conversions in ``miest.paths``). The model's timestep is ``1000 sigma``.
  The schedule's shift only changes how generation spaces its steps, not the MI integral.

A model encodes images to latents and prompts to conditions, and calls the denoiser on
a batch with and without the prompt in one network evaluation. Its class attributes
hold the family's defaults: the time sampler for scoring, and the fine-tuning learning
rate, steps and LoRA target modules of the papers (MI-TUNE Table 8; RFMI: lr 5e-6,
2,000 steps). :func:`model_for` picks the class from the pipeline's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from miest.paths import DiscreteSchedulePath, GaussianPath, LinearFlowPath

if TYPE_CHECKING:
    from t2i.finetune import FinetuneConfig

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
MMDIT_TARGETS = (
    *UNET_TARGETS,
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)


@dataclass
class Conditions:
    """Text conditions of ``n`` prompts (``with_prompt``) and of the empty prompt
    (``without``, batch 1), as the pipeline's classifier-free guidance uses them."""

    with_prompt: dict[str, Tensor]
    without: dict[str, Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.with_prompt.values())))

    def subset(self, rows: Tensor) -> Conditions:
        """The conditions of the prompts ``rows`` (the empty prompt's unchanged)."""
        return Conditions(
            {key: value[rows] for key, value in self.with_prompt.items()}, self.without
        )

    def batch(self, rows: Tensor) -> dict[str, Tensor]:
        """Denoiser keyword arguments for ``[without] * len(rows) + [with_prompt[rows]]``."""
        return {
            key: torch.cat([self.without[key].expand(len(rows), *value.shape[1:]), value[rows]])
            for key, value in self.with_prompt.items()
        }


class DiffusersModel:
    """A diffusers pipeline's denoiser on miest's path; subclasses are the families."""

    family: ClassVar[str]
    pipeline_class: ClassVar[str]
    denoiser_name: ClassVar[str]  # the pipeline component that is denoised through
    time_sampler: ClassVar[str]  # the default time sampler of ``t2i.score``
    learning_rate: ClassVar[float]  # fine-tuning defaults (``t2i.finetune``)
    steps: ClassVar[int]
    lora_targets: ClassVar[tuple[str, ...]]

    path: GaussianPath
    parametrisation: str

    def __init__(self, pipe):
        self.pipe = pipe
        self.denoiser = getattr(pipe, self.denoiser_name, None)
        if self.denoiser is None:
            raise ValueError(f"{type(pipe).__name__} has no {self.denoiser_name}")
        self.text_kwargs: dict = {}  # extra pipeline keyword arguments for text

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def name(self) -> str:
        """The base model's name or path, else the pipeline's class name."""
        pipe = self.pipe
        return str(pipe.config.get("_name_or_path", "") or type(pipe).__name__)

    def to(self, device: torch.device) -> DiffusersModel:
        """Move the pipeline to ``device``, silence its progress bar; returns ``self``."""
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        return self

    # --- the family's conversions and inputs (subclasses) ------------------------------
    def timestep(self, t: Tensor) -> Tensor:
        """The model's timestep input for path times ``t`` (n,)."""
        raise NotImplementedError

    def time(self, timestep: Tensor) -> Tensor:
        """Path times for the model's timesteps (inverse of ``timestep``)."""
        raise NotImplementedError

    def to_path_output(self, output: Tensor) -> Tensor:
        """The model's output in the path's parametrisation."""
        return output

    def training_times(self, n: int, generator, config: FinetuneConfig) -> Tensor:
        """Path times (float64, (n,)) of one fine-tuning batch, drawn as the family trains."""
        raise NotImplementedError

    def _encode_prompts(self, prompts: list[str]) -> Conditions:
        raise NotImplementedError

    def __call__(self, x_t: Tensor, timestep: Tensor, conditions: dict[str, Tensor]) -> Tensor:
        """One network evaluation on a batch, returning the model's raw output."""
        raise NotImplementedError

    def _latent_multiple(self) -> int:
        return 1

    # --- shared by every family --------------------------------------------------------
    def encode_prompts(
        self, prompts: list[str], grad: bool = False, batch_size: int = 32
    ) -> Conditions:
        """Conditions for ``prompts`` and for the empty (unconditional) prompt, encoded
        ``batch_size`` prompts at a time; with ``grad`` the text encoders' graph is kept
        (for training them)."""
        if not prompts:
            raise ValueError("no prompts given")
        with torch.set_grad_enabled(grad):
            parts = [
                self._encode_prompts(prompts[i : i + batch_size])
                for i in range(0, len(prompts), batch_size)
            ]
        with_prompt = {
            key: torch.cat([part.with_prompt[key] for part in parts])
            for key in parts[0].with_prompt
        }
        return Conditions(with_prompt, parts[0].without)

    @torch.no_grad()
    def encode_images(self, images, batch_size: int = 8) -> Tensor:
        """Latents (n, c, h, w) of images: PIL images, paths, or arrays (h, w, 3) in [0, 1]
        (or uint8), one or a list, ``batch_size`` at a time through the VAE posterior mean
        (deterministic)."""
        images = _as_list(images)
        return torch.cat(
            [self._encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        )

    def _encode(self, images: list) -> Tensor:
        pixels = torch.from_numpy(np.stack([_as_array(image) for image in images]))
        pixels = (pixels.permute(0, 3, 1, 2) * 2.0 - 1.0).to(self.device, self.pipe.vae.dtype)
        size = self.pipe.vae_scale_factor * self._latent_multiple()
        if pixels.shape[-1] % size or pixels.shape[-2] % size:
            raise ValueError(
                f"image size {tuple(pixels.shape[-2:])} must be a multiple of {size} for this model"
            )
        vae = self.pipe.vae
        # like diffusers' pipelines: a VAE that overflows in float16 (SDXL's) encodes in float32
        upcast = vae.dtype == torch.float16 and vae.config.get("force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            latents = vae.encode(pixels.to(vae.dtype)).latent_dist.mean
        finally:
            if upcast:
                vae.to(torch.float16)
        config = vae.config
        shift = config.get("shift_factor") or 0.0
        return ((latents - shift) * config.scaling_factor).to(self.dtype)

    def predict(self, conditions: Conditions):
        """miest's ``predict(x_t, t, rows) -> (with prompt, without)`` in the path's
        parametrisation, both halves from one network call."""

        @torch.no_grad()
        def predict(x_t: Tensor, t: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
            batch = torch.cat([x_t, x_t]).to(self.device, self.dtype)
            # float32, not the model's dtype: bfloat16 would turn timestep 777.3 into 776
            timestep = self.timestep(t.to(torch.float64)).repeat(2).to(self.device, torch.float32)
            output = self(batch, timestep, conditions.batch(rows.to(self.device)))
            output = self.to_path_output(output).to(x_t.device, x_t.dtype)
            without, with_prompt = output.chunk(2)
            return with_prompt, without

        return predict


class SDModel(DiffusersModel):
    """SD-2.1-style UNet on its discrete DDPM schedule, epsilon or v prediction."""

    family = "sd"
    pipeline_class = "StableDiffusionPipeline"
    denoiser_name = "unet"
    time_sampler = "uniform"  # MI-TUNE draws timesteps uniformly
    learning_rate = 1e-4
    steps = 300
    lora_targets = UNET_TARGETS

    def __init__(self, pipe):
        super().__init__(pipe)
        prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction_type {prediction!r}")
        self.parametrisation = "eps" if prediction == "epsilon" else "v"
        self.path = DiscreteSchedulePath(pipe.scheduler.alphas_cumprod)

    def timestep(self, t: Tensor) -> Tensor:
        return t * (self.path.steps - 1)

    def time(self, timestep: Tensor) -> Tensor:
        return timestep.to(torch.float64) / (self.path.steps - 1)

    def training_times(self, n: int, generator, config: FinetuneConfig) -> Tensor:
        """Integer timesteps from ``U(config.timestep_range)`` (MI-TUNE: ``U(500, 1000)``)."""
        lo, hi = config.timestep_range
        return self.time(torch.randint(lo, min(hi, self.path.steps), (n,), generator=generator))

    def _encode_prompts(self, prompts: list[str]) -> Conditions:
        embeds, empty = self.pipe.encode_prompt(prompts, self.device, 1, True)
        return Conditions({"encoder_hidden_states": embeds}, {"encoder_hidden_states": empty[:1]})

    def __call__(self, x_t: Tensor, timestep: Tensor, conditions: dict[str, Tensor]) -> Tensor:
        kwargs = dict(conditions)
        hidden = kwargs.pop("encoder_hidden_states")
        return self.denoiser(
            x_t,
            timestep,
            encoder_hidden_states=hidden,
            added_cond_kwargs=self._added_conditions(x_t, kwargs),
            return_dict=False,
        )[0]

    def _added_conditions(self, x_t: Tensor, conditions: dict[str, Tensor]) -> dict | None:
        return None


class SDXLModel(SDModel):
    """SDXL: the SD UNet plus the pooled text embedding and the added time ids."""

    family = "sdxl"
    pipeline_class = "StableDiffusionXLPipeline"

    def _encode_prompts(self, prompts: list[str]) -> Conditions:
        embeds, empty, pooled, empty_pooled = self.pipe.encode_prompt(
            prompt=prompts, device=self.device, num_images_per_prompt=1
        )
        return Conditions(
            {"encoder_hidden_states": embeds, "text_embeds": pooled},
            {"encoder_hidden_states": empty[:1], "text_embeds": empty_pooled[:1]},
        )

    def _added_conditions(self, x_t: Tensor, conditions: dict[str, Tensor]) -> dict:
        height, width = (side * self.pipe.vae_scale_factor for side in x_t.shape[-2:])
        ids = torch.tensor([height, width, 0, 0, height, width], dtype=x_t.dtype)
        time_ids = ids.to(x_t.device).expand(len(x_t), 6)
        return {"text_embeds": conditions["text_embeds"], "time_ids": time_ids}


class SD3Model(DiffusersModel):
    """SD3 (MMDiT) with flow matching: ``LinearFlowPath``, velocity ``u = -v``."""

    family = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    denoiser_name = "transformer"
    time_sampler = "lambert-w"  # RFMI importance-samples flow time
    learning_rate = 5e-6
    steps = 2000
    lora_targets = MMDIT_TARGETS

    def __init__(self, pipe):
        super().__init__(pipe)
        scheduler = type(pipe.scheduler).__name__
        if scheduler != "FlowMatchEulerDiscreteScheduler":
            raise ValueError(
                f"{type(pipe).__name__} has scheduler {scheduler}; only flow matching "
                "(FlowMatchEulerDiscreteScheduler) is supported for SD3"
            )
        self.path = LinearFlowPath()
        self.parametrisation = "velocity"
        self.train_timesteps = pipe.scheduler.config.num_train_timesteps
        # SD3 pads its third encoder's tokens to 256 unless told otherwise; a shorter
        # tokenizer (the toy world's) sets a shorter length
        tokenizer_3 = getattr(pipe, "tokenizer_3", None)
        length = tokenizer_3.model_max_length if tokenizer_3 is not None else 256
        self.text_kwargs = {"max_sequence_length": length} if length < 256 else {}

    def timestep(self, t: Tensor) -> Tensor:
        return (1.0 - t) * self.train_timesteps

    def time(self, timestep: Tensor) -> Tensor:
        return 1.0 - timestep.to(torch.float64) / self.train_timesteps

    def to_path_output(self, output: Tensor) -> Tensor:
        return -output  # diffusers' v = eps - x is minus miest's velocity

    def training_times(self, n: int, generator, config: FinetuneConfig) -> Tensor:
        """``t = 1 - sigma``, ``sigma`` logit-normal (diffusers' SD3 recipe) or uniform."""
        if config.flow_times == "uniform":
            sigma = torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            sigma = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float64))
        return 1.0 - sigma

    def _encode_prompts(self, prompts: list[str]) -> Conditions:
        embeds, empty, pooled, empty_pooled = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            num_images_per_prompt=1,
            **self.text_kwargs,
        )
        return Conditions(
            {"encoder_hidden_states": embeds, "pooled_projections": pooled},
            {"encoder_hidden_states": empty[:1], "pooled_projections": empty_pooled[:1]},
        )

    def __call__(self, x_t: Tensor, timestep: Tensor, conditions: dict[str, Tensor]) -> Tensor:
        return self.denoiser(hidden_states=x_t, timestep=timestep, return_dict=False, **conditions)[
            0
        ]

    def _latent_multiple(self) -> int:
        return self.denoiser.config.patch_size


FAMILIES: dict[str, type[DiffusersModel]] = {
    model.family: model for model in (SDModel, SDXLModel, SD3Model)
}
PIPELINES: dict[str, type[DiffusersModel]] = {
    model.pipeline_class: model for model in FAMILIES.values()
}


def model_for(pipe) -> DiffusersModel:
    """The family model of ``pipe``, chosen by its pipeline class (or a base class of it)."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in PIPELINES:
            return PIPELINES[cls.__name__](pipe)
    raise ValueError(
        f"unsupported pipeline class {type(pipe).__name__}; supported: {sorted(PIPELINES)}"
    )


def _as_list(items) -> list:
    if isinstance(items, (list, tuple)):
        if not items:
            raise ValueError("no images given")
        return list(items)
    if isinstance(items, np.ndarray) and items.ndim == 4:
        return list(items)
    return [items]


def _as_array(image) -> np.ndarray:
    """An image as float32 (h, w, 3) in [0, 1]."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        if not Path(image).exists():
            raise FileNotFoundError(f"no image at {image}")
        image = Image.open(image)
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"an image must be (height, width, 3), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError("float images must be finite and within [0, 1]")
    return array
