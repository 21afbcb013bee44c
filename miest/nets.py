"""Small networks: time-conditioned residual MLP denoisers and critics.

Shapes: data ``(n, d)``, times ``(n,)`` in ``[0, 1]``. Denoisers output a prediction
of the same shape as the noisy input, in the estimator's parametrisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FourierTime(nn.Module):
    """Sinusoidal embedding of ``t`` (n,) -> (n, dim), frequencies geometric in [1, 1000]."""

    def __init__(self, dim: int = 32):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000.0), half)))
        self.dim = 2 * half

    def forward(self, t: Tensor) -> Tensor:
        angles = t[:, None].float() * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualMLP(nn.Module):
    """``in_dim -> hidden -> (depth residual blocks) -> out_dim`` with SiLU and LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden),
                nn.SiLU(),
                nn.Linear(hidden, hidden),
                nn.SiLU(),
                nn.Linear(hidden, hidden),
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, h: Tensor) -> Tensor:
        h = self.inp(h)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class ConditionalDenoiser(nn.Module):
    """``net(x_t, t, y or None)``: one network for conditional and unconditional outputs.

    The condition enters with a keep flag; ``None`` (or ``keep = 0``) zeroes it, which
    is the null token of classifier-free-guidance-style condition dropout.
    """

    def __init__(
        self,
        dim_x: int,
        dim_y: int,
        hidden: int = 128,
        depth: int = 2,
        time_dim: int = 32,
        condition_width: int | None = None,
    ):
        super().__init__()
        self.embed = None
        if condition_width is not None and condition_width < dim_y:
            self.embed = nn.Sequential(
                nn.Linear(dim_y, hidden), nn.SiLU(), nn.Linear(hidden, condition_width)
            )
            dim_y = condition_width
        self.dim_x, self.dim_y = dim_x, dim_y
        self.time = FourierTime(time_dim)
        self.mlp = ResidualMLP(dim_x + dim_y + 1 + self.time.dim, dim_x, hidden, depth)

    def condition_weights(self) -> Tensor:
        """The first-layer weights that read the (embedded) condition: a (hidden, dim_y) view."""
        return self.mlp.inp.weight[:, self.dim_x : self.dim_x + self.dim_y]

    def forward(
        self, x_t: Tensor, t: Tensor, y: Tensor | None, keep: Tensor | None = None
    ) -> Tensor:
        n = x_t.shape[0]
        if y is not None and self.embed is not None:
            y = self.embed(y)
        if y is None:
            y, keep = x_t.new_zeros(n, self.dim_y), x_t.new_zeros(n)
        elif keep is None:
            keep = x_t.new_ones(n)
        inputs = [x_t, y * keep[:, None], keep[:, None], self.time(t)]
        return self.mlp(torch.cat(inputs, dim=1))


