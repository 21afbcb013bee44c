"""Your own estimator and data in the benchmark, used the way the README shows: from a
script (no ``__main__`` guard), from a TOML suite file with a plugin, from CLI options."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmarks
from benchmarks.cli import main
from benchmarks.estimators import BUILDERS
from benchmarks.tasks import USER_TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = """
import numpy as np
import benchmarks


class Correlation:
    # the Gaussian MI of the first columns, -1/2 log(1 - r^2) nats
    def estimate(self, x, y):
        r = np.corrcoef(np.asarray(x)[:, 0], np.asarray(y)[:, 0])[0, 1]
        return -0.5 * np.log(1 - r * r)


def sampler(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    return x, 0.8 * x + 0.6 * rng.normal(size=(n, 1))


benchmarks.register_estimator("corr", lambda seed, **options: Correlation())
benchmarks.register_task(benchmarks.Task("gauss-0.8", sampler, -0.5 * np.log(1 - 0.64)))
benchmarks.register_task(benchmarks.Task.from_arrays("my-data", *sampler(3000, 9)))
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_script_without_main_guard_runs_its_own_estimator_and_data(tmp_path):
    (tmp_path / "plugin.py").write_text(PLUGIN)
    done = _run(
        """
        from pathlib import Path
        import benchmarks
        import plugin  # registers corr, gauss-0.8, my-data in this process
        suite = benchmarks.Suite(name="mine", description="corr on my data",
                                 tasks=("gauss-0.8", "my-data"), estimators=("corr", "bmi-cca"),
                                 sizes=(2000,), seeds=(0, 1))
        benchmarks.run_suite(suite, Path("out"), progress=False)
        print(benchmarks.write_report(Path("out/mine")))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frame = pd.read_csv(tmp_path / "out/mine/results.csv")
    assert len(frame) == 8 and (frame.error.fillna("") == "").all()
    gauss = frame[frame.task == "gauss-0.8"]
    assert np.allclose(gauss.true_mi, 0.5108, atol=1e-4)
    assert (gauss.abs_error < 0.05).all()  # a Gaussian estimator on Gaussian data
    assert frame[frame.task == "my-data"].true_mi.isna().all()
    report = (tmp_path / "out/mine/REPORT.md").read_text()
    assert "| corr " in report and "unknown" in report
    assert json.loads((tmp_path / "out/mine/suite.json").read_text())["name"] == "mine"
    # the CLI reports any suite that was run, by its folder name
    assert main(["report", "--suite", "mine", "--out", str(tmp_path / "out")]) == 0


def test_suite_file_with_plugin_runs_in_parallel_workers(tmp_path, capsys):
    (tmp_path / "plugin.py").write_text(PLUGIN)
    (tmp_path / "suite.toml").write_text(
        textwrap.dedent(
            """
            name = "fromfile"
            description = "a plugin's estimator and tasks"
            tasks = ["gauss-0.8", "my-data"]
            estimators = ["corr"]
            sizes = [1000]
            seeds = [0, 1]
            """
        )
    )
    argv = ["run", "--suite-file", str(tmp_path / "suite.toml"), "--out", str(tmp_path / "out")]
    argv += ["--plugin", str(tmp_path / "plugin.py"), "--jobs", "2", "--no-progress"]
    assert main(argv) == 0
    frame = pd.read_csv(tmp_path / "out/fromfile/results.csv")
    assert len(frame) == 4 and (frame.error.fillna("") == "").all()
    assert "4 rows in" in capsys.readouterr().out


def test_cli_options_make_a_suite(tmp_path):
    argv = ["run", "--tasks", "1v1-normal-0.75", "--estimators", "bmi-cca", "--n", "1000"]
    argv += ["--seeds", "0", "1", "--name", "quick-look", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    frame = pd.read_csv(tmp_path / "quick-look/results.csv")
    assert sorted(frame.seed) == [0, 1] and (frame.n == 1000).all()
    assert (tmp_path / "quick-look/REPORT.md").exists()


def test_bad_registrations_and_suites_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="built-in benchmark estimator"):
        benchmarks.register_estimator("rfmi", lambda seed: None)
    with pytest.raises(TypeError, match="must be callable"):
        benchmarks.register_estimator("x", 3)
    with pytest.raises(TypeError, match="lacks"):
        benchmarks.register_task(object(), name="bad")
    with pytest.raises(ValueError, match=r"unknown task 'nope'.*register_task"):
        get_task("nope")
    with pytest.raises(ValueError, match="unknown keys \\['size'\\]"):
        benchmarks.Suite.from_dict({"name": "s", "tasks": ["a"], "estimators": ["rfmi"], "size": 1})
    with pytest.raises(ValueError, match="unknown estimators \\['nope'\\]"):
        benchmarks.Suite.from_dict({"name": "s", "tasks": ["a"], "estimators": ["nope"]})
    spec = {"name": "s", "tasks": ["a", "b"], "estimators": ["rfmi", "bmi-ksg"]}
    jobs = benchmarks.Suite.from_dict(spec | {"only": {"bmi-ksg": ["b"]}}).jobs()
    assert [(j.task, j.estimator) for j in jobs] == [("a", "rfmi"), ("b", "rfmi"), ("b", "bmi-ksg")]
    with pytest.raises(ValueError, match="`only` names \\['c'\\]"):
        benchmarks.Suite.from_dict(spec | {"only": {"bmi-ksg": ["c"]}})
    task = benchmarks.Task.from_arrays("small", np.zeros(10), np.ones(10))
    with pytest.raises(ValueError, match="has 10 pairs; cannot draw n = 20"):
        task.sample(20, 0)
    assert main(["run", "--tasks", "nope", "--estimators", "rfmi", "--out", str(tmp_path)]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["run", "--suite-file", str(tmp_path / "none.toml")]) == 2
    assert "no suite file" in capsys.readouterr().err


def test_registered_in_process_only_cannot_reach_workers(tmp_path):
    benchmarks.register_estimator("local-only", lambda seed, **options: None)
    benchmarks.register_task(benchmarks.Task.from_arrays("local-data", np.eye(30), np.eye(30)))
    try:
        suite = benchmarks.Suite(
            name="s", description="", tasks=("local-data",), estimators=("local-only",)
        )
        with pytest.raises(ValueError, match="registered in this process only"):
            benchmarks.run_suite(suite, tmp_path, workers=2, progress=False)
    finally:
        del BUILDERS["local-only"], USER_TASKS["local-data"]
