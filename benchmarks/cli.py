"""``miest-bench``: run benchmark suites and write their reports.

miest-bench list
miest-bench run --suite quick [--jobs 2] [--out results]   # resumable; then reports
miest-bench run --suite-file my_suite.toml [--plugin my_plugin.py]
miest-bench run --name mine --tasks 1v1-normal-0.75 --estimators rfmi bmi-ksg --n 5000 --seeds 0 1
miest-bench report --suite quick [--out results]           # any suite run before
miest-bench run --suite v1 --jobs 8 --dask tcp://scheduler:8786   # on a Dask cluster
miest-bench run --suite v1-100k --estimators rfmi              # part of a suite now
miest-bench leaderboard                                    # results/LEADERBOARD.md
miest-bench prune --suite v1 [--dry-run]                   # drop caches of changed jobs

A plugin file registers your own estimators and tasks (benchmarks.register_estimator,
benchmarks.register_task); a suite file is TOML (benchmarks.Suite.from_file).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from benchmarks.plugins import load_plugins
from benchmarks.report import write_report
from benchmarks.runner import dask_executor, run_suite, stale_cache_files
from benchmarks.suites import SUITES, Suite, get_suite


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miest-bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the suites and their job counts")
    run = commands.add_parser("run", help="run a suite (cached, resumable), then report")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="a built-in suite: " + ", ".join(SUITES))
    which.add_argument("--suite-file", type=Path, help="a suite defined in a TOML file")
    which.add_argument("--tasks", nargs="+", help="a suite of these tasks (with --estimators)")
    run.add_argument(
        "--estimators",
        nargs="+",
        help="with --tasks: the estimators; with --suite: run only these of its estimators now",
    )
    run.add_argument("--n", type=int, nargs="+", default=[5000], help="with --tasks: sizes")
    run.add_argument("--seeds", type=int, nargs="+", default=[0], help="with --tasks: seeds")
    run.add_argument("--name", default="custom", help="with --tasks: the suite's folder name")
    run.add_argument("--plugin", action="append", default=[], help="file registering yours")
    run.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    run.add_argument("--threads", type=int, help="torch threads per job (default: cores / jobs)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run jobs on a Dask cluster: a scheduler address, or 'local' for a "
        "LocalCluster of --jobs workers (needs the 'cluster' extra)",
    )
    report = commands.add_parser("report", help="write REPORT.md and plots from results.csv")
    report.add_argument("--suite", required=True, help="a suite's name (its folder in --out)")
    prune = commands.add_parser(
        "prune", help="remove cached jobs that the suite no longer has (after a default changed)"
    )
    prune.add_argument("--suite", required=True, help="a suite's name (its folder in --out)")
    prune.add_argument("--dry-run", action="store_true", help="list the files, remove nothing")
    board = commands.add_parser(
        "leaderboard", help="LEADERBOARD.md and its plot from every suite's results"
    )
    board.add_argument(
        "--readme", type=Path, default=Path("README.md"), help="copy the headline in here"
    )
    for sub in (run, report, prune, board):
        sub.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    return parser


def _suite(args: argparse.Namespace) -> Suite:
    if args.suite:
        return get_suite(args.suite)
    if args.suite_file:
        return Suite.from_file(args.suite_file)
    if not args.estimators:
        raise ValueError("--tasks needs --estimators")
    return Suite.from_dict(
        {"name": args.name, "tasks": args.tasks, "estimators": args.estimators}
        | {"sizes": args.n, "seeds": args.seeds},
        "the command line",
    )


def _saved_suite(out: Path, name: str) -> Suite:
    """A suite to report: a built-in one, or the one ``run`` saved beside its results."""
    if name in SUITES:
        return get_suite(name)
    saved = out / name / "suite.json"
    if not saved.exists():
        raise FileNotFoundError(f"no suite {name!r}: not built in and no {saved}")
    return Suite.from_dict(json.loads(saved.read_text()), str(saved), check=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            width = max(map(len, SUITES))
            for name in SUITES:
                suite = get_suite(name)
                print(f"{name:{width}s} {len(suite.jobs()):5d} jobs  {suite.description}")
            return 0
        if args.command == "leaderboard":
            from benchmarks.leaderboard import write

            print(f"wrote {write(args.out, args.readme)}")
            return 0
        if args.command == "report":
            suite = _saved_suite(args.out, args.suite)
            print(f"wrote {write_report(args.out / args.suite, suite)}")
            return 0
        if args.command == "prune":
            suite = _saved_suite(args.out, args.suite)
            stale = stale_cache_files(args.out / args.suite / "cache", suite.jobs())
            for path in stale:
                print(path)
                if not args.dry_run:
                    path.unlink()
            verb = "would remove" if args.dry_run else "removed"
            print(f"{verb} {len(stale)} stale cached job(s) of suite {args.suite!r}")
            return 0
        load_plugins(args.plugin)
        suite = _suite(args)
        with dask_executor(args.dask, args.jobs) if args.dask else nullcontext() as executor:
            frame = run_suite(
                suite,
                args.out,
                args.jobs,
                progress=not args.no_progress,
                executor=executor,
                threads=args.threads,
                plugins=args.plugin,
                estimators=None if args.tasks else args.estimators,
            )
        failed = int((frame.error.fillna("") != "").sum())
        csv = args.out / suite.name / "results.csv"
        print(f"{len(frame) - failed} rows in {csv}, {failed} failed")
        print(f"wrote {write_report(args.out / suite.name, suite)}")
        return 0
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"miest-bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
