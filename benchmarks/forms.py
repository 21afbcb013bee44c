"""Compare the diffusion/flow estimators' point-wise forms and hyper-parameter variants.

``python -m benchmarks.forms`` fits each estimator variant once per task and seed and
records the MI (nats) of every point-wise form (orthogonal, MMSE-gap, cross) from that
one fit, with the truth (bmi tasks) or the exact upper bound (consistency tasks), the
step that early stopping kept and the wall seconds. By default it fits MINDE-C and RFMI
with their defaults, n = 5,000, seed 0, on the quick suite's bmi tasks and two image
tasks of the consistency suite.

A variant is a named set of hyper-parameters, ``--variant long:steps=12000,patience=12``
(values are read as JSON where they parse, so ``null`` is ``None``); ``default`` is the
estimator's defaults. With ``--csv`` every fit is appended to the file as it finishes
(written atomically) with the key of its settings (``row_key``: task, size, seed, variant
and every resolved hyper-parameter), and a rerun skips the keys already there, so a long
run resumes and a changed default is refitted. Consistency tasks are judged by the
consistency suite's five checks, per variant and form. Printed, not asserted: it informs the
choice of defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks import consistency, images
from benchmarks.report import consistency_checks, consistency_table, tolerance
from benchmarks.rows import ResumableRows
from benchmarks.suites import QUICK, resolved_options
from benchmarks.tasks import get_task
from miest import estimator
from miest.integrate import FORMS

CONSISTENCY_TASKS = ("independent-r8", "baseline-r4")


def tasks(
    names: list[str], n: int, seed: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float, str]]:
    """(name, x, y, reference value, what the reference is) for the tasks in ``names``:
    bmi task ids, the images suite's and the consistency suite's tasks (``"v1"``: all 40
    bmi v1 tasks; ``"images"``, ``"consistency"``: all of that suite's)."""
    from bmi.benchmark import BENCHMARK_TASKS

    groups = {"v1": BENCHMARK_TASKS, "images": images.TASKS, "consistency": consistency.TASKS}
    names = [t for name in names for t in groups.get(name, [name])]
    for name in names:
        if name in consistency.TASKS:
            x, y = consistency.sample(name, n, seed)
            yield name, x, y, consistency.upper_bound(name), "upper bound"
        elif name in BENCHMARK_TASKS or name in images.TASKS:
            task = get_task(name)
            x, y = task.sample(n, seed=seed)
            yield name, np.asarray(x), np.asarray(y), float(task.mutual_information), "truth"
        else:
            raise SystemExit(f"unknown task {name!r}: not a bmi, images or consistency task")


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` (or ``"default"``) -> ``(name, options)``."""
    name, _, spec = text.partition(":")
    options = {}
    for item in filter(None, spec.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"variant {text!r}: expected key=value, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if not name or (spec and name == "default"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: name it, as in long:steps=12000")
    return name, options


def add_variant_options(parser: argparse.ArgumentParser) -> None:
    """``--variant`` (repeatable, ``parse_variant``) and ``--threads``, for the variant tools."""
    parser.add_argument(
        "--variant",
        dest="variants",
        type=parse_variant,
        action="append",
        help="name:key=value,... (repeat; default: the estimators' defaults only)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")


def row_key(task: str, n: int, seed: int, est_name: str, variant: str, options: dict) -> str:
    """The resume key of one fit: the task, size, seed, variant and every hyper-parameter
    of the estimator, defaults resolved (``benchmarks.suites.resolved_options``)."""
    resolved = resolved_options(est_name, tuple(sorted(options.items())))
    config = {"task": task, "n": n, "seed": seed, "estimator": est_name, "variant": variant}
    return ResumableRows.key(config | {"options": resolved})


def fit_row(
    est_name: str, variant: str, options: dict, seed: int, x, y, shuffled: bool = False
) -> dict:
    """One fit of ``est_name`` with ``options``; the MI of every form from one pass (and
    with ``shuffled``, the cross form of the same fit on the held-out pairs with ``y``
    permuted, ``cross shuffled``: a same-fit control whose exact value is 0)."""
    start = time.perf_counter()
    fitted = estimator(est_name, seed=seed, **{"threads": None} | options).fit(x, y)
    result = fitted.integrate()  # the held-out pairs, every form from one pass
    control = {"cross shuffled": fitted.integrate(shuffled=True).mi("cross")} if shuffled else {}
    return {
        "estimator": est_name,
        "variant": variant,
        "options": json.dumps(options, sort_keys=True),
        "seed": seed,
        **{form: result.mi(form) for form in FORMS},
        **control,
        "best_step": fitted.log_.best_step,
        "stopped_early": fitted.log_.stopped_early,
        "seconds": time.perf_counter() - start,
    }


def successes(frame: pd.DataFrame) -> pd.DataFrame:
    """Tasks within tolerance of the truth, judged on the seed mean, per (estimator,
    variant) and form; consistency rows (no truth) are left out."""
    if "truth" not in frame:
        return pd.DataFrame()
    truth = frame.dropna(subset=["truth"])
    means = truth.groupby(["estimator", "variant", "task"], sort=False)[["truth", *FORMS]].mean()
    within = (
        means[list(FORMS)].sub(means["truth"], axis=0).abs().le(tolerance(means["truth"])[:, None])
    )
    return within.groupby(level=["estimator", "variant"], sort=False).sum()


def consistency_checks_by_form(frame: pd.DataFrame) -> pd.DataFrame:
    """The consistency suite's five checks (``benchmarks.report.consistency_checks``, seed
    means) per (estimator, variant) and form, on the consistency rows; bmi rows are left
    out. A ratio whose tasks have not all run is NaN."""
    if "upper bound" not in frame:
        return pd.DataFrame()
    rows = frame.dropna(subset=["upper bound"])
    parsed = [consistency.parse(task) for task in rows.task]
    checks = []
    for form in FORMS:
        estimates = pd.DataFrame(
            {
                "test": [test for test, _ in parsed],
                "rows": [r for _, r in parsed],
                "estimator": (rows.estimator + " " + rows.variant).to_numpy(),
                "library": form,  # consistency_checks groups by library: here, the form
                "estimate": rows[form].to_numpy(),
                "upper_bound": rows["upper bound"].to_numpy(),
                "error": "",
            }
        )
        checks.append(consistency_checks(consistency_table(estimates)))
    return pd.concat(checks).rename(columns={"library": "form"}).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--estimators", nargs="+", default=["minde-c", "rfmi"])
    parser.add_argument("--tasks", nargs="+", default=[*QUICK.tasks, *CONSISTENCY_TASKS])
    add_variant_options(parser)
    parser.add_argument("--csv", type=Path, help="append each fit here; a rerun resumes")
    parser.add_argument(
        "--shuffled",
        action="store_true",
        help="also record each fit's cross form on the held-out pairs with y permuted",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = dict(args.variants or [("default", {})])
    for est_name in args.estimators:  # bad names or options fail here, not after hours
        for options in variants.values():
            estimator(est_name, **options)
    rows = ResumableRows(args.csv)
    print(
        f"{'task':42s} {'estimator':9s} {'variant':10s} seed {'reference':>17s} "
        + " ".join(f"{f:>10s}" for f in FORMS)
    )
    for seed in args.seeds:
        for name, x, y, reference, kind in tasks(args.tasks, args.n, seed):
            for est_name in args.estimators:
                for variant, options in variants.items():
                    key = row_key(name, args.n, seed, est_name, variant, options)
                    if key in rows:
                        continue
                    row = {"task": name, "n": args.n, kind: reference}
                    row |= fit_row(est_name, variant, options, seed, x, y, args.shuffled)
                    row |= {"key": key}
                    rows.append(row)
                    print(
                        f"{name:42s} {est_name:9s} {variant:10s} {seed:4d} {kind:>11s} "
                        f"{reference:5.3f} "
                        + " ".join(f"{row[f]:10.3f}" for f in FORMS)
                        + (f" shuffled {row['cross shuffled']:.3f}" if args.shuffled else "")
                        + f"   ({row['seconds']:.0f} s)",
                        flush=True,
                    )
    counts = successes(rows.frame())
    if len(counts):
        print(
            "\ntasks within 10% of the truth (0.1 nats below 1 nat), seed means, of "
            f"{rows.frame().dropna(subset=['truth']).task.nunique()}:"
        )
        print(counts.to_string())
    checks = consistency_checks_by_form(rows.frame())
    if len(checks):
        print("\nconsistency checks (benchmarks.report.CONSISTENCY_CHECKS), seed means:")
        print(checks.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
