"""The toy world end to end at toy scale: train both families briefly, run every
selection of the experiment, and write the report (the CI version of the full run)."""

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

import t2i
from t2i.families import SDModel
from t2i.toy import models, report
from t2i.toy.cli import main
from t2i.toy.experiment import (
    SELECTIONS,
    Arm,
    choose,
    control_arms,
    diversity,
    finetune_config,
    study_arms,
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    assert (
        main(
            [
                "train",
                "--models",
                str(root / "models"),
                "--steps",
                "4",
                "--vae-steps",
                "4",
                "--scenes",
                "8",
            ]
        )
        == 0
    )
    return root


def test_trained_folders_are_diffusers_pipelines_without_the_minilm_weights(toy):

    for family, slot in models.MINILM_SLOT.items():
        folder = toy / "models" / family
        assert not (folder / slot / "model.safetensors").exists()
        card = json.loads((folder / "training.json").read_text())
        assert card["config"]["steps"] == 4 and np.isfinite(card["final_loss_last_200"])
        pipe = t2i.load_pipeline(models.complete(folder))
        assert t2i.model_for(pipe).family == family
    # the shared VAE maps the world's images to roughly unit-variance latents
    vae_config = json.loads((toy / "models" / "vae" / "config.json").read_text())
    assert vae_config["scaling_factor"] > 0


def test_every_selection_runs_and_reports(toy):
    tiny = dict(
        images_per_prompt=2,
        sampling_steps=4,
        finetune_steps=2,
        train_prompts=2,
        eval_prompts=2,
        eval_seeds=2,
    )
    arguments = [
        "--models",
        str(toy / "models"),
        "--results",
        str(toy / "results"),
        "--work",
        str(toy / "work"),
    ]
    settings = [
        "-M",
        "2",
        "--sampling-steps",
        "4",
        "--finetune-steps",
        "2",
        "--train-prompts",
        "2",
        "--eval-prompts",
        "2",
        "--eval-seeds",
        "2",
    ]
    assert main(["run", "--category", "numeracy", *settings, *arguments]) == 0
    arms = sorted(p.stem for p in (toy / "results" / "arms").glob("*.csv"))
    assert len(arms) == 2 * 4  # two families, four selections
    assert Arm("sd", "numeracy", "mi", **tiny).key in arms
    rows = report.load(toy / "results")
    assert set(rows["selection"]) == {"base", "random", "mi", "oracle"}
    assert rows["score"].between(0, 1).all() and np.isfinite(rows["mi"]).all()
    # the same held-out prompts and seeds in every arm: comparisons are paired
    keys = rows.groupby("arm")[["prompt", "seed"]].apply(lambda g: tuple(map(tuple, g.values)))
    assert keys.nunique() == 1
    # every selection chose from one shared round-1 pool per family
    assert len(list((toy / "results" / "pools").glob("*.csv"))) == 2
    assert main(["report", *arguments]) == 0
    text = (toy / "results" / "REPORT.md").read_text()
    assert "mi - random" in text and "Kendall tau" in text
    assert (toy / "results" / "grid_sd.png").exists()
    # R = 2 continues the R = 1 lineage: its first round is the finished one, reused
    lineage = toy / "work" / "arms" / Arm("sd", "numeracy", "mi", **tiny).key
    first = (lineage / "round-1" / "adapter" / "pytorch_lora_weights.safetensors").read_bytes()
    assert (
        main(
            [
                "run",
                "--family",
                "sd",
                "--category",
                "numeracy",
                "--selection",
                "mi",
                "--rounds",
                "2",
                *settings,
                *arguments,
            ]
        )
        == 0
    )
    assert (lineage / "round-2" / "adapter").is_dir()
    assert (
        lineage / "round-1" / "adapter" / "pytorch_lora_weights.safetensors"
    ).read_bytes() == first
    assert (
        toy / "results" / "pools" / f"{Arm('sd', 'numeracy', 'mi', **tiny).key}__round2.csv"
    ).exists()
    assert main(["report", *arguments]) == 0
    assert "### rounds=2" in (toy / "results" / "REPORT.md").read_text()
    # a rerun finds every arm cached and changes nothing
    before = {p: p.read_bytes() for p in (toy / "results" / "arms").glob("*.csv")}
    assert main(["run", "--category", "numeracy", *settings, *arguments]) == 0
    assert before == {p: p.read_bytes() for p in (toy / "results" / "arms").glob("*.csv")}


def test_choose_picks_by_mi_by_score_or_at_random():
    pool = pd.DataFrame(
        {
            "prompt": ["a"] * 3 + ["b"] * 3,
            "mi": [1.0, 3.0, 2.0, 0.5, 0.1, 0.9],
            "score": [1.0, 0.0, 0.5, 0.0, 1.0, 0.5],
        }
    )
    assert choose(pool, "mi", 1)["mi"].tolist() == [3.0, 0.9]
    assert sorted(choose(pool, "oracle", 1)["score"]) == [1.0, 1.0]
    assert len(choose(pool, "random", 2)) == 4
    assert choose(pool, "random", 2, seed=1).equals(choose(pool, "random", 2, seed=1))


def test_the_study_is_the_main_comparison_then_one_setting_varied_at_a_time():
    arms = study_arms(["sd"], ["colour", "spatial"])
    main_comparison = [Arm("sd", c, s) for c in ("colour", "spatial") for s in SELECTIONS]
    assert arms[: len(main_comparison)] == main_comparison
    keys = [arm.key for arm in arms]
    assert len(set(keys)) == len(keys)
    for arm in arms[len(main_comparison) :]:
        assert len(arm.name.split("__")) == 4  # family, category, selection, one setting
        assert arm.key.startswith(arm.name + "__")  # and the hash of its resolved config
    varied = {arm.name.split("__")[3].split("=")[0] for arm in arms[len(main_comparison) :]}
    assert varied == {"guidance_scale", "rounds", "images_per_prompt", "keep", "adapter"}


def test_arm_keys_cover_resolved_defaults():
    key = Arm("sd", "colour", "mi").key
    # a setting at its default value is the same arm; a changed fine-tuning default is not
    assert Arm("sd", "colour", "mi", rank=8).key == key
    assert Arm("sd", "colour", "mi", rank=4).key != key
    with mock.patch.object(SDModel, "lora_targets", ("to_q",)):  # a family default
        assert Arm("sd", "colour", "mi").key != key
        assert Arm("sd", "colour", "base").key == Arm("sd", "colour", "base").key
    # a base arm does not depend on fine-tuning settings
    assert Arm("sd", "colour", "base", rank=4).key == Arm("sd", "colour", "base").key
    assert Arm("sd", "colour", "mi").pool_key(1) == Arm("sd", "colour", "oracle").pool_key(1)


def test_committed_arms_keep_their_keys_and_replicates_are_new_arms():
    committed = Path(__file__).parents[1] / "results" / "t2i_toy" / "arms"
    for arm in study_arms():  # settings added later leave the committed arms' keys alone
        assert (committed / f"{arm.key}.csv").exists(), arm.name
    arm = Arm("sd", "colour", "random")
    again = Arm("sd", "colour", "random", replicate=1)
    assert again.key != arm.key and again.name == "sd__colour__random__replicate=1"
    assert finetune_config(again).seed == 1 and finetune_config(arm).seed == 0
    assert Arm("sd", "colour", "mi", prompt_dropout=0.1).key != Arm("sd", "colour", "mi").key
    assert finetune_config(Arm("sd", "colour", "mi", prompt_dropout=0.1)).prompt_dropout == 0.1


def test_diversity_is_zero_for_repeats_and_positive_otherwise():
    same = np.zeros((2, 4, 32, 32, 3), np.uint8).reshape(8, 32, 32, 3)
    assert np.allclose(diversity(same, 4), 0)
    mixed = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    assert (diversity(mixed, 4) > 0.2).all()


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"family": "sdxl"}, "unknown family"),
        ({"category": "texture"}, "unknown category"),
        ({"selection": "best"}, "unknown selection"),
        ({"keep": 3, "images_per_prompt": 2}, "1 <= k <= M"),
    ],
)
def test_bad_arms_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        Arm(**({"family": "sd", "category": "colour"} | settings))


