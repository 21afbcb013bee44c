"""REPORT.md and plots (PNG and SVG) generated from a suite's ``results.csv``.

A task counts as a success for an estimator when its seed-mean estimate is within
10% of the truth, or within 0.1 nats when the truth is below 1 nat.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import miest
from benchmarks.suites import Suite
from miest.files import pyplot, save_figure, write_atomically


def tolerance(truth):
    """The success band half-width: 0.1 nats below 1 nat of truth, else 10% of it."""
    return np.maximum(0.1, 0.1 * np.asarray(truth))


def successful_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished jobs (an empty ``error``)."""
    return frame[frame.error.fillna("") == ""]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, n, estimator) that has run: mean and std over its finished
    seeds, success, seconds, memory; ``seeds`` counts the seeds run, failed ones included
    (a peer that fails a seed has still been run on it). A job whose every seed failed
    has no mean and counts as a miss where the truth is known (its task is run, not
    pending)."""
    job = ["task", "n", "estimator"]
    finished = successful_rows(frame)
    grouped = finished.groupby([*job, "library"], sort=False)
    summary = grouped.agg(
        true_mi=("true_mi", "first"),
        mean=("estimate", "mean"),
        std=("estimate", "std"),
        seconds=("seconds", "median"),
        peak_rss_mb=("peak_rss_mb", "max"),
    ).reset_index()
    run = frame.groupby(job, sort=False).seed.nunique().rename("seeds")
    failed = run.index.difference(pd.MultiIndex.from_frame(summary[job]))
    if len(failed):  # failed rows carry no library and no truth: take them from other rows
        extra = failed.to_frame(index=False)
        libraries = finished.groupby("estimator").library.first()
        extra["library"] = extra.estimator.map(libraries).fillna("unknown")
        truths = finished.groupby(["task", "n"]).true_mi.first()
        extra["true_mi"] = pd.MultiIndex.from_frame(extra[["task", "n"]]).map(truths.get)
        summary = pd.concat([summary, extra], ignore_index=True)
    summary = summary.merge(run.reset_index(), on=job, how="left")
    nonzero = summary.true_mi.where(summary.true_mi != 0)  # no relative error for truth 0
    summary["rel_error"] = (summary["mean"] - summary.true_mi).abs() / nonzero
    within = (summary["mean"] - summary.true_mi).abs() <= tolerance(summary.true_mi)
    summary["success"] = within.astype(float).where(summary.true_mi.notna())  # nan: unknown MI
    return summary


MARKERS = "osD^vP*Xph<>"


def styles(estimators: list[str]) -> dict[str, dict]:
    """A distinct (colour, marker) per estimator, the same in every plot of a report."""
    plt = pyplot()

    colors = plt.get_cmap("tab20").colors
    return {
        name: {"color": colors[i % 20], "marker": MARKERS[i % len(MARKERS)]}
        for i, name in enumerate(estimators)
    }


def family(task: str) -> str:
    """The task family shown in one panel: the id's leading transform or distribution
    (after the ``v2-`` prefix of bmi's v2 tasks)."""
    return task.removeprefix("v2-").split("-")[0]


def plot_estimates(summary: pd.DataFrame, stem: Path) -> list[str]:
    """Estimate against truth, one panel per task family, estimators side by side at each
    truth; estimates far outside the panel's range are drawn at its edge and labelled."""
    plt = pyplot()

    summary = summary[summary.true_mi.notna()]
    if summary.empty:
        return []
    families = sorted({family(t) for t in summary.task})
    estimators = list(dict.fromkeys(summary.estimator))
    style = styles(estimators)
    cols = min(4, len(families))
    rows = -(-len(families) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, fam in zip(axes.flat, families, strict=False):
        part = summary[summary.task.map(family) == fam]
        top = part.true_mi.max() * 1.5 + 0.3  # the y range: truths, not outliers
        bottom = -0.25 * top
        grid = np.linspace(0, top, 50)
        ax.plot(grid, grid, color="black", lw=1)
        ax.fill_between(
            grid, grid - tolerance(grid), grid + tolerance(grid), color="green", alpha=0.1
        )
        dodge = top * 0.006
        off_scale = []
        for i, name in enumerate(estimators):
            mine = part[part.estimator == name]
            x = mine.true_mi + (i - (len(estimators) - 1) / 2) * dodge
            y = mine["mean"].clip(bottom, top)
            ax.errorbar(
                x,
                y,
                yerr=mine["std"].fillna(0).where(y == mine["mean"], 0),
                fmt=style[name]["marker"],
                color=style[name]["color"],
                label=name,
                ms=4,
                capsize=1.5,
                lw=0.8,
            )
            outside = mine["mean"][y != mine["mean"]]
            if len(outside) == 1:
                off_scale.append(f"{name}: {outside.iloc[0]:.3g}")
            elif len(outside):
                off_scale.append(
                    f"{name}: {len(outside)}, {outside.min():.3g} to {outside.max():.3g}"
                )
        if off_scale:  # drawn at the panel's edge; their values listed here
            ax.text(
                0.02,
                0.98,
                "off scale (at the edge):\n" + "\n".join(off_scale),
                transform=ax.transAxes,
                fontsize=6,
                va="top",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        ax.set(title=fam, xlabel="true MI (nats)", ylabel="estimate (nats)")
        ax.set(xlim=(-dodge * len(estimators), top), ylim=(bottom, top))
    for ax in list(axes.flat)[len(families) :]:
        ax.axis("off")
    fig.legend(
        *axes.flat[0].get_legend_handles_labels(),
        fontsize=7,
        ncol=min(len(estimators), 9),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
    )
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def plot_heatmap(summary: pd.DataFrame, stem: Path) -> list[str]:
    plt = pyplot()

    table = summary.pivot_table(index="task", columns="estimator", values="rel_error")
    table = table[[e for e in dict.fromkeys(summary.estimator) if e in table]]
    if table.empty:
        return []
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * table.shape[1], 1.5 + 0.35 * table.shape[0]))
    image = ax.imshow(table.to_numpy(), cmap="RdYlGn_r", vmin=0, vmax=0.5, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="|mean - truth| / truth", extend="max")
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def plot_time_accuracy(summary: pd.DataFrame, stem: Path) -> list[str]:
    plt = pyplot()

    per = (
        summary.groupby(["estimator", "library"])
        .agg(
            seconds=("seconds", "median"),
            rel_error=("rel_error", "median"),
            success=("success", "sum"),
        )
        .reset_index()
    )
    style = styles(list(dict.fromkeys(summary.estimator)))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for _, row in per.iterrows():
        label = f"{row.estimator} ({row.success:.0f})"
        ax.scatter(row.seconds, row.rel_error, s=50, label=label, **style[row.estimator])
    ax.set(
        xscale="log",
        xlabel="median wall seconds per job",
        ylabel="median relative error",
        title="accuracy vs time (successes in brackets)",
    )
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".3f")


