"""Speed of t2i on tiny pipelines: MI-during-generation overhead and ``score`` throughput.

python -m benchmarks.t2i_speed [--family sd sdxl sd3] [--repeats 5] [--device cuda]
python -m benchmarks.t2i_speed --full --device cuda --dtype float16   # GPU, real denoisers

``--full`` times the published denoiser architectures (``t2i.tiny.full_size``: SD-2.1,
SDXL, SD3.5-Medium, random weights) at their native latent sizes; the default times the
tiny pipelines, where the denoiser is so cheap that any fixed cost looks large.
Prints, per family, the median wall time of plain generation and of generation with
MI (same prompts, seeds and steps; overhead in percent, target < 2%), and the
throughput of ``t2i.score`` in images per second at a fixed number of draws.
Timings are medians over ``--repeats`` interleaved runs after one warm-up run each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from t2i import generate, score, tiny
from t2i.families import model_for
from t2i.loading import as_dtype

PROMPTS = ["a red circle and a blue square", "three green triangles"] * 4


def _median_seconds(functions, repeats: int) -> list[float]:
    """Median wall time of each function; runs are interleaved so drift hits all alike."""
    for function in functions:
        function()  # warm-up
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, spent in zip(functions, times, strict=True):
            _synchronize()
            start = time.perf_counter()
            function()
            _synchronize()  # GPU work is asynchronous: wait for it before reading the clock
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(
    family: str,
    repeats: int,
    device: str,
    steps: int,
    size: int,
    draws: int,
    full: bool = False,
    dtype: str = "float32",
) -> dict:
    with torch.device(device):
        pipe = tiny.full_size(family) if full else tiny.build(family)
    pipe.to(device, as_dtype(dtype))
    pipe.set_progress_bar_config(disable=True)
    if full:
        size = tiny.FULL_DENOISERS[family]["sample_size"] * pipe.vae_scale_factor
    model = model_for(pipe)
    options = {"num_inference_steps": steps, "guidance_scale": 5.0, "height": size, "width": size}
    seeds = list(range(len(PROMPTS)))

    def plain():
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        pipe(PROMPTS, generator=generators, output_type="latent", **options)

    def with_mi():
        generate(model, PROMPTS, seeds, output_type="latent", **options)

    images = np.random.default_rng(0).uniform(size=(len(PROMPTS), size, size, 3))
    (scoring,) = _median_seconds([lambda: score(model, PROMPTS, images, n_draws=draws)], repeats)
    base, mi = _median_seconds([plain, with_mi], repeats)
    return {
        "family": family,
        "latent": size // pipe.vae_scale_factor,
        "plain_s": base,
        "with_mi_s": mi,
        "overhead_pct": 100 * (mi - base) / base,
        "score_images_per_s": len(PROMPTS) / scoring,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", nargs="+", default=list(tiny.FAMILIES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--draws", type=int, default=16, help="Monte Carlo draws per image")
    parser.add_argument("--full", action="store_true", help="published denoiser sizes")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    args = parser.parse_args(argv)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"{len(PROMPTS)} images, {args.steps} steps, {args.draws} draws, {args.dtype}, "
        f"{'published' if args.full else 'tiny'} denoisers, {device}, "
        f"{torch.get_num_threads()} threads"
    )
    print("family  latent  plain(s)  with MI(s)  overhead  score(img/s)")
    for family in args.family:
        row = measure(
            family,
            args.repeats,
            args.device,
            args.steps,
            args.size,
            args.draws,
            args.full,
            args.dtype,
        )
        print(
            f"{family:6s}  {row['latent']:6d}  {row['plain_s']:8.3f}  {row['with_mi_s']:10.3f}  "
            f"{row['overhead_pct']:+7.1f}%  {row['score_images_per_s']:12.1f}"
        )


if __name__ == "__main__":
    main()
