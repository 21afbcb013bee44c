"""The benchmark runner: jobs, caching and resume, atomic CSV, failures, report, CLI."""

import argparse
import functools
import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import consistency, forms, runner, suites
from benchmarks.cli import main
from benchmarks.estimators import build
from benchmarks.report import targets, tolerance, write_report
from benchmarks.suites import BMI_PEERS, MIEST, OTHER_PEERS, Job, Suite, get_suite

pytest.importorskip("bmi")

TINY = {"steps": 40, "eval_every": 20, "batch_size": 64, "hidden": 16}


def tiny_suite(estimators=("mine", "bmi-ksg")):
    return Suite(
        name="tiny",
        description="test suite",
        tasks=("1v1-normal-0.75",),
        estimators=estimators,
        seeds=(0, 1),
        sizes=(400,),
        options={"mine": TINY},
    )


def test_job_keys_are_stable_and_distinct():
    jobs = tiny_suite().jobs()
    assert len(jobs) == 4 and len({j.key for j in jobs}) == 4
    assert Job("t", "mine", 0, 10).key == Job("t", "mine", 0, 10).key
    assert Job("t", "mine", 0, 10).key != Job("t", "mine", 0, 10, (("steps", 5),)).key


def test_job_keys_cover_miest_defaults_not_just_explicit_options(monkeypatch):
    from miest.estimators.variational import MINE

    default = Job("t", "mine", 0, 10).key
    assert Job("t", "mine", 0, 10, (("steps", MINE.steps),)).key == default
    assert Job("t", "mine", 0, 10, (("progress", True),)).key == default  # no effect on rows
    suites.resolved_options.cache_clear()
    monkeypatch.setattr(MINE, "__init__", functools.partialmethod(MINE.__init__, steps=5))
    try:
        assert Job("t", "mine", 0, 10).key != default  # a changed default: a new job
    finally:
        suites.resolved_options.cache_clear()
    with pytest.raises(TypeError, match="no_such_option"):
        _ = Job("t", "mine", 0, 10, (("no_such_option", 1),)).key


def test_suites_know_their_jobs_and_reject_unknown_names():
    everyone = len(MIEST) + len(BMI_PEERS) + len(OTHER_PEERS)
    assert len(get_suite("quick").jobs()) == 4 * everyone  # 4 tasks, every estimator
    # 2 sizes, 3 seeds; gmm-mi on the nine tasks whose x and y are one-dimensional
    assert len(get_suite("v1").jobs()) == (40 * everyone + 9) * 2 * 3
    assert len(get_suite("v1-100k").jobs()) == 40 * len(MIEST)
    assert {job.kind for job in get_suite("pointwise").jobs()} == {"pointwise"}
    consistency_tasks = len(get_suite("consistency").tasks)
    assert len(get_suite("consistency").jobs()) == consistency_tasks * len(MIEST + BMI_PEERS)
    with pytest.raises(ValueError, match="unknown suite 'huge'"):
        get_suite("huge")
    with pytest.raises(ValueError, match="unknown estimators"):
        tiny_suite(estimators=("mine", "kde")).jobs()
    with pytest.raises(ValueError, match="unknown benchmark estimator"):
        build("kde", 0)


def test_run_job_row_is_a_pure_function_of_the_job():
    job = tiny_suite().jobs()[0]
    (a,), (b,) = runner.run_job(job), runner.run_job(job)
    assert a["estimate"] == b["estimate"] and a["true_mi"] == pytest.approx(0.4133, abs=1e-4)
    assert a["abs_error"] == pytest.approx(abs(a["estimate"] - a["true_mi"]))
    assert a["peak_rss_mb"] > 0 and json.loads(a["options"]) == TINY