def write_report(folder: Path, suite: Suite | None = None) -> Path:
    """Read ``folder/results.csv``, write plots and ``folder/REPORT.md``; returns its path.

    ``suite`` gives the title, the kind of report and the targets; by default the
    ``suite.json`` that ``run_suite`` saved in ``folder``."""
    csv = folder / "results.csv"
    if not csv.exists():
        raise FileNotFoundError(f"no results at {csv}: run the suite first (miest-bench run)")
    if suite is None:
        saved = folder / "suite.json"
        if not saved.exists():
            raise FileNotFoundError(f"no suite.json in {folder}: pass the suite")
        suite = Suite.from_dict(json.loads(saved.read_text()), str(saved), check=False)
    frame = pd.read_csv(csv)
    if suite.kind == "pointwise":
        lines = _pointwise_report(frame, folder, suite.description)
    elif suite.kind == "consistency":
        lines = _consistency_report(frame, folder, suite.description, suite.targets)
    else:
        target = None
        if suite.targets is not None:
            target = suite.targets | {"only": suite.only, "estimators": suite.estimators}
        lines = _mi_report(frame, folder, suite.description, target)
    path = folder / "REPORT.md"
    write_atomically(path, "\n".join(lines) + "\n")
    return path


def _failures(frame: pd.DataFrame) -> list[str]:
    failed = frame[frame.error.fillna("") != ""]
    if failed.empty:
        return []
    lines = ["", "## Failed jobs", ""]
    return lines + [
        f"- {r.task} / {r.estimator} / seed {r.seed}: {r.error}" for r in failed.itertuples()
    ]


