"""The results notebook runs top to bottom on the committed quick-suite results."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def _run(name: str) -> list:
    """Execute a notebook in notebooks/; its code cells' outputs."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    return [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]


def test_benchmark_results_notebook_executes():
    outputs = _run("benchmark_results.ipynb")
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert any("rfmi" in o.get("data", {}).get("text/plain", "") for o in outputs)


def test_toy_notebook_executes_on_the_committed_scores():
    outputs = _run("t2i_toy_mi_vs_alignment.ipynb")
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert any("Kendall tau" in o.get("data", {}).get("text/plain", "") for o in outputs)


def test_your_data_notebook_is_committed_executed():
    """Executing it takes minutes (``make notebooks``), so the test checks what a reader
    sees on GitHub: every code cell ran, without errors, with its figure."""
    notebook = nbformat.read(NOTEBOOKS / "your_data.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code)
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    text = "".join(o.get("text", "") for o in outputs)
    assert "constant columns" in text and "look discrete" in text and "shuffled pairs" in text
