"""t2i: prompt-image mutual information for diffusers text-to-image pipelines (nats).

>>> import t2i
>>> pipe = t2i.load_pipeline("path/to/stable-diffusion-2-1-base")
>>> t2i.score(pipe, "a red cube", image).values()     # point-wise MI per image
>>> gen = t2i.generate(pipe, ["a red cube"], seeds=[0])  # images and their MI, no extra cost

``miest.pointwise(pipe, prompt, image)`` accepts pipelines through the entry point
``t2i.score:POINTWISE`` (``pyproject.toml``), without importing ``t2i`` first.
"""

from t2i.families import FAMILIES, DiffusersModel, SD3Model, SDModel, SDXLModel, model_for
from t2i.generation import Generation, generate
from t2i.loading import as_model, load_pipeline
from t2i.score import score

__all__ = [
    "FAMILIES",
    "DiffusersModel",
    "Generation",
    "SD3Model",
    "SDModel",
    "SDXLModel",
    "as_model",
    "generate",
    "load_pipeline",
    "model_for",
    "score",
]