def targets(
    summary: pd.DataFrame,
    n: int = 10_000,
    required: int = 36,
    reference: str = "bmi-infonce",
    seeds: int = 3,
    total: int = 40,
    candidates: tuple[str, ...] | None = None,
    only: dict[str, tuple[str, ...]] | None = None,
    published: dict | None = None,
    estimators: tuple[str, ...] | None = None,
) -> list[str]:
    """A suite's targets, judged at sample size ``n`` on the tasks every estimator has run:
    the best miest estimator (of ``candidates``, default all) succeeds on ``required`` of
    the suite's ``total`` tasks and on more than every peer, and its median seconds per task
    are at most ``reference``'s. The verdict is final once all ``total`` tasks have
    ``seeds`` seeds; before that it says what holds so far. ``published``: ``{"source":
    ..., "counts": {method: successes}}``, other authors' counts on the same tasks and
    size, listed beside the verdict. ``estimators``: every estimator of the suite, so that
    one not run yet keeps the target open."""
    at_n = summary[summary.n == n]
    if at_n.empty:
        return []
    # a task counts once every estimator meant to run it has (``only``: estimators that
    # run on some tasks alone, ``Suite.only``, are judged on those)
    names, only = set(at_n.estimator), only or {}
    ran = at_n.groupby("task").estimator.agg(set)
    complete = pd.Series(
        {
            task: {e for e in names if task in only.get(e, (task,))} <= run
            for task, run in ran.items()
        }
    )
    common = at_n[at_n.task.isin(complete[complete].index)]
    per = (
        common.groupby(["estimator", "library"])
        .agg(
            successes=("success", "sum"),
            median_seconds=("seconds", "median"),
            seeds=("seeds", "min"),
        )
        .astype({"successes": int})
    )
    per = per.reset_index().sort_values("successes", ascending=False, kind="stable")
    ours, peers = per[per.library == "miest"], per[per.library != "miest"]
    if candidates is not None:
        ours = ours[ours.estimator.isin(candidates)]
    if ours.empty:
        return [
            "## Targets",
            "",
            "Not judged yet: no candidate estimator has a task that every estimator has run.",
            "",
        ]
    best = ours.iloc[0]
    tasks = common.task.nunique()
    final = tasks == total and per.seeds.min() >= seeds
    so_far = "" if final else f" so far (final with {total} tasks x {seeds} seeds)"
    lines = [
        f"Judged at n = {n:,} on the {tasks} tasks (of {total}) that every estimator has run, "
        f"at least {per.seeds.min()} seed(s) each; best miest estimator: `{best.estimator}`.",
        "",
    ]
    top = peers.iloc[0] if len(peers) else None
    failures = tasks - best.successes
    beats_peers = top is None or best.successes > top.successes
    # on every task it has run, not only the common ones: can any candidate still reach it?
    eligible = set(candidates if candidates is not None else miest.available())
    pool = list(ours.estimator) + [
        e for e in estimators or () if e in eligible and e not in names
    ]  # and the suite's candidates that have not run at this size yet
    mine = at_n[at_n.estimator.isin(pool)].groupby("estimator")
    won, tried = mine.success.sum(), mine.task.nunique()
    reachable = max(int(won.get(e, 0) + total - tried.get(e, 0)) for e in pool)
    # with no peer to beat, a candidate that already succeeds on ``required`` of the tasks
    # it has run (at full seeds) meets the target, however far the others have got
    seeded = at_n[at_n.estimator.isin(pool) & (at_n.seeds >= seeds)].groupby("estimator")
    leader_won = seeded.success.sum()
    alone = top is None and all(e in miest.available() for e in estimators or names)
    if alone and tasks < total and required and len(leader_won) and leader_won.max() >= required:
        leader = leader_won.idxmax()
        verdict = (
            f"Met by `{leader}`, on {int(leader_won[leader])} of the "
            f"{seeded.task.nunique()[leader]} tasks it has run."
        )
    elif failures > total - required or (tasks == total and not beats_peers):
        verdict = f"Not met{so_far}."
    elif reachable < required:
        verdict = (
            f"Not met: counting every task the miest estimators have run, at most "
            f"{reachable} of {total} can still succeed."
        )
    elif tasks < total:
        verdict = f"Open: {failures} failures so far (at most {total - required} allowed)."
    else:
        verdict = f"Met{so_far}."
    wanted = f"at least {required} of {total}" if required else ""
    if top is not None:
        wanted = f"{wanted} and more than every peer" if required else "more than every peer"
        rival = f"; best peer `{top.estimator}`: {top.successes}"
    else:
        rival = ""
    lines.append(
        f"- Accuracy: `{best.estimator}` succeeds on {best.successes} of {tasks} tasks "
        f"(target: {wanted or 'none'}{rival}). {verdict}"
    )
    if published:
        counts = ", ".join(f"{name} {count}" for name, count in published["counts"].items())
        lines.append(
            f"- Published at this size ({published['source']}), successes of {total}: {counts}."
        )
    if reference in set(per.estimator):
        theirs = per.set_index("estimator").median_seconds[reference]
        verdict = best.median_seconds <= theirs
        lines.append(
            f"- Cost: median {best.median_seconds:.1f} s per task against {theirs:.1f} s for "
            f"`{reference}` in the same run. " + ("Met" if verdict else "Not met") + f"{so_far}."
        )
    return ["## Targets", "", *lines, "", markdown_table(per), ""]


