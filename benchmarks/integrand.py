"""Where in noise level a diffusion/flow estimate on image pairs gains or loses information.

``python -m benchmarks.integrand`` fits an estimator on label tasks of the images suite
(``benchmarks.images``) and records its MI integrand per log-SNR ``lam`` for every
point-wise form (``MIEstimator.integrand_profile``, nats per unit of ``lam``) beside the
exact integrand, then plots them.

The exact integrand is computed directly, in the estimator's preprocessed space: an image
of the task is one of the 1,797 digits with each pixel uniform in its box, so every
optimal prediction is a posterior average over the digits of per-pixel truncated normals.
With ``x_lam = x + e^(-lam/2) eps``, ``E[x | x_lam]`` weighs digit ``j`` by its prior
(uniform label, uniform image within the label) times its likelihood, and
``E[x | x_lam, y]`` replaces the prior's label term by ``P(L1 | L2 = label of y)``. The
integrand ``1/2 e^lam E||E[x | x_lam, y] - E[x | x_lam]||^2`` integrates to
``I(L1; L2)``, the task's MI (a positive control of the integrator and the grid). A
learnt curve below the exact one has lost information at that noise level, one above it
has added some; the distances of the fit's conditional and unconditional predictions
from the exact ones (``error_c``, ``error_u``) say which network is off where. Printed
and plotted, not asserted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.integrate import trapezoid

from benchmarks.forms import add_variant_options, row_key
from benchmarks.images import CLASSES, LEVELS, TASKS, _digits
from benchmarks.rows import ResumableRows
from miest import estimator
from miest.data import split
from miest.estimators.denoising import ConditionalDenoiserEstimator
from miest.files import pyplot, save_figure
from miest.integrate import FORMS
from miest.paths import to_eps

PROFILED = tuple(
    name
    for name, task in TASKS.items()
    if task.copies == 1 and not (task.nuisance or task.upsampled)
)
"""The tasks with one 8x8 image a side, whose exact integrand is computed here."""
EXACT_PAIRS = 1000  # held-out pairs the exact integrand averages over (it has no fitting noise)


def digit_index(pixels: np.ndarray) -> np.ndarray:
    """The index (into the 1,797 digits) of each dequantised 64-pixel image (n, 64)."""
    images, _ = _digits()
    lookup = {image.astype(np.uint8).tobytes(): i for i, image in enumerate(images)}
    integer = np.floor(pixels * LEVELS).astype(np.uint8)
    try:
        return np.array([lookup[row.tobytes()] for row in integer])
    except KeyError:
        raise ValueError("rows that are not dequantised digit images") from None


def log_mass_and_mean(lower, upper, centre, scale):
    """For ``N(centre, scale^2)`` truncated to ``[lower, upper]`` (broadcast tensors): the log
    of its mass in the interval and its mean there, computed stably in both tails."""
    a, b = (lower - centre) / scale, (upper - centre) / scale
    flip = a > 0  # mass of [a, b] = mass of [-b, -a]: keep both ends in the lower tail
    low, high = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    gap = (log_low - log_high).clamp(max=-1e-12)
    log_mass = log_high + torch.where(
        gap > -0.6931, torch.log(-torch.expm1(gap)), torch.log1p(-torch.exp(gap))
    )
    log_density = -0.5 * np.log(2 * np.pi)
    ratio = torch.exp(log_density - a**2 / 2 - log_mass) - torch.exp(
        log_density - b**2 / 2 - log_mass
    )
    return log_mass, centre + scale * ratio


def exact_profile(
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    transform,
    preprocess: str,
    log_snrs,
    n_draws: int = 2,
    seed: int = 0,
    model: tuple | None = None,
    chunk: int = 500,
) -> dict[str, np.ndarray]:
    """The exact integrand (nats per unit of log-SNR) of ``task`` at each of ``log_snrs``,
    averaged over the pairs ``(x, y)`` (dequantised, as sampled) and ``n_draws`` noise
    draws each, in the space that ``transform`` (an estimator's fitted preprocessing,
    ``x_map_``, of kind ``preprocess``) maps 64-pixel rows to: ``{"exact": (k,)}``.

    Each digit image is a product of pixel boxes; ``transform`` maps the box of pixel
    value ``v`` to an interval on which the density is flat (``"standardize"``) or the
    standard normal's (``"rank-gauss"``: the empirical CDF is linear inside a box), so
    every posterior is a mixture over the 1,797 images of truncated normals per pixel.

    ``model``: ``(predict, path, parametrisation)`` of a fit whose conditions are the rows
    of ``y`` (``miest.integrate.Predict``); adds ``error_c`` and ``error_u``, the squared
    distance of its conditional and unconditional predictions from the exact ones at the
    same noisy points, ``1/2 e^lam E||x_hat - x_exact||^2`` in the integrand's units."""
    if task not in PROFILED:
        raise ValueError(f"no exact integrand for {task!r}; tasks: {PROFILED}")
    if preprocess not in ("standardize", "rank-gauss"):
        raise ValueError(f"preprocess must be 'standardize' or 'rank-gauss', got {preprocess!r}")
    images, labels = _digits()
    pixels = images.shape[1]
    edges = transform(np.repeat(np.arange(LEVELS + 1)[:, None] / LEVELS, pixels, axis=1))
    if edges.shape[1] != pixels:
        raise ValueError("the preprocessing dropped pixels; the exact integrand needs all 64")
    edges = torch.as_tensor(edges.T, dtype=torch.float64)  # (64, LEVELS + 1)
    lower, upper = edges[None, :, :-1], edges[None, :, 1:]  # (1, 64, LEVELS)
    upper = torch.maximum(upper, lower + 1e-6)  # values clipped to one point (unseen in training)
    if preprocess == "standardize":
        log_norm = torch.log(upper - lower)
    else:
        log_norm = log_mass_and_mean(lower, upper, torch.zeros(()), torch.ones(()))[0]
    # one-hot (64 * LEVELS, images): image j has value v at pixel d
    onehot = torch.zeros(pixels * LEVELS, len(images), dtype=torch.float64)
    cells = (np.arange(pixels) * LEVELS + images).ravel()  # row-major: image by image
    onehot[cells, np.repeat(np.arange(len(images)), pixels)] = 1
    counts = np.bincount(labels, minlength=CLASSES)
    table = TASKS[task].table
    given_y = table / table.sum(0, keepdims=True)  # P(L1 | L2), one column per L2
    log_prior = torch.as_tensor(np.log(1.0 / (CLASSES * counts[labels])))
    y_labels = labels[digit_index(y)]
    with np.errstate(divide="ignore"):  # a label impossible given y has weight 0
        log_given_y = torch.as_tensor(np.log(given_y[labels][:, y_labels].T / counts[labels]))
    x0 = torch.as_tensor(transform(x), dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    curves = {name: np.zeros(len(log_snrs)) for name in ("exact", "error_c", "error_u")}
    for i, lam in enumerate(log_snrs):
        scale = float(np.exp(-lam / 2))  # noise standard deviation of x_lam = x0 + scale eps
        # per pixel, the posterior within an interval is N(x_lam / widen, scale^2 / widen)
        # truncated to it: widen 1 for a flat density, 1 + scale^2 for a normal one
        widen = 1.0 if preprocess == "standardize" else 1 + scale**2
        spread = torch.tensor(scale / np.sqrt(widen))
        for _ in range(n_draws):
            noisy = x0 + scale * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            for rows in torch.arange(len(x0)).split(chunk):
                centre = noisy[rows][:, :, None] / widen
                log_mass, mean = log_mass_and_mean(lower, upper, centre, spread)
                likelihood = (log_mass - log_norm).flatten(1) @ onehot  # (rows, images)
                exact = {}
                for name, log_weight in (("c", log_given_y[rows]), ("u", log_prior)):
                    weights = torch.softmax(likelihood + log_weight, 1) @ onehot.T
                    exact[name] = (weights.view_as(mean) * mean).sum(-1)
                terms = {"exact": exact["c"] - exact["u"]}
                if model is not None:
                    learnt_c, learnt_u = _learnt_predictions(model, noisy[rows], float(lam), rows)
                    terms |= {"error_c": learnt_c - exact["c"], "error_u": learnt_u - exact["u"]}
                for name, term in terms.items():
                    total = float(term.pow(2).sum())
                    curves[name][i] += 0.5 * np.exp(lam) * total / (len(x0) * n_draws)
    return curves if model is not None else {"exact": curves["exact"]}


def _learnt_predictions(model: tuple, noisy: torch.Tensor, lam: float, rows: torch.Tensor):
    """A model's conditional and unconditional predictions of the clean rows from
    ``noisy = x0 + e^(-lam/2) eps`` (float64), on the model's own path; ``rows`` index
    the conditions."""
    predict, path, parametrisation = model
    t = path.t_of_log_snr(torch.full((len(noisy),), lam, dtype=torch.float64))
    alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
    x_t = alpha * noisy  # = alpha x0 + sigma eps
    with torch.no_grad():
        outputs = predict(x_t.float(), t.float(), rows)
    return [
        (x_t - sigma * to_eps(out.double(), x_t, t, path, parametrisation)) / alpha
        for out in outputs
    ]


def profile_rows(task: str, n: int, seed: int, est_name: str, variant: str, options: dict):
    """One fit of ``est_name`` on ``task``: a row per log-SNR with the exact integrand and
    the fit's, every form, on its held-out pairs."""
    x, y = TASKS[task].sample(n, seed=seed)
    fitted = estimator(est_name, seed=seed, **{"threads": None} | options)
    if not isinstance(fitted, ConditionalDenoiserEstimator) or fitted.condition != "y":
        raise ValueError(
            f"{est_name} with {options}: the exact integrand is for a model of x given y"
        )
    fitted.fit(x, y)
    learnt = fitted.integrand_profile()
    held_out = split(n, fitted.test_size, seed)[1][:EXACT_PAIRS]  # rows fit held out
    predict, _, path, parametrisation = fitted._integrand(*fitted.held_out_)
    exact = exact_profile(
        task,
        x[held_out],
        y[held_out],
        fitted.x_map_,
        fitted.preprocess,
        learnt["log_snr"],
        model=(predict, path, parametrisation),
    )
    return [
        {
            "task": task,
            "n": n,
            "seed": seed,
            "estimator": est_name,
            "variant": variant,
            "options": json.dumps(options, sort_keys=True),
            "truth": TASKS[task].mutual_information,
            "log_snr": lam,
            **{name: curve[i] for name, curve in exact.items()},
            **{form: learnt[form][i] for form in FORMS},
        }
        for i, lam in enumerate(learnt["log_snr"])
    ]


def integrals(rows: pd.DataFrame) -> dict[str, float]:
    """The integral over log-SNR (nats) of each curve of one fit's rows."""
    return {c: round(float(trapezoid(rows[c], rows.log_snr)), 3) for c in ("exact", *FORMS)}


def plot(frame: pd.DataFrame, stem: Path) -> list[str]:
    """Per (task, variant): above, the exact integrand and each form's, with integrals;
    below, how far the fit's two predictions are from the exact ones (log scale)."""
    plt = pyplot()

    groups = list(frame.groupby(["task", "estimator", "variant"], sort=False))
    fig, axes = plt.subplots(
        2, len(groups), squeeze=False, sharex=True, figsize=(4.2 * len(groups), 6.4)
    )
    colors = {"exact": "black", "orthogonal": "tab:blue", "mmse-gap": "tab:orange"}
    colors["cross"] = "tab:green"
    errors = {"error_c": ("tab:red", "conditional"), "error_u": ("tab:purple", "unconditional")}
    for column, ((task, est_name, variant), rows) in enumerate(groups):
        top, bottom = axes[0][column], axes[1][column]
        totals = integrals(rows)
        for curve, color in colors.items():
            top.plot(rows.log_snr, rows[curve], color=color, label=f"{curve} ({totals[curve]:.2f})")
        top.axhline(0, color="grey", lw=0.5)
        top.set_title(f"{task}\n{est_name} {variant}, truth {rows.truth.iloc[0]:.2f}", fontsize=9)
        top.legend(fontsize=7)
        for error, (color, which) in errors.items():
            bottom.plot(rows.log_snr, rows[error], color=color, label=which)
        bottom.set_yscale("log")
        bottom.set_xlabel("log-SNR")
        bottom.legend(fontsize=7, title="prediction's distance from exact", title_fontsize=7)
    axes[0][0].set_ylabel("MI integrand (nats per unit log-SNR)")
    axes[1][0].set_ylabel("1/2 e^lam E||x_hat - x_exact||^2")
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["label-channel-0.5", "independent"])
    parser.add_argument("--estimators", nargs="+", default=["rfmi"])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    add_variant_options(parser)
    parser.add_argument("--csv", type=Path, required=True, help="rows go here; a rerun resumes")
    args = parser.parse_args(argv)
    unknown = set(args.tasks) - set(PROFILED)
    if unknown:
        parser.error(f"no exact integrand for {sorted(unknown)}; tasks: {', '.join(PROFILED)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = dict(args.variants or [("default", {})])
    rows = ResumableRows(args.csv)
    for task in args.tasks:
        for est_name in args.estimators:
            for variant, options in variants.items():
                key = row_key(task, args.n, args.seed, est_name, variant, options)
                if key in rows:
                    continue
                new = profile_rows(task, args.n, args.seed, est_name, variant, options)
                rows.extend([row | {"key": key} for row in new])
                print(f"{task} {est_name} {variant}: integrals", integrals(pd.DataFrame(new)))
    print("wrote", *plot(rows.frame(), args.csv.with_suffix("")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
