"""Score generated images with pluggable scorers: ``scorer(prompts, images) -> (n,) array``.

- ``MIScorer``: the point-wise prompt-image MI of a pipeline (nats; ``t2i.score``).
- ``CLIPScorer``: CLIP score ``100 * max(cos(image, text), 0)`` with local CLIP weights
  (a folder ``CLIPModel.from_pretrained`` reads; nothing is downloaded).

T2I-CompBench's BLIP-VQA or UniDet plug in the same way: any callable with that
signature. ``evaluate`` scores an image folder with ``metadata.jsonl`` (``file_name``,
``text``), such as a fine-tuning set, and writes ``scores.csv``.

Set-level image quality against reference images (``set_metrics``), on CLIP image
embeddings from the same local folder:

- ``cmmd``: CMMD (Jayasumana et al., 2024), the unbiased squared MMD with a Gaussian RBF
  kernel of bandwidth 10, times 1000;
- ``fd_clip``: the Frechet distance of torchmetrics' ``FrechetInceptionDistance`` with CLIP
  features. (Inception-feature FID needs torch-fidelity and torchvision, which do not
  install beside this project's CPU torch.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from miest.files import write_atomically
from miest.integrate import POINTWISE_FORM
from t2i.dataset import read_dataset
from t2i.loading import as_model, default_device
from t2i.score import score

Scorer = Callable[[list[str], list], np.ndarray]


class MIScorer:
    """Point-wise MI (nats) of each (prompt, image) under ``model``."""

    def __init__(self, model, n_draws: int = 32, form: str = POINTWISE_FORM, seed: int = 0):
        self.model, self.n_draws, self.form, self.seed = as_model(model), n_draws, form, seed
        self.name = f"mi_{form}"

    def __call__(self, prompts: list[str], images: list) -> np.ndarray:
        result = score(self.model, prompts, images, n_draws=self.n_draws, seed=self.seed)
        return result.values(self.form)


class CLIPImageFeatures(torch.nn.Module):
    """CLIP image embeddings (n, d) of uint8 image batches (n, 3, h, w): a torchmetrics
    feature extractor."""

    def __init__(self, scorer: CLIPScorer):
        super().__init__()
        self.scorer = scorer
        self.num_features = scorer.model.config.projection_dim

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = [image.permute(1, 2, 0).cpu().numpy() for image in images]
        inputs = self.scorer.processor(images=pixels, return_tensors="pt").to(self.scorer.device)
        model = self.scorer.model
        pooled = model.vision_model(pixel_values=inputs["pixel_values"]).pooler_output
        return model.visual_projection(pooled).double().cpu()


class CLIPScorer:
    """CLIP score with the CLIP model saved in ``folder`` (``save_pretrained`` layout)."""

    name = "clip_score"

    def __init__(self, folder: str | Path, device: str | torch.device | None = None):
        from transformers import CLIPModel, CLIPProcessor

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"no CLIP model at {folder}: expected a folder with config.json and weights "
                "(CLIPModel.save_pretrained); nothing is downloaded"
            )
        self.device = default_device() if device is None else device
        self.model = CLIPModel.from_pretrained(folder).to(self.device).eval()
        self.processor = CLIPProcessor.from_pretrained(folder)

    @torch.no_grad()
    def __call__(self, prompts: list[str], images: list) -> np.ndarray:
        inputs = self.processor(
            text=prompts, images=images, return_tensors="pt", padding=True, truncation=True
        ).to(self.device)
        output = self.model(**inputs)
        image = torch.nn.functional.normalize(output.image_embeds, dim=-1)
        text = torch.nn.functional.normalize(output.text_embeds, dim=-1)
        return (100 * (image * text).sum(-1).clamp_min(0)).cpu().numpy()


def evaluate(folder: str | Path, scorers: list[Scorer], batch_size: int = 16) -> pd.DataFrame:
    """Scores of every image in an image folder, one column per scorer; also ``scores.csv``."""
    from PIL import Image

    if not scorers:
        raise ValueError("give at least one scorer")
    paths, prompts, _ = read_dataset(folder)
    frame = pd.DataFrame({"file_name": [p.name for p in paths], "text": prompts})
    for scorer in scorers:
        values = []
        for start in range(0, len(paths), batch_size):
            chunk = slice(start, start + batch_size)
            images = [Image.open(p).convert("RGB") for p in paths[chunk]]
            values.append(np.asarray(scorer(prompts[chunk], images), dtype=float))
        frame[getattr(scorer, "name", type(scorer).__name__)] = np.concatenate(values)
    write_atomically(Path(folder) / "scores.csv", frame.to_csv(index=False))
    return frame


def _uint8(images: list) -> torch.Tensor:
    from PIL import Image

    arrays = [
        np.asarray(Image.open(i).convert("RGB") if isinstance(i, (str, Path)) else i)
        for i in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(torch.uint8)


def cmmd(reference: torch.Tensor, generated: torch.Tensor, bandwidth: float = 10.0) -> float:
    """CMMD: unbiased squared MMD (Gaussian RBF kernel) of embeddings (n, d), (m, d), x 1000."""
    if len(reference) < 2 or len(generated) < 2:
        raise ValueError("CMMD needs at least two images per set")
    gamma = 1.0 / (2 * bandwidth**2)

    def mean_kernel(a, b, same):
        k = torch.exp(-gamma * torch.cdist(a, b).pow(2))
        if same:
            return (k.sum() - k.diagonal().sum()) / (len(a) * (len(a) - 1))
        return k.mean()

    value = (
        mean_kernel(reference, reference, True)
        + mean_kernel(generated, generated, True)
        - 2 * mean_kernel(reference, generated, False)
    )
    return float(1000 * value)


def set_metrics(reference: list, generated: list, clip_folder: str | Path) -> dict[str, float]:
    """CMMD and CLIP-feature Frechet distance between two image sets (PIL images, arrays
    (h, w, 3) uint8, or paths), from a local CLIP model."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    features = CLIPImageFeatures(CLIPScorer(clip_folder))
    real, fake = _uint8(reference), _uint8(generated)
    fid = FrechetInceptionDistance(feature=features, reset_real_features=True)
    embeddings = {}
    for name, images in (("real", real), ("fake", fake)):  # CLIP sees 32 images at a time
        batches = images.split(32)
        for batch in batches:
            fid.update(batch, real=name == "real")
        embeddings[name] = torch.cat([features(batch) for batch in batches])
    return {
        "cmmd": cmmd(embeddings["real"], embeddings["fake"]),
        "fd_clip": float(fid.compute()),
    }
