"""The one estimator interface (scikit-learn manners, ``bmi``-compatible).

Hyper-parameters are constructor keywords (dataclass fields with documented
defaults); ``fit`` learns; results are plain floats and arrays; fitted state ends
in ``_``. Every estimator also satisfies ``bmi``'s ``IMutualInformationPointEstimator``
(``estimate``, ``estimate_with_info``, ``parameters``) by duck typing, so ``bmi``'s
workflows run it unchanged, and ``miest`` itself never imports ``bmi`` or ``jax``.

All MI values are in nats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import scipy.stats
import torch
from torch import Tensor

from miest.data import (
    PREPROCESSORS,
    Preprocessor,
    check_not_constant,
    check_pair,
    check_positive_int,
    data_warnings,
    split,
)
from miest.training import LossFn, TrainingLog, train


@dataclass
class EstimateResult:
    """What ``estimate_with_info`` returns; the fields of ``bmi.interface.EstimateResult``."""

    mi_estimate: float
    time_in_seconds: float | None = None
    additional_information: dict = field(default_factory=dict)


class Parameters(dict):
    """Hyper-parameters as a dict; ``.dict()`` is what ``bmi``'s pydantic models offer."""

    def dict(self) -> dict:
        return dict(self)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here: a clear error for unknown names and
    for a GPU that torch does not see (instead of torch's assertion deep in training)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {str(device)!r}: {error}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA GPU")
    return parsed


class MIWarning(UserWarning):
    """Emitted by ``fit`` when the data or the training give reason to distrust a fit."""


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with torch using ``n`` CPU threads (``None``: leave them as they are)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_threads(method):
    """Run an estimator method under its ``threads`` setting."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(self.threads):
            return method(self, *args, **kwargs)

    return wrapper


def student_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (at least two)."""
    values = np.asarray(values, dtype=float)
    half = scipy.stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1)
    half /= np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


NULL_TOLERANCE = 0.05  # nats on shuffled pairs above which (and above 0 by 95%) a fit is flagged


def null_summary(nulls: list[dict]) -> tuple[dict, list[str]]:
    """Summary of fits on shuffled pairs (each a ``MIEstimator._run`` dict) and, when their
    estimate is above ``NULL_TOLERANCE`` and above 0 beyond 95% confidence, a warning."""
    estimates = [run["estimate"] for run in nulls]
    mean = float(np.mean(estimates))
    if len(nulls) > 1:
        interval = student_interval(estimates)
        low = interval[0]
    else:
        interval, low = None, mean - 1.96 * nulls[0]["standard_error"]
    summary = {"null_estimate": mean, "null_repeats": estimates, "null_interval": interval}
    if mean > NULL_TOLERANCE and low > 0:
        return summary, [
            f"on shuffled pairs (no dependence) the same fit reports {mean:.2f} nats instead of "
            "0: its estimates carry a bias of that order"
        ]
    return summary, []


def fit_warnings(estimate: float, n: int) -> list[str]:
    """Warnings every estimator shares. An estimate above ``log n`` nats (``n`` held-out
    pairs) is beyond what any distribution-free estimate from ``n`` samples can certify
    (McAllester and Stratos, AISTATS 2020). Estimators add their own checks (the
    diffusion/flow ones: ``miest.estimators.denoising.form_warnings``)."""
    if estimate > np.log(n):
        return [
            f"the estimate {estimate:.2f} nats exceeds log(n) = {np.log(n):.2f} for the {n} "
            "held-out pairs: no estimate from this many samples can certify that much"
        ]
    return []


