"""Guidance-scale sweep: the same prompts and seeds at several scales, as image grids.

For each scale, ``out/guidance-<scale>.png`` is a grid (a row per prompt, a column per
seed) and ``out/sweep.csv`` lists every image's point-wise MI, to find the alignment /
quality "sweet spot" of a (fine-tuned) model by eye and by number.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miest.files import save_image_atomically, write_atomically
from t2i.generation import generate
from t2i.loading import as_model


def grid(images: list, columns: int):
    """Tile PIL images of one size into a grid, row by row."""
    from PIL import Image

    width, height = images[0].size
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * width, rows * height), "white")
    for i, image in enumerate(images):
        canvas.paste(image, ((i % columns) * width, (i // columns) * height))
    return canvas


def guidance_sweep(
    model,
    prompts: list[str],
    scales: list[float],
    seeds: list[int],
    out: str | Path,
    batch_size: int = 8,
    **options,
) -> pd.DataFrame:
    """Images for every (scale, prompt, seed) with their MI, generated ``batch_size`` at a
    time (each image is seeded on its own); grids and a CSV in ``out``."""
    if not prompts or not scales or not seeds:
        raise ValueError("need at least one prompt, one scale and one seed")
    model, out, rows = as_model(model), Path(out), []
    pairs = [(p, s) for p in prompts for s in seeds]
    for scale in scales:
        images, mi = [], []
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            result = generate(
                model,
                [p for p, _ in batch],
                [s for _, s in batch],
                guidance_scale=scale,
                **options,
            )
            images += list(result.images)
            mi += list(result.mi)
        save_image_atomically(out / f"guidance-{scale:g}.png", grid(images, len(seeds)))
        rows += [
            {"guidance_scale": scale, "prompt": p, "seed": s, "mi": m}
            for (p, s), m in zip(pairs, mi, strict=True)
        ]
    frame = pd.DataFrame(rows)
    write_atomically(out / "sweep.csv", frame.to_csv(index=False))
    return frame