def test_run_caches_resumes_and_reports(tmp_path):
    suite = tiny_suite()
    frame = runner.run_suite(suite, tmp_path, workers=2, progress=False)
    assert len(frame) == 4 and (frame.error.fillna("") == "").all()
    cache = tmp_path / "tiny" / "cache"
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(stamps) == 4 and not list(cache.glob("*.tmp"))
    # an interrupted run: one job's result lost -> only that job reruns
    lost = next(iter(sorted(stamps)))
    (cache / lost).unlink()
    again = runner.run_suite(suite, tmp_path, workers=1, progress=False)
    assert len(again) == 4
    for path in cache.iterdir():
        assert (path.stat().st_mtime_ns == stamps[path.name]) == (path.name != lost)
    on_disk = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert sorted(on_disk.estimate) == pytest.approx(sorted(again.estimate), rel=1e-12)
    report = write_report(tmp_path / "tiny")
    text = report.read_text()
    assert "| mine" in text
    for name in ("estimates", "heatmap", "time_accuracy"):
        assert (tmp_path / "tiny" / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / "tiny" / f"{name}.svg").exists()


def test_jobs_run_unchanged_on_a_local_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    suite = tiny_suite(estimators=("bmi-ksg",))
    local = runner.run_suite(suite, tmp_path / "local", progress=False)
    with runner.dask_executor("local", workers=2) as executor:
        on_dask = runner.run_suite(suite, tmp_path / "dask", progress=False, executor=executor)
    assert list(on_dask.estimate) == list(local.estimate)


def test_failed_jobs_are_reported_not_cached(tmp_path):
    options = {"bmi-ksg": {"no_such_option": 1}}  # fails inside the job, at run time
    suite = Suite("bad", "", tasks=("1v1-normal-0.75",), estimators=("bmi-ksg",), options=options)
    frame = runner.run_suite(suite, tmp_path, progress=False)
    assert "TypeError" in frame.error.iloc[0] and "no_such_option" in frame.error.iloc[0]
    assert not list((tmp_path / "bad" / "cache").iterdir())
    unknown = Suite(name="bad", description="", tasks=("no-such-task",), estimators=("bmi-ksg",))
    with pytest.raises(ValueError, match="unknown task 'no-such-task'"):  # before any job
        runner.run_suite(unknown, tmp_path, progress=False)


def test_a_partial_run_keeps_the_other_estimators_failures(tmp_path):
    options = {"bmi-ksg": {"no_such_option": 1}}
    suite = Suite(
        "part", "", tasks=("1v1-normal-0.75",), estimators=("bmi-ksg", "bmi-cca"), options=options
    )
    runner.run_suite(suite, tmp_path, progress=False, estimators=["bmi-ksg"])
    frame = runner.run_suite(suite, tmp_path, progress=False, estimators=["bmi-cca"])
    assert list(frame.estimator) == ["bmi-cca", "bmi-ksg"]
    assert "no_such_option" in frame.set_index("estimator").error["bmi-ksg"]
    retried = runner.run_suite(suite, tmp_path, progress=False, estimators=["bmi-ksg"])
    assert len(retried) == 2  # retried, not duplicated


def test_a_job_failed_on_every_seed_is_a_miss_not_a_pending_task():
    from benchmarks.report import summarise

    def row(estimator, seed, estimate=None, error=""):
        ok = estimate is not None
        return {
            "task": "a",
            "n": 100,
            "estimator": estimator,
            "library": {"x": "miest", "y": "peer"}[estimator] if ok else np.nan,
            "seed": seed,
            "true_mi": 1.0 if ok else np.nan,
            "estimate": estimate if ok else np.nan,
            "seconds": 1.0 if ok else np.nan,
            "peak_rss_mb": 1.0 if ok else np.nan,
            "error": error,
        }

    rows = [row("x", 0, 1.02), row("y", 0, error="ValueError"), row("y", 1, error="ValueError")]
    rows.append(row("y", 0, 0.5) | {"task": "b", "true_mi": 0.5})
    summary = summarise(pd.DataFrame(rows)).set_index(["task", "estimator"])
    failed = summary.loc[("a", "y")]
    assert failed.library == "peer" and failed.true_mi == 1.0 and failed.seeds == 2
    assert np.isnan(failed["mean"]) and failed.success == 0.0
    assert summary.loc[("a", "x")].success == 1.0