def _truth_text(value: float, stderr: float) -> str:
    """The truth as shown: ``unknown``, exact, or a Monte Carlo value with its error."""
    if np.isnan(value):
        return "unknown"
    if stderr and np.isfinite(stderr):
        return f"{value:.3f} ± {stderr:.3f} (MC)"
    return f"{value:.3f}"


def _mi_report(
    frame: pd.DataFrame, folder: Path, title: str, target: dict | None = None
) -> list[str]:
    """``target``: keywords of ``targets`` (``None``: the suite has none)."""
    failed = frame[frame.error.fillna("") != ""]
    summary = summarise(frame)
    if summary.empty:
        raise ValueError(f"{folder / 'results.csv'} has no successful rows to report")
    images = plot_estimates(summary, folder / "estimates")
    images += plot_heatmap(summary, folder / "heatmap")
    images += plot_time_accuracy(summary, folder / "time_accuracy")

    summary["estimate"] = summary.apply(
        lambda r: f"{r['mean']:.3f}" + (f" ± {r['std']:.3f}" if pd.notna(r["std"]) else ""), axis=1
    )
    wide = summary.pivot_table(
        index=["task", "n"], columns="estimator", values="estimate", aggfunc="first"
    )
    wide = wide[list(dict.fromkeys(summary.estimator))]
    truth = summary.groupby(["task", "n"]).true_mi.first().rename("true MI")
    se = frame.groupby(["task", "n"]).true_mi_se.first() if "true_mi_se" in frame else None
    truth = pd.Series(
        [_truth_text(v, 0.0 if se is None else se.get(key, 0.0)) for key, v in truth.items()],
        index=truth.index,
        name="true MI",
    )
    wide = pd.concat([truth, wide], axis=1).reset_index()
    per = (
        summary.groupby(["estimator", "library"], sort=False)
        .agg(
            successes=("success", "sum"),
            cases=("success", "count"),
            median_rel_error=("rel_error", "median"),
            median_seconds=("seconds", "median"),
            max_peak_rss_mb=("peak_rss_mb", "max"),
        )
        .reset_index()
        .astype({"successes": int})
        .sort_values("successes", ascending=False, kind="stable")
    )

    lines = [
        f"# Benchmark report: {title or folder.name}",
        "",
        f"Generated by `miest-bench report --suite {folder.name}` from `results.csv` "
        f"({len(frame)} rows, {len(failed)} failed). Estimates in nats (seed mean ± std). "
        "A case (task, n) is a success when the mean is within 10% of the truth (0.1 nats "
        "below 1 nat); a Monte Carlo truth (MC, with its standard error) is used as is, its "
        "error being far below the tolerance.",
        "",
        "## Successes and cost per estimator",
        "",
        markdown_table(per),
        "",
        *(targets(summary, **target) if target is not None else []),
        "## Estimates",
        "",
        markdown_table(wide),
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in images if name.endswith(".png")],
        "",
    ]
    return lines + _failures(frame)


