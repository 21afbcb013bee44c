"""The toy experiment's report: tables with bootstrap CIs, plots, grids and REPORT.md.

Confidence intervals are 95% percentile intervals of a two-level bootstrap: prompts are
resampled, then seeds within each prompt. Differences between two arms (MI - random,
...) are paired: both arms saw the same prompts and seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from miest.files import pyplot, save_figure, write_atomically
from t2i.toy import selectors
from t2i.toy.models import FAMILIES
from t2i.toy.world import CATEGORIES

BOOTSTRAP = 2000
SUMMARY_BEGIN, SUMMARY_END = "<!-- begin toy summary -->", "<!-- end toy summary -->"
ORDER = ("base", "random", "mi", "oracle")
CONTROL_GAIN, CONTROL_CATEGORIES = 0.10, 2  # the positive control's target


def main_settings(rows: pd.DataFrame) -> dict:
    """The settings of the main comparison: those most fine-tuned arms share."""
    from t2i.toy.experiment import Arm

    names = [f for f in Arm.__dataclass_fields__ if f not in ("family", "category", "selection")]
    tuned = rows[rows["selection"] != "base"].drop_duplicates("arm")
    source = tuned if len(tuned) else rows.drop_duplicates("arm")
    values = source[names].value_counts().idxmax()
    return {
        name: value.item() if hasattr(value, "item") else value
        for name, value in zip(names, values, strict=True)
    }


def split_main(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(rows of the main comparison, rows of every other arm, the main settings); base
    arms join the main comparison when they were evaluated the same way."""
    from t2i.toy.experiment import EVAL_SETTINGS

    settings = main_settings(rows)
    names = list(settings)
    matches_all = (rows[names] == pd.Series(settings)).all(axis=1)
    matches_eval = (rows[list(EVAL_SETTINGS)] == pd.Series(settings)[list(EVAL_SETTINGS)]).all(
        axis=1
    )
    main = matches_all | ((rows["selection"] == "base") & matches_eval)
    return rows[main], rows[~main], settings


def _matrix(rows: pd.DataFrame, column: str) -> np.ndarray:
    """(prompts, seeds) values of ``column``."""
    table = rows.pivot_table(index="prompt", columns="seed", values=column, aggfunc="mean")
    return table.to_numpy(dtype=np.float64)


