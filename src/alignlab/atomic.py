"""Write a file or a folder so that a reader never sees it half-made: build it under a temporary name
beside the target, then rename it into place (a rename within one folder is atomic).

A full disk (ENOSPC), a spent quota (EDQUOT) and a file-size limit (EFBIG) read alike to a user: every write
here turns them into the one-line error `no space left on device writing PATH` (see `write_error`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from alignlab.errors import AlignlabError

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
TMP_MARK = ".tmp-"  # `.NAME.tmp-PID`: what `replacing` builds; never a result


def write_error(path: Path | str, exc: OSError) -> AlignlabError:
    """The one-line error for a failed write of `path`: a full disk (or quota, or size limit) says so."""
    if exc.errno in DISK_FULL:
        return AlignlabError(f"no space left on device writing {path}")
    return AlignlabError(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def replacing(target: Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; when the block ends without an error, rename it onto `target`.

    On an error (or Ctrl-C) the temporary file or folder is removed and the error goes on; `target` is
    untouched. `keep_existing`: if `target` appeared meanwhile (another process finished first), keep that
    one and drop ours (for folders, which cannot be replaced).
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
    _remove(tmp)
    if not keep_existing:  # shared targets may be written from another pid namespace: its pids look dead here
        remove_stale_temporaries(target.parent, target.name)
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
        raise write_error(path, exc) from exc


def write_bytes_atomic(path: Path, data: bytes) -> None:
    try:
        with replacing(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise write_error(path, exc) from exc


def remove_stale_temporaries(folder: Path, name: str = "*") -> None:
    """Remove what `replacing` left in `folder` (for the target `name`, or all) when its process was killed
    mid-write (its pid is gone), so a half-written temporary is never read as a result and no killed run's
    leftovers pile up. A live process's temporaries are left alone."""
    if not Path(folder).is_dir():
        return
    for path in Path(folder).glob(f".{glob.escape(name) if name != '*' else '*'}{TMP_MARK}*"):
        pid = path.name.rpartition(TMP_MARK)[2]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
