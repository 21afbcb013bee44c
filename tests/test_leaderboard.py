"""The leaderboard: cells counted from each suite's rows, partial suites marked, the
README block replaced between its markers."""

import pandas as pd
import pytest

from benchmarks import leaderboard


def _mi_rows(n: int, cells: dict[str, list[float]]) -> pd.DataFrame:
    """Rows of tasks t0, t1, ... (truth 2.0) with each estimator's estimates."""
    rows = [
        {"task": f"t{i}", "n": n, "estimator": name, "seed": 0, "true_mi": 2.0}
        | {"estimate": value, "seconds": 1.0, "peak_rss_mb": 1.0, "error": ""}
        | {"library": "miest" if name == "rfmi" else "bmi"}
        for name, values in cells.items()
        for i, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_cells_count_successes_and_the_readme_gets_the_headline(tmp_path):
    # 2.1 is within 10% of 2.0, 2.5 is not
    (tmp_path / "v1").mkdir()
    _mi_rows(10_000, {"rfmi": [2.1, 1.95], "bmi-ksg": [2.1, 2.5]}).to_csv(
        tmp_path / "v1" / "results.csv", index=False
    )
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- leaderboard -->\nold\n<!-- /leaderboard -->\nrest\n")
    path = leaderboard.write(tmp_path, readme)
    text = path.read_text()
    assert "| rfmi" in text and "2/2" in text and "1/2" in text
    assert "partial" in text  # 4 of v1's 4,320 jobs
    block = readme.read_text()
    assert "`rfmi` is best: 2/2" in block and "`bmi-ksg`: 1/2" in block
    assert "old" not in block and block.startswith("intro\n") and block.endswith("rest\n")
    assert (tmp_path / "leaderboard.png").stat().st_size > 0


def test_report_sections_are_copied_into_their_readme_blocks(tmp_path):
    (tmp_path / "v1").mkdir()
    _mi_rows(10_000, {"rfmi": [2.1]}).to_csv(tmp_path / "v1" / "results.csv", index=False)
    (tmp_path / "v1" / "REPORT.md").write_text(
        "# R\n\n## Targets\n\njudged\n\n- verdict\n\n| table |\n\n## Next\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- leaderboard -->\n<!-- /leaderboard -->\n"
        "<!-- begin v1 targets -->\nstale\n<!-- end v1 targets -->\n"
    )
    leaderboard.write(tmp_path, readme)  # no quick report: its block is left alone
    text = readme.read_text()
    assert "<!-- begin v1 targets -->\njudged\n\n- verdict\n<!-- end v1 targets -->" in text
    assert "stale" not in text and "| table |" not in text


def test_missing_results_or_markers_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no suite results"):
        leaderboard.write(tmp_path, None)
    (tmp_path / "quick").mkdir()
    _mi_rows(5000, {"rfmi": [2.0]}).to_csv(tmp_path / "quick" / "results.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        leaderboard.write(tmp_path, readme)


def test_the_committed_leaderboard_is_current():
    """Guards committed results: results/LEADERBOARD.md is what the command writes."""
    from pathlib import Path

    found = leaderboard.columns(Path("results"))
    committed = Path("results/LEADERBOARD.md").read_text()
    assert (
        leaderboard.markdown_table(leaderboard.table(found).reset_index(names="estimator"))
        in committed
    )
