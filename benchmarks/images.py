"""A known-MI suite of high-dimensional image pairs (after Lee & Rhee, NeurIPS 2024).

Data: scikit-learn's 8x8 digits (1,797 images shipped inside scikit-learn, no
download). A pair draws labels ``(L1, L2)`` from a designed joint table, then an image
of class ``L1`` for ``X`` and, independently, one of class ``L2`` for ``Y`` (uniformly
within the class), each dequantised: pixel ``(value + U(0, 1)) / 17`` in ``[0, 1]``.

Why the MI is exact: a dequantised image lies in the box of its integer image, the
boxes of distinct integer images are disjoint, and no integer image occurs in two
classes (``check_labels_determined``), so ``L1`` is a function of ``X`` and ``L2`` of
``Y``. With ``X - L1 - L2 - Y`` a Markov chain, the data-processing inequality gives
``I(X; Y) <= I(L1; L2)`` and ``I(X; Y) >= I(f(X); g(Y)) = I(L1; L2)``: the MI is
``I(L1; L2)``, computed from the label table (``label_mi``).

Tasks (nats):

- ``label-identity``: ``L2 = L1``, uniform over 10 classes: ``log 10``;
- ``label-channel-p``: a symmetric channel, ``L2 = L1`` with probability ``1 - p``,
  otherwise one of the other nine labels uniformly (``p = 0.2, 0.5``);
- ``stacked-channel-0.2``: two independent ``label-channel-0.2`` pairs side by side
  (128 + 128 dimensions): twice its MI;
- ``nuisance-channel-0.2``: ``label-channel-0.2`` with an independent random digit
  image appended to each side (structured nuisance, 128 + 128): the MI is unchanged;
- ``upsampled-channel-0.2``: ``label-channel-0.2`` with both images upsampled to 28x28
  by bilinear interpolation, an injective linear map (784 + 784): unchanged;
- ``independent``: independent labels: 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

SIDE = 8
LEVELS = 17  # digit pixels are integers 0..16
CLASSES = 10
UPSAMPLED_SIDE = 28


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 64) as integers, labels (1797,))."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.reshape(-1, SIDE * SIDE).astype(np.int64), digits.target


def check_labels_determined(images: np.ndarray, labels: np.ndarray) -> None:
    """Raise if an integer image occurs with two labels (the exact MI would not hold)."""
    seen: dict[bytes, int] = {}
    for image, label in zip(images, labels, strict=True):
        key = image.astype(np.uint8).tobytes()
        if seen.setdefault(key, int(label)) != label:
            raise ValueError(f"an image occurs with labels {seen[key]} and {label}")


def channel_table(flip: float) -> np.ndarray:
    """Joint label distribution (10, 10): uniform ``L1``, ``L2 = L1`` with probability
    ``1 - flip``, else one of the other labels uniformly; ``flip = 0.9``: independent."""
    if not 0 <= flip <= 1:
        raise ValueError(f"flip probability must be in [0, 1], got {flip}")
    conditional = np.full((CLASSES, CLASSES), flip / (CLASSES - 1))
    np.fill_diagonal(conditional, 1 - flip)
    return conditional / CLASSES


def label_mi(table: np.ndarray) -> float:
    """``I(L1; L2)`` in nats of a joint probability table."""
    outer = table.sum(1, keepdims=True) * table.sum(0, keepdims=True)
    if np.allclose(table, outer, rtol=1e-12, atol=0):
        return 0.0  # independent labels: exactly, not up to rounding
    inside = table > 0
    return float(np.sum(table[inside] * np.log(table[inside] / outer[inside])))


@cache
def upsampling_matrix(side: int = SIDE, new_side: int = UPSAMPLED_SIDE) -> np.ndarray:
    """Bilinear interpolation (align-corners) of ``side x side`` images to
    ``new_side x new_side``, as a matrix ``(new_side**2, side**2)`` of full column rank."""
    positions = np.linspace(0, side - 1, new_side)
    low = np.minimum(np.floor(positions).astype(int), side - 2)
    frac = positions - low
    one_d = np.zeros((new_side, side))
    one_d[np.arange(new_side), low] = 1 - frac
    one_d[np.arange(new_side), low + 1] += frac
    return np.kron(one_d, one_d)


@dataclass(frozen=True)
class ImageTask:
    """A pair distribution with ``sample(n, seed) -> (x (n, dim_x), y (n, dim_y))`` and its
    exact ``mutual_information`` in nats (the fields ``bmi``'s tasks have)."""

    name: str
    flip: float
    copies: int = 1  # independent pairs side by side
    nuisance: bool = False  # an independent digit image appended to each side
    upsampled: bool = False  # 28x28 instead of 8x8

    @property
    def table(self) -> np.ndarray:
        return channel_table(self.flip)

    @property
    def mutual_information(self) -> float:
        return self.copies * label_mi(self.table)

    @property
    def dim_x(self) -> int:
        side = UPSAMPLED_SIDE if self.upsampled else SIDE
        return side * side * (self.copies + self.nuisance)

    dim_y = dim_x  # both sides have the same shape

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        images, labels = _digits()
        by_class = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=CLASSES)
        starts = np.cumsum(counts) - counts
        rng = np.random.default_rng(seed)

        def draw(classes: np.ndarray) -> np.ndarray:
            index = by_class[starts[classes] + rng.integers(counts[classes])]
            pixels = (images[index] + rng.uniform(size=(len(index), SIDE * SIDE))) / LEVELS
            return pixels @ upsampling_matrix().T if self.upsampled else pixels

        xs, ys = [], []
        for _ in range(self.copies):
            pair = rng.choice(CLASSES * CLASSES, size=n, p=self.table.ravel())
            xs.append(draw(pair // CLASSES))
            ys.append(draw(pair % CLASSES))
        if self.nuisance:
            xs.append(draw(rng.integers(CLASSES, size=n)))
            ys.append(draw(rng.integers(CLASSES, size=n)))
        return np.hstack(xs), np.hstack(ys)


_INDEPENDENT = (CLASSES - 1) / CLASSES  # the flip probability that makes L2 uniform
TASKS: dict[str, ImageTask] = {
    task.name: task
    for task in (
        ImageTask("label-identity", flip=0.0),
        ImageTask("label-channel-0.2", flip=0.2),
        ImageTask("label-channel-0.5", flip=0.5),
        ImageTask("stacked-channel-0.2", flip=0.2, copies=2),
        ImageTask("nuisance-channel-0.2", flip=0.2, nuisance=True),
        ImageTask("upsampled-channel-0.2", flip=0.2, upsampled=True),
        ImageTask("independent", flip=_INDEPENDENT),
    )
}
