"""Tasks by name: bmi's benchmark tasks (v1, and v2 in ``benchmarks.v2``), the images
suite's, and your own.

A task is any object with ``sample(n, seed) -> (x (n, dim_x), y (n, dim_y))``,
``mutual_information`` (nats; ``nan`` when unknown) and ``dim_x``, ``dim_y`` (the
fields bmi's tasks have). ``Task`` builds one from a sampler function or from arrays::

    from benchmarks import Task, register_task
    register_task(Task.from_arrays("my-data", x, y))              # MI unknown: estimates only
    register_task(Task("my-gaussian", sampler, mutual_information=0.5))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks import images, v2

Sampler = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
"""``sampler(n, seed) -> (x (n, dim_x), y (n, dim_y))``; the same seed gives the same pairs."""

USER_TASKS: dict[str, object] = {}


@dataclass(frozen=True)
class Task:
    """A task from a sampler; ``mutual_information`` in nats (``nan``: unknown)."""

    name: str
    sampler: Sampler
    mutual_information: float = math.nan
    dims: tuple[int, int] = field(init=False)

    def __post_init__(self):
        x, y = self.sample(2, 0)
        object.__setattr__(self, "dims", (x.shape[1], y.shape[1]))

    @classmethod
    def from_arrays(cls, name: str, x, y, mutual_information: float = math.nan) -> Task:
        """A task that draws ``n`` of the given pairs without replacement (seeded)."""
        x, y = np.asarray(x), np.asarray(y)  # 1-D columns are reshaped by ``sample``
        if len(x) != len(y):
            raise ValueError(f"task {name!r}: x has {len(x)} rows, y has {len(y)}")

        def sampler(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
            if n > len(x):
                raise ValueError(f"task {name!r} has {len(x)} pairs; cannot draw n = {n}")
            rows = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
            return x[rows], y[rows]

        return cls(name, sampler, mutual_information)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.sampler(n, seed)
        x, y = np.asarray(x), np.asarray(y)
        x, y = (x[:, None] if x.ndim == 1 else x), (y[:, None] if y.ndim == 1 else y)
        if len(x) != n or len(y) != n:
            raise ValueError(
                f"task {self.name!r}: sampler returned {len(x)} and {len(y)} rows for n = {n}"
            )
        return x, y

    @property
    def dim_x(self) -> int:
        return self.dims[0]

    @property
    def dim_y(self) -> int:
        return self.dims[1]


def register_task(task, name: str | None = None) -> None:
    """Make ``task`` runnable by name in suites (``name``: default ``task.name``)."""
    name = name or getattr(task, "name", None)
    if not name:
        raise ValueError("give the task a name")
    missing = [
        a for a in ("sample", "mutual_information", "dim_x", "dim_y") if not hasattr(task, a)
    ]
    if missing:
        raise TypeError(f"task {name!r} lacks {missing}; see benchmarks.tasks")
    USER_TASKS[name] = task


def check_task(name: str) -> None:
    """Fail now if ``name`` is no task; a v2 task is checked by name, without building it
    (its Monte Carlo truth takes seconds)."""
    if name.startswith(v2.PREFIX) and name not in USER_TASKS:
        v2.check(name)
    else:
        get_task(name)


def get_task(name: str):
    """A task by name: a registered one, one of ``benchmarks.images.TASKS``, a v2 task
    (``benchmarks.v2``: ``"v2-" + bmi id``) or a bmi v1 id."""
    if name in USER_TASKS:
        return USER_TASKS[name]
    if name in images.TASKS:
        return images.TASKS[name]
    if name.startswith(v2.PREFIX):
        return v2.get(name)
    from bmi.benchmark import BENCHMARK_TASKS

    try:
        return BENCHMARK_TASKS[name]
    except KeyError:
        raise ValueError(
            f"unknown task {name!r}: not a registered, bmi or images task "
            "(register your own with benchmarks.register_task)"
        ) from None
