"""File checksums, computed once per file version: a 500 MB model or a dataset is hashed once, not per run.

A digest is remembered in the cache folder under a key of (kind, resolved path, size, mtime): a file
rewritten in place gets a new mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from alignlab.paths import cache_dir

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def git_blob_file(path: Path) -> str:
    """What ``git hash-object`` prints: sha1 of ``b"blob <size>\\0"`` followed by the content."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


_KINDS = {"sha256": sha256_file, "git-blob": git_blob_file}


def cached_digest(path: Path, kind: str = "sha256") -> str:
    """`kind` ("sha256" or "git-blob") of the file, remembered by (path, size, mtime)."""
    stat = path.stat()
    key = f"{kind}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_dir() / "digests" / hashlib.sha256(key.encode()).hexdigest()[:32]
    if memo.is_file():
        remembered = memo.read_text().strip()
        if remembered:
            return remembered
    digest = _KINDS[kind](path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:  # a read-only cache only costs hashing again
        pass
    return digest
