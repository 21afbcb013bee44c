"""Compare the diffusion/flow estimators' point-wise forms from one fit each.

``python -m benchmarks.forms`` fits MINDE-C and RFMI (defaults, n = 5,000, seed 0) on
the quick suite's bmi tasks and on two image tasks of the consistency suite (or on
the bmi / consistency tasks given with ``--tasks``), and
prints the MI (nats) of the orthogonal, MMSE-gap and cross forms side by side, with the
truth (bmi) or the exact upper bound (consistency). Printed, not asserted: it informs
the choice of the default form.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import consistency
from benchmarks.report import tolerance
from benchmarks.suites import QUICK
from miest import estimator
from miest.files import write_atomically
from miest.integrate import FORMS

CONSISTENCY_TASKS = ("independent-r8", "baseline-r4")


def tasks(names: list[str], n: int, seed: int):
    """(name, x, y, reference value, what the reference is) for bmi task ids and the
    consistency suite's tasks in ``names`` (``"v1"``: all 40 bmi v1 tasks)."""
    from bmi.benchmark import BENCHMARK_TASKS

    names = [t for name in names for t in (BENCHMARK_TASKS if name == "v1" else [name])]
    for name in names:
        if name in consistency.TASKS:
            x, y = consistency.sample(name, n, seed)
            yield name, x, y, consistency.upper_bound(name), "upper bound"
        elif name in BENCHMARK_TASKS:
            task = BENCHMARK_TASKS[name]
            x, y = task.sample(n, seed=seed)
            yield name, np.asarray(x), np.asarray(y), float(task.mutual_information), "truth"
        else:
            raise SystemExit(f"unknown task {name!r}: not a bmi v1 task or a consistency task")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", nargs="+", default=["minde-c", "rfmi"])
    parser.add_argument("--tasks", nargs="+", default=[*QUICK.tasks, *CONSISTENCY_TASKS])
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    rows = []
    print(
        f"{'task':42s} {'estimator':9s} {'reference':>17s} " + " ".join(f"{f:>10s}" for f in FORMS)
    )
    for name, x, y, reference, kind in tasks(args.tasks, args.n, args.seed):
        for est_name in args.estimators:
            start = time.perf_counter()
            fitted = estimator(est_name, seed=args.seed).fit(x, y)
            result = fitted.integrate()  # the held-out pairs, every form from one pass
            values = [result.mi(form) for form in FORMS]
            rows.append({"task": name, "estimator": est_name, kind: reference})
            rows[-1] |= dict(zip(FORMS, values, strict=True))
            print(
                f"{name:42s} {est_name:9s} {kind:>11s} {reference:5.3f} "
                + " ".join(f"{v:10.3f}" for v in values)
                + f"   ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    if args.csv:
        write_atomically(args.csv, pd.DataFrame(rows).to_csv(index=False))
    truth = pd.DataFrame(rows).dropna(subset=["truth"]) if rows else pd.DataFrame()
    if len(truth):
        error = truth[list(FORMS)].sub(truth["truth"], axis=0).abs()
        success = error.le(tolerance(truth["truth"])[:, None])
        counts = success.groupby(truth["estimator"]).sum()
        print(f"\ntasks within 10% of the truth (0.1 nats below 1 nat), of {truth.task.nunique()}:")
        print(counts.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
