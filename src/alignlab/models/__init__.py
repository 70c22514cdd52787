"""Model specs a user can type, resolved to a backend.

smollm2-135m                      a bundled model (transformers on its GGUF file)
hf:PATH-OR-HUB-ID                 transformers: a hub id, a local folder, or a .gguf file
gguf:PATH | llamacpp:PATH         llama-cpp-python on a GGUF file (or a bundled model's name)
openai:MODEL@http://HOST:PORT/v1  any OpenAI-compatible server
inspect:PROVIDER/MODEL[@URL]      any provider of Inspect's model API (pip install 'alignlab[inspect]')

Any spec may end in `@params=N` (70B, 7.5B, 135M, 1.2T or a plain number): the model's parameter count for
scaling figures and trends, for a served model that cannot say it (or to override what a local one counts);
and in `@NAME=VALUE` for any other numeric axis of a ladder (`@rlhf_steps=500`, `@tokens=300B`), which
`--axis NAME` draws. Several may follow one another: `hf:ckpt-500@params=13B@rlhf_steps=500`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from alignlab.errors import AlignlabError
from alignlab.models import bundled
from alignlab.models.base import Backend, require

__all__ = ["Backend", "ModelSpec", "load_model", "parse_spec", "require", "SPEC_HELP"]

SPEC_HELP = (
    "a bundled name (" + ", ".join(bundled.BUNDLED) + "), hf:PATH-OR-HUB-ID, gguf:FILE, "
    "llamacpp:FILE, openai:MODEL@URL or inspect:PROVIDER/MODEL[@URL]"
)


@dataclass(frozen=True)
class ModelSpec:
    """A spec taken apart, before anything is loaded or contacted."""

    kind: str  # "bundled" | "hf" | "llamacpp" | "openai" | "inspect"
    target: str  # the bundled name, hub id / folder / file, GGUF file, or the server's model name
    url: str = ""  # openai: the server's base URL
    parameters: int | None = None  # declared by `@params=N`
    axes: tuple[tuple[str, float], ...] = ()  # declared by `@NAME=VALUE`, params included


_KINDS = {"hf": "hf", "gguf": "llamacpp", "llamacpp": "llamacpp", "openai": "openai", "inspect": "inspect"}
_INSPECT_FORM = "inspect:PROVIDER/MODEL or inspect:PROVIDER/MODEL@http://HOST:PORT/v1"
_OPENAI_FORM = "openai:MODEL@http://HOST:PORT/v1"
_DECLARED = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)=([^@]*)$")
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def declared_axes(spec: str) -> tuple[str, dict[str, float]]:
    """(the spec without its `@NAME=VALUE` endings, {NAME: value}); `params` is a whole count. A value that is
    not a number (with an optional K, M, B or T) is an error naming the spec."""
    axes: dict[str, float] = {}
    bare = spec
    while isinstance(bare, str) and (found := _DECLARED.search(bare)):
        name, text = found.group(1).lower(), found.group(2).strip()
        number = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMBT]?)", text, flags=re.I)
        if not number or (name == "params" and float(number.group(1)) <= 0):
            what = (
                "a parameter count (e.g. 70B, 135M, 7000000)"
                if name == "params"
                else "a number (e.g. 500, 300B)"
            )
            raise AlignlabError(f"model spec {shown_spec(spec)}: @{name}={text!r} is not {what}")
        if name in axes:
            raise AlignlabError(f"model spec {shown_spec(spec)}: @{name}= is given twice")
        value = float(number.group(1)) * _SCALE[number.group(2).upper()]
        axes[name] = int(round(value)) if name == "params" else value
        bare = bare[: found.start()]
    return bare, dict(reversed(list(axes.items())))


def declared_parameters(spec: str) -> tuple[str, int | None]:
    """(the spec without its `@NAME=VALUE` endings, the `@params=` count or None)."""
    bare, axes = declared_axes(spec)
    return bare, axes.get("params")


def parse_spec(spec: str) -> ModelSpec:
    """The parts of a model spec; anything malformed is an AlignlabError of one line naming the spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise AlignlabError(f"empty model spec: expected {SPEC_HELP}")
    if any(not ch.isprintable() for ch in spec):
        raise AlignlabError(f"model spec {shown_spec(spec)} holds control characters (a newline, a tab?)")
    base, axes = declared_axes(spec)
    if axes:
        return replace(parse_spec(base), parameters=axes.get("params"), axes=tuple(axes.items()))
    if spec in bundled.BUNDLED:
        return ModelSpec("bundled", spec)
    prefix, _, rest = spec.partition(":")
    kind = _KINDS.get(prefix)
    if kind is None:
        raise AlignlabError(f"unknown model spec {shown_spec(spec)}: expected {SPEC_HELP}")
    if not rest.strip():
        raise AlignlabError(f"model spec {shown_spec(spec)} names nothing after '{prefix}:'")
    if kind == "inspect":
        found = re.match(r"(.*?)@(https?://.*)", rest, flags=re.S)
        model, url = (found.group(1), found.group(2)) if found else (rest, "")
        if "/" not in model.strip("/") or "@" in model:
            raise AlignlabError(f"bad model spec {shown_spec(spec)}: expected {_INSPECT_FORM}")
        return ModelSpec(kind, model, _checked_url(url, spec) if url else "")
    if kind != "openai":
        return ModelSpec(kind, rest)
    # the first "@http": a URL may hold user:password@ of its own
    found = re.match(r"(.*?)@(https?://.*)", rest, flags=re.S)
    model, url = (found.group(1), found.group(2)) if found else ("", "")
    if not model.strip():
        raise AlignlabError(f"bad model spec {shown_spec(spec)}: expected {_OPENAI_FORM}")
    return ModelSpec(kind, model, _checked_url(url, spec))


