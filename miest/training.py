"""One training loop for every estimator: Adam, EMA weights, early stopping, seeding.

``loss_fn(model, batch, generator) -> scalar`` defines the method; ``batch`` is a
tuple of tensors (rows of the training arrays) and ``generator`` the only source of
randomness, so the same seed gives the same weights. The held-out loss is computed
with the EMA weights and a fixed generator, so evaluations are comparable; the best
EMA weights are loaded into ``model`` at the end.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

LossFn = Callable[[nn.Module, tuple[Tensor, ...], torch.Generator], Tensor]

# A fit that ran to its step cap with the held-out loss still falling by more than this
# fraction over its last ``patience`` evaluations is under-trained. (Fits that converged
# fall by at most 0.25%: RFMI on four bmi tasks, n = 5,000; reaching the cap alone says
# little, as 11 of the 14 v1 fits of MINDE-C and RFMI whose best step was the last one are
# within tolerance, results/forms/v1_n10000_seed0.csv.)
STILL_IMPROVING = 0.01


@dataclass
class TrainingLog:
    """Training curves: losses at each evaluation step, best step, seconds."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    max_steps: int = 0

    @property
    def stopped_at_step_cap(self) -> bool:
        """Training ran every allowed step instead of being stopped early."""
        return not self.stopped_early and bool(self.steps) and self.steps[-1] == self.max_steps

    def as_dict(self) -> dict:
        return asdict(self) | {"stopped_at_step_cap": self.stopped_at_step_cap}

    def warnings(self, patience: int) -> list[str]:
        """Reasons to distrust the training: the step cap reached while the held-out loss
        was still falling by more than ``STILL_IMPROVING`` over ``patience`` evaluations."""
        if not self.stopped_at_step_cap or len(self.val_loss) <= patience:
            return []
        before, last = self.val_loss[-patience - 1], self.val_loss[-1]
        drop = (before - last) / max(abs(last), 1e-12)
        if self.best_step == self.steps[-1] and drop > STILL_IMPROVING:
            return [
                f"training stopped at the step cap ({self.max_steps} steps) with the held-out "
                f"loss still falling ({drop:.1%} over the last {patience} evaluations): the "
                "networks are under-trained; raise steps"
            ]
        return []


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    loss_fn: LossFn,
    data: tuple[Tensor, ...],
    seed: int,
    min_rows: int = 8192,
    chunk: int = 4096,
) -> float:
    """Mean loss over ``data`` with a generator seeded by ``seed`` (same noise every call).

    Small held-out sets are repeated up to ``min_rows`` rows, so noisy objectives
    (diffusion losses draw a time and a noise per row) average several draws per row.
    """
    generator = torch.Generator().manual_seed(seed)
    n = data[0].shape[0]
    repeats = max(1, -(-min_rows // n))
    total = 0.0
    for _ in range(repeats):
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            batch = tuple(a[rows] for a in data)
            total += float(loss_fn(model, batch, generator)) * (rows.stop - start)
    return total / (n * repeats)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: tuple[Tensor, ...],
    val_data: tuple[Tensor, ...],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    eval_every: int = 200,
    patience: int = 8,
    ema_decay: float = 0.995,
    progress: bool = False,
    desc: str = "training",
    val_loss_fn: LossFn | None = None,
    weight_decay: float = 0.0,
    after_step: Callable[[], None] | None = None,
) -> TrainingLog:
    """Train ``model`` in place; stop after ``patience`` evaluations without a better held-out
    loss. Returns the curves. ``steps`` is the maximum number of optimiser steps.

    ``val_loss_fn`` (default ``loss_fn``) is the held-out criterion of early stopping and of
    the checkpoint kept: a training loss whose target moves with the model (a network
    regressing on its own detached outputs) is no criterion, since its value can rise while
    the model improves. ``weight_decay > 0``: AdamW's decoupled weight decay instead of Adam.
    ``after_step`` runs after every optimiser step (before the EMA update)."""
    generator = torch.Generator().manual_seed(seed)
    if weight_decay:
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
    n = train_data[0].shape[0]
    batch_size = min(batch_size, n)
    log = TrainingLog(max_steps=steps)
    best_loss, best_state, bad_evals, running = float("inf"), None, 0, []
    start = time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)
    for step in bar:
        rows = torch.randint(n, (batch_size,), generator=generator)
        loss = loss_fn(model, tuple(a[rows] for a in train_data), generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {float(loss)} at step {step}; lower lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if after_step is not None:
            after_step()
        ema.update_parameters(model)
        running.append(float(loss.detach()))
        if step % eval_every and step != steps:
            continue
        val = evaluate_loss(ema.module, val_loss_fn or loss_fn, val_data, seed + 1)
        log.steps.append(step)
        log.train_loss.append(sum(running) / len(running))
        log.val_loss.append(val)
        running = []
        bar.set_postfix(train=f"{log.train_loss[-1]:.4f}", val=f"{val:.4f}")
        if val < best_loss:
            best_loss, best_state, bad_evals, log.best_step = (
                val,
                copy.deepcopy(ema.module.state_dict()),
                0,
                step,
            )
        else:
            bad_evals += 1
            if bad_evals >= patience:
                log.stopped_early = True
                break
    bar.close()
    model.load_state_dict(best_state)
    log.seconds = time.perf_counter() - start
    return log
