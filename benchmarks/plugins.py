"""Plugin files: Python files that register your own estimators and tasks.

A plugin calls ``benchmarks.register_estimator`` / ``benchmarks.register_task`` when
imported. ``miest-bench run --plugin my_plugin.py`` (or ``run_suite(..., plugins=[...])``)
imports it here and in every worker process before a job runs, which is how your
estimators and tasks reach parallel workers; ones registered in a script's own process
only run with one job at a time (in that process).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from benchmarks.estimators import BUILDERS, BUILT_IN
from benchmarks.tasks import USER_TASKS

FROM_PLUGINS: set[str] = set()  # estimator and task names that plugin files registered


def load_plugins(paths) -> None:
    """Import each plugin file once per process (a missing file is a clear error)."""
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"plugin file {path} does not exist")
        name = "miest_bench_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        if name in sys.modules:
            continue
        before = set(BUILDERS) | set(USER_TASKS)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
        FROM_PLUGINS.update((set(BUILDERS) | set(USER_TASKS)) - before)


def local_only(names) -> list[str]:
    """Those of ``names`` registered in this process without a plugin file."""
    registered = (set(BUILDERS) - BUILT_IN) | set(USER_TASKS)
    return sorted(n for n in set(names) & registered if n not in FROM_PLUGINS)
