"""Execute notebooks in place, saving their outputs: ``python notebooks/execute.py [names]``
(default: every notebook in this folder); run by ``make notebooks``."""

import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def execute(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=1800, resources={"metadata": {"path": str(HERE)}}
    )
    client.execute()
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:] or sorted(p.name for p in HERE.glob("*.ipynb")):
        start = time.perf_counter()
        execute(HERE / name)
        print(f"executed {name} ({time.perf_counter() - start:.0f} s)")
