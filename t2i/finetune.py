"""MI-TUNE / RFMI-FT fine-tuning: LoRA or DoRA adapters trained with the model's own loss.

The training pairs are a fine-tuning set folder (``t2i.selection``: images plus
``metadata.jsonl`` with ``file_name`` and ``text``). Images are encoded once with the
frozen VAE; prompts once with the frozen text encoders. Each step draws a batch, a
time and noise, and regresses the denoiser's output on its own training target,
written through miest's paths (``miest.paths.training_target``):

- SD-2.1 / SDXL: epsilon- or v-MSE at integer timesteps ``U(timestep_range)``
  (MI-TUNE Table 8: ``U(500, 1000)``);
- SD3: flow-matching velocity MSE, ``sigma`` from a logit-normal density (diffusers'
  SD3 recipe) or uniform.

Defaults follow the papers (MI-TUNE Table 8; RFMI: lr 5e-6, 2,000 steps): DoRA, rank
and alpha 32 on the attention and feed-forward projections, AdamW (0.9, 0.999, weight
decay 1e-2), constant learning rate, gradient clipping 1.0, effective batch through
gradient accumulation. ``accelerate`` places the model, runs mixed precision
(``mixed_precision``, one setting per process) and, under ``accelerate launch``,
averages the adapter's gradients over processes (each draws its own batches). Every
random draw of step ``s`` comes from a generator seeded with ``(seed, s)``, so a resumed
run reproduces the uninterrupted one.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from miest.files import write_atomically
from miest.paths import training_target
from t2i.dataset import read_dataset
from t2i.families import Conditions, DiffusersModel, model_for
from t2i.loading import as_model

INFO = "t2i_adapter.json"
WEIGHTS = "pytorch_lora_weights.safetensors"
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")  # CLIP encoders; SD3's T5 stays frozen


@dataclass
class FinetuneConfig:
    """Hyper-parameters; ``None`` means the family's default from the papers (the class
    attributes ``learning_rate``, ``steps`` and ``lora_targets`` of ``t2i.families``)."""

    adapter: str = "dora"  # "dora" or "lora"
    rank: int = 32
    alpha: float = 32.0
    target_modules: tuple[str, ...] | None = None
    learning_rate: float | None = None
    steps: int | None = None
    batch_size: int = 8
    gradient_accumulation: int = 50  # 8 x 50 = 400, MI-TUNE's batch
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2
    timestep_range: tuple[int, int] = (500, 1000)  # SD/SDXL; (0, 1000) for the full range
    flow_times: str = "logit-normal"  # SD3: "logit-normal" or "uniform"
    checkpoint_every: int = 50
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (through accelerate)
    # LoRA on the CLIP text encoders too (LoRA even with adapter="dora": diffusers'
    # load_lora_weights drops text encoders' DoRA magnitudes, measured on 0.42.1)
    train_text_encoder: bool = False
    gradient_checkpointing: bool = False  # less memory (1024² models), same result, slower
    # share of training rows whose prompt is replaced by the empty prompt, as in the base
    # models' training: keeps the unconditional branch that guidance uses from drifting
    prompt_dropout: float = 0.0
    seed: int = 0

    def resolved(self, model: DiffusersModel | type[DiffusersModel]) -> FinetuneConfig:
        """A copy with every ``None`` replaced by the defaults of ``model``'s family, checked."""
        if self.adapter not in ("dora", "lora"):
            raise ValueError(f"adapter must be 'dora' or 'lora', got {self.adapter!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(
                f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}"
            )
        if self.flow_times not in ("logit-normal", "uniform"):
            raise ValueError(f"unknown flow_times {self.flow_times!r}")
        lo, hi = self.timestep_range
        if not 0 <= lo < hi <= 1000:
            raise ValueError(f"timestep_range must satisfy 0 <= lo < hi <= 1000, got {lo, hi}")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}")
        if min(self.rank, self.batch_size, self.gradient_accumulation, self.checkpoint_every) < 1:
            raise ValueError(
                "rank, batch_size, gradient_accumulation, checkpoint_every must be >= 1"
            )
        targets = self.target_modules or model.lora_targets
        return FinetuneConfig(
            **(
                asdict(self)
                | {
                    "target_modules": tuple(targets),
                    "learning_rate": self.learning_rate or model.learning_rate,
                    "steps": self.steps or model.steps,
                }
            )
        )


