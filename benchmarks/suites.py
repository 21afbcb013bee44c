"""Suites: named lists of jobs (task x estimator x seed x sample size)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import miest
from benchmarks import consistency, images, pointwise, v2
from benchmarks.estimators import BUILDERS
from miest.files import job_key

MIEST = ["minde-c", "minde-j", "rfmi", "mine", "infonce", "nwj"]
BMI_PEERS = ["bmi-ksg", "bmi-cca", "bmi-mine", "bmi-infonce", "bmi-nwj", "bmi-dv"]
OTHER_PEERS = [
    "torch-mist-infonce",
    "torch-mist-smile",
    "latentmi",
    "dmi-minde-c",
    "dmi-minde-j",
    "dmi-mmg-orthogonal",
]
DIFFUSION = ("minde-c", "minde-j", "rfmi")
# The suites name the point-wise form they judge (the default, chosen on
# results/forms/v1_n10000_seed0.csv), so every row's options say which form it used.
FORM = {name: {"form": "cross"} for name in DIFFUSION}
UNKEYED = ("seed", "progress", "threads")  # in the key already, or without effect on results
# Options added after jobs were cached, at the value that reproduces the behaviour from
# before they existed: left out of the key at that value, so those jobs keep their keys
# (any other value, including a later default, is keyed).
NEUTRAL = {
    "condition_encoder": None,
    "network": "mlp",
    "image_shape": None,
    "unconditional_target": "data",
    "unconditional_weight": 1.0,
    "weight_decay": 0.0,
    "condition_decay": 0.0,
}


@lru_cache
def resolved_options(estimator: str, options: tuple[tuple[str, object], ...]) -> dict:
    """The hyper-parameters a job runs with: for miest's estimators every constructor
    argument, defaults included, so a changed default changes the key of every job it
    affects and no stale cached row is reused; for peers the explicit options (their
    defaults are their libraries' and their adapters' in ``benchmarks.peers``)."""
    if estimator not in miest.available():
        return dict(options)
    parameters = miest.estimator(estimator, **dict(options)).parameters()
    return {
        k: v
        for k, v in parameters.items()
        if k not in UNKEYED and not (k in NEUTRAL and v == NEUTRAL[k])
    }


@dataclass(frozen=True)
class Job:
    """One benchmark run; a pure function of these fields (see ``benchmarks.runner``)."""

    task: str
    estimator: str
    seed: int
    n: int
    options: tuple[tuple[str, object], ...] = ()
    # "mi": estimate vs true MI; "pointwise": per-sample values vs exact PMI;
    # "consistency": self-consistency tasks of ``benchmarks.consistency``
    kind: str = "mi"

    @property
    def key(self) -> str:
        """A stable file-name-safe identity, used as the cache key; it covers the
        estimator's resolved hyper-parameters (``resolved_options``)."""
        identity = asdict(self) | {"options": resolved_options(self.estimator, self.options)}
        return job_key(f"{self.task}__{self.estimator}__s{self.seed}__n{self.n}", identity)