def test_a_suite_runs_in_parts_by_estimator(tmp_path):
    suite = Suite(
        "parts", "", tasks=("1v1-normal-0.75",), estimators=("bmi-cca", "bmi-ksg"), sizes=(300,)
    )
    first = runner.run_suite(suite, tmp_path, progress=False, estimators=["bmi-cca"])
    assert list(first.estimator) == ["bmi-cca"]
    both = runner.run_suite(suite, tmp_path, progress=False)  # the rest, the part reused
    assert sorted(both.estimator) == ["bmi-cca", "bmi-ksg"]
    assert both.set_index("estimator").estimate["bmi-cca"] == first.estimate.iloc[0]
    with pytest.raises(ValueError, match=r"has no estimators \['rfmi'\]"):
        runner.run_suite(suite, tmp_path, progress=False, estimators=["rfmi"])


def test_pointwise_suite_compares_with_exact_pmi(tmp_path):
    suite = Suite(
        name="pw",
        description="",
        tasks=("xmix-1-1",),
        estimators=("minde-c", "mine"),
        sizes=(600,),
        kind="pointwise",
        options={"minde-c": TINY | {"n_draws": 2}, "mine": TINY},
    )
    frame = runner.run_suite(suite, tmp_path, progress=False)
    assert sorted(frame.form) == ["critic", "cross", "mmse-gap", "orthogonal"]
    # MI of the X mixture: 0.406 by bmm.monte_carlo_mi_estimate on 200,000 samples
    assert frame.mean_exact_pmi.iloc[0] == pytest.approx(0.406, abs=0.1)
    assert frame.pearson.between(-1, 1).all() and (frame.mae >= 0).all()
    text = write_report(tmp_path / "pw").read_text()
    assert "Point-wise report" in text and (tmp_path / "pw" / "pmi_scatter.png").exists()
    with pytest.raises(ValueError, match="unknown point-wise task"):
        from benchmarks.pointwise import distribution

        distribution("cauchy")


def test_consistency_tasks_have_the_exact_structure_their_tests_rely_on():
    from benchmarks import consistency

    x, y = consistency.sample("dpi-r4", 300, seed=3)
    assert x.shape == (300, 128) and y.shape == (300, 32 + 16)
    assert (x[:, :64] == x[:, 64:]).all() and (y[:, 32:] == y[:, :16]).all()  # B_2 from B_4
    x, y = consistency.sample("additivity-r2", 300, seed=3)
    assert x.shape == (300, 128) and y.shape == (300, 32)
    x, y = consistency.sample("baseline-r8", 4000, seed=3)
    assert 0 <= x.min() and x.max() <= 1
    assert np.std(y - x) == pytest.approx(consistency.NOISE, rel=0.02)
    assert (
        consistency.sample("baseline-r2", 50, 7)[1] == consistency.sample("baseline-r2", 50, 7)[1]
    ).all()
    bounds = [consistency.upper_bound(f"baseline-r{r}") for r in (1, 2, 4, 6, 8)]
    assert consistency.upper_bound("independent-r8") == 0 and np.all(np.diff(bounds) > 0)
    assert consistency.upper_bound("additivity-r4") == pytest.approx(2 * bounds[2])
    for bad in ("dpi-r2", "baseline-r9", "rotation-r2", "baseline"):
        with pytest.raises(ValueError, match="consistency task"):
            consistency.parse(bad)


def _box_channel_mi(value: int, noise: float) -> float:
    """I(a; a + noise N) for a uniform on the box [value, value + 1] / 17, by quadrature."""
    from scipy.integrate import quad
    from scipy.special import xlogy
    from scipy.stats import norm

    lo, hi = value / 17, (value + 1) / 17
    density = lambda b: 17 * (norm.cdf((b - lo) / noise) - norm.cdf((b - hi) / noise))  # noqa: E731
    entropy = quad(lambda b: -xlogy(density(b), density(b)), lo - 8 * noise, hi + 8 * noise)[0]
    return entropy - 0.5 * np.log(2 * np.pi * np.e * noise**2)


