"""Compare the diffusion/flow estimators' point-wise forms from one fit each.

``python -m benchmarks.forms`` fits MINDE-C and RFMI (defaults, n = 5,000, seed 0) on
the quick suite's five bmi tasks and on two image tasks of the consistency suite, and
prints the MI (nats) of the orthogonal, MMSE-gap and cross forms side by side, with the
truth (bmi) or the exact upper bound (consistency). Printed, not asserted: it informs
the choice of the default form.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import consistency
from benchmarks.suites import QUICK
from miest import estimator
from miest.integrate import FORMS

CONSISTENCY_TASKS = ("independent-r8", "baseline-r4")


def tasks(n: int, seed: int):
    """(name, x, y, reference value, what the reference is) for every task."""
    from bmi.benchmark import BENCHMARK_TASKS

    for name in QUICK.tasks:
        task = BENCHMARK_TASKS[name]
        x, y = task.sample(n, seed=seed)
        yield name, np.asarray(x), np.asarray(y), float(task.mutual_information), "truth"
    for name in CONSISTENCY_TASKS:
        x, y = consistency.sample(name, n, seed)
        yield name, x, y, consistency.upper_bound(name), "upper bound"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", nargs="+", default=["minde-c", "rfmi"])
    args = parser.parse_args(argv)
    print(
        f"{'task':42s} {'estimator':9s} {'reference':>17s} " + " ".join(f"{f:>10s}" for f in FORMS)
    )
    for name, x, y, reference, kind in tasks(args.n, args.seed):
        for est_name in args.estimators:
            start = time.perf_counter()
            fitted = estimator(est_name, seed=args.seed).fit(x, y)
            values = [fitted.pointwise(form=form).mean() for form in FORMS]
            print(
                f"{name:42s} {est_name:9s} {kind:>11s} {reference:5.3f} "
                + " ".join(f"{v:10.3f}" for v in values)
                + f"   ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