@dataclass(frozen=True)
class Suite:
    """Every combination of ``tasks x estimators x seeds x sizes``; ``options`` per estimator.

    ``kind="mi"`` tasks are bmi benchmark ids; ``kind="pointwise"`` and
    ``kind="consistency"`` tasks are those of ``benchmarks.pointwise`` and
    ``benchmarks.consistency``.
    """

    name: str
    description: str
    tasks: tuple[str, ...]
    estimators: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    sizes: tuple[int, ...] = (5000,)
    options: dict[str, dict] = field(default_factory=dict)
    kind: str = "mi"
    # keywords of ``benchmarks.report.targets`` (consistency suites: the ``candidates`` of
    # ``benchmarks.report.consistency_targets``) when the report judges targets, else None
    targets: dict | None = None
    # estimator -> the tasks it runs on, for estimators that apply to some tasks only
    # (gmm-mi: one-dimensional x and y); the others run on every task
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: dict, source: str = "suite", check: bool = True) -> Suite:
        """A suite from plain data (a TOML file's or ``suite.json``'s): ``name``,
        ``tasks`` and ``estimators`` required; ``description``, ``seeds``, ``sizes``,
        ``options`` (a table per estimator), ``kind``, ``targets`` and ``only`` (a task
        list per estimator that runs on those tasks only) optional; ``check``:
        the estimators must be known (registered) here."""
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        missing = {"name", "tasks", "estimators"} - set(spec)
        if missing:
            raise ValueError(f"{source}: missing {sorted(missing)}")
        spec = {"description": f"suite {spec['name']}"} | spec
        lists = {k: tuple(spec[k]) for k in ("tasks", "estimators", "seeds", "sizes") if k in spec}
        if "only" in spec:
            lists["only"] = {est: tuple(tasks) for est, tasks in spec["only"].items()}
        suite = cls(**spec | lists)
        if check:  # unknown estimators fail here (a report needs none of them)
            suite.jobs()
        return suite

    @classmethod
    def from_file(cls, path: Path) -> Suite:
        """A suite from a TOML file, e.g.::

        name = "mine"
        tasks = ["1v1-normal-0.75", "my-data"]
        estimators = ["rfmi", "bmi-ksg"]
        sizes = [5000]
        seeds = [0, 1]
        [options.rfmi]
        steps = 2000
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no suite file at {path}")
        try:
            spec = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML: {error}") from None
        return cls.from_dict(spec, str(path))

    def jobs(self) -> list[Job]:
        """Ordered size-major, then seed: a partial run covers every task at the first size."""
        unknown = set(self.estimators) - set(BUILDERS)
        if unknown:
            raise ValueError(f"suite {self.name!r} names unknown estimators {sorted(unknown)}")
        stray = {e for e, tasks in self.only.items() if e not in self.estimators} | {
            t for tasks in self.only.values() for t in tasks if t not in self.tasks
        }
        if stray:
            raise ValueError(f"suite {self.name!r}: `only` names {sorted(stray)}, not in the suite")
        return [
            Job(task, est, seed, n, tuple(sorted(self.options.get(est, {}).items())), self.kind)
            for n in self.sizes
            for seed in self.seeds
            for task in self.tasks
            for est in self.estimators
            if est not in self.only or task in self.only[est]
        ]


def _v1_tasks() -> tuple[str, ...]:
    from bmi.benchmark import BENCHMARK_TASKS

    return tuple(BENCHMARK_TASKS)


QUICK = Suite(
    name="quick",
    description="four bmi tasks, every miest estimator and every peer, one seed, n = 5,000",
    # four tasks keep the README's main job near 10 minutes on 2 cores with all 18 estimators
    tasks=(
        "multinormal-dense-5-5-0.5",
        "student-identity-2-2-1",
        "half_cube-multinormal-sparse-3-3-2-2.0",
        "spiral-multinormal-sparse-3-3-2-2.0",
    ),
    estimators=(*MIEST, *BMI_PEERS, *OTHER_PEERS),
    options=FORM,
)


POINTWISE = Suite(
    name="pointwise",
    description=(
        "point-wise values vs exact PMI on bmi BMM distributions, n = 5,000, seed 0; "
        "diffusion/flow estimators with 128 Monte Carlo draws per sample"
    ),
    tasks=pointwise.TASKS,
    estimators=tuple(MIEST),
    kind="pointwise",
    options={name: FORM[name] | {"n_draws": 128} for name in DIFFUSION},
)


def _one_by_one(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The bmi v1 tasks among ``tasks`` whose x and y are both one-dimensional."""
    from bmi.benchmark import BENCHMARK_TASKS

    return tuple(t for t in tasks if BENCHMARK_TASKS[t].dim_x == BENCHMARK_TASKS[t].dim_y == 1)


