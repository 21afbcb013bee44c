"""t2i: prompt-image mutual information for diffusers text-to-image pipelines (nats).

>>> import t2i
>>> pipe = t2i.load_pipeline("path/to/stable-diffusion-2-1-base")
>>> t2i.score(pipe, "a red cube", image).values()     # point-wise MI per image
>>> gen = t2i.generate(pipe, ["a red cube"], seeds=[0])  # images and their MI, no extra cost

Importing ``t2i`` also lets ``miest.pointwise(pipe, prompt, image)`` accept pipelines.
"""

from miest.pointwise import register_pointwise
from t2i.adapters import Adapter, detect_family, load_pipeline
from t2i.generation import Generation, generate
from t2i.score import accepts, pointwise, score

register_pointwise(accepts, pointwise)

__all__ = ["Adapter", "Generation", "detect_family", "generate", "load_pipeline", "score"]
