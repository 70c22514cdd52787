"""The three request kinds every experiment needs, and the protocol a backend implements.

Experiments emit requests; the engine hands batches of them to a backend. A backend declares the kinds it
supports in `capabilities`; asking for another kind fails before any work starts (see `require`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

from alignlab.errors import UnsupportedRequest

Kind = Literal["score", "generate", "features"]


@dataclass(frozen=True)
class Chat:
    """A conversation to be rendered with the model's own chat template.

    `prefill` is text the assistant's turn starts with (e.g. "The answer is"); the model continues it.
    """

    messages: tuple[tuple[str, str], ...]  # (role, content), role in {"system", "user", "assistant"}
    prefill: str = ""


Prompt = str | Chat


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probability of each continuation given the prompt (summed over the continuation's tokens)."""

    prompt: Prompt
    continuations: tuple[str, ...]
    kind: Kind = field(default="score", init=False)


@dataclass(frozen=True)
class GenerateRequest:
    """Sampled (temperature > 0) or greedy text. `seed` makes each request's sample reproducible alone."""

    prompt: Prompt
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    kind: Kind = field(default="generate", init=False)


@dataclass(frozen=True)
class FeaturesRequest:
    """Hidden state of the last prompt token at `layer` (negative counts from the top)."""

    prompt: Prompt
    layer: int = -1
    kind: Kind = field(default="features", init=False)


Request = ScoreRequest | GenerateRequest | FeaturesRequest


@dataclass
class ScoreResult:
    logprobs: list[float]  # one per continuation, natural log
    num_tokens: list[int]  # tokens in each continuation
    # How the values were read where not from the prompt's own tokens (`alignlab.models.answer_reading`):
    # {"path": "top-logprobs", "covered", "outside", "requests"} or {"path": "sampling", "counts", ...}
    reading: dict | None = None


@dataclass
class GenerateResult:
    text: str
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    # Why this request alone failed (finish_reason "error"), e.g. a prompt longer than the context window:
    # the rest of its batch completes; the engine caches those and then stops the run with this message.
    error: str | None = None


@dataclass
class FeaturesResult:
    vector: list[float]


@dataclass(frozen=True)
class EchoRequest:
    """Every token of `prompt` (text, tokenized as generation tokenizes it, or token ids as given) and then of
    `generated`, with log-probabilities: what an OpenAI server answers `echo` + `logprobs` with. `eos`: the
    generation ended with the end-of-sequence token, which is then scored as the last token (as vLLM does)."""

    prompt: str | tuple[int, ...]
    generated: str = ""
    eos: bool = False


@dataclass
class EchoResult:
    tokens: list[str]  # token texts; they join to the prompt's text plus `generated`
    logprobs: list[float | None]  # given the tokens before; None for the first
    top: list[dict[str, float] | None]  # the k most likely tokens at each position (None: not asked/first)
    prompt_tokens: int  # how many of `tokens` are the prompt's


Result = ScoreResult | GenerateResult | FeaturesResult


def request_key(request: Request) -> str:
    """A stable hash of everything that determines a request's answer (used by the response cache)."""
    payload = json.dumps(_jsonable(request), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _jsonable(request: Request) -> dict:
    data = asdict(request)
    data["kind"] = request.kind
    return data


def result_to_json(result: Result) -> dict:
    return asdict(result)


def result_from_json(kind: Kind, data: dict) -> Result:
    cls = {"score": ScoreResult, "generate": GenerateResult, "features": FeaturesResult}[kind]
    return cls(**data)


@runtime_checkable
class Backend(Protocol):
    """What the engine, the runner and the server need from a model.

    Methods take a batch and return results in the same order. Backends that cannot batch loop inside.
    `BackendBase` gives the optional members their defaults.
    """

    spec: str
    capabilities: frozenset[str]
    parallelism: int  # batches the engine may have in flight at once (Ray: one per worker)
    batch_invariant: bool  # answers the same whatever else is in their batch (see BackendBase)

    def fingerprint(self) -> str:
        """Identifies the weights and everything else that changes outputs (file sha256, revision, ...)."""
        ...

    def info(self) -> dict:
        """Facts for the run's config: backend name, parameter count if known, versions."""
        ...

    def check(self) -> None:
        """Fail now with a user error if the model cannot be used (e.g. a server that does not answer)."""
        ...

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]: ...

    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]: ...

    def features(self, requests: list[FeaturesRequest]) -> list[FeaturesResult]: ...

    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        """Each token of `text` with its log-probability given those before it (None for the first);
        what `alignlab serve` answers `echo` + `logprobs` with."""
        ...

    def top_token_logprobs(
        self, text: str, k: int
    ) -> list[tuple[str, float | None, dict[str, float] | None]]:
        """`token_logprobs` with, at each position but the first, the `k` most likely tokens and their
        log-probabilities (the completions API's `top_logprobs`, which clients such as lm-evaluation-harness
        read to tell whether a continuation is the greedy one)."""
        ...

    def echo_logprobs(self, requests: list[EchoRequest], k: int) -> list[EchoResult]:
        """Log-probabilities of prompts and what was generated after them, in one batch; with `k` > 0 the
        k most likely tokens at each position too. The default joins the texts and uses `top_token_logprobs`
        (or `token_logprobs`, without alternatives); a backend with a tokenizer keeps the prompt's tokens
        apart from the generated ones, takes token ids, and batches."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (for prompts sent as token ids)."""
        ...


