"""Registry of dataset families: where each file comes from, its checksum, and how to find it.

Every file has a path relative to the *data directory*, laid out like ``../shared/datasets``
(``bbq/data/Age.jsonl``), and, where one is known, a URL pinned to the upstream commit.

Finding files (:func:`locate`):

1. ``<data dir>/<path>`` (``--data-dir`` or ``ALIGNLAB_DATA_DIR``). A file there whose checksum does
   not match its pin is an error: it is never silently replaced.
2. ``cache_dir()/datasets/<path>``, filled by earlier downloads.
3. With downloads allowed, the file's URL; the download streams to a temporary file in the cache
   folder, is checked against the pin, and only then renamed into place.

Checksums: files in ``../shared/datasets/MANIFEST.tsv`` are pinned by sha256 (``manifest.py``,
generated once from it). Four BBQ files (Race_ethnicity, Race_x_SES, Race_x_gender, SES) are over
the 4 MiB limit of every snapshot reachable when the data were collected, so nobody here has ever had
their bytes and no sha256 can be known. What is known is their git blob id in the upstream tree
(nyu-mll/BBQ at bea11bd, SOURCES.md). A git blob id is ``sha1(b"blob <size>\\0" + content)``, so a
download of those files is verified by computing exactly that: it proves the bytes are the upstream
commit's file. (SHA-1 is weak against a deliberate collision, but a collision would have had to be
planted in the upstream repository itself; against corruption or a wrong mirror it is sound.)

The URL prefix ``https://raw.githubusercontent.com`` can be replaced (``base_url=`` or
``ALIGNLAB_DATA_URL``), e.g. by a mirror laid out like raw.githubusercontent.com:
``<base>/<owner>/<repo>/<commit>/<path in repo>``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.atomic import replacing
from alignlab.checksums import cached_digest, git_blob_file, sha256_file
from alignlab.data.manifest import MANIFEST
from alignlab.errors import AlignlabError
from alignlab.paths import cache_dir

log = logging.getLogger("alignlab.data")

GITHUB_RAW = "https://raw.githubusercontent.com"
ENV_DATA_DIR = "ALIGNLAB_DATA_DIR"
ENV_DATA_URL = "ALIGNLAB_DATA_URL"
NO_DATA_DIR = "no data directory: pass --data-dir or set ALIGNLAB_DATA_DIR"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset. ``path`` is relative to the data directory; at least one of
    ``sha256`` / ``git_blob`` pins its content. ``role`` is "data" (what experiments load) or "doc"
    (LICENSE, README: listed and checked, but not returned by :func:`locate`)."""

    path: str
    sha256: str | None
    rows: int | None
    url: str | None
    git_blob: str | None = None
    size: int | None = None
    role: str = "data"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        """File name without its extensions: ``bbq/data/Age.jsonl`` -> ``Age``."""
        return self.name.split(".", 1)[0]

    @property
    def pinned(self) -> str:
        """The pin, as ``sha256:<hex>`` or ``git-blob:<hex>``."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        if self.git_blob:
            return f"git-blob:{self.git_blob}"
        raise AssertionError(f"{self.path} has no checksum")  # every registered file has one


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    license: str
    upstream: str  # owner/repo on GitHub (the main source; see notes for third-party copies)
    commit: str
    files: tuple[DataFile, ...]
    notes: str = ""
    # True: an experiment may run on the files that are found (missing ones are skipped with a
    # warning). False: every data file is needed.
    partial_ok: bool = False

    @property
    def data_files(self) -> tuple[DataFile, ...]:
        return tuple(f for f in self.files if f.role == "data")

    def file(self, path_or_stem: str) -> DataFile:
        """A file by its path, file name or stem (``bbq/data/Age.jsonl``, ``Age.jsonl``, ``Age``)."""
        for f in self.files:
            if path_or_stem in (f.path, f.name, f.stem):
                return f
        raise AlignlabError(f"dataset {self.name!r} has no file {path_or_stem!r}")


# ---------------------------------------------------------------------------------------------
# Checksums


def file_checksum(df: DataFile, path: Path, remember: bool = True) -> str:
    """The file's checksum in the form of ``df.pinned`` (remembered per file version, see checksums)."""
    kind = "sha256" if df.sha256 else "git-blob"
    if remember:
        return f"{kind}:{cached_digest(path, kind)}"
    return f"{kind}:{sha256_file(path) if df.sha256 else git_blob_file(path)}"


def verify(df: DataFile, path: Path) -> None:
    """Raise AlignlabError naming ``path`` unless its content matches the pin."""
    if df.size is not None:
        size = path.stat().st_size
        if size != df.size:
            raise AlignlabError(
                f"{path}: checksum mismatch: size {size} bytes, expected {df.size} ({df.pinned})"
            )
    actual = file_checksum(df, path)
    if actual != df.pinned:
        raise AlignlabError(f"{path}: checksum mismatch: expected {df.pinned}, got {actual}")


# ---------------------------------------------------------------------------------------------
# The registry