def test_missing_models_give_a_clear_error(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--models",
                str(tmp_path / "nowhere"),
                "--results",
                str(tmp_path),
                "--category",
                "shape",
                "--family",
                "sd",
            ]
        )
        == 2
    )
    assert "no toy model" in capsys.readouterr().err


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.random((8, 2)), rng.random((200, 4))
    for values in (small, large):
        mean, low, high = report.bootstrap(values)
        assert low < mean < high
    assert np.diff(report.bootstrap(large)[1:]) < np.diff(report.bootstrap(small)[1:])


def test_forms_bound_is_minus_log_p_of_a_training_prompt():
    from t2i.toy.forms import bound
    from t2i.toy.world import split

    for category in ("colour", "numeracy"):
        p = 1 / (4 * len(split(category)["train"]))
        assert bound(category) == pytest.approx(-np.log(p))


def test_forms_summary_counts_bound_violations_and_own_prompt_wins():
    from t2i.toy.forms import FORMS, GENERATION, summary

    values = np.array([1.0, 2.0, 3.0, 4.0])
    rows = pd.DataFrame(
        {
            "family": "sd",
            "bound": 2.5,
            "checker_score": [0.0, 0.2, 0.4, 1.0],
            GENERATION: values,
            **{form: values for form in FORMS},
            **{f"{form}_other": [0.0, 3.0, 3.0, 0.0] for form in FORMS},
        }
    )
    table = summary(rows).set_index("form")
    assert table.loc["cross", "above_bound"] == 0.5  # 3 and 4 exceed 2.5
    assert table.loc["cross", "own_prompt_wins"] == 0.625  # wins 1 and 4, ties 3
    assert np.isnan(table.loc[GENERATION, "own_prompt_wins"])
    assert table.loc["mmse-gap", "spearman_checker"] == pytest.approx(1.0)


