"""Run a suite: each job is a pure function to one result row, cached on disk.

Layout under ``<out>/<suite>/``: ``cache/<job key>.json`` (a finished job's rows,
written atomically) and ``results.csv`` (all finished rows of the suite, rewritten
atomically after every job). A rerun skips cached jobs, so an interrupted run resumes
and a finished job is never recomputed; failed jobs are not cached and are retried.

With one worker the jobs run in this process, one after another (a script needs no
``if __name__ == "__main__"`` guard; ``peak_rss_mb`` is then this process's peak so
far). With more, each job runs in a fresh local worker process
(``max_tasks_per_child=1``), so its ``peak_rss_mb`` is that job's own peak (imports
included) and a crash cannot take the run down. Any ``concurrent.futures.Executor``
can run the jobs instead, for example a Dask cluster through ``dask_executor`` (there
``peak_rss_mb`` is the peak of the long-lived worker process so far, not of the job).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from benchmarks.consistency import run_consistency_job
from benchmarks.estimators import build, library
from benchmarks.plugins import load_plugins, local_only
from benchmarks.pointwise import run_pointwise_job
from benchmarks.suites import Job, Suite
from benchmarks.tasks import check_task, get_task
from miest.files import write_atomically
from miest.interface import torch_threads

KEYS = ["task", "estimator", "library", "seed", "n"]
RECORD = ["peak_rss_mb", "options", "versions", "machine", "error"]
MI_RESULTS = [
    "dim_x",
    "dim_y",
    "true_mi",
    "true_mi_se",
    "estimate",
    "abs_error",
    "rel_error",
    "seconds",
]
CONSISTENCY_RESULTS = ["test", "rows", "dim_x", "dim_y", "upper_bound", "estimate", "seconds"]
POINTWISE_RESULTS = ["form", "pearson", "spearman", "mae", "mean_estimate", "mean_exact_pmi"]
COLUMNS = {
    "mi": [*KEYS, *MI_RESULTS, *RECORD],
    "pointwise": [*KEYS, *POINTWISE_RESULTS, "fit_seconds", *RECORD],
    "consistency": [*KEYS, *CONSISTENCY_RESULTS, *RECORD],
}


def _versions() -> str:
    found = {}
    for package in ("miest", "torch", "benchmark-mi", "jax", "torch-mist", "latentmi"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return json.dumps(found, sort_keys=True)


def run_job(job: Job, threads: int | None = None) -> list[dict]:
    """The result rows of ``job``: one, or one per point-wise form for ``kind="pointwise"``."""
    with torch_threads(threads):
        return _run_job(job)


def _run_job(job: Job) -> list[dict]:
    common = _identity(job)
    common |= {"library": library(job.estimator), "options": json.dumps(dict(job.options))}
    common |= {"versions": _versions(), "machine": f"{platform.machine()} {os.cpu_count()} cores"}
    estimator = build(job.estimator, job.seed, **dict(job.options))
    if job.kind == "pointwise":
        rows = run_pointwise_job(job, estimator)
    elif job.kind == "consistency":
        rows = run_consistency_job(job, estimator)
    elif job.kind == "mi":
        rows = [_mi_row(job, estimator)]
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [common | row | {"peak_rss_mb": peak, "error": ""} for row in rows]


def _mi_row(job: Job, estimator) -> dict:
    task = get_task(job.task)
    x, y = task.sample(job.n, seed=job.seed)
    start = time.perf_counter()
    estimate = float(estimator.estimate(x, y))
    seconds = time.perf_counter() - start
    truth = float(task.mutual_information)
    return {
        "dim_x": task.dim_x,
        "dim_y": task.dim_y,
        "true_mi": truth,
        "true_mi_se": float(getattr(task, "mi_stderr", 0.0)),  # Monte Carlo truths (v2)
        "estimate": estimate,
        "abs_error": abs(estimate - truth),
        "rel_error": abs(estimate - truth) / truth if truth else float("nan"),
        "seconds": seconds,
    }


def _identity(job: Job) -> dict:
    return {"task": job.task, "estimator": job.estimator, "seed": job.seed, "n": job.n}


def _safe_run(job: Job, threads: int | None, plugins: tuple[str, ...] = ()) -> list[dict]:
    try:
        load_plugins(plugins)
        return run_job(job, threads)
    except Exception as error:  # a failed job is a row with its message, not a dead run
        return [_identity(job) | {"error": f"{type(error).__name__}: {error}"}]


def cached_rows(cache: Path, jobs: Iterable[Job]) -> list[dict]:
    """All cached rows of ``jobs`` (including extra keys such as point-wise scatter data)."""
    rows = []
    for job in jobs:
        path = cache / f"{job.key}.json"
        if path.exists():
            rows.extend(json.loads(path.read_text()))
    return rows


def stale_cache_files(cache: Path, jobs: Iterable[Job]) -> list[Path]:
    """Cached files that belong to no job of ``jobs``: left behind when a default or an
    option changed (a job's key holds every hyper-parameter), and never read again."""
    keys = {job.key for job in jobs}
    return sorted(path for path in cache.glob("*.json") if path.stem not in keys)


def _write_csv(path: Path, rows: list[dict], kind: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS[kind])
    counts = [c for c in ("seed", "n", "dim_x", "dim_y") if c in frame]
    frame[counts] = frame[counts].astype("Int64")  # integers even beside a failed row's gaps
    frame = frame.sort_values(["task", "estimator", "n", "seed"], kind="stable")
    write_atomically(path, frame.to_csv(index=False))
    return frame


@contextmanager
def dask_executor(address: str, workers: int) -> Iterator[Executor]:
    """A ``concurrent.futures`` executor on a Dask cluster (optional extra ``cluster``).

    ``address="local"`` starts a ``LocalCluster`` of ``workers`` single-threaded worker
    processes on this machine; any other value is a scheduler address such as
    ``tcp://host:8786``.
    """
    from distributed import Client, LocalCluster

    cluster = None
    if address == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else address)
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_pool(workers: int) -> Executor:
    """A fresh process per job, forked from a server that has imported torch, miest and jax
    once: about 3 s less start-up per job on 2 cores. bmi is imported by each job, not the
    server: importing it starts jax's CPU backend, and forking after that can deadlock."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["benchmarks.runner", "jax"])
    return ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1)


def run_suite(
    suite: Suite,
    out: Path = Path("results"),
    workers: int = 1,
    progress: bool = True,
    executor: Executor | None = None,
    threads: int | None = None,
    plugins: Iterable[str | Path] = (),
    estimators: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Run the jobs of ``suite`` that are not cached yet; return all finished rows.

    ``workers`` jobs run in parallel (one: in this process), each with ``threads`` torch
    threads (default ``cpus // workers``), in fresh local processes unless ``executor`` is
    given. ``plugins`` are files that register estimators or tasks (``benchmarks.plugins``),
    imported here and by every worker. Failed jobs are reported (``error`` column) and
    retried on the next run. The suite's definition is saved beside its results
    (``suite.json``), so ``miest-bench report`` works for any suite. ``estimators``: run
    only these of the suite's estimators now (a long suite in parts); the results file
    still holds every finished job of the suite.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    plugins = tuple(str(p) for p in plugins)
    load_plugins(plugins)
    jobs = suite.jobs()
    if estimators is not None:
        estimators = set(estimators)
        stray = estimators - set(suite.estimators)
        if stray:
            raise ValueError(f"suite {suite.name!r} has no estimators {sorted(stray)}")
    parallel = workers > 1 or executor is not None
    unsent = local_only([*suite.tasks, *suite.estimators]) if parallel else []
    if unsent:
        raise ValueError(
            f"{unsent} are registered in this process only and cannot reach worker processes: "
            "register them in a plugin file (plugins=[...], --plugin) or run with one worker"
        )
    for task in suite.tasks if suite.kind == "mi" else ():
        check_task(task)  # unknown tasks fail now, not once per job
    folder = out / suite.name
    cache = folder / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "suite.json", json.dumps(asdict(suite), indent=1) + "\n")
    todo = [
        job
        for job in jobs
        if not (cache / f"{job.key}.json").exists()
        and (estimators is None or job.estimator in estimators)
    ]
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    rows = cached_rows(cache, jobs)
    failed = _earlier_failures(folder / "results.csv", jobs, todo, cache)
    bar = tqdm(total=len(todo), desc=f"suite {suite.name}", disable=not progress)
    for job, new in _results(todo, workers, executor, threads, plugins):
        bar.update()
        if new[0]["error"]:
            failed.extend(new)
            bar.write(f"FAILED {job.key}: {new[0]['error']}")
        else:
            write_atomically(cache / f"{job.key}.json", json.dumps(new))
            rows.extend(new)
        _write_csv(folder / "results.csv", rows + failed, suite.kind)
    bar.close()
    return _write_csv(folder / "results.csv", rows + failed, suite.kind)


def _earlier_failures(csv: Path, jobs: list[Job], todo: list[Job], cache: Path) -> list[dict]:
    """The failed rows of an earlier run for jobs that this run leaves alone (another
    estimator's, with ``estimators=``): failures are not cached, so without this a partial
    run would drop them from ``results.csv`` and a report would forget they were tried."""
    if not csv.exists():
        return []
    attempted = {job.key for job in todo}
    skipped = {
        (job.task, job.estimator, job.seed, job.n)
        for job in jobs
        if job.key not in attempted and not (cache / f"{job.key}.json").exists()
    }
    earlier = pd.read_csv(csv)
    if "error" not in earlier or earlier.empty:
        return []
    earlier = earlier[earlier["error"].notna() & (earlier["error"].astype(str) != "")]
    keep = [
        (row.task, row.estimator, int(row.seed), int(row.n)) in skipped
        for row in earlier.itertuples()
    ]
    return earlier[keep].to_dict("records")


def _results(
    todo: list[Job],
    workers: int,
    executor: Executor | None,
    threads: int,
    plugins: tuple[str, ...],
) -> Iterator[tuple[Job, list[dict]]]:
    """``(job, rows)`` as jobs finish: in this process, a local pool or ``executor``."""
    if workers == 1 and executor is None:
        for job in todo:
            yield job, _safe_run(job, threads)
        return
    with _local_pool(workers) if executor is None else nullcontext(executor) as pool:
        futures = {pool.submit(_safe_run, job, threads, plugins): job for job in todo}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BrokenProcessPool:
            raise RuntimeError(
                "the worker processes died. A script that runs a suite with more than one "
                'worker must guard its top level with `if __name__ == "__main__":` (workers '
                "import the script); or run with one worker"
            ) from None