CATALOGUE = Path(__file__).with_name("catalogue.toml")
DOC_NAMES = ("LICENSE", "README.md", "EVAL_GAUNTLET.md", "metadata.json")  # listed and checked, not loaded


def _gh(repo: str, commit: str, path: str) -> str:
    return f"{GITHUB_RAW}/{repo}/{commit}/{path}"


def _url(entry: dict, below: str) -> str | None:
    """The upstream URL of the file at `below` (its path under the dataset's folder), from the catalogue's
    source rules: the first whose glob matches; none matches: the same path in the dataset's repository."""
    for rule in entry.get("source", ()):
        if fnmatch.fnmatchcase(below, rule["match"]):
            if not rule["path"]:
                return None
            path = rule["path"].format(path=below, name=below.rsplit("/", 1)[-1])
            return _gh(rule.get("repo", entry["repo"]), rule.get("commit", entry["commit"]), path)
    return _gh(entry["repo"], entry["commit"], below)


def _role(path: str) -> str:
    return "doc" if path.rsplit("/", 1)[-1] in DOC_NAMES else "data"


def _spec(entry: dict) -> DatasetSpec:
    prefix = entry["name"] + "/"
    blobs = entry.get("git_blobs", {})
    files = []
    for path in sorted(p for p in MANIFEST if p.startswith(prefix)):
        size, rows, sha = MANIFEST[path]
        below = path[len(prefix) :]
        files.append(DataFile(path, sha, rows, _url(entry, below), blobs.get(below), size, _role(path)))
    for extra in entry.get("extra", ()):
        below = extra["path"]
        files.append(DataFile(prefix + below, None, extra.get("rows"), _url(entry, below), extra["git_blob"]))
    return DatasetSpec(
        name=entry["name"],
        description=entry["description"],
        license=entry["license"],
        upstream=entry["repo"],
        commit=entry["commit"],
        files=tuple(sorted(files, key=lambda f: f.path)),
        notes=entry.get("notes", ""),
        partial_ok=entry.get("partial_ok", False),
    )


def _build() -> dict[str, DatasetSpec]:
    with CATALOGUE.open("rb") as f:
        entries = tomllib.load(f)["dataset"]
    return {entry["name"]: _spec(entry) for entry in entries}


REGISTRY: dict[str, DatasetSpec] = _build()
BBQ_COMMIT = REGISTRY["bbq"].commit


