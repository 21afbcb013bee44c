"""bmi's v2 tasks: bmi's ids, rescaled samples with the base task's MI, Monte Carlo truths
with their standard error, and the suite built from the lists."""

import numpy as np
import pytest

from benchmarks import suites, v2
from benchmarks.tasks import check_task, get_task


def test_the_v2_list_is_bmis_26_ids_with_13_shared_with_v1():
    from bmi.benchmark import BENCHMARK_TASKS

    assert len(set(v2.BMI_IDS)) == len(v2.BMI_IDS) == 26
    assert len(set(v2.BMI_IDS) & set(BENCHMARK_TASKS)) == 13
    suite = suites.get_suite("v2")
    assert suite.tasks == v2.TASKS and all(t.startswith("v2-") for t in suite.tasks)
    # gmm-mi (one-dimensional x and y only) runs on the 1 x 1 tasks alone
    assert suite.only == {"gmm-mi": v2.ONE_BY_ONE} and set(v2.ONE_BY_ONE) < set(v2.TASKS)
    per_seed = sum(len(suite.only.get(e, suite.tasks)) for e in suite.estimators)
    assert len(suite.jobs()) == per_seed * len(suite.seeds)
    assert {j.task for j in suite.jobs() if j.estimator == "gmm-mi"} == set(v2.ONE_BY_ONE)


def test_a_v2_task_rescales_its_samples_and_keeps_the_v1_truth():
    from bmi.benchmark import BENCHMARK_TASKS

    task = get_task("v2-multinormal-dense-5-5-0.5")
    x, y = (np.asarray(a) for a in task.sample(2000, seed=3))
    for sample in (x, y):
        np.testing.assert_allclose(sample.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(sample.std(0), 1, atol=1e-9)
    v1_task = BENCHMARK_TASKS["multinormal-dense-5-5-0.5"]
    assert task.mutual_information == v1_task.mutual_information and task.mi_stderr == 0
    again = np.asarray(task.sample(2000, seed=3)[0])
    np.testing.assert_array_equal(x, again)  # seeded


def test_the_one_by_one_tasks_are_those_with_one_dimensional_x_and_y():
    for name in v2.ONE_BY_ONE[:2]:  # the two with exact MI build in a second
        task = get_task(name)
        assert (task.dim_x, task.dim_y) == (1, 1)
    assert all(t.removeprefix("v2-").startswith("1v1") for t in v2.ONE_BY_ONE[2:])


def test_a_mixture_task_has_a_monte_carlo_truth_with_its_standard_error():
    task = get_task("v2-2v1-galaxy-0.5-3.0")  # a transformed mixture: about 3 s
    assert 0 < task.mi_stderr < 0.01 and task.mutual_information == pytest.approx(0.493, abs=0.01)
    with pytest.raises(ValueError, match="unknown v2 task"):
        get_task("v2-no-such-task")
    with pytest.raises(ValueError, match="unknown v2 task"):
        check_task("v2-no-such-task")  # checked by name, before a run builds anything
    check_task("v2-1v1-AI")
