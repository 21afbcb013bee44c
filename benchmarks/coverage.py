"""How often ``estimate_with_info(n_repeats=k)``'s 95% interval covers the true MI.

``python -m benchmarks.coverage`` runs each estimator on every bmi v1 task (one data
draw, seed 0, ``--n`` samples) with ``n_repeats`` refits and records the mean, the
interval, whether it covers the truth and whether the mean is within the benchmark's
tolerance; with ``--null`` also the shuffled-pairs null. Each task is appended to
``--csv`` as it finishes, and a rerun resumes. ``--from-v1 results/v1/results.csv``
instead summarises the committed v1 suite, whose three seeds are three data draws:
the interval over seeds there also covers sampling variance, which refits on one draw
do not see. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import tolerance
from benchmarks.rows import ResumableRows
from benchmarks.suites import resolved_options
from benchmarks.tasks import get_task
from miest import estimator
from miest.interface import student_interval


def row_key(task: str, est_name: str, n: int, seed: int, k: int, null: bool) -> str:
    """The resume key of one task's row: its settings and the estimator's resolved
    hyper-parameters (``benchmarks.suites.resolved_options``)."""
    config = {"task": task, "estimator": est_name, "n": n, "seed": seed, "n_repeats": k}
    return ResumableRows.key(config | {"null": null, "options": resolved_options(est_name, ())})


def coverage_row(task_name: str, est_name: str, n: int, seed: int, k: int, null: bool) -> dict:
    """One task: ``est_name`` with ``k`` refits on one draw of ``n`` pairs."""
    task = get_task(task_name)
    x, y = task.sample(n, seed=seed)
    truth = float(task.mutual_information)
    start = time.perf_counter()
    result = estimator(est_name, seed=seed, threads=None).estimate_with_info(
        np.asarray(x), np.asarray(y), n_repeats=k, null=null
    )
    info = result.additional_information
    low, high = info["interval"]
    row = {"task": task_name, "estimator": est_name, "n": n, "seed": seed, "n_repeats": k}
    row |= {"truth": truth, "estimate": result.mi_estimate, "low": low, "high": high}
    row |= {
        "covered": low <= truth <= high,
        "within_tolerance": abs(result.mi_estimate - truth) <= tolerance(truth),
        "repeats": json.dumps(info["repeats"]),
        "null_estimate": info.get("null_estimate", np.nan),
        "warnings": len(info["warnings"]),
        "seconds": time.perf_counter() - start,
    }
    return row


def from_v1(path: Path) -> pd.DataFrame:
    """Coverage rows from the committed v1 suite: per (task, estimator, n), the Student-t
    interval over its seeds (each a new data draw, split and initialisation)."""
    frame = pd.read_csv(path)
    frame = frame[frame.error.isna() | (frame.error == "")]
    rows = []
    for (task, est, n), group in frame.groupby(["task", "estimator", "n"], sort=False):
        truth, values = float(group.true_mi.iloc[0]), group.estimate.tolist()
        low, high = student_interval(values)
        rows.append(
            {"task": task, "estimator": est, "n": n, "n_repeats": len(values), "truth": truth}
            | {"estimate": float(np.mean(values)), "low": low, "high": high}
            | {"covered": low <= truth <= high}
            | {"within_tolerance": abs(np.mean(values) - truth) <= tolerance(truth)}
        )
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and n: tasks, the share whose interval covers the truth, the share
    within tolerance, and the median interval width (nats)."""
    frame = frame.assign(width=frame.high - frame.low)
    grouped = frame.groupby(["estimator", "n"])
    return pd.DataFrame(
        {
            "tasks": grouped.size(),
            "covered": grouped.covered.mean().round(3),
            "within_tolerance": grouped.within_tolerance.mean().round(3),
            "median_width": grouped.width.median().round(4),
        }
    ).sort_values("covered", ascending=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="+", default=["rfmi"])
    parser.add_argument("--tasks", nargs="+", help="bmi task ids (default: the 40 v1 tasks)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-repeats", type=int, default=3)
    parser.add_argument("--null", action="store_true", help="also fit shuffled pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--csv", type=Path, help="append each task here; a rerun resumes")
    parser.add_argument("--from-v1", type=Path, help="summarise a v1 results.csv instead")
    args = parser.parse_args(argv)
    if args.from_v1:
        frame = from_v1(args.from_v1)
        if args.csv:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(args.csv, index=False)
        print(summary(frame).to_string())
        return 0
    if args.n_repeats < 2:
        raise SystemExit("--n-repeats must be at least 2 for an interval")
    import torch
    from bmi.benchmark import BENCHMARK_TASKS

    torch.set_num_threads(args.threads)
    rows = ResumableRows(args.csv)
    for task_name in args.tasks or list(BENCHMARK_TASKS):
        for est_name in args.estimators:
            key = row_key(task_name, est_name, args.n, args.seed, args.n_repeats, args.null)
            if key in rows:
                continue
            row = coverage_row(task_name, est_name, args.n, args.seed, args.n_repeats, args.null)
            rows.append(row | {"key": key})
            print(
                f"{task_name:42s} {est_name:8s} truth {row['truth']:.3f} estimate "
                f"{row['estimate']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
                f"{'covered' if row['covered'] else 'missed '} ({row['seconds']:.0f} s)",
                flush=True,
            )
    print(summary(rows.frame()).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
