"""Jointly Gaussian ``(x, y)``: exact MI, PMI and optimal denoisers.

Feeding these exact denoisers to ``miest.integrate`` must reproduce the exact MI
(and, for the MMSE-gap form, the exact PMI of each sample) with no training, which
separates errors of constants, weights and samplers from errors of learning.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from miest.integrate import Denoiser, Predict
from miest.paths import GaussianPath, from_eps


class _OptimalNoise:
    """``E[eps | x_t]`` for ``x ~ N(0, cov)``: ``sigma (alpha^2 cov + sigma^2 I)^-1 x_t``."""

    def __init__(self, cov: np.ndarray):
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        self.eigenvalues = torch.from_numpy(eigenvalues)
        self.eigenvectors = torch.from_numpy(eigenvectors)

    def __call__(self, residual: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """``residual`` (n, d) is ``x_t - alpha * E[x]``; ``alpha, sigma`` (n,)."""
        rotated = residual.double() @ self.eigenvectors
        scale = sigma[:, None] / (alpha[:, None] ** 2 * self.eigenvalues + sigma[:, None] ** 2)
        return (rotated * scale) @ self.eigenvectors.T


class GaussianPair:
    """Zero-mean Gaussian ``(x, y)`` with joint covariance ``cov`` and ``x`` the first ``dim_x``."""

    def __init__(self, cov: np.ndarray, dim_x: int):
        cov = np.asarray(cov, dtype=np.float64)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not 0 < dim_x < cov.shape[0]:
            raise ValueError(
                f"need a square covariance and 0 < dim_x < dim, got {cov.shape}, {dim_x}"
            )
        if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
            raise ValueError("covariance must be symmetric positive definite")
        self.cov, self.dim_x, self.dim_y = cov, dim_x, cov.shape[0] - dim_x
        sxx, sxy, syy = cov[:dim_x, :dim_x], cov[:dim_x, dim_x:], cov[dim_x:, dim_x:]
        self.x_given_y_mean = sxy @ np.linalg.inv(syy)  # E[x | y] = A y
        self.x_given_y_cov = sxx - self.x_given_y_mean @ sxy.T
        self.y_given_x_mean = sxy.T @ np.linalg.inv(sxx)
        self.y_given_x_cov = syy - self.y_given_x_mean @ sxy
        self._noise = {
            "x": _OptimalNoise(sxx),
            "y": _OptimalNoise(syy),
            "xy": _OptimalNoise(cov),
            "x|y": _OptimalNoise(self.x_given_y_cov),
            "y|x": _OptimalNoise(self.y_given_x_cov),
        }

    @classmethod
    def from_correlations(
        cls, correlations: list[float], dim_x: int, dim_y: int, seed: int = 0
    ) -> GaussianPair:
        """Canonical correlations ``correlations`` (at most ``min(dim_x, dim_y)``), then random
        invertible linear maps of ``x`` and of ``y`` (which leave the MI unchanged)."""
        k = len(correlations)
        if k > min(dim_x, dim_y) or any(abs(r) >= 1 for r in correlations):
            raise ValueError("need at most min(dim_x, dim_y) correlations, each in (-1, 1)")
        canonical = np.eye(dim_x + dim_y)
        for i, r in enumerate(correlations):
            canonical[i, dim_x + i] = canonical[dim_x + i, i] = r
        rng = np.random.default_rng(seed)
        mixing = np.zeros((dim_x + dim_y, dim_x + dim_y))
        for block in (slice(0, dim_x), slice(dim_x, dim_x + dim_y)):
            size = block.stop - block.start
            q, _ = np.linalg.qr(rng.normal(size=(size, size)))
            mixing[block, block] = q * rng.uniform(0.5, 2.0, size=size)
        return cls(mixing @ canonical @ mixing.T, dim_x)

    def mutual_information(self) -> float:
        """``I(X; Y)`` in nats."""
        logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
        d = self.dim_x
        return 0.5 * (logdet(self.cov[:d, :d]) + logdet(self.cov[d:, d:]) - logdet(self.cov))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``x`` (n, dim_x), ``y`` (n, dim_y), float64."""
        z = np.random.default_rng(seed).multivariate_normal(np.zeros(len(self.cov)), self.cov, n)
        return z[:, : self.dim_x], z[:, self.dim_x :]

    def pmi(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Point-wise MI ``log p(x | y) - log p(x)`` (n,), in nats."""

        def log_density(residual, cov):
            _, logdet = np.linalg.slogdet(cov)
            quad = np.einsum("ni,ij,nj->n", residual, np.linalg.inv(cov), residual)
            return -0.5 * (quad + logdet + len(cov) * np.log(2 * np.pi))

        d = self.dim_x
        return log_density(x - y @ self.x_given_y_mean.T, self.x_given_y_cov) - log_density(
            x, self.cov[:d, :d]
        )

    def _eps(self, key: str, x_t: Tensor, t: Tensor, path: GaussianPath, mean=None) -> Tensor:
        alpha, sigma = path.alpha(t.double()), path.sigma(t.double())
        residual = x_t.double() if mean is None else x_t.double() - alpha[:, None] * mean
        return self._noise[key](residual, alpha, sigma)

    def denoiser(self, path: GaussianPath, parametrisation: str, diffuse: str = "x") -> Denoiser:
        """The optimal conditional denoiser of ``x`` given ``y`` (or of ``y`` given ``x`` when
        ``diffuse="y"``), in ``parametrisation``; ``condition=None`` gives the marginal one."""
        other = {"x": "y", "y": "x"}[diffuse]
        mean_map = torch.from_numpy(getattr(self, f"{diffuse}_given_{other}_mean"))

        def denoise(x_t: Tensor, t: Tensor, condition: Tensor | None) -> Tensor:
            if condition is None:
                eps = self._eps(diffuse, x_t, t, path)
            else:
                mean = condition.double() @ mean_map.T
                eps = self._eps(f"{diffuse}|{other}", x_t, t, path, mean)
            eps = eps.to(x_t.dtype)
            return from_eps(eps, x_t, t.to(x_t.dtype), path, parametrisation)

        return denoise

    def joint_predict(
        self, path: GaussianPath, parametrisation: str, reference: str = "marginal", xy=None
    ) -> Predict:
        """MINDE-J's ``predict`` on ``z = (x, y)`` diffused together.

        ``reference="marginal"``: with = joint noise prediction, without = the two marginal
        ones. ``"conditional"``: the two conditionals given the clean other variable (needs
        the clean pairs ``xy`` (n, dim), indexed by ``rows``) know *more* than the joint, so
        they are the "with" side and the joint the "without" side; both forms are then
        exact (the MMSE gap is ``log p(x|y) + log p(y|x) - log p(x, y)``, the PMI)."""
        d = self.dim_x
        a_xy = torch.from_numpy(self.x_given_y_mean)
        a_yx = torch.from_numpy(self.y_given_x_mean)

        def predict(z_t: Tensor, t: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
            joint = self._eps("xy", z_t, t, path)
            if reference == "marginal":
                parts = self._eps("x", z_t[:, :d], t, path), self._eps("y", z_t[:, d:], t, path)
            else:
                clean = torch.as_tensor(xy)[rows].double()
                parts = (
                    self._eps("x|y", z_t[:, :d], t, path, clean[:, d:] @ a_xy.T),
                    self._eps("y|x", z_t[:, d:], t, path, clean[:, :d] @ a_yx.T),
                )
            product = torch.cat(parts, dim=1)
            t32 = t.to(z_t.dtype)
            pair = (joint, product) if reference == "marginal" else (product, joint)
            return tuple(from_eps(e.to(z_t.dtype), z_t, t32, path, parametrisation) for e in pair)

        return predict
