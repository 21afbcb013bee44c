"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import io
import os
import tempfile
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