def test_box_gaussian_mi_matches_closed_forms():
    """The Monte Carlo MI behind the consistency tasks' truth: for one image it is the sum
    over pixels of each box's channel MI (quadrature); for two images far apart against
    the noise it adds log 2 (which image is identified)."""
    one = np.array([[0, 8, 16]])
    exact = sum(_box_channel_mi(v, 0.05) for v in one[0])
    mi, se = consistency.box_gaussian_mi(one, 0.05, n=20_000, seed=1)
    assert abs(mi - exact) < 4 * se + 1e-3, (mi, exact, se)
    two = np.array([[0, 0, 16], [16, 16, 0]])
    exact_two = np.log(2) + sum(_box_channel_mi(v, 0.05) for v in two[0])
    mi, se = consistency.box_gaussian_mi(two, 0.05, n=20_000, seed=2)
    assert abs(mi - exact_two) < 4 * se + 1e-3, (mi, exact_two, se)


def test_consistency_tasks_exact_mi_obeys_the_structure_and_the_bound():
    mi = {task: consistency.exact_mi(task) for task in consistency.TASKS}
    assert mi["independent-r8"] == (0.0, 0.0)
    baseline = [mi[f"baseline-r{r}"][0] for r in (1, 2, 4, 6, 8)]
    assert np.all(np.diff(baseline) > 0)
    for r in (4, 6, 8):
        assert mi[f"dpi-r{r}"] == mi[f"baseline-r{r}"]
    assert mi["additivity-r4"][0] == pytest.approx(2 * mi["baseline-r4"][0])
    for task, (value, se) in mi.items():
        assert value <= consistency.upper_bound(task) + 3 * se, task


def test_consistency_suite_reports_ratios_and_bound(tmp_path):
    suite = Suite(
        name="cons",
        description="",
        tasks=("baseline-r4", "dpi-r4", "additivity-r4", "independent-r8"),
        estimators=("mine",),
        sizes=(600,),
        kind="consistency",
        options={"mine": TINY},
    )
    frame = runner.run_suite(suite, tmp_path, progress=False)
    assert (frame.error.fillna("") == "").all() and len(frame) == 4
    from benchmarks.report import consistency_table

    table = consistency_table(frame).set_index("test")
    estimate = frame.set_index("test").estimate
    assert table.ratio["dpi"] == pytest.approx(estimate["dpi"] / estimate["baseline"])
    assert table.ratio["baseline"] == 1 and np.isnan(table.ratio["independent"])
    assert table.upper_bound["additivity"] == pytest.approx(2 * table.upper_bound["baseline"])
    text = write_report(tmp_path / "cons").read_text()
    assert "Self-consistency report" in text and (tmp_path / "cons" / "consistency.svg").exists()


def test_consistency_targets_name_each_failed_check_and_need_every_candidate():
    from benchmarks.report import consistency_targets

    good = {"independent": 0.05, "monotone_violations": 0, "above_bound": 0}
    checks = pd.DataFrame(
        [
            {"estimator": "rfmi", **good, "dpi_ratio": 1.0, "additivity_ratio": 2.0},
            {"estimator": "minde-c", **good, "dpi_ratio": 0.8, "additivity_ratio": 2.0},
        ]
    )
    assert consistency_targets(checks, ("rfmi",))[0].endswith("Met.")
    lines = consistency_targets(checks, ("rfmi", "minde-c", "minde-j"))
    assert lines[0].endswith("Not met (`minde-c`, `minde-j`).")
    assert "- `rfmi`: 5 of 5 checks hold." in lines
    assert "`minde-c`: 4 of 5 checks hold; fails dpi_ratio 0.8." in lines[3]
    assert lines[4] == "- `minde-j`: not run yet."


def test_bound_headroom_counts_estimates_beyond_the_bound_plus_the_tolerance():
    from benchmarks.report import bound_headroom

    rows = [  # (estimator, test, estimate); exact MI 1.8 and 0.5 for bounds 2.0 and 0.5
        ("rfmi", "baseline", 2.1),  # above the bound, within the tolerance (0.18)
        ("rfmi", "dpi", 0.7),  # above by more than the tolerance (0.1 nats below 1 nat)
        ("rfmi", "independent", 5.0),  # not a dependent task
    ]
    truth = {"baseline": (1.8, 2.0), "dpi": (0.5, 0.5), "independent": (0.0, 0.0)}
    table = pd.DataFrame(
        [
            {"estimator": e, "test": t, "task": t, "estimate": v}
            | dict(zip(("true_mi", "upper_bound"), truth[t], strict=True))
            for e, t, v in rows
        ]
    )
    text = bound_headroom(table, ("rfmi", "minde-c"))
    assert "90.0-100.0% of the bound on the 2 dependent tasks" in text
    assert "at most 0.20 nats below it" in text and text.endswith("`rfmi` 1.")


