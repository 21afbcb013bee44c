"""The leaderboard: every estimator's result in every suite that has results, one table
and one plot.

``miest-bench leaderboard`` reads ``<out>/<suite>/results.csv`` for every built-in suite
that has one and writes ``<out>/LEADERBOARD.md`` and ``<out>/leaderboard.png`` (and
``.svg``). A cell is

- MI suites (one column per sample size): tasks within tolerance of the truth (seed
  means; 0.1 nats below 1 nat, else 10%) out of the tasks the estimator has run (its
  colour, and the order of the rows, count the column's tasks it has not run as misses,
  so a peer run on nine tasks does not outrank one run on forty);
- consistency: how many of the self-consistency checks hold
  (``benchmarks.report.CONSISTENCY_CHECKS``);
- pointwise: the mean Pearson correlation with the exact point-wise MI, in the
  estimator's best form.

A suite whose jobs are not all finished is marked "partial" with its count of finished
jobs; its cells count what has run. The README's headline (the best estimator on v1 at
n = 10,000, and the table) is copied in by the same command between the markers
``<!-- leaderboard -->`` and ``<!-- /leaderboard -->``, and so are the README's copies of
report sections (``REPORT_COPIES``: the quick suite's table, the v1 targets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import miest
from benchmarks.report import (
    CONSISTENCY_CHECKS,
    consistency_checks,
    consistency_table,
    markdown_table,
    successful_rows,
    summarise,
)
from benchmarks.suites import SUITES, Suite, get_suite
from miest.files import pyplot, save_figure, write_atomically

MARKERS = ("<!-- leaderboard -->", "<!-- /leaderboard -->")
HEADLINE = "v1 n=10,000"  # the column the README's headline is read from
#: README blocks copied from suites' reports: marker name -> (suite, section, paragraphs)
REPORT_COPIES = {
    "quick summary": ("quick", "Successes and cost per estimator", 1),
    "v1 targets": ("v1", "Targets", 2),
}


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a suite (and sample size) with a score per estimator."""

    name: str
    scores: pd.Series  # per estimator, in [0, 1] (the plot's colour)
    labels: pd.Series  # per estimator, the cell's text
    done: int  # finished jobs
    total: int  # the suite's jobs


def mi_columns(suite: Suite, frame: pd.DataFrame) -> list[Column]:
    """One column per sample size: successes out of tasks run, per estimator."""
    summary = summarise(frame).dropna(subset=["success"])
    columns = []
    for n in sorted(summary.n.unique()):
        at_n = summary[summary.n == n].groupby("estimator", sort=False).success
        successes, tasks = at_n.sum().astype(int), at_n.size()
        done = int((successful_rows(frame).n == n).sum())
        columns.append(
            Column(
                f"{suite.name} n={n:,}",
                successes / tasks.max(),  # tasks not run count as misses
                successes.astype(str) + "/" + tasks.astype(str),
                done,
                len([job for job in suite.jobs() if job.n == n]),
            )
        )
    return columns


def consistency_column(suite: Suite, frame: pd.DataFrame) -> Column:
    checks = consistency_checks(consistency_table(frame)).set_index("estimator").passed
    total = len(CONSISTENCY_CHECKS)
    labels = checks.astype(str) + f"/{total} checks"
    return Column(
        suite.name, checks / total, labels, len(successful_rows(frame)), len(suite.jobs())
    )


def pointwise_column(suite: Suite, frame: pd.DataFrame) -> Column:
    per_form = successful_rows(frame).groupby(["estimator", "form"], sort=False).pearson.mean()
    best = per_form.groupby(level="estimator", sort=False).max()
    labels = best.map(lambda r: f"r = {r:.2f}")
    done = successful_rows(frame).drop_duplicates(["task", "estimator", "seed", "n"]).shape[0]
    return Column(suite.name, best.clip(0, 1), labels, done, len(suite.jobs()))


def columns(out: Path) -> list[Column]:
    """Every built-in suite with a ``results.csv`` under ``out``, in ``SUITES`` order."""
    found = []
    for name in SUITES:
        path = out / name / "results.csv"
        if not path.exists():
            continue
        suite, frame = get_suite(name), pd.read_csv(path)
        if suite.kind == "consistency":
            found.append(consistency_column(suite, frame))
        elif suite.kind == "pointwise":
            found.append(pointwise_column(suite, frame))
        else:
            found.extend(mi_columns(suite, frame))
    return found


