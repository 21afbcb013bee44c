"""Wall time of a default fit with one torch thread against torch's default, idle and loaded.

``python -m benchmarks.fit_time`` fits RFMI with its defaults on a 2+2-dimensional
Gaussian (n = 5,000, seed 0) with ``threads=1`` (the default) and ``threads=None``
(torch's own setting: every core), first on an idle machine, then with one busy process
per ``--busy`` core (a Python spin loop) competing for the CPU, and writes the seconds
and estimates to ``--csv``. Run it with nothing else running. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import miest
from miest.files import write_atomically
from miest.gaussian import GaussianPair

SPIN = "while True: pass"


def fit_seconds(threads: int | None, x, y, estimator: str) -> tuple[float, float]:
    start = time.perf_counter()
    estimate = miest.estimator(estimator, seed=0, threads=threads).estimate(x, y)
    return time.perf_counter() - start, estimate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", default="rfmi")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--busy", type=int, default=1, help="busy processes when loaded")
    parser.add_argument("--csv", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    pair = GaussianPair.from_correlations([0.8, 0.5], 2, 2, seed=0)
    x, y = pair.sample(args.n, seed=0)
    rows = []
    for load in ("idle", "loaded"):
        spinners = []
        if load == "loaded":
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
        try:
            for threads in (1, None):
                seconds, estimate = fit_seconds(threads, x, y, args.estimator)
                row = {"estimator": args.estimator, "n": args.n, "machine_load": load}
                row |= {"threads": threads or f"torch default ({torch.get_num_threads()})"}
                row |= {"seconds": round(seconds, 1), "estimate": estimate}
                row |= {"truth": pair.mutual_information(), "cores": os.cpu_count()}
                rows.append(row)
                print(row, flush=True)
        finally:
            for spinner in spinners:
                spinner.kill()
    frame = pd.DataFrame(rows)
    if args.csv:
        write_atomically(args.csv, frame.to_csv(index=False))
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