def test_forms_scores_every_category_with_its_own_and_another_prompt(toy):
    from t2i.toy.forms import FORMS, GENERATION, image_rows

    pipe = t2i.load_pipeline(models.complete(toy / "models" / "sd"))
    rows = image_rows(pipe, "sd", prompts=1, images=1, steps=2, n_draws=2)
    assert list(rows.category) == ["colour", "shape", "spatial", "numeracy"]
    assert (rows.prompt != rows.other_prompt).all()
    columns = [GENERATION, *FORMS, *(f"{form}_other" for form in FORMS)]
    assert np.isfinite(rows[columns].to_numpy()).all()


def _synthetic_pools(prompts=40, images=6, seed=0):
    """Pools where ``generation`` is the checker score, ``mmse-gap`` its negative and every
    other score noise: exact answers for every rule."""
    from t2i.toy.selectors import SCORES

    rng = np.random.default_rng(seed)
    frames = []
    for family in ("sd", "sd3"):
        for category in ("colour", "shape"):
            score = rng.integers(0, 3, size=(prompts, images)) / 2  # 0, 0.5 or 1
            rows = pd.DataFrame(
                {
                    "family": family,
                    "category": category,
                    "prompt": np.repeat([f"{category} {i}" for i in range(prompts)], images),
                    "checker_score": score.ravel(),
                    "all_correct": score.ravel() == 1,
                    **{name: rng.normal(size=prompts * images) for name in SCORES},
                }
            )
            rows["generation"] = rows["checker_score"] + 1e-3 * rng.random(len(rows))
            rows["mmse-gap"] = -rows["generation"]
            frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def test_selector_rules_are_scored_against_random_and_the_oracle():
    from t2i.toy.selectors import captured, halves, prompt_values, summary, verdict

    pools = _synthetic_pools()
    values = prompt_values(pools[(pools.family == "sd") & (pools.category == "colour")])
    assert captured(values, "top generation") == pytest.approx(1.0)
    assert captured(values, "bottom mmse-gap") == pytest.approx(1.0)
    assert captured(values, "top mmse-gap") < 0  # the worst image: below random
    assert captured(values, "random") == 0.0
    # drop-half by the checker keeps the better half: between random and the oracle
    assert 0 < captured(values, "drop-half generation") <= 1
    split = halves(pools)
    assert set(split.half) == {1, 2} and len(split) == 4 * 40
    assert (split.groupby(["family", "category", "half"]).size() == 20).all()
    table = summary(split)
    assert table.captured.between(-5, 5).all()
    result = verdict(split)
    assert set(result.category) == {"colour", "shape", "all"}
    # a rule as good as the oracle on half 1 is chosen, and holds exactly on half 2
    assert result.rule.isin(["top generation", "bottom mmse-gap"]).all()
    assert np.allclose(result[["captured_half1", "captured_half2", "ci_low", "ci_high"]], 1.0)