def test_atomic_writes_replace_whole_files_readable_by_all(tmp_path):
    target = tmp_path / "sub" / "results.csv"
    runner.write_atomically(target, "a,b\n1,2\n")
    runner.write_atomically(target, "a,b\n3,4\n")
    assert target.read_text() == "a,b\n3,4\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["results.csv"]


def test_tolerance_is_point_one_nat_below_one_nat_then_ten_percent():
    assert list(tolerance([0.2, 0.99, 1.0, 3.0])) == pytest.approx([0.1, 0.1, 0.1, 0.3])


def _summary(successes: dict[str, int], tasks: int, seconds: dict[str, float]) -> pd.DataFrame:
    """A summarise()-like table: ``successes[name]`` of ``tasks`` tasks succeed at n = 10,000."""
    library = {"rfmi": "miest", "mine": "miest", "bmi-infonce": "bmi", "bmi-ksg": "bmi"}
    return pd.DataFrame(
        [
            {
                "task": f"t{i}",
                "n": 10_000,
                "estimator": name,
                "library": library[name],
                "success": i < count,
                "seconds": seconds[name],
                "seeds": 3,
            }
            for name, count in successes.items()
            for i in range(tasks)
        ]
    )


def test_targets_name_the_best_miest_estimator_and_judge_both_targets():
    seconds = {"rfmi": 10.0, "mine": 5.0, "bmi-infonce": 12.0, "bmi-ksg": 1.0}
    text = "\n".join(
        targets(_summary({"rfmi": 37, "mine": 30, "bmi-infonce": 33, "bmi-ksg": 20}, 40, seconds))
    )
    assert "best miest estimator: `rfmi`" in text
    assert "succeeds on 37 of 40 tasks" in text and "`bmi-infonce`: 33). Met." in text
    one_seed = "\n".join(
        targets(_summary({"rfmi": 37, "bmi-infonce": 33}, 40, seconds).assign(seeds=1))
    )
    assert "Met so far (final with 40 tasks x 3 seeds)." in one_seed
    assert "median 10.0 s per task against 12.0 s for `bmi-infonce` in the same run. Met." in text
    beaten = _summary({"rfmi": 36, "mine": 30, "bmi-infonce": 37, "bmi-ksg": 20}, 40, seconds)
    assert "Not met." in "\n".join(targets(beaten))
    partial = _summary({"rfmi": 20, "mine": 18, "bmi-infonce": 19, "bmi-ksg": 20}, 22, seconds)
    assert "Open: 2 failures so far (at most 4 allowed)." in "\n".join(targets(partial))
    assert targets(_summary({"rfmi": 1}, 1, seconds).assign(n=5000)) == []
    # the images suite: 7 tasks, judged on the diffusion/flow estimators only
    images = _summary({"mine": 7, "rfmi": 6, "bmi-infonce": 5, "bmi-ksg": 2}, 7, seconds)
    text = "\n".join(targets(images, **get_suite("images").targets))
    assert "best miest estimator: `rfmi`" in text and "succeeds on 6 of 7 tasks" in text
    assert "at least 6 of 7" in text and "`bmi-infonce`: 5). Met." in text
    unfinished = images[~((images.estimator == "bmi-ksg") & (images.task != "t0"))]
    assert "Open: 0 failures so far" in "\n".join(
        targets(unfinished, **get_suite("images").targets)
    )
    # judged on 2 tasks, but rfmi already misses 3 of the 7 it has run: out of reach
    weak = _summary({"rfmi": 4, "bmi-ksg": 2}, 7, seconds)
    weak = weak[(weak.estimator == "rfmi") | weak.task.isin(["t0", "t1"])]
    text = "\n".join(targets(weak, **get_suite("images").targets))
    assert "succeeds on 2 of 2 tasks" in text and "at most 4 of 7 can still succeed" in text
    pending = get_suite("images").targets | {"estimators": ("rfmi", "minde-c")}
    assert "Open: 0 failures" in "\n".join(targets(weak, **pending))  # minde-c not run yet
    without_candidates = targets(images[images.estimator != "rfmi"], **get_suite("images").targets)
    assert "Not judged yet" in "\n".join(without_candidates)
    # v1 at n = 100,000: miest's estimators only, judged against the published counts
    alone = _summary({"rfmi": 39, "mine": 31}, 40, seconds).assign(n=100_000, seeds=1)
    text = "\n".join(targets(alone, **get_suite("v1-100k").targets))
    assert "succeeds on 39 of 40 tasks (target: at least 39 of 40). Met." in text
    assert "Published at this size (MMG paper, arXiv 2509.20609)" in text and "sampling 39" in text
    # judged on the 32 tasks both have run, yet mine already succeeds on 39 of its 40
    ahead = _summary({"rfmi": 30, "mine": 39}, 40, seconds).assign(n=100_000, seeds=1)
    ahead = ahead[(ahead.estimator == "mine") | ~ahead.task.isin([f"t{i}" for i in range(8)])]
    text = "\n".join(targets(ahead, **get_suite("v1-100k").targets))
    assert "Met by `mine`, on 39 of the 40 tasks it has run." in text
    short = _summary({"rfmi": 38, "mine": 31}, 40, seconds).assign(n=100_000, seeds=1)
    assert "Not met." in "\n".join(targets(short, **get_suite("v1-100k").targets))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--suite", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown suite 'huge'" in capsys.readouterr().err
    assert main(["report", "--suite", "quick", "--out", str(tmp_path)]) == 2
    assert "run the suite first" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quick", "pointwise", "consistency", "v1", "images"])