def bootstrap(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of a (prompts, seeds) matrix, two-level bootstrap."""
    rng = np.random.default_rng(seed)
    n_prompts, n_seeds = values.shape
    prompts = rng.integers(n_prompts, size=(BOOTSTRAP, n_prompts))
    seeds = rng.integers(n_seeds, size=(BOOTSTRAP, n_prompts, n_seeds))
    means = values[prompts[..., None], seeds].mean((1, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def replicate_bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, ...]:
    """(mean, low, high) of ``mean(a) - mean(b)`` for two arms' (replicates, prompts, seeds)
    arrays on the same prompts and seeds: replicates resampled within each arm, prompts
    (paired across the arms) and seeds within each prompt."""
    rng = np.random.default_rng(seed)
    n_prompts, n_seeds = a.shape[1:]
    prompts = rng.integers(n_prompts, size=(BOOTSTRAP, 1, n_prompts, 1))
    seeds = rng.integers(n_seeds, size=(BOOTSTRAP, 1, n_prompts, n_seeds))

    def means(values: np.ndarray) -> np.ndarray:
        reps = rng.integers(len(values), size=(BOOTSTRAP, len(values), 1, 1))
        return values[reps, prompts, seeds].mean((1, 2, 3))

    diffs = means(a) - means(b)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(low), float(high)


def _study_order(column: pd.Series) -> pd.Series:
    """Families and categories in the study's order (sd before sd3, colour first)."""
    order = {name: i for i, name in enumerate((*FAMILIES, *CATEGORIES))}
    return column.map(order)


def control_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The positive control per family and category (oracle against random selection,
    ``t2i.toy.experiment.control_arms``) and the verdict: met when, in every family, at
    least ``CONTROL_CATEGORIES`` categories gain at least ``CONTROL_GAIN`` with the 95% CI
    above 0, each judged once all its replicates have run."""
    from t2i.toy.experiment import CONTROL_REPLICATES

    if rows.empty:
        return pd.DataFrame(), "Not run yet (`t2i-toy run --control`)."
    records = []
    rows = rows.sort_values(["family", "category"], key=_study_order, kind="stable")
    for (family, category), group in rows.groupby(["family", "category"], sort=False):
        arms = {s: g for s, g in group.groupby("selection")}
        record = {"family": family, "category": category}
        if "base" in arms:
            record["base"] = 100 * arms["base"]["all_correct"].mean()
        tuned = {
            s: np.stack([_matrix(g, "all_correct") for _, g in arms[s].groupby("replicate")])
            for s in ("oracle", "random")
            if s in arms
        }
        replicates = min((len(v) for v in tuned.values()), default=0)
        record |= {s: 100 * v.mean() for s, v in tuned.items()} | {"replicates": replicates}
        record["control"] = "open"
        if len(tuned) == 2:
            mean, low, high = replicate_bootstrap(tuned["oracle"], tuned["random"])
            record["oracle - random (pp, 95% CI)"] = _fmt(mean, low, high)
            passed = mean >= CONTROL_GAIN and low > 0
            if replicates >= CONTROL_REPLICATES:
                record["control"] = "met" if passed else "not met"
        records.append(record)
    columns = ["family", "category", "base", "random", "oracle", "replicates"]
    columns += ["oracle - random (pp, 95% CI)", "control"]
    table = pd.DataFrame(records).reindex(columns=columns)
    verdicts = []
    for family, group in table.groupby("family", sort=False):
        met, judged = (group["control"] == "met").sum(), (group["control"] != "open").sum()
        unjudged = len(CATEGORIES) - judged
        state = (
            "met"
            if met >= CONTROL_CATEGORIES
            else "open"
            if met + unjudged >= CONTROL_CATEGORIES
            else "not met"
        )
        verdicts.append((family, met, judged, state))
    overall = (
        "Met."
        if all(v[3] == "met" for v in verdicts)
        else "Not met."
        if any(v[3] == "not met" for v in verdicts)
        else "Open."
    )
    detail = "; ".join(f"{f}: {m} met of {n} judged" for f, m, n, _ in verdicts)
    return table, (
        f"Target: oracle - random at least {100 * CONTROL_GAIN:.0f} pp with the 95% CI above 0 "
        f"in at least {CONTROL_CATEGORIES} categories per family. {overall} ({detail})"
    )


def load(results: str | Path) -> pd.DataFrame:
    """Every arm's rows from ``results/arms/*.csv`` in one table."""
    files = sorted(Path(results, "arms").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no arm results in {Path(results, 'arms')}: run t2i-toy run")
    from t2i.toy.experiment import LATER_DEFAULTS

    frames = [pd.read_csv(f).assign(arm=f.stem) for f in files]
    # arms run before a setting existed ran at its default
    frames = [f.assign(**{k: v for k, v in LATER_DEFAULTS.items() if k not in f}) for f in frames]
    return pd.concat(frames, ignore_index=True)


def _fmt(mean: float, low: float, high: float, percent: bool = True) -> str:
    if not percent:
        return f"{mean:.2f} [{low:.2f}, {high:.2f}]"
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Per family, category and selection of the default arms: score and all-correct (%)
    with CIs, diversity and mean MI."""
    records = []
    for (family, category, selection), group in rows.groupby(["family", "category", "selection"]):
        records.append(
            {
                "family": family,
                "category": category,
                "selection": selection,
                "score %": _fmt(*bootstrap(_matrix(group, "score"))),
                "all-correct %": _fmt(*bootstrap(_matrix(group, "all_correct"))),
                "diversity": f"{group['diversity'].mean():.3f}",
                "mean MI (nats)": f"{group['mi'].mean():.2f}",
                "images": len(group),
            }
        )
    table = pd.DataFrame(records)
    table["_order"] = table["selection"].map(ORDER.index)
    return table.sort_values(["family", "category", "_order"]).drop(columns="_order")


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per family and category: all-correct % per selection and the paired
    MI - random difference with its CI (the README's table); MI - base where no random
    arm was run."""
    records = []
    for (family, category), group in rows.groupby(["family", "category"]):
        arms = {s: g for s, g in group.groupby("selection")}
        record = {"family": family, "category": category}
        for selection in ORDER:
            if selection in arms:
                record[selection] = f"{100 * arms[selection]['all_correct'].mean():.1f}"
        other = "random" if "random" in arms else "base"
        if "mi" in arms and other in arms:
            diff = _matrix(arms["mi"], "all_correct") - _matrix(arms[other], "all_correct")
            record[f"MI - {other} (pp, 95% CI)"] = _fmt(*bootstrap(diff))
        records.append(record)
    table = pd.DataFrame(records)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return table.sort_values(
        ["family", "category"], key=lambda c: c.map(order) if c.name == "category" else c
    )


def comparisons(rows: pd.DataFrame, pairs=(("mi", "random"), ("mi", "base"), ("oracle", "random"))):
    """Paired differences in all-correct rate (percentage points) with CIs and a verdict."""
    records = []
    for (family, category), group in rows.groupby(["family", "category"]):
        arms = {s: g for s, g in group.groupby("selection")}
        for a, b in pairs:
            if a not in arms or b not in arms:
                continue
            diff = _matrix(arms[a], "all_correct") - _matrix(arms[b], "all_correct")
            mean, low, high = bootstrap(diff)
            verdict = "better" if low > 0 else "worse" if high < 0 else "no difference"
            records.append(
                {
                    "family": family,
                    "category": category,
                    "comparison": f"{a} - {b}",
                    "all-correct difference (pp)": _fmt(mean, low, high),
                    "verdict (95% CI)": verdict,
                }
            )
    return pd.DataFrame(records)


def mi_alignment(pools: pd.DataFrame) -> pd.DataFrame:
    """Per pool (family, category): Kendall's tau between MI and checker score among each
    prompt's M images, averaged over prompts (with a bootstrap CI over prompts), and the
    mean score of the top-MI image against the pool mean."""
    records = []
    for (family, category, pool), group in pools.groupby(["family", "category", "pool"]):
        taus, top, mean = [], [], []
        for _, images in group.groupby("prompt"):
            mean.append(images["score"].mean())
            top.append(images.loc[images["mi"].idxmax(), "score"])
            if images["score"].nunique() > 1:
                taus.append(kendalltau(images["mi"], images["score"]).statistic)
        taus = np.array(taus)
        tau = bootstrap(taus[:, None]) if len(taus) else (np.nan,) * 3
        records.append(
            {
                "family": family,
                "category": category,
                "pool": pool,
                "Kendall tau": _fmt(*tau, percent=False),
                "prompts with tau": f"{len(taus)} / {group['prompt'].nunique()}",
                "top-MI image score %": f"{100 * np.mean(top):.1f}",
                "pool mean score %": f"{100 * np.mean(mean):.1f}",
            }
        )
    return pd.DataFrame(records)


def pool_label(settings: dict) -> str:
    """How ``load_pools`` names the round-1 pool of arms with these settings."""
    label = f"M{settings['images_per_prompt']} g{settings['guidance_scale']}"
    return label + ("" if settings["train_prompts"] == 24 else f" p{settings['train_prompts']}")


def load_pools(results: str | Path) -> pd.DataFrame:
    """Every round-1 candidate pool, labelled by family, category and ``pool`` settings."""
    files = sorted(Path(results, "pools").glob("*__round1__shared*.csv"))
    frames = []
    for f in files:
        family, category, *settings = f.stem.split("__")
        pool = " ".join(s for s in settings if s[0] in "Mgp")  # M, guidance, train prompts
        frames.append(pd.read_csv(f).assign(family=family, category=category, pool=pool))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_headline(rows: pd.DataFrame, out: Path) -> None:
    plt = pyplot()

    families = sorted(rows["family"].unique())
    fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 3.6), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        sub = rows[rows["family"] == family]
        categories = sorted(sub["category"].unique())
        selections = [s for s in ORDER if s in set(sub["selection"])]
        width = 0.8 / len(selections)
        for j, selection in enumerate(selections):
            stats = [
                bootstrap(
                    _matrix(sub[(sub.category == c) & (sub.selection == selection)], "all_correct")
                )
                if ((sub.category == c) & (sub.selection == selection)).any()
                else (np.nan,) * 3
                for c in categories
            ]
            mean, low, high = (100 * np.array(v) for v in zip(*stats, strict=True))
            x = np.arange(len(categories)) + (j - (len(selections) - 1) / 2) * width
            ax.bar(x, mean, width, label=selection)
            ax.errorbar(x, mean, [mean - low, high - mean], fmt="none", ecolor="black", lw=1)
        ax.set_xticks(np.arange(len(categories)), categories)
        ax.set_ylabel("held-out all-correct (%)")
        ax.set_title(f"toy {family}")
        ax.legend(fontsize=8)
    save_figure(out, fig)
    plt.close(fig)


def plot_mi_vs_score(pools: pd.DataFrame, out: Path) -> None:
    plt = pyplot()

    groups = list(pools.groupby(["family", "category"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(3 * len(groups), 3), squeeze=False)
    for ax, ((family, category), group) in zip(axes[0], groups, strict=True):
        # MI relative to the prompt's mean, so prompts with different MI levels line up
        centred = group["mi"] - group.groupby("prompt")["mi"].transform("mean")
        ax.scatter(centred, group["score"], s=6, alpha=0.4)
        ax.set_title(f"{family} {category}", fontsize=9)
        ax.set_xlabel("MI - prompt mean (nats)")
    axes[0][0].set_ylabel("checker score")
    save_figure(out, fig)
    plt.close(fig)


def write_report(results: str | Path, grids: list[Path] | None = None) -> Path:
    """Tables and plots from ``results`` into ``results/REPORT.md``."""
    results = Path(results)
    rows = load(results)
    defaults, variants, settings = split_main(rows)
    plot_headline(defaults, results / "all_correct")
    pools = load_pools(results)
    main_pools = pools[pools["pool"] == pool_label(settings)] if len(pools) else pools
    has_control = any((results / "control").glob("arms/*.csv"))
    control, control_verdict = control_table(load(results / "control") if has_control else rows[:0])
    parts = [
        "# Toy text-to-image world: does MI-selected fine-tuning improve alignment?\n",
        "Generated by `t2i-toy report` from `arms/*.csv` and `pools/*.csv` (see README).\n",
        "## Positive control: does selection carry over at all?\n",
        "Oracle (checker) selection against random selection from the same pools "
        "(`t2i-toy run --control`: every training prompt of the category up to 135, "
        "600 fine-tuning steps, independent replicates; all-correct % on the held-out "
        "prompts x 4 seeds; CI: bootstrap over replicates, prompts and seeds). Until it "
        "is met, the MI arms below answer nothing.\n",
        control_verdict + "\n",
        control.round(1).to_markdown(index=False) + "\n" if len(control) else "",
        "## Summary: held-out all-correct rate (%)\n",
        SUMMARY_BEGIN,
        summary(defaults).to_markdown(index=False),
        SUMMARY_END,
        "\n## Held-out alignment per arm\n",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".",
        "Means with 95% bootstrap CIs over prompts and seeds.\n",
        headline(defaults).to_markdown(index=False),
        "\n![all-correct](all_correct.png)\n",
        "## Paired differences in all-correct rate\n",
        comparisons(defaults).to_markdown(index=False),
    ]
    if not pools.empty:
        plot_mi_vs_score(main_pools, results / "mi_vs_score")
        parts += [
            "\n## Point-wise MI against the checker, within each prompt's M candidates\n",
            mi_alignment(pools).to_markdown(index=False),
            "\n![mi vs score](mi_vs_score.png)\n",
        ]
    parts += selectors.report_section(results / "selectors")
    if not variants.empty:
        parts += [
            "\n## Other settings\n",
            "Each differs from the main settings as named; all-correct % on the same held-out"
            " prompts and seeds, base arms evaluated the same way.",
            *_variants(rows, variants, settings),
        ]
    for grid in grids or sorted(results.glob("grid_*.png")):
        parts.append(f"\n![{grid.stem}]({grid.name})\n")
    report = results / "REPORT.md"
    write_atomically(report, ("\n".join(parts) + "\n").encode())
    return report


def _variants(rows: pd.DataFrame, variants: pd.DataFrame, settings: dict) -> list[str]:
    """A summary table (as for the main comparison) per other setting: its fine-tuned
    arms beside the base arms evaluated the same way."""
    from t2i.toy.experiment import EVAL_SETTINGS

    names = list(settings)
    parts = []
    tuned = variants[variants["selection"] != "base"]
    groups = tuned.groupby(names, sort=True) if len(tuned) else []
    for values, group in groups:
        changed = {k: v for k, v in zip(names, values, strict=True) if v != settings[k]}
        same_eval = (rows[list(EVAL_SETTINGS)] == group[list(EVAL_SETTINGS)].iloc[0]).all(axis=1)
        base = rows[(rows["selection"] == "base") & same_eval]
        base = base[
            base.set_index(["family", "category"]).index.isin(
                group.set_index(["family", "category"]).index
            )
        ]
        title = ", ".join(f"{k}={v}" for k, v in changed.items())
        table = summary(pd.concat([base, group])).to_markdown(index=False)
        parts += [f"\n### {title}\n", table]
    return parts


def write_grids(experiment, prompts_per_category: int = 2, zoom: int = 3) -> list[Path]:
    """``grid_<family>.png``: for the first held-out prompts of each category, a row of
    base images above a row of MI-fine-tuned images (same seeds). Grids are drawn from
    the work folder's images; without them the committed grids are kept."""
    from PIL import Image

    from t2i.sweep import grid
    from t2i.toy.experiment import Arm

    defaults, _, settings = split_main(load(experiment.results))
    written = []
    for family, group in defaults.groupby("family"):
        tiles, columns = [], None
        for category in sorted(group["category"].unique()):
            arms = [Arm(family, category, s, **settings) for s in ("base", "mi")]
            files = [experiment.eval_images_path(a) for a in arms]
            if not all(f.exists() for f in files):
                continue
            columns = arms[0].eval_seeds
            for f in files:
                images = np.load(f)["images"][: prompts_per_category * columns]
                tiles += [
                    Image.fromarray(i).resize((32 * zoom,) * 2, Image.NEAREST) for i in images
                ]
        if tiles:
            path = Path(experiment.results) / f"grid_{family}.png"
            # per category: a row of base images, then a row of MI-fine-tuned ones
            grid(tiles, columns * prompts_per_category).save(path)
            written.append(path)
    return written or sorted(Path(experiment.results).glob("grid_*.png"))