def get(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AlignlabError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


# ---------------------------------------------------------------------------------------------
# Finding files


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The data directory from ``--data-dir`` (``explicit``), else ``ALIGNLAB_DATA_DIR``, else None.

    A directory that is named but does not exist is an AlignlabError naming it."""
    if explicit is not None and str(explicit) != "":
        raw, origin = str(explicit), "--data-dir"
    elif os.environ.get(ENV_DATA_DIR):
        raw, origin = os.environ[ENV_DATA_DIR], ENV_DATA_DIR
    else:
        return None
    path = Path(raw).expanduser()
    _check_dir(path, origin)
    return path


def _check_dir(path: Path, origin: str = "data directory") -> None:
    if not path.exists():
        raise AlignlabError(f"data directory {path} ({origin}) does not exist")
    if not path.is_dir():
        raise AlignlabError(f"data directory {path} ({origin}) is not a directory")


def datasets_cache() -> Path:
    return cache_dir() / "datasets"


def resolve_url(df: DataFile, base_url: str | None = None) -> str | None:
    """The file's URL, with ``https://raw.githubusercontent.com`` replaced by ``base_url`` or
    ``ALIGNLAB_DATA_URL`` when one is set."""
    if df.url is None:
        return None
    base = base_url if base_url is not None else os.environ.get(ENV_DATA_URL)
    if base and df.url.startswith(GITHUB_RAW + "/"):
        return base.rstrip("/") + df.url[len(GITHUB_RAW) :]
    return df.url


def download(df: DataFile, dest: Path, base_url: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``df`` to ``dest``: stream into a temporary file next to it, verify, rename.

    Unreachable URL, HTTP error or checksum mismatch: AlignlabError naming the URL; no file is left."""
    import httpx  # imported here: only downloads need it

    url = resolve_url(df, base_url)
    if url is None:
        raise AlignlabError(f"{df.path}: no download URL is known for this file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as tmp:
        with tmp.open("wb") as out:
            try:
                with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
                    if resp.status_code != 200:
                        raise AlignlabError(f"cannot download {url}: HTTP {resp.status_code}")
                    for chunk in resp.iter_bytes(_CHUNK):
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise AlignlabError(f"cannot download {url}: {type(exc).__name__}: {exc}") from None
        actual = file_checksum(df, tmp, remember=False)  # a temporary file: nothing to remember
        if actual != df.pinned:
            raise AlignlabError(f"checksum mismatch for {url}: expected {df.pinned}, got {actual}")
    log.info("downloaded %s -> %s", url, dest)
    return dest


class Located(list[Path]):
    """The paths found (a list, in registry order), with what was found, what is missing and the
    warnings an experiment should record."""

    def __init__(self, spec: DatasetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.found: list[DataFile] = []
        self.missing: list[DataFile] = []
        self.warnings: list[str] = []

    @property
    def found_stems(self) -> list[str]:
        """For BBQ: the categories found."""
        return [f.stem for f in self.found]


def _find_one(
    df: DataFile, ddir: Path | None, download_ok: bool, base_url: str | None
) -> tuple[Path | None, str]:
    """(path, where) for one file; where is "data dir", "cache", "downloaded" or "" when missing."""
    if ddir is not None:
        p = ddir / df.path
        if p.is_file():
            verify(df, p)
            return p, "data dir"
    cached = datasets_cache() / df.path
    if cached.is_file():
        try:
            verify(df, cached)
            return cached, "cache"
        except AlignlabError:
            if not (download_ok and df.url):
                raise
            log.warning("%s: cached copy does not match its checksum; downloading it again", cached)
    if download_ok and df.url:
        return download(df, cached, base_url), "downloaded"
    return None, ""


def locate(
    spec: DatasetSpec | str,
    data_dir: Path | str | None,
    download: bool = False,
    *,
    only: Iterable[str] | None = None,
    base_url: str | None = None,
) -> Located:
    """Find the data files of ``spec`` (all of them, or those whose path or stem is in ``only``).

    Files present in ``data_dir`` must match their pins. Missing files are downloaded into
    ``cache_dir()/datasets/<path>`` when ``download`` is true. For datasets where ``partial_ok``
    (BBQ: categories), missing files are skipped with a warning; otherwise a missing file is an error.
    """
    spec = get(spec) if isinstance(spec, str) else spec
    ddir = Path(data_dir).expanduser() if data_dir is not None else None
    if ddir is not None:
        _check_dir(ddir)
    wanted = spec.data_files
    if only is not None:
        names = set(only)
        wanted = tuple(f for f in wanted if f.path in names or f.stem in names)
        unknown = names - {f.path for f in wanted} - {f.stem for f in wanted}
        if unknown:
            raise AlignlabError(f"dataset {spec.name!r} has no file(s) {', '.join(sorted(unknown))}")
    result = Located(spec)
    for df in wanted:
        path, _where = _find_one(df, ddir, download, base_url)
        if path is None:
            result.missing.append(df)
        else:
            result.append(path)
            result.found.append(df)
    if not result.found:
        if ddir is None and not download:
            raise AlignlabError(f"{NO_DATA_DIR} (dataset {spec.name!r}; or allow downloads)")
        where = f"in {ddir}" if ddir is not None else "in the data directory"
        how = "or downloadable" if download else f"or in the cache {datasets_cache()} (downloads are off)"
        raise AlignlabError(
            f"dataset {spec.name!r}: none of its {len(wanted)} data files found {where} {how}"
        )
    if result.missing:
        missing = ", ".join(f.stem if spec.partial_ok else f.path for f in result.missing)
        if not spec.partial_ok:
            raise AlignlabError(
                f"dataset {spec.name!r}: missing {missing} (pass --data-dir or allow downloads)"
            )
        msg = (
            f"dataset {spec.name}: {len(result.missing)} of {len(wanted)} files not found, skipped: {missing}"
        )
        result.warnings.append(msg)
        log.warning(msg)
    return result


# ---------------------------------------------------------------------------------------------
# Status (the `alignlab datasets` command)


@dataclass(frozen=True)
class StatusRow:
    dataset: str
    file: str
    where: str  # "data dir", "cache" or "-"
    rows: int | None
    checksum: str  # "ok", "mismatch", "missing", or "unverified" (present, size matches, not hashed)
    detail: str = field(default="", compare=False)


def dataset_status(
    data_dir: Path | str | None, *, verify_hashes: bool = True, names: Iterable[str] | None = None
) -> list[StatusRow]:
    """One row per registered file: where it was found (data dir first, then cache) and whether its
    checksum matches. Without ``verify_hashes`` only sizes are compared (fast)."""
    ddir = Path(data_dir).expanduser() if data_dir is not None else None
    if ddir is not None:
        _check_dir(ddir)
    specs = [get(n) for n in names] if names is not None else list(REGISTRY.values())
    rows: list[StatusRow] = []
    for spec in specs:
        for df in spec.files:
            candidates = [(ddir / df.path, "data dir")] if ddir is not None else []
            candidates.append((datasets_cache() / df.path, "cache"))
            hit = next(((p, w) for p, w in candidates if p.is_file()), None)
            if hit is None:
                rows.append(StatusRow(spec.name, df.path, "-", df.rows, "missing"))
                continue
            path, where = hit
            size = path.stat().st_size
            if df.size is not None and size != df.size:
                state, detail = "mismatch", f"size {size}, expected {df.size}"
            elif verify_hashes:
                actual = file_checksum(df, path)
                state, detail = ("ok", "") if actual == df.pinned else ("mismatch", f"got {actual}")
            else:
                state, detail = "unverified", ""
            rows.append(StatusRow(spec.name, df.path, where, df.rows, state, detail))
    return rows
