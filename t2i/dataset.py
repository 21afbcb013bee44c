"""The image-folder format every t2i command reads and writes: ``metadata.jsonl``.

A dataset folder holds images and ``metadata.jsonl``, one JSON object per line with
``file_name`` (the image, relative to the folder or absolute) and ``text`` (its prompt),
plus any further fields a writer records (``seed``, ``mi`` in nats, ``rank``,
``guidance_scale``, checker ``score``...). Hugging Face ``datasets``' ``imagefolder``
reads the same layout. ``write_metadata`` and ``read_dataset`` are the only code that
touches the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from miest.files import write_atomically

METADATA = "metadata.jsonl"


def write_metadata(folder: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` (each with ``file_name`` and ``text``) as ``folder/metadata.jsonl``,
    atomically; returns the file's path."""
    for number, row in enumerate(rows, 1):
        if "file_name" not in row or "text" not in row:
            raise ValueError(f"metadata row {number} needs file_name and text, got {sorted(row)}")
    path = Path(folder) / METADATA
    write_atomically(path, "".join(json.dumps(row) + "\n" for row in rows).encode())
    return path


def read_dataset(folder: str | Path) -> tuple[list[Path], list[str], list[dict]]:
    """Image paths, prompts and the metadata rows of a fine-tuning set folder."""
    folder = Path(folder)
    metadata = folder / METADATA
    if not metadata.exists():
        raise FileNotFoundError(f"{folder} is not a fine-tuning set: no metadata.jsonl")
    rows = []
    for number, line in enumerate(metadata.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            paths = folder / row["file_name"], str(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{metadata}:{number}: need a JSON object with file_name and text ({error})"
            ) from None
        if not paths[0].exists():
            raise FileNotFoundError(f"{metadata}:{number}: no image at {paths[0]}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{metadata} lists no images")
    return [folder / r["file_name"] for r in rows], [str(r["text"]) for r in rows], rows
