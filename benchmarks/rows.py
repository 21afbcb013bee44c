"""A resumable CSV of result rows: each row is written (atomically) as it finishes, and a
rerun skips the rows whose identity columns are already in the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miest.files import write_atomically


class ResumableRows:
    """Rows identified by the columns ``identity``, kept in ``path`` (or only in memory
    when ``path`` is ``None``)."""

    def __init__(self, path: Path | None, identity: list[str]):
        self.path, self.identity = path, identity
        self.rows = pd.read_csv(path).to_dict("records") if path and path.exists() else []
        if self.rows and not set(identity) <= set(self.rows[0]):
            raise SystemExit(f"{path} lacks the columns {identity} to resume from; use a new file")
        self._done = {self._key(row) for row in self.rows}

    def _key(self, row: dict) -> tuple:
        return tuple(row[k] for k in self.identity)

    def __contains__(self, key: tuple) -> bool:
        return key in self._done

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self._done.add(self._key(row))
        if self.path:
            write_atomically(self.path, self.frame().to_csv(index=False))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
