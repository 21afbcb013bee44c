"""Files of long jobs: atomic writes (a reader sees the old file or the new one, never half
of one) and cache keys (a job's file is named by a hash of its full resolved
configuration, defaults included, so a changed setting or default misses the cache
instead of reusing a stale result; a rerun skips the jobs whose file exists).

Every cache and resumable table of the project keys its jobs with :func:`job_key` or
:func:`config_key`: benchmark jobs (``benchmarks.suites.Job.key``), resumable result rows
(``benchmarks.rows``), the toy study's arms and pools (``t2i.toy.experiment``) and a
fine-tuning set being built (``t2i.selection``). Figures are drawn with
:func:`pyplot` and saved with :func:`save_figure`, so a rerun writes the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, suffix=".tmp", delete=False) as f:
        f.write(data)
    os.chmod(f.name, 0o644)  # temporary files are created owner-only
    os.replace(f.name, path)


def save_image_atomically(path: Path, image, format: str = "PNG") -> None:
    """Save a PIL image (anything with ``.save(file, format=...)``) with ``write_atomically``."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    write_atomically(path, buffer.getvalue())


def config_key(config: Mapping[str, object]) -> str:
    """12 hex digits of SHA-256 over ``config`` as JSON (keys sorted; other values by ``str``)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def job_key(name: str, config: Mapping[str, object]) -> str:
    """A file-name-safe job key: a readable ``name`` and the ``config_key`` of ``config``,
    which must hold every setting the result depends on (defaults resolved)."""
    return f"{name}__{config_key(config)}"


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (no display needed), for the
    functions that draw a figure and hand it to :func:`save_figure`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(path_stem: Path, fig) -> list[str]:
    """``fig`` as ``path_stem``.png and .svg, with no date and fixed SVG ids: a rerun
    rewrites the same bytes."""
    import matplotlib

    fig.tight_layout()
    names = []
    for suffix in (".png", ".svg"):
        with matplotlib.rc_context({"svg.hashsalt": "miest"}):
            fig.savefig(
                path_stem.with_suffix(suffix), dpi=110, metadata={"Date": None}, bbox_inches="tight"
            )
        names.append(path_stem.with_suffix(suffix).name)
    return names