def test_selectors_command_writes_pools_verdict_and_plot(toy):
    from t2i.toy.selectors import report_section

    results = toy / "selector-results"
    args = ["selectors", "--models", str(toy / "models"), "--results", str(results)]
    options = ["--prompts", "2", "--images", "2", "--n-draws", "2", "--steps", "2"]
    assert main([*args, *options, "--family", "sd", "--category", "colour", "shape"]) == 0
    rows = pd.read_csv(results / "selectors" / "images.csv")
    assert len(rows) == 2 * 2 * 2 and np.isfinite(rows.filter(like="generation")).all().all()
    # the bands split the MI during generation
    bands = rows[[c for c in rows if c.startswith("generation:")]].sum(axis=1)
    assert np.allclose(bands, rows["generation"])
    assert (results / "selectors" / "verdict.csv").exists()  # empty if the oracle never wins
    assert (results / "selectors" / "selectors.png").exists()
    assert "MI as a selector" in "".join(report_section(results / "selectors"))
    pools = sorted((results / "selectors" / "pools").glob("*.csv"))
    assert len(pools) == 2
    stamp = [p.stat().st_mtime_ns for p in pools]
    assert main([*args, *options, "--family", "sd", "--category", "colour", "shape"]) == 0
    assert [p.stat().st_mtime_ns for p in pools] == stamp  # cached pools are reused


def test_control_arms_replicate_oracle_and_random_on_every_prompt_they_may_use():
    arms = control_arms(["sd"], ["colour", "shape"], replicates=2)
    assert [a.selection for a in arms[:5]] == ["base", "oracle", "random", "oracle", "random"]
    assert len({a.key for a in arms}) == len(arms) == 10
    colour = arms[1]
    assert (colour.train_prompts, colour.eval_prompts) == (135, 45)  # all of colour's
    assert (arms[6].train_prompts, arms[6].eval_prompts) == (22, 8)  # shape has 22 and 8
    assert arms[0].eval_prompts == colour.eval_prompts  # base: the same held-out prompts
    assert {a.replicate for a in arms if a.selection == "random"} == {0, 1}
    # the replicates of a selection share their pool, not their draw or fine-tuning seed
    assert arms[2].pool_key(1) == arms[4].pool_key(1) == arms[1].pool_key(1)
    assert finetune_config(arms[4]).seed == 1


def _control_rows(gains: dict[str, float], replicates: int, prompts: int = 40) -> pd.DataFrame:
    """Synthetic control arms: random at 30% all-correct, oracle at 30% + gain."""
    rng = np.random.default_rng(0)
    rows = []
    for category, gain in gains.items():
        for selection, rate, reps in (("base", 0.3, 1), ("random", 0.3, replicates)):
            rows += [(category, selection, r, rate) for r in range(reps)]
        rows += [(category, "oracle", r, 0.3 + gain) for r in range(replicates)]
    frame = [
        {"family": "sd", "category": c, "selection": s, "replicate": r, "prompt": f"p{p}"}
        | {"seed": seed, "all_correct": float(rng.random() < rate)}
        for c, s, r, rate in rows
        for p in range(prompts)
        for seed in range(4)
    ]
    return pd.DataFrame(frame)


def test_control_verdict_needs_two_categories_with_a_clear_gain_and_every_replicate():
    mean, low, high = report.replicate_bootstrap(np.ones((3, 5, 4)), np.zeros((2, 5, 4)))
    assert mean == low == high == 1.0
    table, verdict = report.control_table(_control_rows({"colour": 0.4, "shape": 0.4}, 3))
    assert list(table["control"]) == ["met", "met"] and "Met." in verdict
    assert (table["oracle"] - table["random"]).between(30, 50).all()
    table, verdict = report.control_table(_control_rows({"colour": 0.4, "shape": 0.0}, 3))
    assert list(table["control"]) == ["met", "not met"] and "Open." in verdict  # 2 unrun
    gains = {"colour": 0.4, "shape": 0.0, "spatial": 0.05, "numeracy": 0.0}
    table, verdict = report.control_table(_control_rows(gains, 3))
    assert list(table["control"]) == ["met", "not met", "not met", "not met"]
    assert "Not met." in verdict and "sd: 1 met of 4 judged" in verdict
    table, verdict = report.control_table(_control_rows({"colour": 0.4, "shape": 0.4}, 1))
    assert set(table["control"]) == {"open"} and "Open." in verdict
    assert "Not run yet" in report.control_table(_control_rows({}, 3).iloc[:0])[1]


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--control", "--study"], "choose --study or --control"),
        (["--control", "--replicates", "0"], "at least 1"),
    ],
)
def test_control_run_flags_are_checked(flags, match, tmp_path, capsys):
    assert main(["run", *flags, "--models", str(tmp_path), "--results", str(tmp_path)]) == 2
    assert match in capsys.readouterr().err
