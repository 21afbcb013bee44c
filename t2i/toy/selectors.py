"""Point-wise MI as a selector on its own, measured on candidate pools (no fine-tuning).

For each family and category the base model draws ``images`` images for each of (up to)
``prompts`` training prompts, as the experiment's pools are drawn (guidance 4, 25 steps),
and every image gets its checker verdict and several *scores*: the MI during generation
(orthogonal form) in all and per log-SNR band (``BANDS``, from the per-step terms that
generation computes anyway), and the orthogonal, MMSE-gap and cross forms by re-noising
(``t2i.score``). A *rule* keeps one image per prompt; its value on a prompt is the chance
that the kept image is all-correct. Two references bound it: ``random`` (the prompt's
all-correct share) and ``oracle`` (the checker's best image). The *captured share* of a
rule is ``(rule - random) / (oracle - random)`` over a set of prompts: 1 is the oracle's
gain, 0 no gain, below 0 worse than random.

Rules, for every score: ``top`` (the highest-scoring image), ``bottom`` (the lowest: a
score that points the wrong way) and ``drop-half`` (drop the lower half by the score,
then keep at random). Pre-registration: each category's prompts are split in two halves
at random; per family, the rule with the highest mean captured share over the categories
on the first half is chosen, and its captured share on the second half, with a bootstrap
interval over prompts, is the verdict.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from miest.files import job_key, pyplot, save_figure, write_atomically
from miest.integrate import FORMS
from t2i.generation import combine
from t2i.loading import load_pipeline
from t2i.score import score
from t2i.toy import models
from t2i.toy.experiment import generate_checked
from t2i.toy.world import CATEGORIES, split

GENERATION = "generation"  # the orthogonal form as generation computes it
BANDS = {"high-noise": (-np.inf, -2.0), "mid-noise": (-2.0, 2.0), "low-noise": (2.0, np.inf)}
"""Log-SNR bands of the generation steps: the MI during generation is their sum."""
SCORES = (GENERATION, *(f"{GENERATION}:{band}" for band in BANDS), *FORMS)
RULES = ("top", "bottom", "drop-half")
BOOTSTRAP = 2000
VERDICT_COLUMNS = ["family", "category", "rule", "captured_half1", "captured_half2"]
VERDICT_COLUMNS += ["ci_low", "ci_high"]


def pool_rows(
    pipe,
    family: str,
    category: str,
    prompts: int = 32,
    images: int = 10,
    guidance_scale: float = 4.0,
    steps: int = 25,
    n_draws: int = 16,
    seed: int = 0,
    batch: int = 40,
) -> pd.DataFrame:
    """One row per generated image of one category: prompt, seed, checker verdict, and
    every score (``SCORES``, nats)."""
    train = [spec.prompt for spec in split(category)["train"]]
    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    chosen = [train[i] for i in rng.permutation(len(train))[:prompts]]
    pairs = [
        (p, seed * 1_000_000 + i * 1_000 + j) for i, p in enumerate(chosen) for j in range(images)
    ]
    frames = []
    for start in range(0, len(pairs), batch):
        part = pairs[start : start + batch]
        texts, seeds = [p for p, _ in part], [s for _, s in part]
        result, pixels, verdicts = generate_checked(pipe, texts, seeds, guidance_scale, steps)
        forms = score(pipe, texts, list(pixels), n_draws=n_draws, seed=seed)
        lam = result.path.log_snr(torch.as_tensor(result.times, dtype=torch.float64)).numpy()
        bands = {}
        for band, (low, high) in BANDS.items():
            inside = ((lam >= low) & (lam < high))[:, None]
            terms = np.where(inside, result.terms, 0.0)
            bands[f"{GENERATION}:{band}"] = combine(
                result.times, terms, result.path, result.truncation, "quadrature"
            )
        frames.append(
            pd.DataFrame(
                {
                    "family": family,
                    "category": category,
                    "prompt": texts,
                    "seed": seeds,
                    "checker_score": [v.score for v in verdicts],
                    "all_correct": [v.all_correct for v in verdicts],
                    GENERATION: result.mi,
                    **bands,
                    **{form: forms.values(form) for form in FORMS},
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def run(
    models_dir: Path,
    out: Path,
    families=("sd", "sd3"),
    categories=CATEGORIES,
    progress: bool = True,
    **options,
) -> pd.DataFrame:
    """``pool_rows`` for every family and category, cached per pool in ``out/pools``
    (a file named by a hash of its settings; a rerun reuses finished pools)."""
    from tqdm.auto import tqdm

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(pool_rows).parameters.items()
        if parameter.default is not inspect.Parameter.empty and name != "batch"
    }
    frames = []
    jobs = [(family, category) for family in families for category in categories]
    for family, category in tqdm(jobs, desc="pools", disable=not progress):
        config = {"family": family, "category": category, **defaults, **options}
        key = job_key(f"{family}__{category}", config)
        path = out / "pools" / f"{key}.csv"
        if not path.exists():
            pipe = load_pipeline(models.complete(models_dir / family))
            rows = pool_rows(pipe, family, category, **options)
            write_atomically(path, rows.to_csv(index=False))
        frames.append(pd.read_csv(path))
    return pd.concat(frames, ignore_index=True)


def prompt_values(pool: pd.DataFrame) -> pd.DataFrame:
    """Per prompt of one pool: the chance that each rule's kept image is all-correct
    (columns ``random``, ``oracle`` and ``<rule> <score>``)."""
    records = []
    for prompt, group in pool.groupby("prompt", sort=False):
        correct = group["all_correct"].to_numpy(dtype=float)
        best = group["checker_score"].to_numpy() == group["checker_score"].max()
        record = {"prompt": prompt, "random": correct.mean(), "oracle": correct[best].mean()}
        for name in SCORES:
            values = group[name].to_numpy()
            order = np.argsort(-values, kind="stable")
            record[f"top {name}"] = correct[order[0]]
            record[f"bottom {name}"] = correct[order[-1]]
            record[f"drop-half {name}"] = correct[order[: -(-len(order) // 2)]].mean()
        records.append(record)
    return pd.DataFrame(records)


def captured(values: pd.DataFrame, rule: str) -> float:
    """``(rule - random) / (oracle - random)`` over these prompts (nan without a gap)."""
    gap = values["oracle"].mean() - values["random"].mean()
    return float((values[rule].mean() - values["random"].mean()) / gap) if gap > 0 else np.nan


def halves(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per-prompt rule values of every pool, each prompt marked ``half`` 1 or 2 (a seeded
    split within each family and category)."""
    frames = []
    for (family, category), pool in rows.groupby(["family", "category"], sort=False):
        values = prompt_values(pool)
        rng = np.random.default_rng([seed, CATEGORIES.index(category)])
        half = np.where(rng.permutation(len(values)) < len(values) // 2, 1, 2)
        frames.append(values.assign(family=family, category=category, half=half))
    return pd.concat(frames, ignore_index=True)


def rule_names() -> list[str]:
    return [f"{rule} {name}" for rule in RULES for name in SCORES]


def summary(values: pd.DataFrame) -> pd.DataFrame:
    """Per half, family, category and rule: the all-correct rates of the rule, random and
    the oracle, and the captured share."""
    records = []
    for (half, family, category), group in values.groupby(["half", "family", "category"]):
        for rule in rule_names():
            records.append(
                {
                    "half": half,
                    "family": family,
                    "category": category,
                    "rule": rule,
                    "prompts": len(group),
                    "rule_rate": group[rule].mean(),
                    "random_rate": group["random"].mean(),
                    "oracle_rate": group["oracle"].mean(),
                    "captured": captured(group, rule),
                }
            )
    return pd.DataFrame(records)


def verdict(values: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per family: the rule chosen on half 1 (highest mean captured share over its
    categories) and its captured share on both halves, per category and over all (the
    mean over categories), with a 95% bootstrap interval over the half-2 prompts
    (resampled within each category)."""
    table = summary(values)
    rng = np.random.default_rng(seed)
    records = []
    for family, rows in table[table["half"] == 1].groupby("family", sort=False):
        means = rows.groupby("rule")["captured"].mean().dropna()
        if means.empty:  # the oracle beats random in no category of half 1: nothing to choose
            continue
        chosen = means.idxmax()
        first = rows[rows["rule"] == chosen].set_index("category")["captured"]
        second = values[(values["family"] == family) & (values["half"] == 2)]
        groups = dict(list(second.groupby("category", sort=False)))
        draws = np.array(
            [
                [
                    captured(g.iloc[rng.integers(len(g), size=len(g))], chosen)
                    for g in groups.values()
                ]
                for _ in range(BOOTSTRAP)
            ]
        )  # (BOOTSTRAP, categories)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a category without a gap: nan
            columns = {
                **{c: draws[:, i] for i, c in enumerate(groups)},
                "all": np.nanmean(draws, 1),
            }
            points = {c: captured(g, chosen) for c, g in groups.items()}
            points["all"] = np.nanmean(list(points.values()))
            for category, draw in columns.items():
                low, high = np.nanpercentile(draw, [2.5, 97.5])
                records.append(
                    {
                        "family": family,
                        "category": category,
                        "rule": chosen,
                        "captured_half1": first.mean() if category == "all" else first[category],
                        "captured_half2": points[category],
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return pd.DataFrame(records, columns=VERDICT_COLUMNS)


def plot(table: pd.DataFrame, out: Path) -> list[str]:
    """Captured share (mean over categories) of every rule, half 1 against half 2, one
    panel per family: rules that hold up lie near the diagonal, far from 0."""
    plt = pyplot()

    means = table.groupby(["family", "rule", "half"])["captured"].mean().unstack("half")
    families = list(dict.fromkeys(table["family"]))
    fig, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 4.4), squeeze=False)
    markers = dict(zip(RULES, "o^s", strict=True))
    colours = dict(zip(SCORES, plt.get_cmap("tab10").colors, strict=False))
    for ax, family in zip(axes[0], families, strict=True):
        for rule_score, row in means.loc[family].iterrows():
            rule, name = rule_score.split(" ", 1)
            ax.scatter(row[1], row[2], marker=markers[rule], color=colours[name], s=30)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.axline((0, 0), slope=1, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("captured share of the oracle's gain, half 1")
        ax.set_ylabel("half 2")
        ax.set_title(f"toy {family}: MI rules on candidate pools", fontsize=10)
    handles = [
        plt.Line2D([], [], ls="", marker=m, color="black", label=r) for r, m in markers.items()
    ] + [plt.Line2D([], [], ls="", marker="o", color=c, label=n) for n, c in colours.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    names = save_figure(out, fig)
    plt.close(fig)
    return names


def report_section(folder: Path) -> list[str]:
    """Markdown for the toy report from ``folder`` (``t2i-toy selectors``' output), or
    nothing before it has run."""
    if not (folder / "verdict.csv").exists():
        return []
    table = pd.read_csv(folder / "summary.csv")
    verdict_table = pd.read_csv(folder / "verdict.csv")
    rates = (
        table[table["half"] == 1]
        .groupby(["family", "category"])[["random_rate", "oracle_rate"]]
        .first()
        .mul(100)
        .round(1)
        .reset_index()
    )
    shares = (
        table.groupby(["family", "rule", "half"])["captured"]
        .mean()
        .unstack("half")
        .rename(columns={1: "half 1", 2: "half 2"})
        .round(2)
        .reset_index()
    )
    return [
        "\n## MI as a selector on candidate pools (no fine-tuning)\n",
        "`t2i-toy selectors` (`t2i/toy/selectors.py`): base-model pools of training prompts"
        " (M images each); a rule keeps one image per prompt, and its captured share is"
        " (rule - random) / (oracle - random) in the kept image's all-correct rate. Rule"
        " chosen per family on half 1 of the prompts, confirmed on half 2 (95% bootstrap"
        " CI over the half-2 prompts).\n",
        verdict_table.round(2).to_markdown(index=False),
        "\nAll-correct rate (%) of a random and of the oracle's pick, half 1:\n",
        rates.to_markdown(index=False),
        "\nCaptured share of every rule (mean over categories) on each half:\n",
        shares.to_markdown(index=False),
        "\n![selectors](selectors/selectors.png)\n",
    ]
