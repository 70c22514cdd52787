"""Write a file or a folder so that a reader never sees it half-made: build it under a temporary name
beside the target, then rename it into place (a rename within one folder is atomic)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from alignlab.errors import AlignlabError


@contextlib.contextmanager
def replacing(target: Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; when the block ends without an error, rename it onto `target`.

    On an error (or Ctrl-C) the temporary file or folder is removed and the error goes on; `target` is
    untouched. `keep_existing`: if `target` appeared meanwhile (another process finished first), keep that
    one and drop ours (for folders, which cannot be replaced).
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if keep_existing and target.exists():
                _remove(tmp)
            else:
                raise
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all; an OS error becomes a user error naming the file."""
    try:
        with replacing(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AlignlabError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_bytes_atomic(path: Path, data: bytes) -> None:
    try:
        with replacing(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise AlignlabError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