class _FiLMBlock(nn.Module):
    """Residual block of two 3x3 convolutions; an embedding scales and shifts the middle."""

    def __init__(self, channels: int, embed: int):
        super().__init__()
        groups = math.gcd(8, channels)
        self.norm1, self.norm2 = nn.GroupNorm(groups, channels), nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(embed, 2 * channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        r = self.norm2(self.conv1(nn.functional.silu(self.norm1(h))))
        return h + self.conv2(nn.functional.silu(r * (1 + scale) + shift))


class ConvConditionalDenoiser(nn.Module):
    """``net(x_t, t, y or None)`` like ``ConditionalDenoiser``, for image-shaped ``x``.

    Rows of ``x_t`` (n, c*h*w) are images of ``image_shape = (c, h, w)``; a stack of
    ``depth`` residual 3x3-convolution blocks with ``channels`` channels (no resizing)
    denoises them. The time, the keep flag and the condition (any shape, flattened) enter
    every block through one ``hidden``-wide embedding that scales and shifts its features.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        dim_y: int,
        hidden: int = 128,
        depth: int = 2,
        time_dim: int = 32,
        channels: int = 16,
    ):
        super().__init__()
        self.image_shape, self.dim_y = tuple(image_shape), dim_y
        self.time = FourierTime(time_dim)
        self.embed = nn.Sequential(
            nn.Linear(dim_y + 1 + self.time.dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.inp = nn.Conv2d(image_shape[0], channels, 3, padding=1)
        self.blocks = nn.ModuleList(_FiLMBlock(channels, hidden) for _ in range(depth))
        self.out = nn.Sequential(
            nn.GroupNorm(math.gcd(8, channels), channels),
            nn.SiLU(),
            nn.Conv2d(channels, image_shape[0], 3, padding=1),
        )

    def condition_weights(self) -> Tensor:
        """The embedding's first-layer weights that read the condition: a (hidden, dim_y) view."""
        return self.embed[0].weight[:, : self.dim_y]

    def forward(
        self, x_t: Tensor, t: Tensor, y: Tensor | None, keep: Tensor | None = None
    ) -> Tensor:
        n = x_t.shape[0]
        if y is None:
            y, keep = x_t.new_zeros(n, self.dim_y), x_t.new_zeros(n)
        elif keep is None:
            keep = x_t.new_ones(n)
        e = self.embed(torch.cat([y * keep[:, None], keep[:, None], self.time(t)], dim=1))
        h = self.inp(x_t.reshape(n, *self.image_shape))
        for block in self.blocks:
            h = block(h, e)
        return self.out(h).reshape(n, -1)


def image_shape_of(dim: int, image_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    """``(channels, height, width)`` of rows of ``dim`` values: ``image_shape`` as given
    (``(h, w)`` means one channel), or ``None`` for one square channel."""
    if image_shape is None:
        side = math.isqrt(dim)
        if side * side != dim:
            raise ValueError(
                f"a convolutional network needs image-shaped rows: {dim} values are not a "
                "square image; pass image_shape=(channels, height, width)"
            )
        return (1, side, side)
    shape = tuple(int(s) for s in image_shape)
    shape = (1, *shape) if len(shape) == 2 else shape
    if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != dim:
        raise ValueError(
            f"image_shape {tuple(image_shape)} does not hold rows of {dim} values: give "
            "(height, width) or (channels, height, width) whose product is the row length"
        )
    return shape


class JointDenoiser(nn.Module):
    """MINDE-J's network over ``z = (x, y)`` with one time and one role per variable.

    Roles per variable: 0 = diffused at its time, 1 = clean (a condition),
    2 = absent (marginalised: its input is zeroed). Outputs predictions (in the
    estimator's parametrisation) for all of ``z``; only diffused coordinates are meaningful.
    """

    def __init__(
        self, dim_x: int, dim_y: int, hidden: int = 128, depth: int = 2, time_dim: int = 32
    ):
        super().__init__()
        self.dim_x = dim_x
        self.time = FourierTime(time_dim)
        in_dim = dim_x + dim_y + 2 * 3 + 2 * self.time.dim
        self.mlp = ResidualMLP(in_dim, dim_x + dim_y, hidden, depth)

    def forward(
        self, z: Tensor, t_x: Tensor, t_y: Tensor, role_x: Tensor, role_y: Tensor
    ) -> Tensor:
        x, y = z[:, : self.dim_x], z[:, self.dim_x :]
        x = x * (role_x != 2)[:, None]
        y = y * (role_y != 2)[:, None]
        roles = [nn.functional.one_hot(r.long(), 3).to(z.dtype) for r in (role_x, role_y)]
        return self.mlp(torch.cat([x, y, *roles, self.time(t_x), self.time(t_y)], dim=1))


class ConcatCritic(nn.Module):
    """Critic ``f(x, y)`` as an MLP on the concatenation; ``scores`` gives all pairs."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.mlp = ResidualMLP(dim_x + dim_y, 1, hidden, depth)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of aligned pairs, (n,)."""
        return self.mlp(torch.cat([x, y], dim=1)).squeeze(1)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        """``f(x_i, y_j)`` for all pairs, (n_x, n_y)."""
        n_x, n_y = x.shape[0], y.shape[0]
        pairs_x = x[:, None, :].expand(n_x, n_y, x.shape[1]).reshape(n_x * n_y, -1)
        pairs_y = y[None, :, :].expand(n_x, n_y, y.shape[1]).reshape(n_x * n_y, -1)
        return self(pairs_x, pairs_y).reshape(n_x, n_y)


class SeparableCritic(nn.Module):
    """Critic ``f(x, y) = g(x) . h(y) / sqrt(k)``: all pair scores for ``n`` evaluations."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 128, depth: int = 2, embed: int = 32):
        super().__init__()
        self.g = ResidualMLP(dim_x, embed, hidden, depth)
        self.h = ResidualMLP(dim_y, embed, hidden, depth)
        self.norm = math.sqrt(embed)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return (self.g(x) * self.h(y)).sum(1) / self.norm

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        return self.g(x) @ self.h(y).T / self.norm


CRITICS: dict[str, type[nn.Module]] = {"concat": ConcatCritic, "separable": SeparableCritic}