def table(found: list[Column]) -> pd.DataFrame:
    """Estimators (rows, ordered by the headline column) x columns (cell labels)."""
    frame = pd.DataFrame({column.name: column.labels for column in found}).fillna("")
    scores = pd.DataFrame({column.name: column.scores for column in found})
    key = scores[HEADLINE] if HEADLINE in scores else scores.mean(axis=1)
    order = key.sort_values(ascending=False, kind="stable").index
    return frame.loc[order]


def headline(found: list[Column]) -> str:
    """One sentence: the best estimator on v1 at n = 10,000 and the best peer."""
    column = next((c for c in found if c.name == HEADLINE), None)
    if column is None:
        return "No v1 results yet: run `miest-bench run --suite v1`."
    ours = set(miest.available())
    ranked = column.scores.sort_values(ascending=False, kind="stable")
    best = next(e for e in ranked.index if e in ours)
    peer = next((e for e in ranked.index if e not in ours), None)
    text = (
        f"On bmi's 40 v1 tasks at n = 10,000, `{best}` is best: {column.labels[best]} "
        "within tolerance"
    )
    if peer:
        text += f"; the best peer, `{peer}`: {column.labels[peer]}"
    return text + " (results/LEADERBOARD.md)."


def plot(found: list[Column], order: pd.Index, stem: Path) -> list[str]:
    plt = pyplot()

    scores = pd.DataFrame({c.name: c.scores for c in found}).reindex(order)
    labels = pd.DataFrame({c.name: c.labels for c in found}).reindex(order).fillna("")
    fig, ax = plt.subplots(figsize=(2.0 + 1.15 * scores.shape[1], 1.0 + 0.32 * scores.shape[0]))
    image = ax.imshow(scores.to_numpy(dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    names = [c.name + ("" if c.done >= c.total else "\n(partial)") for c in found]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    for (i, j), text in np.ndenumerate(labels.to_numpy()):
        ax.text(j, i, text.replace(" checks", ""), ha="center", va="center", fontsize=6.5)
    fig.colorbar(image, ax=ax, label="share of tasks / checks; Pearson r")
    names = save_figure(stem, fig)
    plt.close(fig)
    return names


def write(out: Path = Path("results"), readme: Path | None = Path("README.md")) -> Path:
    """Write ``out/LEADERBOARD.md`` and its plot; copy the headline into ``readme``."""
    found = columns(out)
    if not found:
        raise FileNotFoundError(f"no suite results under {out}: run `miest-bench run` first")
    board = table(found)
    summary = f"{headline(found)}\n\n{markdown_table(board.reset_index(names='estimator'))}"
    images = plot(found, board.index, out / "leaderboard")
    status = [
        f"- `{c.name}`: {c.done:,} of {c.total:,} jobs"
        + ("" if c.done >= c.total else " (partial: cells count what has run)")
        for c in found
    ]
    text = "\n".join(
        [
            "# Leaderboard",
            "",
            "Generated by `miest-bench leaderboard` from every suite's `results.csv`. MI suites: "
            "tasks within tolerance of the truth (seed means) of the tasks run; consistency: "
            "checks that hold (" + "; ".join(CONSISTENCY_CHECKS.values()) + "); pointwise: mean "
            "Pearson correlation with the exact point-wise MI in the estimator's best form. "
            "Rows ordered by v1 at n = 10,000.",
            "",
            summary,
            "",
            "Jobs finished per column:",
            "",
            *status,
            "",
            *[f"![{name}]({name})" for name in images if name.endswith(".png")],
            "",
        ]
    )
    path = out / "LEADERBOARD.md"
    write_atomically(path, text)
    if readme is not None and readme.exists():
        text = _replace_block(readme.read_text(), *MARKERS, summary)
        for name, block in report_blocks(out).items():
            text = _replace_block(text, f"<!-- begin {name} -->", f"<!-- end {name} -->", block)
        write_atomically(readme, text)
    return path


def report_blocks(out: Path) -> dict[str, str]:
    """The README's copies of report sections (``REPORT_COPIES``) whose report exists."""
    blocks = {}
    for name, (suite, section, paragraphs) in REPORT_COPIES.items():
        report = out / suite / "REPORT.md"
        if report.exists():
            body = report.read_text().split(f"## {section}\n\n")[1]
            blocks[name] = "\n\n".join(body.split("\n\n")[:paragraphs])
    return blocks


def _replace_block(text: str, start: str, end: str, block: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the README has no {start} ... {end} markers")
    return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)