def add_adapter(model: DiffusersModel, config: FinetuneConfig) -> None:
    """Freeze the pipeline and add a LoRA/DoRA adapter to its denoiser."""
    from peft import LoraConfig

    pipe = model.pipe
    for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.requires_grad_(False)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        target_modules=list(config.target_modules),
        use_dora=config.adapter == "dora",
        init_lora_weights="gaussian",
    )
    try:
        with torch.random.fork_rng(devices=[]):  # the initial A matrices depend on the seed only
            torch.manual_seed(config.seed)
            model.denoiser.add_adapter(lora)
            for _, encoder in trained_encoders(model, config):
                encoder.add_adapter(
                    LoraConfig(
                        r=config.rank,
                        lora_alpha=config.alpha,
                        target_modules=list(TEXT_TARGETS),
                        init_lora_weights="gaussian",
                    )
                )
    except ValueError as error:
        raise ValueError(f"cannot add the adapter to the {model.family} model: {error}") from None


def trained_encoders(model: DiffusersModel, config: FinetuneConfig) -> list[tuple[str, object]]:
    """``(name, module)`` of the text encoders that get adapters (none by default)."""
    if not config.train_text_encoder:
        return []
    found = [(name, getattr(model.pipe, name, None)) for name in TEXT_ENCODERS]
    return [(name, module) for name, module in found if module is not None]


def _trained_modules(model: DiffusersModel, config: FinetuneConfig) -> dict[str, object]:
    return {model.denoiser_name: model.denoiser, **dict(trained_encoders(model, config))}


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def drop_prompts(texts: Conditions, rate: float, generator) -> dict[str, torch.Tensor]:
    """Denoiser keyword arguments for the batch ``texts``, each row's prompt replaced by
    the empty prompt with probability ``rate`` (no draw at all when ``rate`` is 0)."""
    if rate == 0:
        return texts.with_prompt
    dropped = torch.rand(len(texts), generator=generator) < rate
    out = {}
    for key, value in texts.with_prompt.items():
        mask = dropped.to(value.device).view(-1, *[1] * (value.dim() - 1))
        out[key] = torch.where(mask, texts.without[key].expand_as(value), value)
    return out


def loss_on_batch(
    model: DiffusersModel, x: torch.Tensor, conditions: dict, config: FinetuneConfig, generator
) -> torch.Tensor:
    """The model's own loss (MSE to its training target) on latents ``x`` (b, c, h, w) with
    their text ``conditions`` (denoiser keyword arguments, batch b)."""
    # drawn on the CPU generator, so a seed gives the same draws on every device
    t = model.training_times(len(x), generator, config).to(x.device)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    path, parametrisation = model.path, model.parametrisation
    x_t = path.noisy(x.double(), eps.double(), t).to(x.dtype)
    target = training_target(x.double(), eps.double(), t, path, parametrisation).to(x.dtype)
    timestep = model.timestep(t).to(torch.float32)  # float32: see DiffusersModel.predict
    output = model.to_path_output(model(x_t.to(model.dtype), timestep, conditions))
    return torch.nn.functional.mse_loss(output.float(), target.float())