def plot_pmi_scatter(rows: list[dict], stem: Path) -> list[str]:
    """Estimated vs exact PMI: one panel per (task, estimator), one colour per form."""
    plt = pyplot()

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    estimators = list(dict.fromkeys(r["estimator"] for r in rows))
    fig, axes = plt.subplots(
        len(tasks),
        len(estimators),
        squeeze=False,
        figsize=(2.6 * len(estimators), 2.6 * len(tasks)),
    )
    colors = {
        "orthogonal": "tab:blue",
        "mmse-gap": "tab:orange",
        "cross": "tab:purple",
        "critic": "tab:green",
    }
    for row in rows:
        ax = axes[tasks.index(row["task"]), estimators.index(row["estimator"])]
        exact, estimate = np.array(row["scatter"]["exact"]), np.array(row["scatter"]["estimate"])
        ax.scatter(exact, estimate, s=3, alpha=0.4, color=colors[row["form"]], label=row["form"])
        low, high = np.percentile(exact, [1, 99])
        ax.plot([low, high], [low, high], color="black", lw=0.8)
        ax.set_title(f"{row['task']}\n{row['estimator']}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, markerscale=3)
    fig.supxlabel("exact PMI (nats)")
    fig.supylabel("estimated point-wise MI (nats)")
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def _pointwise_report(frame: pd.DataFrame, folder: Path, title: str) -> list[str]:
    import json

    rows = [
        r
        for path in sorted((folder / "cache").glob("*.json"))
        for r in json.loads(path.read_text())
    ]
    ok = successful_rows(frame)
    table = (
        ok.groupby(["task", "estimator", "form"], sort=False)
        .agg(
            pearson=("pearson", "mean"),
            spearman=("spearman", "mean"),
            mae=("mae", "mean"),
            mean_estimate=("mean_estimate", "mean"),
            mean_exact_pmi=("mean_exact_pmi", "mean"),
        )
        .reset_index()
    )
    images = plot_pmi_scatter(rows, folder / "pmi_scatter") if rows else []
    return [
        f"# Point-wise report: {title or folder.name}",
        "",
        f"Generated by `miest-bench report --suite {folder.name}` from `results.csv`. Each "
        "estimator is fitted on n pairs; its point-wise values on 1,000 fresh pairs are compared "
        "with the exact PMI `log p(x,y) / (p(x) p(y))` of the distribution. The orthogonal form "
        "matches the PMI only in mean (it is non-negative); the MMSE-gap form and the critics' "
        "terms aim at the PMI itself (critics up to an additive constant); the cross form (the "
        "default) is the mean of the orthogonal and MMSE-gap forms.",
        "",
        markdown_table(table),
        "",
        *[f"![{name}]({name})" for name in images if name.endswith(".png")],
        *_failures(frame),
    ]


def consistency_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean estimate per (test, rows, estimator), with the ratio to the baseline and
    the task's exact MI (``benchmarks.consistency.exact_mi``, Monte Carlo)."""
    from benchmarks.consistency import exact_mi

    ok = successful_rows(frame)
    table = (
        ok.groupby(["test", "rows", "estimator", "library"], sort=False)
        .agg(estimate=("estimate", "mean"), upper_bound=("upper_bound", "first"))
        .reset_index()
    )
    tasks = table.test + "-r" + table.rows.astype(str)
    table["true_mi"] = [exact_mi(task)[0] for task in tasks]
    baseline = table[table.test == "baseline"].set_index(["rows", "estimator"]).estimate
    keys = pd.MultiIndex.from_frame(table[["rows", "estimator"]])
    table["ratio"] = table.estimate.to_numpy() / baseline.reindex(keys).to_numpy()
    table.loc[table.test == "independent", "ratio"] = np.nan  # its ideal is 0, not a ratio
    return table


CONSISTENCY_CHECKS = {
    "independent": "|estimate on independent pairs| <= 0.1 nats",
    "monotone_violations": "no decreasing step of I(A; B_r) over r",
    "above_bound": "no estimate above the exact upper bound",
    "dpi_ratio": "data-processing ratio within [0.9, 1.1]",
    "additivity_ratio": "additivity ratio within [1.7, 2.3]",
}


def consistency_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Per estimator (rows of ``consistency_table``): the measured value of each of
    ``CONSISTENCY_CHECKS`` and ``passed``, how many of them hold."""
    per = []
    for (name, lib), part in table.groupby(["estimator", "library"], sort=False):
        base = part[part.test == "baseline"].sort_values("rows").estimate.to_numpy()
        dependent = part[part.test != "independent"]
        row = {
            "estimator": name,
            "library": lib,
            "independent": part[part.test == "independent"].estimate.mean(),
            "monotone_violations": int((np.diff(base) < 0).sum()),
            "above_bound": int((dependent.estimate > dependent.upper_bound).sum()),
            "dpi_ratio": part[part.test == "dpi"].ratio.mean(),
            "additivity_ratio": part[part.test == "additivity"].ratio.mean(),
            "within_truth": int(
                ((part.estimate - part.true_mi).abs() <= tolerance(part.true_mi)).sum()
            ),
        }
        per.append(row | {"passed": int(sum(check_holds(row).values()))})
    return pd.DataFrame(per)


def check_holds(row) -> dict[str, bool]:
    """Whether each of ``CONSISTENCY_CHECKS`` holds for one row of ``consistency_checks``."""
    return {
        "independent": abs(row["independent"]) <= 0.1,
        "monotone_violations": row["monotone_violations"] == 0,
        "above_bound": row["above_bound"] == 0,
        "dpi_ratio": 0.9 <= row["dpi_ratio"] <= 1.1,
        "additivity_ratio": 1.7 <= row["additivity_ratio"] <= 2.3,
    }


def consistency_targets(checks: pd.DataFrame, candidates: tuple[str, ...]) -> list[str]:
    """The target: every one of ``candidates`` passes all ``CONSISTENCY_CHECKS``
    (``checks``: rows of ``consistency_checks``); a line per candidate, then the verdict."""
    lines, failing = [], []
    for name in candidates:
        row = checks[checks.estimator == name]
        if row.empty:
            lines.append(f"- `{name}`: not run yet.")
            failing.append(name)
            continue
        row = row.iloc[0]
        holds = check_holds(row)
        missed = [f"{key} {row[key]:.3g}" for key, ok in holds.items() if not ok]
        lines.append(
            f"- `{name}`: {sum(holds.values())} of {len(holds)} checks hold"
            + (f"; fails {', '.join(missed)}." if missed else ".")
        )
        failing += [name] if missed else []
    verdict = "Met." if not failing else f"Not met ({', '.join(f'`{n}`' for n in failing)})."
    target = ", ".join(f"`{n}`" for n in candidates)
    return [
        f"Target: {target} each pass all {len(CONSISTENCY_CHECKS)} checks. {verdict}",
        "",
        *lines,
    ]


def bound_headroom(table: pd.DataFrame, candidates: tuple[str, ...]) -> str:
    """How close the exact MI comes to the exact bound (rows of ``consistency_table``),
    and how many of each candidate's estimates exceed the bound by more than the
    success tolerance: the above-bound check has no tolerance at all."""
    tasks = table[table.test != "independent"].drop_duplicates("task")
    share = tasks.true_mi / tasks.upper_bound
    beyond = [
        f"`{name}` {int((part.estimate > part.upper_bound + tolerance(part.true_mi)).sum())}"
        for name in candidates
        if len(part := table[(table.estimator == name) & (table.test != "independent")])
    ]
    return (
        f"The exact MI is {100 * share.min():.1f}-{100 * share.max():.1f}% of the bound on "
        f"the {len(tasks)} dependent tasks (at most {(tasks.upper_bound - tasks.true_mi).max():.2f}"
        " nats below it), much closer than the 10% success tolerance, so an estimate within "
        "tolerance of the truth can exceed the bound. Estimates above the bound by more than "
        "the tolerance: " + (", ".join(beyond) or "none run") + "."
    )


def plot_consistency(table: pd.DataFrame, stem: Path) -> list[str]:
    """Baseline MI vs rows (with the upper bound), and the DPI and additivity ratios."""
    plt = pyplot()

    from benchmarks.consistency import IDEAL_RATIO

    estimators = list(dict.fromkeys(table.estimator))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(estimators), 2)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    bound = table[table.test == "baseline"].drop_duplicates("rows").sort_values("rows")
    axes[0].plot(bound.rows, bound.upper_bound, "k--", label="upper bound")
    axes[0].plot(bound.rows, bound.true_mi, "k-", lw=2, label="exact MI")
    for color, name in zip(colors, estimators, strict=False):
        mine = table[table.estimator == name].sort_values("rows")
        marker = "o-" if (mine.library == "miest").all() else "x:"
        for ax, test in zip(axes, ("baseline", *IDEAL_RATIO), strict=True):
            part = mine[mine.test == test]
            values = part.estimate if test == "baseline" else part.ratio
            ax.plot(
                part.rows, values, marker, color=color, label=name if test == "baseline" else None
            )
    axes[0].set(xlabel="rows of A observed", ylabel="estimate (nats)", title="I(A; B_r)")
    axes[0].set_yscale("symlog", linthresh=1)
    for ax, (test, ideal) in zip(axes[1:], IDEAL_RATIO.items(), strict=True):
        ax.axhline(ideal, color="black", lw=1)
        ax.set(
            xlabel="rows of A observed",
            ylabel="ratio to I(A; B_r)",
            title=f"{test} (ideal {ideal:g})",
        )
        ax.set_ylim(0, 2 * ideal + 1)
    fig.legend(fontsize=7, loc="center right")
    fig.subplots_adjust(right=0.85)
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def _consistency_report(
    frame: pd.DataFrame, folder: Path, title: str, targets: dict | None = None
) -> list[str]:
    from benchmarks import consistency

    table = consistency_table(frame)
    if table.empty:
        raise ValueError(f"{folder / 'results.csv'} has no successful rows to report")
    images = plot_consistency(table, folder / "consistency")
    per = consistency_checks(table)
    table["task"] = table.test + "-r" + table.rows.astype(str)
    wide = table.pivot_table(index="task", columns="estimator", values="estimate", sort=False)
    wide = wide[list(dict.fromkeys(table.estimator))]
    reference = table.groupby("task", sort=False)[["true_mi", "upper_bound"]].first()
    reference.columns = ["exact MI", "upper bound"]
    wide = pd.concat([reference, wide], axis=1).reset_index()
    return [
        f"# Self-consistency report: {title or folder.name}",
        "",
        f"Generated by `miest-bench report --suite {folder.name}` from `results.csv` "
        f"({len(frame)} rows). Setup (from `benchmarks/consistency.py`):",
        "",
        *[f"> {line}" if line else ">" for line in consistency.__doc__.strip().splitlines()],
        "",
        "Per estimator: the estimate on independent pairs (ideal 0); decreasing steps of "
        "I(A; B_r) over r = 1, 2, 4, 6, 8 (ideal 0); estimates above the exact upper bound "
        "(ideal 0); mean data-processing ratio (ideal 1) and additivity ratio (ideal 2); "
        f"`passed`: how many of the {len(CONSISTENCY_CHECKS)} checks hold ("
        + "; ".join(CONSISTENCY_CHECKS.values())
        + "). `within_truth`: tasks (of "
        + f"{table.task.nunique()}) whose estimate is within 10% of the exact MI (0.1 nats "
        "below 1 nat), which the checks do not need.",
        "",
        markdown_table(per),
        "",
        *(
            [
                "## Targets",
                "",
                *consistency_targets(per, tuple(targets["candidates"])),
                "",
                bound_headroom(table, tuple(targets["candidates"])),
                "",
            ]
            if targets
            else []
        ),
        "## Estimates (nats, seed mean)",
        "",
        markdown_table(wide),
        "",
        *[f"![{name}]({name})" for name in images if name.endswith(".png")],
        *_failures(frame),
    ]
