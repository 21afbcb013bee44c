"""The images suite: exact MI from the label table, and the structure its tasks rely on."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import images
from benchmarks.suites import get_suite
from benchmarks.tasks import get_task


def test_label_mi_is_exact_for_the_designed_tables():
    assert images.label_mi(images.channel_table(0.0)) == pytest.approx(np.log(10))
    for p in (0.2, 0.5):  # symmetric channel: log 10 - H(p) - p log 9
        h = -p * np.log(p) - (1 - p) * np.log(1 - p)
        assert images.label_mi(images.channel_table(p)) == pytest.approx(
            np.log(10) - h - p * np.log(9)
        )
    assert images.label_mi(images.channel_table(0.9)) == 0.0
    table = images.channel_table(0.2)
    assert table.sum() == pytest.approx(1) and np.allclose(table.sum(0), 0.1)
    with pytest.raises(ValueError, match="flip probability"):
        images.channel_table(1.5)


def test_every_image_determines_its_label_and_a_duplicate_across_classes_is_caught():
    pixels, labels = images._digits()
    images.check_labels_determined(pixels, labels)
    with pytest.raises(ValueError, match="occurs with labels"):
        images.check_labels_determined(pixels[[0, 0]], np.array([0, 1]))


def test_tasks_have_their_shapes_truths_and_seeds():
    tasks = images.TASKS
    base = tasks["label-channel-0.2"].mutual_information
    assert tasks["label-identity"].mutual_information == pytest.approx(np.log(10))
    assert tasks["stacked-channel-0.2"].mutual_information == pytest.approx(2 * base)
    assert tasks["nuisance-channel-0.2"].mutual_information == base
    assert tasks["upsampled-channel-0.2"].mutual_information == base
    assert tasks["independent"].mutual_information == 0.0
    for task in tasks.values():
        x, y = task.sample(200, seed=1)
        assert x.shape == y.shape == (200, task.dim_x) and 0 <= x.min() and x.max() <= 1
        again = task.sample(200, seed=1)
        assert (again[0] == x).all() and not (task.sample(200, seed=2)[0] == x).all()
    assert tasks["upsampled-channel-0.2"].dim_x == 784
    assert get_task("label-identity") is tasks["label-identity"]
    with pytest.raises(ValueError, match="unknown task"):
        get_task("no-such-task")


def _labels(x: np.ndarray) -> np.ndarray:
    """Recover each dequantised 8x8 image's label by its integer image."""
    pixels, labels = images._digits()
    lookup = {p.astype(np.uint8).tobytes(): label for p, label in zip(pixels, labels, strict=True)}
    integers = np.floor(x * images.LEVELS).astype(np.uint8)
    return np.array([lookup[row.tobytes()] for row in integers])


def test_sampled_labels_follow_the_designed_table():
    x, y = images.TASKS["label-channel-0.5"].sample(20000, seed=0)
    l1, l2 = _labels(x), _labels(y)
    table = np.histogram2d(l1, l2, bins=np.arange(11))[0] / len(l1)
    # the plug-in MI of the recovered labels is the designed MI (SE about 0.005 nats)
    assert images.label_mi(table) == pytest.approx(0.5108, abs=0.02)
    assert np.mean(l1 == l2) == pytest.approx(0.5, abs=0.015)
    x, y = images.TASKS["label-identity"].sample(500, seed=0)
    assert (_labels(x) == _labels(y)).all()


def test_upsampling_is_injective_and_keeps_the_pixel_range():
    matrix = images.upsampling_matrix()
    assert matrix.shape == (784, 64) and np.linalg.matrix_rank(matrix) == 64
    assert np.allclose(matrix.sum(1), 1) and (matrix >= 0).all()
    x, _ = images.TASKS["label-channel-0.2"].sample(50, seed=4)
    up, _ = images.TASKS["upsampled-channel-0.2"].sample(50, seed=4)
    assert np.allclose(up, x @ matrix.T)  # the same images, upsampled
    assert np.allclose(up.reshape(50, 28, 28)[:, 0, 0], x[:, 0])  # corners are kept


def test_images_suite_runs_every_estimator_on_every_task():
    suite = get_suite("images")
    assert set(suite.tasks) == set(images.TASKS) and suite.sizes == (10000,)
    assert len(suite.jobs()) == len(images.TASKS) * len(suite.estimators) * len(suite.seeds)


def test_exact_integrand_of_the_image_tasks_integrates_to_the_label_mi():
    """Positive control of the integrand tool: exact posterior-mean predictions (mixtures over
    the 1,797 digits of per-pixel truncated normals) give each task's MI (within the suite's
    10%) under either preprocessing, and exactly 0 for independent labels."""
    from scipy.integrate import trapezoid

    from benchmarks.integrand import exact_profile
    from miest.data import Preprocessor

    grid = np.arange(-8.0, 6.5, 1.0)
    cases = [("label-identity", "rank-gauss"), ("label-channel-0.5", "standardize")]
    for name, preprocess in [*cases, ("independent", "standardize")]:
        x, y = images.TASKS[name].sample(1400, seed=1)
        transform = Preprocessor.fit(x[:1000], preprocess)
        profile = exact_profile(name, x[1000:], y[1000:], transform, preprocess, grid, n_draws=1)
        curve = profile["exact"]
        truth = images.TASKS[name].mutual_information
        assert trapezoid(curve, grid) == pytest.approx(truth, rel=0.1, abs=1e-12), name
        assert np.all(curve >= 0)
    with pytest.raises(ValueError, match="no exact integrand"):
        exact_profile("stacked-channel-0.2", x, y, transform, "standardize", grid)


def test_integrand_tool_writes_curves_and_a_plot_and_resumes(tmp_path, capsys):
    from benchmarks import integrand
    from miest.estimators.denoising import PROFILE_LOG_SNRS

    csv = tmp_path / "profile.csv"
    args = ["--tasks", "independent", "--n", "300", "--csv", str(csv)]
    args += ["--variant", "tiny:steps=40,eval_every=20,batch_size=64,hidden=16"]
    assert integrand.main(args) == 0
    rows = pd.read_csv(csv)
    assert len(rows) == len(PROFILE_LOG_SNRS) and rows.exact.abs().max() < 1e-12
    assert {"orthogonal", "mmse-gap", "cross", "error_c", "error_u"} <= set(rows.columns)
    assert (rows.error_c >= 0).all() and (rows.error_u >= 0).all()
    assert (tmp_path / "profile.png").exists() and "integrals" in capsys.readouterr().out
    assert integrand.main(args) == 0  # resumes: the fit is not repeated
    assert len(pd.read_csv(csv)) == len(rows) and "integrals" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        integrand.main(["--tasks", "stacked-channel-0.2", "--csv", str(csv)])