def finetune(
    model,
    dataset: str | Path,
    out: str | Path,
    config: FinetuneConfig | None = None,
    progress: bool = True,
) -> Path:
    """Train an adapter on ``dataset``; checkpoints in ``out/checkpoints`` (resumed if
    present); the final adapter in ``out`` for ``pipe.load_lora_weights(out)``."""
    from accelerate import Accelerator
    from diffusers.training_utils import cast_training_params

    model = as_model(model)
    config = (config or FinetuneConfig()).resolved(model)
    images, prompts, rows = read_dataset(dataset)
    out = Path(out)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    model.to(accelerator.device)
    with torch.no_grad():
        latents = model.encode_images(images).float()
        conditions = model.encode_prompts(prompts)
    add_adapter(model, config)
    modules = _trained_modules(model, config)
    # adapters train in float32 even on a half-precision model: peft creates them in the
    # model's dtype, where AdamW's small updates vanish and fp16 gradients cannot be unscaled
    cast_training_params(list(modules.values()), torch.float32)
    if config.gradient_checkpointing:
        model.denoiser.enable_gradient_checkpointing()
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = accelerator.prepare(
        torch.optim.AdamW(
            params, lr=config.learning_rate, betas=(0.9, 0.999), weight_decay=config.weight_decay
        )
    )
    start, losses = _resume(modules, optimizer, out)
    for module in modules.values():
        module.train()
    shown = progress and accelerator.is_local_main_process
    bar = tqdm(range(start, config.steps), desc="fine-tune", disable=not shown)
    for step in bar:
        # each process draws its own batches; all draws of a step depend on (seed, step) only
        generator = _step_generator(
            config.seed, step * accelerator.num_processes + accelerator.process_index
        )
        optimizer.zero_grad()
        total = 0.0
        for _ in range(config.gradient_accumulation):
            batch = torch.randint(len(images), (config.batch_size,), generator=generator)
            if config.train_text_encoder:  # encode again, through the adapted encoders
                texts = model.encode_prompts([prompts[i] for i in batch], grad=True)
            else:
                texts = conditions.subset(batch)
            batch_conditions = drop_prompts(texts, config.prompt_dropout, generator)
            with accelerator.autocast():
                loss = loss_on_batch(model, latents[batch], batch_conditions, config, generator)
            accelerator.backward(loss / config.gradient_accumulation)
            total = total + loss.detach() / config.gradient_accumulation  # no host sync
        total = float(total)
        if not math.isfinite(total):
            raise FloatingPointError(f"loss {total} at step {step}: lower the learning rate")
        if accelerator.num_processes > 1:  # data parallel: average the adapter's gradients
            for param in params:
                param.grad = accelerator.reduce(param.grad, reduction="mean")
        accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        losses.append(total)
        bar.set_postfix(loss=f"{total:.4f}")
        last = step + 1 == config.steps
        if accelerator.is_main_process and ((step + 1) % config.checkpoint_every == 0 or last):
            _checkpoint(modules, optimizer, out, step + 1, losses)
    for module in modules.values():
        module.eval()
    if accelerator.is_main_process:
        save_adapter(model, modules, out)
        _write_card(model, config, dataset, rows, losses, out)
    accelerator.wait_for_everyone()
    return out