class BackendBase:
    """Defaults for a backend's optional members."""

    parallelism = 1
    # True where an answer does not depend on the batch it was asked in (each request goes out on its own, to
    # a server): a resume then asks only what is not done. A local model's scores do depend on it.
    batch_invariant = False
    # False where scores are read through a chat endpoint (top logprobs, sampling): raw text cannot be scored
    scores_raw_prompts = True

    def raw_scoring_refusal(self) -> str | None:
        """Why raw-text prompts cannot be scored (None: they can); asked after `check()`."""
        return None if self.scores_raw_prompts else f"model {self.spec!r} scores through a chat endpoint"

    def check(self) -> None:
        return None

    def fit_error(self, request: Request) -> str | None:
        """Why `request` cannot fit this model's context window, before any work (None: it fits, or the
        window is not known here, as for a remote API)."""
        return None

    def features(self, requests: list[FeaturesRequest]) -> list[FeaturesResult]:
        raise UnsupportedRequest(f"model {getattr(self, 'spec', '?')!r} does not support features requests")

    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        raise UnsupportedRequest(f"model {getattr(self, 'spec', '?')!r} cannot give token logprobs")

    def top_token_logprobs(
        self, text: str, k: int
    ) -> list[tuple[str, float | None, dict[str, float] | None]]:
        raise UnsupportedRequest(f"model {getattr(self, 'spec', '?')!r} cannot give top token logprobs")

    def decode(self, ids: list[int]) -> str:
        raise UnsupportedRequest(f"model {getattr(self, 'spec', '?')!r} takes text prompts, not token ids")

    def echo_logprobs(self, requests: list[EchoRequest], k: int) -> list[EchoResult]:
        results = []
        for request in requests:
            if not isinstance(request.prompt, str):
                self.decode(list(request.prompt))  # raises: this backend has no tokenizer to hand
                raise UnsupportedRequest(f"model {self.spec!r} cannot score token-id prompts")
            text = request.prompt + request.generated
            rows = None
            if k > 0:
                try:
                    rows = self.top_token_logprobs(text, k)
                except UnsupportedRequest:
                    rows = None
            if rows is None:
                rows = [(t, lp, None) for t, lp in self.token_logprobs(text)]
            tokens = [str(t) for t, _, _ in rows]
            starts = token_offsets(tokens, text)
            results.append(
                EchoResult(
                    tokens=tokens,
                    logprobs=[None if lp is None else float(lp) for _, lp, _ in rows],
                    top=[top for _, _, top in rows],
                    prompt_tokens=sum(1 for start in starts if start < len(request.prompt))
                    if request.generated
                    else len(tokens),
                )
            )
        return results


def token_offsets(tokens: list[str], text: str) -> list[int]:
    """Character offset in `text` of each token, from the tokens' texts.

    A leading special token whose text is not in `text` (e.g. "<s>") is given width 0.
    """
    joined = "".join(tokens)
    shift = len(joined) - len(text) if len(joined) > len(text) and joined.endswith(text) else 0
    offsets, position = [], 0
    for token in tokens:
        offsets.append(max(0, position - shift))
        position += len(token)
    return offsets


def require(backend: Backend, kinds: set[str] | frozenset[str]) -> None:
    """Fail before any work starts if the backend lacks a request kind the experiment needs."""
    missing = sorted(set(kinds) - set(backend.capabilities))
    if missing:
        # a backend that found out why (e.g. a server without prompt logprobs) says so
        why = [getattr(backend, "unsupported", {}).get(kind) for kind in missing]
        reasons = "; ".join(w for w in why if w)
        raise UnsupportedRequest(
            f"model {backend.spec!r} does not support {', '.join(missing)} requests "
            f"(it supports: {', '.join(sorted(backend.capabilities))})" + (f": {reasons}" if reasons else "")
        )
