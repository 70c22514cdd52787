"""Every response, stored in SQLite under (model fingerprint, request hash), so no request is paid twice."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from alignlab.errors import AlignlabError
from alignlab.models.base import Kind, Result, result_from_json, result_to_json

log = logging.getLogger(__name__)


class ResponseCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._unwritable = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit; WAL lets a second process read while one writes
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " model TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, result TEXT NOT NULL,"
                " PRIMARY KEY (model, key))"
            )
        except sqlite3.Error as exc:
            raise AlignlabError(f"cannot open response cache {self.path}: {exc}") from exc

    def get_many(self, model: str, keys: list[str]) -> dict[str, Result]:
        found: dict[str, Result] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's variable limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, kind, result FROM responses WHERE model = ? AND key IN ({marks})",
                [model, *chunk],
            )
            for key, kind, payload in rows:
                found[key] = result_from_json(kind, json.loads(payload))
        return found

    def put_many(self, model: str, items: list[tuple[str, Kind, Result]]) -> None:
        """Store responses. A cache that cannot be written (a full disk, a locked file) only costs speed, so
        the run goes on without storing, after one warning; the transaction rolls back, nothing is half-kept."""
        if self._unwritable:
            return
        rows = [(model, key, kind, json.dumps(result_to_json(result))) for key, kind, result in items]
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
        except sqlite3.OperationalError as exc:
            self._unwritable = True
            log.warning(
                "cannot write response cache %s (%s): going on without storing responses", self.path, exc
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