def test_committed_caches_belong_to_current_jobs(name):
    """A change to job identity (the key) would orphan the committed cache: reruns would
    recompute everything. Every cached file must be a job of the suite as defined now."""
    from pathlib import Path

    cache = Path(__file__).parents[1] / "results" / name / "cache"
    stale = runner.stale_cache_files(cache, get_suite(name).jobs())
    assert any(cache.glob("*.json")) and not stale, stale[:3]


def test_prune_removes_only_the_cached_jobs_a_suite_no_longer_has(tmp_path, capsys):
    suite = get_suite("quick")
    cache = tmp_path / "quick" / "cache"
    cache.mkdir(parents=True)
    current = cache / f"{suite.jobs()[0].key}.json"
    stale = cache / "1v1-normal-0.75__minde-c__s0__n5000__000000000000.json"
    for path in (current, stale):
        path.write_text("[]")
    assert main(["prune", "--suite", "quick", "--dry-run", "--out", str(tmp_path)]) == 0
    assert "would remove 1 stale" in capsys.readouterr().out and stale.exists()
    assert main(["prune", "--suite", "quick", "--out", str(tmp_path)]) == 0
    assert not stale.exists() and current.exists()


def _readme_block(name: str) -> str:
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    return readme.split(f"<!-- begin {name} -->\n")[1].split(f"\n<!-- end {name} -->")[0]


def _report_section(suite: str, heading: str) -> str:
    from pathlib import Path

    report = (Path(__file__).parents[1] / "results" / suite / "REPORT.md").read_text()
    return report.split(f"## {heading}\n\n")[1]


def test_readme_headline_table_is_the_quick_report_table():
    table = _report_section("quick", "Successes and cost per estimator").split("\n\n")[0]
    assert _readme_block("quick summary") == table


def test_readme_v1_targets_are_the_v1_report_targets():
    judged, verdicts = _report_section("v1", "Targets").split("\n\n")[:2]
    assert _readme_block("v1 targets") == f"{judged}\n\n{verdicts}"


def test_forms_variants_parse_and_reject_unnamed_option_sets():
    assert forms.parse_variant("default") == ("default", {})
    assert forms.parse_variant("long:steps=12000,lr=1e-3,train_time_sampler=null,form=cross") == (
        "long",
        {"steps": 12000, "lr": 1e-3, "train_time_sampler": None, "form": "cross"},
    )
    for bad in (":steps=1", "default:steps=1", "long:steps"):
        with pytest.raises(argparse.ArgumentTypeError):
            forms.parse_variant(bad)


