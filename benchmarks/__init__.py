"""Benchmarks: miest's estimators against bmi's and other peers on tasks with known MI.

``miest-bench run --suite quick`` runs a suite (a list of jobs: task x estimator x seed
x sample size), caching each job's result row on disk so an interrupted run resumes;
``miest-bench report --suite quick`` writes REPORT.md and plots from the CSV.

Your own estimators and data, from a script::

    import benchmarks
    benchmarks.register_estimator("my-est", lambda seed, **options: MyEstimator(seed))
    benchmarks.register_task(benchmarks.Task.from_arrays("my-data", x, y))
    suite = benchmarks.Suite(name="mine", description="my estimator on my data",
                             tasks=("my-data", "1v1-normal-0.75"),
                             estimators=("my-est", "rfmi"))
    benchmarks.run_suite(suite)               # results/mine/: results.csv, cache/
    benchmarks.write_report(Path("results/mine"))
"""

from benchmarks.estimators import register_estimator
from benchmarks.report import write_report
from benchmarks.runner import run_suite
from benchmarks.suites import Suite
from benchmarks.tasks import Task, register_task

__all__ = ["Suite", "Task", "register_estimator", "register_task", "run_suite", "write_report"]