def _checked_url(url: str, spec: str) -> str:
    """`url` when it is http(s)://HOST[:PORT][/PATH] with a port in 1..65535."""
    bad = f"bad server URL in model spec {shown_spec(spec)}"
    try:
        parts = urlsplit(url)
        port = parts.port  # parsing it is what raises for "99999" or "x"
    except ValueError as exc:
        raise AlignlabError(f"{bad}: {exc}") from None
    if not parts.hostname:
        raise AlignlabError(f"{bad}: no host name")
    if port == 0:
        raise AlignlabError(f"{bad}: port 0")
    if any(ch.isspace() for ch in url):
        raise AlignlabError(f"{bad}: a space in it")
    _refuse_credentials(parts, spec, bad)
    return url


def refuse_credentials(spec: str) -> None:
    """An error, the key hidden, when a spec's URL holds a key; checked before any model of a run loads
    (the rest of the spec is checked as it loads)."""
    if not isinstance(spec, str):
        return
    found = re.search(r"https?://\S*", declared_axes(spec)[0] if _DECLARED.search(spec) else spec)
    if found:
        try:
            parts = urlsplit(found.group(0))
        except ValueError:
            return  # a malformed URL: parse_spec says so when the model loads
        _refuse_credentials(parts, spec, f"bad server URL in model spec {shown_spec(spec)}")


def _refuse_credentials(parts, spec: str, bad: str) -> None:
    # a key in the URL would reach run folders, tables and logs: keys come from the environment instead
    where = (
        "the provider's environment variable, as Inspect reads it"
        if spec.startswith("inspect:")
        else "$OPENAI_API_KEY or the file $OPENAI_API_KEY_FILE names"
    )
    if parts.username is not None or parts.password is not None:
        raise AlignlabError(f"{bad}: a user or password in it (user:password@); put the key in {where}")
    named = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True) if _KEY_LIKE.search(name)]
    if named:
        raise AlignlabError(f"{bad}: a key in its query ({named[0]}=...); put the key in {where}")
    in_path = [name for name in re.findall(r";([^=;/]*)=", parts.path) if _KEY_LIKE.search(name)]
    if in_path:
        raise AlignlabError(f"{bad}: a key in its path (;{in_path[0]}=...); put the key in {where}")
    if parts.fragment or "#" in parts.geturl():
        # a server never sees a fragment, and the paths joined after the URL would land inside it
        raise AlignlabError(f"{bad}: a #fragment in it; leave it out, and put the key in {where}")


_KEY_LIKE = re.compile(r"key|token|secret|passw|pwd|auth|credential|sig", re.I)