def test_forms_records_every_form_per_fit_and_resumes_from_its_csv(tmp_path, capsys):
    csv = tmp_path / "forms.csv"
    args = ["--n", "300", "--tasks", "1v1-normal-0.75", "--estimators", "rfmi", "--seeds", "0", "1"]
    args += [
        "--variant",
        "tiny:" + ",".join(f"{k}={v}" for k, v in TINY.items()),
        "--csv",
        str(csv),
    ]
    assert forms.main(args) == 0
    first = pd.read_csv(csv)
    assert len(first) == 2 and set(first.seed) == {0, 1} and set(first.variant) == {"tiny"}
    # the cross form is the mean of the other two, from the same fit
    assert np.allclose(first["cross"], (first["orthogonal"] + first["mmse-gap"]) / 2)
    assert "tasks within 10%" in capsys.readouterr().out
    assert forms.main(args) == 0  # resumes: nothing left to fit
    assert "1v1-normal-0.75" not in capsys.readouterr().out.split("tasks within")[0]
    pd.testing.assert_frame_equal(pd.read_csv(csv), first)
    with pytest.raises(TypeError, match="rfmi"):
        forms.main([*args[:-2], "--variant", "bad:no_such_option=1"])
    # the key covers every setting: another size is a new fit, not a resumed one
    assert forms.main(["--n", "320", *args[2:]]) == 0
    assert sorted(pd.read_csv(csv).n) == [300, 300, 320, 320]
    first.drop(columns="key").to_csv(csv, index=False)
    with pytest.raises(SystemExit, match="no key column"):
        forms.main(args)


def test_forms_judges_consistency_rows_by_the_suites_checks():
    from benchmarks import consistency

    bounds = np.array([consistency.upper_bound(task) for task in consistency.TASKS])
    frame = pd.DataFrame(
        {
            "task": [*consistency.TASKS, "1v1-normal-0.75"],
            "upper bound": [*bounds, np.nan],
            "truth": [np.nan] * len(bounds) + [0.41],
            "estimator": "rfmi",
            "variant": "v",
            "orthogonal": [*(bounds + 1.0), 0.4],
            "mmse-gap": [*(0.95 * bounds), 0.4],
            "cross": [*(0.5 * bounds + 0.5), 0.4],
        }
    )
    checks = forms.consistency_checks_by_form(frame).set_index("form")
    assert list(checks.estimator.unique()) == ["rfmi v"]
    assert checks.loc["orthogonal", "independent"] == pytest.approx(1.0)
    assert checks.loc["orthogonal", "above_bound"] == len(bounds) - 1
    assert checks.loc["mmse-gap", "independent"] == 0 and checks.loc["mmse-gap", "above_bound"] == 0
    assert checks.loc["cross", "independent"] == pytest.approx(0.5)
    assert forms.consistency_checks_by_form(frame.drop(columns="upper bound")).empty


def test_coverage_counts_seed_intervals_that_hold_the_truth(tmp_path):
    from benchmarks import coverage

    rows = [  # truth 1.0; "tight" misses it (mean 1.2, sd 0.01), "wide" covers it
        {"task": "t", "estimator": est, "n": 100, "seed": s, "true_mi": 1.0, "estimate": v}
        for est, values in (("tight", (1.19, 1.2, 1.21)), ("wide", (0.8, 1.1, 1.3)))
        for s, v in enumerate(values)
    ]
    pd.DataFrame(rows).assign(error="").to_csv(tmp_path / "results.csv", index=False)
    frame = coverage.from_v1(tmp_path / "results.csv")
    assert frame.set_index("estimator").covered.to_dict() == {"tight": False, "wide": True}
    table = coverage.summary(frame)
    assert table.loc[("wide", 100), "covered"] == 1.0 and table.loc[("tight", 100), "tasks"] == 1


def test_options_at_their_neutral_value_keep_old_keys():
    plain = Job("t", "rfmi", 0, 10).key
    assert Job("t", "rfmi", 0, 10, (("condition_encoder", None),)).key == plain
    assert Job("t", "rfmi", 0, 10, (("condition_encoder", "infonce"),)).key != plain
