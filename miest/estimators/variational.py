"""Critic-based variational lower bounds: MINE (Donsker-Varadhan), InfoNCE and NWJ.

A critic ``f(x, y)`` is trained to maximise a bound on mini-batches; the estimate is
the same bound on held-out pairs. Point-wise values are the bound's per-sample terms
(their mean is the estimate): ``f(x_i, y_i)`` minus the bound's normalising term.
Marginal pairs are drawn by shuffling ``y``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from miest.interface import MIEstimator
from miest.nets import CRITICS
from miest.training import TrainingLog


def _shuffled(y: Tensor, generator: torch.Generator) -> Tensor:
    return y[torch.randperm(y.shape[0], generator=generator).to(y.device)]


def _log_mean_exp(values: Tensor) -> Tensor:
    return torch.logsumexp(values.flatten(), 0) - math.log(values.numel())


@dataclass(kw_only=True, eq=False)
class CriticEstimator(MIEstimator):
    """Base of the critic estimators.

    Hyper-parameters (besides ``MIEstimator``'s):
        critic: ``"concat"`` (MLP on ``[x, y]``) or ``"separable"`` (``g(x) . h(y)``).
        n_shuffles: shuffles of the held-out ``y`` used for the marginal term.
    """

    critic: Literal["concat", "separable"] = "concat"
    lr: float = 1e-3
    n_shuffles: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {sorted(CRITICS)}, got {self.critic!r}")

    def _fit(self, x, y, x_test, y_test) -> TrainingLog:
        self.net_ = CRITICS[self.critic](x.shape[1], y.shape[1], self.hidden, self.depth)
        self.net_.to(self.device)
        return self._train(
            self.net_,
            lambda net, batch, gen: -self._bound(net, *batch, gen),
            (x, y),
            (x_test, y_test),
        )

    @abstractmethod
    def _bound(self, net, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """The training objective on a mini-batch (a lower bound on the MI, nats)."""

    def _marginal_scores(self, x: Tensor, y: Tensor) -> Tensor:
        generator = self._generator(3)
        return torch.cat([self.net_(x, _shuffled(y, generator)) for _ in range(self.n_shuffles)])

    @torch.no_grad()
    def _pointwise(self, x, y, form) -> np.ndarray:
        if form is not None:
            raise ValueError(f"{self.name} has one point-wise form; got form={form!r}")
        self.net_.eval()
        return self._pointwise_terms(x, y).double().cpu().numpy()

    @abstractmethod
    def _pointwise_terms(self, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass(kw_only=True, eq=False)
class MINE(CriticEstimator):
    """MINE (Belghazi et al., 2018): Donsker-Varadhan bound
    ``E_p f - log E_{p_x p_y} e^f`` with the moving-average gradient correction.

    ``ma_rate``: rate of the moving average of ``E e^f`` in the gradient's denominator.
    """

    name = "mine"
    description = "MINE: Donsker-Varadhan bound with moving-average gradient correction"
    ma_rate: float = 0.01

    def _bound(self, net, x, y, generator):
        joint = net(x, y).mean()
        marginal = net(x, _shuffled(y, generator))
        if not torch.is_grad_enabled():  # evaluation: the plain DV bound
            return joint - _log_mean_exp(marginal)
        mean_exp = marginal.exp().mean()
        previous = getattr(self, "moving_average_", None)
        current = (
            mean_exp.detach()
            if previous is None
            else previous + self.ma_rate * (mean_exp.detach() - previous)
        )
        self.moving_average_ = current
        # value equals DV when the average is exact; the gradient divides by the average
        return joint - mean_exp / current - torch.log(current) + 1.0

    def _pointwise_terms(self, x, y):
        return self.net_(x, y) - _log_mean_exp(self._marginal_scores(x, y))

    def _fit(self, x, y, x_test, y_test):
        self.moving_average_ = None
        return super()._fit(x, y, x_test, y_test)


@dataclass(kw_only=True, eq=False)
class NWJ(CriticEstimator):
    """NWJ (Nguyen, Wainwright, Jordan): ``E_p f - E_{p_x p_y} e^{f - 1}``."""

    name = "nwj"
    description = "NWJ: f-divergence bound E_p f - E_q exp(f - 1)"

    def _bound(self, net, x, y, generator):
        return net(x, y).mean() - (net(x, _shuffled(y, generator)) - 1.0).exp().mean()

    def _pointwise_terms(self, x, y):
        return self.net_(x, y) - (self._marginal_scores(x, y) - 1.0).exp().mean()


@dataclass(kw_only=True, eq=False)
class InfoNCE(CriticEstimator):
    """InfoNCE (van den Oord et al.): ``E[f(x_i, y_i) - log 1/K sum_j e^{f(x_i, y_j)}]``.

    Bounded above by ``log K`` (``K``: batch size in training, number of pairs at
    estimation). The default critic is separable: all ``K^2`` scores of a batch cost
    ``2K`` network evaluations.
    """

    name = "infonce"
    description = "InfoNCE: contrastive bound, at most log(batch size)"
    critic: Literal["concat", "separable"] = "separable"

    def _bound(self, net, x, y, generator):
        return _contrastive_terms(net.scores(x, y), 0).mean()

    def _pointwise_terms(self, x, y, chunk: int = 1024):
        starts = range(0, len(x), chunk)
        return torch.cat(
            [_contrastive_terms(self.net_.scores(x[i : i + chunk], y), i) for i in starts]
        )


def _contrastive_terms(scores: Tensor, offset: int) -> Tensor:
    """InfoNCE terms of score rows ``offset ...`` of the all-pairs matrix (positives on the
    shifted diagonal): ``f(x_i, y_i) - log mean_j exp f(x_i, y_j)``."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    positives = scores[rows, rows + offset]
    return positives - torch.logsumexp(scores, dim=1) + math.log(scores.shape[1])