def _masked_value(found: re.Match) -> str:
    """A query parameter as shown: its value hidden when its name is key-like."""
    name = found.group(1)
    return name + "***" if _KEY_LIKE.search(name) else found.group(0)


def shown_spec(spec: str, limit: int = 200) -> str:
    """The spec quoted for a message: any user:password@ in a URL (even one without its http://) hidden,
    cut to `limit` characters."""
    masked = re.sub(r"([/@])[^/@\s]*:[^/@\s]*@", r"\1***@", re.sub(r"//[^/@]*@", "//***@", spec))
    masked = re.sub(r"([?&;][^=&;#\s]*=)[^&;#\s]*", _masked_value, masked)
    masked = re.sub(r"#\S*", "#***", masked)  # a fragment: nothing a server reads, maybe a pasted key
    quoted = repr(masked if len(masked) <= limit else masked[:limit] + "...")
    return quoted


def check_spec(spec: str) -> None:
    """Everything about a spec that can be known without loading its model or calling its server: its form,
    no key in its URL, and a model file that is there. Each command runs this for every role's spec before
    any model loads, so a typo in the third model fails at once, not after the first model's work."""
    parsed = parse_spec(spec)
    if parsed.axes:
        parsed = parse_spec(declared_axes(spec)[0])
    if parsed.kind == "llamacpp":
        _model_file(parsed.target, spec)
    if parsed.kind == "hf" and parsed.target.startswith(("/", "./", "../", "~")):
        path = Path(parsed.target).expanduser()
        if not path.exists():
            raise AlignlabError(f"model folder not found: {path} (from spec {shown_spec(spec)})")


def reach(spec: str) -> None:
    """A server-backed spec's server answers (no model weights are loaded); other specs: nothing to do (their
    form is `check_spec`'s to refuse)."""
    try:
        kind = parse_spec(declared_axes(spec)[0]).kind
    except AlignlabError:
        return
    if kind in ("openai", "inspect"):
        load_model(spec).check()


def load_model(spec: str, **options) -> Backend:
    """Build the backend a spec names. Options reach the backend (e.g. batch_size, max_concurrency)."""
    parsed = parse_spec(spec)
    if parsed.axes:
        return _declared(_load(spec, declared_axes(spec)[0], **options), dict(parsed.axes))
    return _load(spec, spec, **options)


def _declared(backend: Backend, axes: dict) -> Backend:
    """The backend with what the spec declared in its info, which run configs keep: `axes`, and the
    parameter count when `params` is one of them."""
    counted = backend.info

    def info() -> dict:
        out = counted()
        others = {k: v for k, v in axes.items() if k != "params"}
        if others:
            out["axes"] = others
        if "params" in axes:
            out.update(parameters=axes["params"], parameters_from="the model spec (@params=)")
        return out

    backend.info = info  # type: ignore[method-assign]
    return backend


def _load(spec: str, bare: str, **options) -> Backend:
    """The backend of `bare` (the spec without @params=), named by the spec as typed."""
    parsed = parse_spec(bare)
    if parsed.kind == "bundled":
        return _hf(spec, str(bundled.resolve(bare)), **options)
    if parsed.kind == "hf":
        target = parsed.target
        return _hf(spec, str(bundled.resolve(target)) if target in bundled.BUNDLED else target, **options)
    if parsed.kind == "llamacpp":
        from alignlab.models.llamacpp import LlamaCppBackend

        return LlamaCppBackend(spec, _model_file(parsed.target, spec), **options)
    if parsed.kind == "inspect":
        from alignlab.models.inspect_backend import InspectBackend

        return InspectBackend(spec, model=parsed.target, base_url=parsed.url or None, **options)
    from alignlab.models.openai import OpenAIBackend

    return OpenAIBackend(spec, model=parsed.target, base_url=parsed.url, **options)


def _model_file(target: str, spec: str) -> Path:
    """A llamacpp: spec's model file (a bundled name's, or a path), which must be there."""
    path = bundled.resolve(target) if target in bundled.BUNDLED else Path(target).expanduser()
    if not _is_file(path):
        raise AlignlabError(f"model file not found: {path} (from spec {shown_spec(spec)})")
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system: no such file either
        return False


def _hf(spec: str, target: str, **options) -> Backend:
    from alignlab.models.hf import HFBackend

    return HFBackend(spec, target, **options)
