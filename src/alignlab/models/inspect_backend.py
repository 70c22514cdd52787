"""Any provider Inspect knows as a backend: `inspect:PROVIDER/MODEL[@URL]` (pip install 'alignlab[inspect]').

Inspect's model API (inspect-ai) carries the providers and their auth conventions (Anthropic, Google,
Bedrock, Azure, Together, Groq, Ollama, vLLM, any OpenAI-compatible server as `openai-api/SERVICE/MODEL`
with $SERVICE_BASE_URL and $SERVICE_API_KEY...): keys come from the environment variables Inspect reads,
never from the spec. `@URL` sets the base URL (Inspect's `base_url`) where a provider takes one.

Every request is a chat, so raw-text prompts are refused (use --format chat). Scores are read from the
answer's top logprobs where the provider gives them, else from sampled answers
(`alignlab.models.answer_reading`); `check()` finds out which, as the `openai:` backend does. A prefilled
assistant turn ("The answer is") is continued natively by Anthropic, and by OpenAI-compatible servers through
vLLM's `continue_final_message` (sent as `extra_body`); other providers are not asked to continue one, and
a prompt that needs it is refused in one line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models import answer_reading
from alignlab.models.base import (
    BackendBase,
    Chat,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)
from alignlab.models.openai import _public_url, _run_sync, _setting

CONTINUED_BY_EXTRA_BODY = ("openai-api", "vllm", "sglang")  # vLLM's continue_final_message
CONTINUED_NATIVELY = ("anthropic",)  # a final assistant message is continued


def _inspect():
    try:
        import inspect_ai.model as model_api
    except ImportError:
        raise AlignlabError("inspect: models need inspect-ai: pip install 'alignlab[inspect]'") from None
    return model_api


class InspectBackend(BackendBase):
    """A model reached through Inspect's model API. The constructor contacts nothing; `check()` does."""

    batch_invariant = True  # requests go out one by one; the server's own batching is beyond reach

    def __init__(
        self,
        spec: str,
        model: str,
        base_url: str | None = None,
        max_concurrency: int = 8,
        scoring: str = "auto",
        answer_samples: int = answer_reading.DEFAULT_SAMPLES,
        top_k: int = answer_reading.DEFAULT_TOP_K,
        **ignored: Any,
    ) -> None:
        if scoring not in ("auto", "top-logprobs", "sampling"):
            raise AlignlabError(
                f"--scoring {scoring} is not open to inspect: models (no prompt logprobs): choose "
                "top-logprobs or sampling"
            )
        self.spec = spec
        self.model = model
        self.provider = model.split("/", 1)[0]
        self._base = base_url
        self.base_url = _public_url(base_url) if base_url else None
        self.max_concurrency = int(max_concurrency)
        self.scoring_asked = scoring
        self.answer_samples = int(answer_samples)
        self.top_k = int(top_k)
        self.scoring = ""
        self.unsupported: dict[str, str] = {}
        self._can_continue = self.provider in CONTINUED_BY_EXTRA_BODY + CONTINUED_NATIVELY
        self._api = None
        self._checked = False

    def __repr__(self) -> str:
        return f"InspectBackend(spec={self.spec!r}, model={self.model!r})"

    scores_raw_prompts = False

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"score", "generate"}) - set(self.unsupported)

    def raw_scoring_refusal(self) -> str | None:
        return f"model {self.spec!r} is a chat model (Inspect): it cannot score raw text prompts; use --format chat"

    def fingerprint(self) -> str:
        self.check()
        facts = {
            "backend": "inspect",
            "model": self.model,
            "base_url": self.base_url,
            "scoring": self._facts(),
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()

    def info(self) -> dict:
        out: dict[str, Any] = {"backend": "inspect", "model": self.model, "provider": self.provider}
        if self.base_url:
            out["base_url"] = self.base_url
        if self.scoring:
            out["scoring"] = self._facts()
        try:
            import inspect_ai

            out["inspect_ai"] = inspect_ai.__version__
        except ImportError:
            pass
        return out

    def _facts(self) -> dict:
        facts: dict[str, Any] = {"path": self.scoring}
        if self.scoring == "top-logprobs":
            facts.update(top_k=self.top_k, continues_prefill=self._can_continue)
        elif self.scoring == "sampling":
            facts.update(samples=self.answer_samples, temperature=1.0)
        return facts

    # ---- Inspect --------------------------------------------------------------------------------------

    def _model(self):
        if self._api is None:
            api = _inspect()
            try:
                self._api = api.get_model(
                    self.model,
                    base_url=self._base,
                    memoize=False,
                    config=api.GenerateConfig(
                        max_connections=self.max_concurrency,
                        max_retries=_setting("max_retries", None),
                        timeout=max(1, round(_setting("timeout", None))),
                    ),
                )
            except Exception as exc:  # unknown provider, a missing key variable: Inspect's own words
                raise AlignlabError(f"inspect model {self.model!r}: {_first_line(exc)}") from None
        return self._api

    def _messages(self, chat: Chat) -> list:
        api = _inspect()
        kinds = {
            "system": api.ChatMessageSystem,
            "user": api.ChatMessageUser,
            "assistant": api.ChatMessageAssistant,
        }
        messages = [kinds[role](content=text) for role, text in chat.messages]
        if chat.prefill:
            if not self._can_continue:
                raise UnsupportedRequest(
                    f"model {self.spec!r}: Inspect's {self.provider} provider is not known to continue a "
                    f"prefilled assistant turn ({chat.prefill[-40:]!r})"
                )
            messages.append(api.ChatMessageAssistant(content=chat.prefill))
        return messages

    async def _generate(self, chat: Chat, **settings: Any):
        api = _inspect()
        if chat.prefill and self.provider in CONTINUED_BY_EXTRA_BODY:
            settings["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        try:
            return await self._model().generate(self._messages(chat), config=api.GenerateConfig(**settings))
        except (AlignlabError, UnsupportedRequest):
            raise
        except Exception as exc:
            raise AlignlabError(f"inspect model {self.model!r}: {_first_line(exc)}") from None

    def check(self) -> None:
        if self._checked:
            return
        self._model()
        _run_sync(self._choose_scoring)
        self._checked = True

    async def _choose_scoring(self) -> None:
        # one plain request, not retried: an unreachable server or a refused key fails here, in one line
        await self._generate(Chat((("user", "Say hello."),)), max_tokens=1, temperature=0.0, max_retries=0)
        if self.scoring_asked in ("auto", "top-logprobs") and await self._top_given():
            self.scoring = "top-logprobs"
        elif self.scoring_asked == "top-logprobs":
            self.unsupported["score"] = f"Inspect's {self.provider} provider gives no top logprobs here"
        else:
            self.scoring = "sampling"

    async def _top_given(self) -> bool:
        try:
            return bool(await self._next_top(Chat((("user", "Say hello."),))))
        except (AlignlabError, UnsupportedRequest):
            return False

    async def _next_top(self, chat: Chat) -> dict[str, float]:
        output = await self._generate(
            chat, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_k, seed=0
        )
        choice = output.choices[0] if output.choices else None
        content = choice.logprobs.content if choice is not None and choice.logprobs else []
        if not content:
            return {}
        first = content[0]
        top = {t.token: float(t.logprob) for t in first.top_logprobs or []}
        top.setdefault(first.token, float(first.logprob))
        return top

    async def _sample(self, chat: Chat, n: int, tokens: int) -> tuple[list[str], int]:
        texts: list[str] = []
        requests = 0
        seed = int(hashlib.sha256(repr(chat).encode()).hexdigest()[:7], 16)
        while len(texts) < n:
            output = await self._generate(
                chat,
                max_tokens=tokens,
                temperature=1.0,
                top_p=1.0,
                num_choices=min(n - len(texts), 128),
                seed=seed + len(texts),
            )
            requests += 1
            got = [c.message.text for c in output.choices]
            if not got:
                raise AlignlabError(f"inspect model {self.model!r} answered with no choices")
            texts.extend(got[: n - len(texts)])
        return texts, requests

    # ---- Backend protocol -------------------------------------------------------------------------------

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        if not requests:
            return []
        self.check()
        if "score" in self.unsupported:
            raise UnsupportedRequest(f"model {self.spec!r} cannot score: {self.unsupported['score']}")
        for request in requests:
            if not isinstance(request.prompt, Chat):
                raise UnsupportedRequest(
                    f"model {self.spec!r} is a chat model (Inspect): it cannot score a raw text prompt; "
                    "use --format chat"
                )

        async def read_all() -> list[ScoreResult]:
            limit = asyncio.Semaphore(self.max_concurrency)

            async def one(request: ScoreRequest) -> ScoreResult:
                async with limit:
                    if self.scoring == "top-logprobs":
                        return await answer_reading.read_top(
                            request.prompt,
                            request.continuations,
                            self._next_top,
                            can_continue=self._can_continue,
                            spec=self.spec,
                        )
                    return await answer_reading.read_samples(
                        request.prompt, request.continuations, self._sample, n=self.answer_samples
                    )

            return list(await asyncio.gather(*(one(r) for r in requests)))

        return _run_sync(read_all)

    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        if not requests:
            return []
        self.check()
        for request in requests:
            if not isinstance(request.prompt, Chat):
                raise UnsupportedRequest(
                    f"model {self.spec!r} is a chat model (Inspect): it cannot continue a raw text prompt; "
                    "use --format chat"
                )

        async def generate_all() -> list[GenerateResult]:
            limit = asyncio.Semaphore(self.max_concurrency)

            async def one(request: GenerateRequest) -> GenerateResult:
                settings: dict[str, Any] = {
                    "max_tokens": request.max_tokens,
                    "temperature": request.temperature,
                    "top_p": request.top_p,
                    "seed": request.seed,
                }
                if request.stop:
                    settings["stop_seqs"] = list(request.stop)
                async with limit:
                    output = await self._generate(request.prompt, **settings)
                choice = output.choices[0] if output.choices else None
                text = choice.message.text if choice is not None else ""
                finish = "length" if choice is not None and choice.stop_reason == "max_tokens" else "stop"
                return GenerateResult(text=text, finish_reason=finish)

            return list(await asyncio.gather(*(one(r) for r in requests)))

        return _run_sync(generate_all)


def _first_line(exc: BaseException) -> str:
    """Inspect's own words for a failure, the last try's where it retried (tenacity's RetryError)."""
    attempt = getattr(exc, "last_attempt", None)
    inner = attempt.exception() if attempt is not None and hasattr(attempt, "exception") else None
    if inner is not None:
        return f"{type(inner).__name__}: {_first_line(inner)}"
    lines = [line.strip() for line in re.sub(r"\[/?[a-z ]+\]", "", str(exc)).splitlines() if line.strip()]
    return ("; ".join(lines) or type(exc).__name__)[:300]  # its rich markup ([bold]...) dropped
