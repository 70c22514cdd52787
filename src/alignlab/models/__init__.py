"""Model specs a user can type, resolved to a backend.

smollm2-135m                      a bundled model (transformers on its GGUF file)
hf:PATH-OR-HUB-ID                 transformers: a hub id, a local folder, or a .gguf file
gguf:PATH | llamacpp:PATH         llama-cpp-python on a GGUF file (or a bundled model's name)
openai:MODEL@http://HOST:PORT/v1  any OpenAI-compatible server
"""

from __future__ import annotations

from pathlib import Path

from alignlab.errors import AlignlabError
from alignlab.models import bundled
from alignlab.models.base import Backend, require

__all__ = ["Backend", "load_model", "require", "SPEC_HELP"]

SPEC_HELP = (
    "a bundled name (" + ", ".join(bundled.BUNDLED) + "), hf:PATH-OR-HUB-ID, gguf:FILE, "
    "llamacpp:FILE or openai:MODEL@URL"
)


def load_model(spec: str, **options) -> Backend:
    """Build the backend a spec names. Options reach the backend (e.g. batch_size, max_concurrency)."""
    prefix, _, rest = spec.partition(":")
    if spec in bundled.BUNDLED:
        return _hf(spec, str(bundled.resolve(spec)), **options)
    if not rest:
        raise AlignlabError(f"unknown model spec {spec!r}: expected {SPEC_HELP}")
    if prefix == "hf":
        target = str(bundled.resolve(rest)) if rest in bundled.BUNDLED else rest
        return _hf(spec, target, **options)
    if prefix in ("gguf", "llamacpp"):
        path = bundled.resolve(rest) if rest in bundled.BUNDLED else Path(rest).expanduser()
        if not path.is_file():
            raise AlignlabError(f"model file not found: {path} (from spec {spec!r})")
        from alignlab.models.llamacpp import LlamaCppBackend

        return LlamaCppBackend(spec, path, **options)
    if prefix == "openai":
        from alignlab.models.openai import OpenAIBackend

        model, sep, url = rest.rpartition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise AlignlabError(f"bad model spec {spec!r}: expected openai:MODEL@http://HOST:PORT/v1")
        return OpenAIBackend(spec, model=model, base_url=url, **options)
    raise AlignlabError(f"unknown model spec {spec!r}: expected {SPEC_HELP}")


def _hf(spec: str, target: str, **options) -> Backend:
    from alignlab.models.hf import HFBackend

    return HFBackend(spec, target, **options)
