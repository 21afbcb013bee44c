"""bmi's v2 benchmark tasks, as the bmi repository's ``workflows/benchmark/v2/config.py``
defines them: 26 tasks (13 from v1, 13 Gaussian mixtures), each drawn sample rescaled
column by column to mean 0 and standard deviation 1 (bmi's ``transform_rescale``), which
leaves the MI unchanged. bmi runs them at n = 5,000 with seeds 0-9.

Names are ``"v2-" + bmi's task id`` (v1 and v2 share 13 ids, but v2 rescales its
samples). The truth of a mixture task is bmi's Monte Carlo value (the mean of the exact
point-wise MI over 100,000 samples, seed 0) and ``mi_stderr`` its standard error; other
tasks have exact MI (``mi_stderr`` 0). A task is built only when asked for: a mixture's
Monte Carlo truth takes 0.5-7 s.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

PREFIX = "v2-"


def _builders() -> dict[str, Callable[[], object]]:
    """bmi task id -> a function building the task before rescaling."""
    import bmi.benchmark.tasks.additive_noise as additive_noise
    import bmi.benchmark.tasks.bivariate_normal as binormal
    import bmi.benchmark.tasks.embeddings as embeddings
    import bmi.benchmark.tasks.mixtures as mixtures
    import bmi.benchmark.tasks.multinormal as multinormal
    import bmi.benchmark.tasks.student as student
    from bmi.benchmark.tasks.asinh import transform_asinh_task as asinh
    from bmi.benchmark.tasks.normal_cdf import transform_normal_cdf_task as normal_cdf
    from bmi.benchmark.tasks.spiral import transform_spiral_task as spiral

    def swissroll():
        uniform = normal_cdf(binormal.task_bivariate_normal(gaussian_correlation=0.75))
        return embeddings.transform_swissroll_task(uniform, task_name="Swiss roll 2 × 1")

    def concentric(dim_x: int, components: int):
        return lambda: mixtures.task_concentric_multinormal(dim_x=dim_x, n_components=components)

    def inliers(dim: int, fraction: float):
        return lambda: mixtures.task_multinormal_sparse_w_inliers(
            dim_x=dim, dim_y=dim, inlier_fraction=fraction
        )

    def student_t(dim: int, df: int):
        return lambda: asinh(student.task_student_identity(dim_x=dim, dim_y=dim, df=df))

    return {
        "1v1-additive-0.75": lambda: additive_noise.task_additive_noise(epsilon=0.75),
        "asinh-student-identity-1-1-1": student_t(1, 1),
        "1v1-X-0.9": mixtures.task_x,
        "1v1-AI": mixtures.task_ai,
        "swissroll_x-normal_cdf-1v1-normal-0.75": swissroll,
        "2v1-waves-12-5.0-3.0": mixtures.task_waves,
        "2v1-galaxy-0.5-3.0": mixtures.task_galaxy,
        "3v1-concentric_gaussians-5": concentric(3, 5),
        "5v1-concentric_gaussians-5": concentric(5, 5),
        "3v1-concentric_gaussians-10": concentric(3, 10),
        "5v1-concentric_gaussians-10": concentric(5, 10),
        "25v1-concentric_gaussians-5": concentric(25, 5),
        "multinormal-dense-5-5-0.5": lambda: multinormal.task_multinormal_dense(5, 5),
        "multinormal-dense-25-25-0.5": lambda: multinormal.task_multinormal_dense(25, 25),
        "multinormal-dense-50-50-0.5": lambda: multinormal.task_multinormal_dense(50, 50),
        "multinormal-sparse-5-5-2-2.0": lambda: multinormal.task_multinormal_2pair(5, 5),
        "multinormal-sparse-25-25-2-2.0": lambda: multinormal.task_multinormal_2pair(25, 25),
        "mult-sparse-w-inliers-5-5-2-2.0-0.2": inliers(5, 0.2),
        "mult-sparse-w-inliers-25-25-2-2.0-0.2": inliers(25, 0.2),
        "mult-sparse-w-inliers-5-5-2-2.0-0.5": inliers(5, 0.5),
        "mult-sparse-w-inliers-25-25-2-2.0-0.5": inliers(25, 0.5),
        "asinh-student-identity-2-2-1": student_t(2, 1),
        "asinh-student-identity-3-3-2": student_t(3, 2),
        "asinh-student-identity-5-5-2": student_t(5, 2),
        "spiral-multinormal-sparse-3-3-2-2.0": lambda: spiral(
            multinormal.task_multinormal_2pair(3, 3)
        ),
        "spiral-multinormal-sparse-5-5-2-2.0": lambda: spiral(
            multinormal.task_multinormal_2pair(5, 5)
        ),
    }


BMI_IDS = (
    "1v1-additive-0.75",
    "asinh-student-identity-1-1-1",
    "1v1-X-0.9",
    "1v1-AI",
    "swissroll_x-normal_cdf-1v1-normal-0.75",
    "2v1-waves-12-5.0-3.0",
    "2v1-galaxy-0.5-3.0",
    "3v1-concentric_gaussians-5",
    "5v1-concentric_gaussians-5",
    "3v1-concentric_gaussians-10",
    "5v1-concentric_gaussians-10",
    "25v1-concentric_gaussians-5",
    "multinormal-dense-5-5-0.5",
    "multinormal-dense-25-25-0.5",
    "multinormal-dense-50-50-0.5",
    "multinormal-sparse-5-5-2-2.0",
    "multinormal-sparse-25-25-2-2.0",
    "mult-sparse-w-inliers-5-5-2-2.0-0.2",
    "mult-sparse-w-inliers-25-25-2-2.0-0.2",
    "mult-sparse-w-inliers-5-5-2-2.0-0.5",
    "mult-sparse-w-inliers-25-25-2-2.0-0.5",
    "asinh-student-identity-2-2-1",
    "asinh-student-identity-3-3-2",
    "asinh-student-identity-5-5-2",
    "spiral-multinormal-sparse-3-3-2-2.0",
    "spiral-multinormal-sparse-5-5-2-2.0",
)
"""bmi's v2 task ids, in its configuration's order."""
TASKS = tuple(PREFIX + task_id for task_id in BMI_IDS)
ONE_BY_ONE = tuple(
    PREFIX + task_id
    for task_id in ("1v1-additive-0.75", "asinh-student-identity-1-1-1", "1v1-X-0.9", "1v1-AI")
)
"""The v2 tasks whose x and y are both one-dimensional."""


def check(name: str) -> None:
    """A clear error unless ``name`` is a v2 task."""
    if name not in TASKS:
        raise ValueError(f"unknown v2 task {name!r}; v2 tasks are 'v2-' + one of {BMI_IDS}")


@cache
def get(name: str):
    """The rescaled v2 task ``name`` (``"v2-<bmi id>"``), with ``mi_stderr`` (nats)."""
    from bmi.benchmark.tasks import transform_rescale

    check(name)
    task_id = name.removeprefix(PREFIX)
    base = _builders()[task_id]()
    if base.id != task_id:
        raise RuntimeError(f"bmi built task {base.id!r} for v2 id {task_id!r}")
    task = transform_rescale(base_task=base, task_name=base.name, task_id=base.id)
    task.mi_stderr = _mi_stderr(base)
    return task


def _mi_stderr(task) -> float:
    """The Monte Carlo standard error of a mixture task's MI (0 for exact MI)."""
    sampler = task.sampler
    while not hasattr(sampler, "_mi_stderr") and hasattr(sampler, "_base_sampler"):
        sampler = sampler._base_sampler  # a transformed mixture (waves, galaxy)
    return float(getattr(sampler, "_mi_stderr", None) or 0.0)
