"""The README's main job (for now): every miest estimator and bmi's KSG, MINE and InfoNCE
on a few ``bmi`` benchmark tasks with known MI, on the same samples.

Writes ``results/demo/results.csv`` and ``results/demo/estimates.png`` and prints the
table. Run: ``python -m miest.demo [--n 5000] [--seed 0] [--out results/demo]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import miest

TASKS = [
    "1v1-normal-0.75",
    "multinormal-dense-5-5-0.5",
    "student-identity-2-2-1",
    "half_cube-multinormal-sparse-3-3-2-2.0",
]


def peers() -> dict[str, object]:
    """``bmi``'s own estimators with their defaults (quiet)."""
    from bmi.estimators import InfoNCEEstimator, KSGEnsembleFirstEstimator, MINEEstimator

    return {
        "bmi-ksg": KSGEnsembleFirstEstimator(neighborhoods=(5,)),
        "bmi-mine": MINEEstimator(verbose=False),
        "bmi-infonce": InfoNCEEstimator(verbose=False),
    }


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        frame.to_csv(f, index=False)
    os.replace(f.name, path)


def run(n: int, seed: int, tasks: list[str]) -> pd.DataFrame:
    from bmi.benchmark import BENCHMARK_TASKS

    estimators = {
        name: (lambda name=name: miest.estimator(name, seed=seed)) for name in miest.available()
    }
    estimators |= {name: (lambda est=est: est) for name, est in peers().items()}
    rows = []
    jobs = [(task, name) for task in tasks for name in estimators]
    for task_name, name in tqdm(jobs, desc="demo"):
        task = BENCHMARK_TASKS[task_name]
        x, y = task.sample(n, seed=seed)
        start = time.perf_counter()
        estimate = float(estimators[name]().estimate(x, y))
        truth = task.mutual_information
        rows.append(
            {
                "task": task_name,
                "dim_x": task.dim_x,
                "dim_y": task.dim_y,
                "true_mi": truth,
                "estimator": name,
                "library": "bmi" if name.startswith("bmi-") else "miest",
                "seed": seed,
                "n": n,
                "estimate": estimate,
                "abs_error": abs(estimate - truth),
                "rel_error": abs(estimate - truth) / truth,
                "within_tolerance": abs(estimate - truth) <= max(0.1, 0.1 * truth),
                "seconds": time.perf_counter() - start,
            }
        )
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(frame.task))
    names = list(dict.fromkeys(frame.estimator))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.8), sharey=False)
    for ax, task in zip(np.atleast_1d(axes), tasks, strict=True):
        part = frame[frame.task == task].set_index("estimator").loc[names]
        truth = part.true_mi.iloc[0]
        colors = ["tab:blue" if lib == "miest" else "tab:gray" for lib in part.library]
        ax.bar(range(len(names)), part.estimate, color=colors)
        ax.axhline(truth, color="black", lw=1.5, label=f"true MI {truth:.3f}")
        ax.axhspan(
            truth - max(0.1, 0.1 * truth), truth + max(0.1, 0.1 * truth), color="green", alpha=0.12
        )
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(task, fontsize=8)
        ax.set_ylabel("MI estimate (nats)")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"miest (blue) vs bmi (grey), n = {frame.n.iloc[0]}; band: ±max(0.1, 10%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="samples per task (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=TASKS, help="bmi task ids")
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    args = parser.parse_args(argv)
    frame = run(args.n, args.seed, args.tasks)
    frame["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
    write_atomically(frame, args.out / "results.csv")
    plot(frame, args.out / "estimates.png")
    short = {task: f"T{i + 1}" for i, task in enumerate(dict.fromkeys(frame.task))}
    frame_short = frame.assign(task=frame.task.map(short))
    table = frame_short.pivot(index="estimator", columns="task", values="estimate")
    table.loc["TRUE MI"] = frame_short.groupby("task").true_mi.first()
    seconds = frame_short.pivot(index="estimator", columns="task", values="seconds")
    print("\n".join(f"{code}: {task}" for task, code in short.items()))
    print("\nestimates (nats):\n" + table.to_string(float_format="%.3f"))
    print("\nwall seconds:\n" + seconds.to_string(float_format="%.1f"))
    print(f"\nwrote {args.out / 'results.csv'} and {args.out / 'estimates.png'}")


if __name__ == "__main__":
    main()