def save_adapter(model: DiffusersModel, modules: dict[str, object], out: Path) -> None:
    """Save in the format ``pipe.load_lora_weights(out)`` reads, with the LoRA configs.

    ``modules``: ``{"unet" or "transformer": denoiser, "text_encoder": ..., ...}``."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    arguments = {}
    for name, module in modules.items():
        state = get_peft_model_state_dict(module)
        if name != "transformer":  # UNets and text encoders in diffusers' key format
            state = convert_state_dict_to_diffusers(state)
        arguments[f"{name}_lora_layers"] = state
        arguments[f"{name}_lora_adapter_metadata"] = module.peft_config["default"].to_dict()
    type(model.pipe).save_lora_weights(out, **arguments)
    write_adapter_info(
        out, {"family": model.family, "base_model": model.name, "denoiser": _denoiser_shape(model)}
    )


def write_adapter_info(folder: Path, info: dict) -> None:
    """The adapter's sidecar ``t2i_adapter.json``: family, base model and denoiser shape,
    which ``load_adapter`` checks against the pipeline it loads into."""
    write_atomically(Path(folder) / INFO, json.dumps(info, indent=1))


def read_adapter_info(folder: Path) -> dict:
    """The sidecar of an adapter saved by ``save_adapter`` (a clear error if absent)."""
    path = Path(folder) / INFO
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no adapter from t2i finetune (no {INFO})")
    return json.loads(path.read_text())


def load_adapter(pipe, folder: str | Path) -> None:
    """Load an adapter written by ``finetune`` into ``pipe``, checking it fits the model."""
    folder = Path(folder)
    info = read_adapter_info(folder)
    model = model_for(pipe)
    if info["family"] != model.family or info["denoiser"] != _denoiser_shape(model):
        raise ValueError(
            f"the adapter in {folder} was trained for a {info['family']} model "
            f"({info['base_model']}); this pipeline is a different {model.family} model"
        )
    pipe.load_lora_weights(folder)


def merge_adapters(folders: list[str | Path], out: str | Path, weights=None) -> Path:
    """Weighted arithmetic mean of adapters' parameters (MI-TUNE appendix E.3), saved to
    ``out``. All must come from ``finetune`` on the same base model with the same config."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ValueError("merging needs at least two adapters")
    weights = np.full(len(folders), 1 / len(folders)) if weights is None else np.asarray(weights)
    if len(weights) != len(folders) or not np.isclose(weights.sum(), 1) or (weights < 0).any():
        raise ValueError("weights must be one non-negative number per adapter, summing to 1")
    infos, tensors, headers = [], [], []
    for folder in folders:
        infos.append(read_adapter_info(folder))
        with safe_open(str(folder / WEIGHTS), framework="pt") as f:
            headers.append(f.metadata())
            tensors.append({key: f.get_tensor(key) for key in f.keys()})
    if any(i["denoiser"] != infos[0]["denoiser"] for i in infos) or any(
        t.keys() != tensors[0].keys() or h != headers[0]
        for t, h in zip(tensors, headers, strict=True)
    ):
        raise ValueError("adapters differ in base model, targets or configuration: cannot merge")
    merged = {
        key: sum(float(w) * t[key].double() for w, t in zip(weights, tensors, strict=True)).to(
            tensors[0][key].dtype
        )
        for key in tensors[0]
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(merged, str(out / WEIGHTS), metadata=headers[0])
    write_adapter_info(out, infos[0])
    sources = ", ".join(f"{w:.3g} x `{f}`" for w, f in zip(weights, folders, strict=True))
    write_atomically(out / "README.md", f"# Merged adapter\n\nParameter mean of {sources}.\n")
    return out


def _denoiser_shape(model: DiffusersModel) -> dict:
    """What an adapter depends on: the denoiser's class and its configuration."""
    config = {k: v for k, v in model.denoiser.config.items() if not k.startswith("_")}
    return json.loads(json.dumps({"class": type(model.denoiser).__name__, **config}, default=str))


def _checkpoint(modules: dict, optimizer, out: Path, step: int, losses: list[float]) -> None:
    from peft.utils import get_peft_model_state_dict

    buffer = io.BytesIO()
    adapters = {name: get_peft_model_state_dict(module) for name, module in modules.items()}
    state = {"step": step, "adapters": adapters, "optimizer": optimizer.state_dict()}
    torch.save(state | {"losses": losses}, buffer)
    write_atomically(out / "checkpoints" / "last.pt", buffer.getvalue())


def _resume(modules: dict, optimizer, out: Path) -> tuple[int, list[float]]:
    from peft.utils import set_peft_model_state_dict

    path = out / "checkpoints" / "last.pt"
    if not path.exists():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=False)
    if set(state["adapters"]) != set(modules):
        raise ValueError(
            f"{path} was written with other trained modules: {sorted(state['adapters'])}"
        )
    for name, module in modules.items():
        set_peft_model_state_dict(module, state["adapters"][name])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], list(state["losses"])


def _write_card(
    model: DiffusersModel, config: FinetuneConfig, dataset, rows, losses, out: Path
) -> None:
    mi = np.array([r["mi"] for r in rows if "mi" in r], dtype=float)
    stats = (
        f"MI of the selected images (nats): mean {mi.mean():.3f}, min {mi.min():.3f}, "
        f"max {mi.max():.3f}"
        if len(mi)
        else "no MI recorded in the set"
    )
    settings = asdict(config)
    text = "\n".join(
        [
            f"# {config.adapter.upper()} adapter (miest t2i fine-tune)",
            "",
            f"- base model: `{model.name}` ({model.family}, {type(model.pipe).__name__})",
            f"- data: `{dataset}`: {len(rows)} images, {len({r['text'] for r in rows})} prompts",
            f"- {stats}",
            f"- final training loss: {losses[-1]:.4f}" if losses else "- no training steps",
            "",
            "Load with `pipe.load_lora_weights(folder)`.",
            "",
            "```json",
            json.dumps(settings, indent=2, default=list),
            "```",
            "",
        ]
    )
    write_atomically(out / "README.md", text)
