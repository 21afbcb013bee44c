"""A resumable CSV of result rows: each row is written (atomically) as it finishes, under
the ``key`` of its job (``miest.files.config_key`` of everything the row depends on,
defaults resolved), and a rerun skips the rows whose key is already in the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miest.files import config_key, write_atomically


class ResumableRows:
    """Rows with a ``key`` column, kept in ``path`` (or only in memory when ``path`` is
    ``None``)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows = pd.read_csv(path).to_dict("records") if path and path.exists() else []
        if self.rows and "key" not in self.rows[0]:
            raise SystemExit(f"{path} has no key column to resume from; use a new file")
        self._done = {row["key"] for row in self.rows}

    @staticmethod
    def key(config: dict) -> str:
        """The key of a row computed from ``config`` (every setting it depends on)."""
        return config_key(config)

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def append(self, row: dict) -> None:
        """Add a finished row (it carries its ``key``) and rewrite the file."""
        self.extend([row])

    def extend(self, rows: list[dict]) -> None:
        """Add finished rows (each carries its ``key``; one job may write several) and
        rewrite the file once."""
        self.rows += rows
        self._done |= {row["key"] for row in rows}
        if self.path:
            write_atomically(self.path, self.frame().to_csv(index=False))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
