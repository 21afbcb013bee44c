"""``miest-bench``: run benchmark suites and write their reports.

miest-bench list
miest-bench run --suite quick [--jobs 2] [--out results]   # resumable; then reports
miest-bench report --suite quick [--out results]
miest-bench run --suite v1 --jobs 8 --dask tcp://scheduler:8786   # on a Dask cluster
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from benchmarks.report import write_report
from benchmarks.runner import dask_executor, run_suite
from benchmarks.suites import SUITES, get_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="miest-bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the suites and their job counts")
    for name, text in (
        ("run", "run a suite (cached, resumable), then report"),
        ("report", "write REPORT.md and plots from a suite's results.csv"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--suite", required=True, help=", ".join(SUITES))
        sub.add_argument("--out", type=Path, default=Path("results"), help="results folder")
        if name == "run":
            sub.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
            sub.add_argument(
                "--threads", type=int, help="torch threads per job (default: cores / jobs)"
            )
            sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
            sub.add_argument(
                "--dask",
                metavar="ADDRESS",
                help="run jobs on a Dask cluster: a scheduler address, or 'local' for a "
                "LocalCluster of --jobs workers (needs the 'cluster' extra)",
            )
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            width = max(map(len, SUITES))
            for name in SUITES:
                suite = get_suite(name)
                print(f"{name:{width}s} {len(suite.jobs()):5d} jobs  {suite.description}")
            return 0
        suite = get_suite(args.suite)
        if args.command == "run":
            with dask_executor(args.dask, args.jobs) if args.dask else nullcontext() as executor:
                frame = run_suite(
                    suite,
                    args.out,
                    args.jobs,
                    progress=not args.no_progress,
                    executor=executor,
                    threads=args.threads,
                )
            failed = int((frame.error.fillna("") != "").sum())
            csv = args.out / suite.name / "results.csv"
            print(f"{len(frame) - failed} rows in {csv}, {failed} failed")
        print(f"wrote {write_report(args.out / suite.name, suite.description)}")
        return 0
    except (ValueError, FileNotFoundError) as error:
        print(f"miest-bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