def v1() -> Suite:
    tasks = _v1_tasks()
    return Suite(
        name="v1",
        description=(
            "all 40 bmi v1 tasks, n = 5,000 and 10,000, seeds 0-2, every estimator (gmm-mi on "
            "the nine 1 x 1 tasks)"
        ),
        tasks=tasks,
        estimators=(*MIEST, *BMI_PEERS, *OTHER_PEERS, "gmm-mi"),
        seeds=(0, 1, 2),
        sizes=(10000, 5000),  # the targets are judged at 10,000: those jobs run first
        options=FORM,
        targets={},  # the defaults of ``targets``: 36 of 40, ahead of every peer, cost
        only={"gmm-mi": _one_by_one(tasks)},
    )


# Successes of 40 on bmi v1 at n = 100,000 reported by the MMG paper (NeurIPS 2025,
# arXiv 2509.20609), the published best being 39
PUBLISHED_V1_100K = {
    "source": "MMG paper, arXiv 2509.20609",
    "counts": {
        "MINE": 30,
        "NWJ": 30,
        "InfoNCE": 33,
        "MINDE-C": 35,
        "MINDE-J": 35,
        "MMG-orthogonal": 37,
        "MMG-orthogonal, adaptive log-SNR sampling": 39,
    },
}


def v1_100k() -> Suite:
    return Suite(
        name="v1-100k",
        description=(
            "all 40 bmi v1 tasks at the papers' sample size, n = 100,000, seed 0, miest's "
            "estimators at their defaults (the training budget is in steps, so a fit costs "
            "about what it does at n = 10,000)"
        ),
        tasks=_v1_tasks(),
        estimators=tuple(MIEST),
        seeds=(0,),
        sizes=(100_000,),
        options=FORM,
        targets={"n": 100_000, "required": 39, "seeds": 1, "published": PUBLISHED_V1_100K},
    )


CONSISTENCY = Suite(
    name="consistency",
    description=(
        "MINDE's self-consistency tests on 8x8 digit images (independence, monotonicity, "
        "data processing, additivity), n = 5,000, seed 0"
    ),
    tasks=consistency.TASKS,
    estimators=(*MIEST, *BMI_PEERS),
    kind="consistency",
    options=FORM,
    # ``benchmarks.report.consistency_targets``: these pass every check
    targets={"candidates": ["minde-c", "rfmi", "minde-j"]},
)

IMAGES = Suite(
    name="images",
    description=(
        "digit-image pairs with exact MI from a designed label table (8x8 to 28x28, up to "
        "784 + 784 dimensions), n = 10,000, seeds 0-2, every estimator"
    ),
    tasks=tuple(images.TASKS),
    estimators=(*MIEST, *BMI_PEERS, *OTHER_PEERS),
    seeds=(0, 1, 2),
    sizes=(10000,),
    options=FORM,
    # the best diffusion/flow estimator within tolerance on at least 80% of the 7 tasks
    # (6), ahead of every peer
    targets={"required": 6, "total": 7, "candidates": ["minde-c", "minde-j", "rfmi"]},
)


def v2_suite() -> Suite:
    return Suite(
        name="v2",
        description=(
            "bmi's v2 task list (26 tasks: 13 from v1, 13 Gaussian mixtures with Monte Carlo "
            "truth; every sample rescaled as bmi's v2 does), n = 5,000, seeds 0-4, every "
            "estimator"
        ),
        tasks=v2.TASKS,
        estimators=(*MIEST, *BMI_PEERS, *OTHER_PEERS, "gmm-mi"),
        seeds=(0, 1, 2, 3, 4),
        sizes=(5000,),
        options=FORM,
        # no per-task state of the art is published for v2: the best miest estimator
        # succeeds on more tasks than every peer, at no more median time than bmi InfoNCE
        targets={"n": 5000, "required": 0, "total": len(v2.TASKS), "seeds": 5},
        only={"gmm-mi": v2.ONE_BY_ONE},
    )


SUITES = {
    "quick": lambda: QUICK,
    "v1": v1,
    "v1-100k": v1_100k,
    "pointwise": lambda: POINTWISE,
    "consistency": lambda: CONSISTENCY,
    "images": lambda: IMAGES,
    "v2": v2_suite,
}


def get_suite(name: str) -> Suite:
    """A suite by name (see ``SUITES``)."""
    try:
        return SUITES[name]()
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; known: {sorted(SUITES)}") from None