@dataclass(kw_only=True, eq=False)
class MIEstimator(ABC):
    """Base of every ``miest`` estimator.

    Common hyper-parameters:
        seed: seeds the split, initialisation, training and Monte Carlo draws.
        test_size: fraction of rows held out for early stopping and estimation.
        preprocess: ``"rank-gauss"`` (per-column Gaussian copula, MI-preserving, robust
            to heavy tails) or ``"standardize"`` (per-column z-score).
        steps: maximum optimiser steps; early stopping may end sooner (on the bmi v1
            tasks at 10,000 samples most fits run to 4,000: results/forms/).
        batch_size, lr: Adam mini-batch size and learning rate.
        weight_decay: AdamW's decoupled weight decay (0: plain Adam), a regulariser.
        hidden, depth: width and number of residual blocks of the networks.
        eval_every, patience: held-out loss every ``eval_every`` steps; stop after
            ``patience`` evaluations without improvement.
        ema_decay: decay of the exponential moving average of the weights.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        threads: torch CPU threads while fitting and estimating (``None``: torch's setting,
            which is every core). One thread is about as fast as two on an idle 2-core
            machine and several times faster when another process keeps a core busy
            (``python -m benchmarks.fit_time``: results/fit_time/).
        progress: show progress bars.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    min_samples: ClassVar[int] = 20

    seed: int = 0
    test_size: float = 0.3
    preprocess: Literal["rank-gauss", "standardize"] = "rank-gauss"
    steps: int = 4000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    hidden: int = 128
    depth: int = 2
    eval_every: int = 200
    patience: int = 6
    ema_decay: float = 0.995
    device: str = "cpu"
    threads: int | None = 1
    progress: bool = False

    def __post_init__(self):
        if self.preprocess not in PREPROCESSORS:
            raise ValueError(
                f"preprocess must be one of {sorted(PREPROCESSORS)}, got {self.preprocess!r}"
            )
        for name in ("steps", "batch_size", "hidden", "depth", "eval_every", "patience"):
            check_positive_int(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        torch_device(self.device)
        check_positive_int("threads", self.threads, optional=True)

    # -- the public interface -------------------------------------------------

    @with_threads
    def fit(self, x, y) -> MIEstimator:
        """Learn from paired samples ``x`` (n, dx), ``y`` (n, dy); returns ``self``.

        Emits an ``MIWarning`` (and lists it in ``warnings_``) for few pairs,
        discrete-looking columns, or training stopped at the step cap while improving."""
        x, y = check_pair(x, y, self.min_samples)
        check_not_constant(x, "x")
        check_not_constant(y, "y")
        self.warnings_ = data_warnings(x, y)
        train_rows, test_rows = split(len(x), self.test_size, self.seed)
        self.x_map_ = Preprocessor.fit(x[train_rows], self.preprocess)
        self.y_map_ = Preprocessor.fit(y[train_rows], self.preprocess)
        x_train, y_train = self._tensors(x[train_rows], y[train_rows])
        self.held_out_ = self._tensors(x[test_rows], y[test_rows])
        with seeded(self.seed):
            self.log_ = self._fit(x_train, y_train, *self.held_out_)
        self.warnings_ += self.log_.warnings(self.patience)
        for message in self.warnings_:
            warnings.warn(f"{self.name}: {message}", MIWarning, stacklevel=3)
        return self

    @with_threads
    def pointwise(self, x=None, y=None, form: str | None = None) -> np.ndarray:
        """Per-sample point-wise MI (n,) in nats.

        Without arguments: the held-out pairs of ``fit``. ``form`` chooses the
        point-wise quantity where the method has several (diffusion/flow estimators:
        ``"orthogonal"``, ``"mmse-gap"`` or ``"cross"``; default ``"mmse-gap"``,
        ``miest.integrate.POINTWISE_FORM``, the one that tracks the exact point-wise MI,
        while the MI estimate is the mean of the estimator's ``form``, cross by default).
        Per-sample values need more draws than a mean (``n_draws=128``: Pearson 0.86-0.95
        for ``"mmse-gap"`` on bmi's mixture tasks, results/pointwise/). For the critics
        (MINE, InfoNCE, NWJ) the mean of these values is the estimate.
        """
        return self._pointwise(*self._pairs(x, y), form)

    def mutual_information(self, x=None, y=None) -> float:
        """MI estimate (nats) on ``(x, y)``, by default the held-out pairs of ``fit``."""
        return float(np.mean(self.pointwise(x, y)))

    def estimate(self, x, y) -> float:
        """Fit on a split of ``(x, y)`` and return the held-out MI estimate, in nats."""
        return self.fit(x, y).mutual_information()

    @with_threads
    def estimate_with_info(self, x, y, *, n_repeats: int = 1, null: bool = False) -> EstimateResult:
        """``estimate`` plus training curves, timings, the held-out standard error and
        ``warnings``: a list of reasons not to trust the number (empty when none).

        n_repeats: fit this many times (seeds ``seed``, ``seed + 1``, ...: each a new
            split, initialisation and Monte Carlo draws) and report the mean, the single
            estimates (``repeats``) and a 95% Student-t interval for the mean
            (``interval``; ``None`` for one fit). It covers the variability of fitting on
            these data, not the estimator's bias. Costs ``n_repeats`` fits.
        null: also fit as many times on shuffled pairs (``y``'s rows permuted, which
            destroys the dependence) and report ``null_estimate`` (``null_repeats``,
            ``null_interval``): the estimate on data without MI, which should be about 0.
            A null estimate clearly above 0 adds a warning. Doubles the cost.

        The fitted state is that of the first fit (seed ``seed``, real pairs)."""
        check_positive_int("n_repeats", n_repeats)
        start = time.perf_counter()
        x, y = check_pair(x, y, self.min_samples)
        runs = [self._run(x, y)]
        runs += [
            dataclasses.replace(self, seed=self.seed + i)._run(x, y) for i in range(1, n_repeats)
        ]
        estimates = [run["estimate"] for run in runs]
        info = runs[0] | {
            "n_repeats": n_repeats,
            "repeats": estimates,
            "interval": student_interval(estimates) if n_repeats > 1 else None,
            "warnings": list(dict.fromkeys(w for run in runs for w in run["warnings"])),
        }
        estimate = float(np.mean(estimates))
        if null:
            nulls = []
            for i in range(n_repeats):
                shuffled = y[np.random.default_rng([self.seed + i, 1]).permutation(len(y))]
                clone = dataclasses.replace(self, seed=self.seed + i)
                with warnings.catch_warnings():  # the real fits have warned already
                    warnings.simplefilter("ignore", MIWarning)
                    nulls.append(clone._run(x, shuffled))
            summary, null_warnings = null_summary(nulls)
            info |= summary
            info["warnings"] += null_warnings
        del info["estimate"]
        return EstimateResult(
            mi_estimate=estimate,
            time_in_seconds=time.perf_counter() - start,
            additional_information=info,
        )

    def _run(self, x: np.ndarray, y: np.ndarray) -> dict:
        """Fit once and summarise: the information of ``estimate_with_info`` for one fit."""
        start = time.perf_counter()
        self.fit(x, y)
        fitted = time.perf_counter()
        values, method_warnings = self._held_out_values()
        estimate = float(np.mean(values))
        return {
            "estimate": estimate,
            "estimator": self.name,
            "standard_error": float(np.std(values, ddof=1) / np.sqrt(len(values))),
            "n_train": len(x) - len(values),
            "n_test": len(values),
            "fit_seconds": fitted - start,
            "estimate_seconds": time.perf_counter() - fitted,
            "training": self.log_.as_dict(),
            "warnings": self.warnings_ + method_warnings + fit_warnings(estimate, len(values)),
        }

    def _held_out_values(self) -> tuple[np.ndarray, list[str]]:
        """Per-sample values on the held-out pairs, and method-specific warnings."""
        return self.pointwise(), []

    def parameters(self) -> Parameters:
        """The hyper-parameters (constructor arguments)."""
        return Parameters({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    # -- what a method implements ---------------------------------------------

    @abstractmethod
    def _fit(self, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor) -> TrainingLog:
        """Train on preprocessed tensors; the held-out pair is for early stopping."""

    @abstractmethod
    def _pointwise(self, x: Tensor, y: Tensor, form: str | None) -> np.ndarray:
        """Per-sample values (n,) on preprocessed tensors."""

    # -- helpers ----------------------------------------------------------------

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
        x, y = self.x_map_(x), self.y_map_(y)
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)

    def _pairs(self, x, y) -> tuple[Tensor, Tensor]:
        """Preprocessed tensors of new pairs, or the held-out pairs of ``fit`` when both
        are ``None``."""
        self._check_fitted()
        if x is None and y is None:
            return self.held_out_
        if x is None or y is None:
            raise ValueError("give both x and y, or neither (to use the held-out pairs)")
        return self._tensors(*check_pair(x, y, 1))

    def _check_fitted(self) -> None:
        if not hasattr(self, "log_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(x, y) first")

    def _train(
        self,
        net: torch.nn.Module,
        loss_fn: LossFn,
        data: tuple,
        held_out: tuple,
        val_loss_fn: LossFn | None = None,
        after_step: Callable[[], None] | None = None,
    ) -> TrainingLog:
        """``miest.training.train`` with this estimator's optimisation hyper-parameters."""
        return train(
            net,
            loss_fn,
            data,
            held_out,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            eval_every=self.eval_every,
            patience=self.patience,
            ema_decay=self.ema_decay,
            progress=self.progress,
            desc=self.name,
            val_loss_fn=val_loss_fn,
            weight_decay=self.weight_decay,
            after_step=after_step,
        )

    def _generator(self, offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + offset)
