"""Where in noise level a diffusion/flow estimate on image pairs gains or loses information.

``python -m benchmarks.integrand`` fits an estimator on label tasks of the images suite
(``benchmarks.images``) and records its MI integrand per log-SNR ``lam`` for every
point-wise form (``MIEstimator.integrand_profile``, nats per unit of ``lam``) beside the
exact integrand, then plots them.

The exact integrand is that of the point-mass version of the task: each dequantised
image replaced by the centre of its pixel box, in the estimator's preprocessed space.
Those data keep the task's MI (an image still determines its label), and their optimal
predictions are posterior averages over the 1,797 digit images, computed directly:
with ``x_lam = x + e^(-lam/2) eps``, ``E[x | x_lam]`` weighs image ``j`` by its prior
(uniform label, uniform image within the label) times the Gaussian likelihood, and
``E[x | x_lam, y]`` replaces the prior's label term by ``P(L1 | L2 = label of y)``. The
integrand is ``1/2 e^lam E||E[x | x_lam, y] - E[x | x_lam]||^2`` and integrates to
``I(L1; L2)`` (a positive control of the integrator and the grid). Away from the
highest log-SNRs, where the pixel boxes are resolved, the dequantised data's integrand
is the same, so a learnt curve below the exact one has lost information there and one
above it has added some. Printed and plotted, not asserted.
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
from benchmarks.report import save_figure
from benchmarks.rows import ResumableRows
from miest import estimator
from miest.data import split
from miest.estimators.denoising import ConditionalDenoiserEstimator
from miest.integrate import FORMS

PROFILED = tuple(
    name
    for name, task in TASKS.items()
    if task.copies == 1 and not (task.nuisance or task.upsampled)
)
"""The tasks with one 8x8 image a side, whose exact integrand is computed here."""


def digit_index(pixels: np.ndarray) -> np.ndarray:
    """The index (into the 1,797 digits) of each dequantised 64-pixel image (n, 64)."""
    images, _ = _digits()
    lookup = {image.astype(np.uint8).tobytes(): i for i, image in enumerate(images)}
    integer = np.floor(pixels * LEVELS).astype(np.uint8)
    try:
        return np.array([lookup[row.tobytes()] for row in integer])
    except KeyError:
        raise ValueError("rows that are not dequantised digit images") from None


def exact_profile(
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    transform,
    log_snrs,
    n_draws: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """The exact integrand (nats per unit of log-SNR) of ``task``'s point-mass data at each
    of ``log_snrs``, averaged over the pairs ``(x, y)`` (dequantised, as sampled) and
    ``n_draws`` noise draws each, in the space ``transform`` maps 64-pixel rows to (an
    estimator's fitted preprocessing, ``x_map_``)."""
    if task not in PROFILED:
        raise ValueError(f"no exact integrand for {task!r}; tasks: {PROFILED}")
    images, labels = _digits()
    centres = torch.as_tensor(transform((images + 0.5) / LEVELS), dtype=torch.float64)
    x0 = centres[digit_index(x)]
    counts = np.bincount(labels, minlength=CLASSES)
    table = TASKS[task].table
    given_y = table / table.sum(0, keepdims=True)  # P(L1 | L2), one column per L2
    log_prior = torch.as_tensor(np.log(1.0 / (CLASSES * counts[labels])))
    y_labels = labels[digit_index(y)]
    with np.errstate(divide="ignore"):  # a label impossible given y has weight 0
        log_given_y = torch.as_tensor(np.log(given_y[labels][:, y_labels].T / counts[labels]))
    generator = torch.Generator().manual_seed(seed)
    curve = np.zeros(len(log_snrs))
    for i, lam in enumerate(log_snrs):
        scale = float(np.exp(-lam / 2))  # noise standard deviation of x_lam = x0 + scale eps
        for _ in range(n_draws):
            noisy = x0 + scale * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            logits = -torch.cdist(noisy, centres).pow(2) / (2 * scale**2)
            gap = (
                torch.softmax(logits + log_given_y, 1) - torch.softmax(logits + log_prior, 1)
            ) @ centres
            curve[i] += 0.5 * np.exp(lam) * float(gap.pow(2).sum(1).mean()) / n_draws
    return curve


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
    held_out = split(n, fitted.test_size, seed)[1]  # the rows fit held out
    exact = exact_profile(task, x[held_out], y[held_out], fitted.x_map_, learnt["log_snr"])
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
            "exact": exact[i],
            **{form: learnt[form][i] for form in FORMS},
        }
        for i, lam in enumerate(learnt["log_snr"])
    ]


def integrals(rows: pd.DataFrame) -> dict[str, float]:
    """The integral over log-SNR (nats) of each curve of one fit's rows."""
    return {c: round(float(trapezoid(rows[c], rows.log_snr)), 3) for c in ("exact", *FORMS)}


def plot(frame: pd.DataFrame, stem: Path) -> list[str]:
    """One panel per (task, variant): the exact integrand and each form's, with integrals."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "miest"
    import matplotlib.pyplot as plt

    groups = list(frame.groupby(["task", "estimator", "variant"], sort=False))
    fig, axes = plt.subplots(1, len(groups), squeeze=False, figsize=(4.2 * len(groups), 3.6))
    colors = {"exact": "black", "orthogonal": "tab:blue", "mmse-gap": "tab:orange"}
    colors["cross"] = "tab:green"
    for ax, ((task, est_name, variant), rows) in zip(axes[0], groups, strict=True):
        totals = integrals(rows)
        for curve, color in colors.items():
            ax.plot(rows.log_snr, rows[curve], color=color, label=f"{curve} ({totals[curve]:.2f})")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{task}\n{est_name} {variant}, truth {rows.truth.iloc[0]:.2f}", fontsize=9)
        ax.set_xlabel("log-SNR")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("MI integrand (nats per unit log-SNR)")
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
