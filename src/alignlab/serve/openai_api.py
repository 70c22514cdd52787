"""The OpenAI completions and chat-completions APIs: request bodies in, the batcher's work out, answers back.

Fields honoured: `prompt` as a string, a list of strings, token ids or a list of token-id lists; `n`; `stop`;
`seed` (choice i of a prompt samples with seed + i; no seed: a fresh random one per request); `temperature`,
`top_p`, `max_tokens`/`max_completion_tokens`; `echo`; `logprobs` (completions: an integer 0-5, the most
likely tokens per position as `top_logprobs`; chat: `logprobs: true` with `top_logprobs` 0-20). Refused with
400: streaming, `suffix`, and values out of range (`max_tokens` beyond the model's context window, where
known, included). Other fields are ignored, as vLLM ignores them.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from alignlab.models.base import Chat, EchoResult, GenerateRequest, token_offsets
from alignlab.serve.batcher import Echo, Generated, Generation

# Queues work on the model's thread; the caller keeps the futures, to cancel them if the client goes away.
Submit = Callable[[Generation | Echo], Future]
# vLLM's stand-in for a log-probability of minus infinity (JSON has no infinities)
NEG_INF = -9999.0

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- parsing ------------------------------------------------------------------------------------------


def check_common(body: dict, model_name: str, window: int | None = None) -> None:
    """Fields both endpoints share; `window`: the model's context window in tokens (None: unknown)."""
    model = body.get("model")
    if model is not None and model != model_name:
        raise BadRequest(f"model {model!r} is not served here (serving {model_name!r})", 404)
    if body.get("stream"):
        raise BadRequest("streaming is not supported")
    if body.get("suffix"):
        raise BadRequest("suffix is not supported")
    _check_window(body, window)


def _check_window(body: dict, window: int | None) -> None:
    """A max_tokens no generation can reach is refused: it was a client's typo that held the model for
    minutes (a running generation cannot be stopped when its client leaves)."""
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    value = body.get(name)
    if window is None or not isinstance(value, int) or isinstance(value, bool):
        return  # other wrong values are sampling()'s to refuse
    if value > window:
        raise BadRequest(f"{name} must be at most {window} (the model's context window), got {value}")


def _int(body: dict, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be an integer {bounds}, got {value!r}")
    return value


def sampling(body: dict, default_max_tokens: int) -> dict:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_completion_tokens", default_max_tokens)
    max_tokens = _int({"max_tokens": max_tokens}, "max_tokens", default_max_tokens, 0)
    stop = body.get("stop")
    if stop is None:
        stop = ()
    elif isinstance(stop, str):
        stop = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stop = tuple(s for s in stop if s)
    else:
        raise BadRequest("stop must be a string or a list of strings")
    numbers = {}
    for name, default in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is None:
            value = default
        # json.loads takes NaN and Infinity; neither is a sampling setting
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise BadRequest(f"{name} must be a finite non-negative number, got {value!r}")
        numbers[name] = float(value)
    if not 0 < numbers["top_p"] <= 1:
        raise BadRequest(f"top_p must be in (0, 1], got {numbers['top_p']}")
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbits(31)
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise BadRequest(f"seed must be an integer, got {seed!r}")
    return {"max_tokens": max_tokens, "stop": stop, "seed": seed, **numbers}


def completion_prompts(body: dict) -> list[str | tuple[int, ...]]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(_is_ids(p) for p in prompt):
            return [tuple(p) for p in prompt]
        if _is_ids(prompt):
            return [tuple(prompt)]
    raise BadRequest(
        "prompt must be a string, a list of strings, a list of token ids or a list of token-id lists"
    )


def _is_ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )


def chat_prompt(body: dict) -> Chat:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"messages[{i}]: role must be one of {', '.join(ROLES)}")
        turns.append((ROLES[message["role"]], _content(message.get("content"), i)))
    prefill = ""
    if body.get("continue_final_message"):
        if turns[-1][0] != "assistant":
            raise BadRequest("continue_final_message needs a final assistant message")
        prefill = turns.pop()[1]
    return Chat(messages=tuple(turns), prefill=prefill)


def _content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise BadRequest(f"messages[{index}]: only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)
    raise BadRequest(f"messages[{index}]: content must be a string or a list of text parts")


# ---- answering ----------------------------------------------------------------------------------------


async def _generate_all(
    submit: Submit, prompts: list, settings: dict, n: int
) -> list[tuple[Any, int, Generated]]:
    """(prompt, choice index, generated) for each prompt and each of its n choices, all queued at once."""
    jobs = []
    for p_index, prompt in enumerate(prompts):
        for i in range(n):
            request = GenerateRequest(prompt="", **{**settings, "seed": settings["seed"] + i})
            jobs.append((prompt, p_index * n + i, submit(Generation(prompt, request))))
    out = []
    for prompt, index, future in jobs:
        generated: Generated = await asyncio.wrap_future(future)
        if generated.error:  # e.g. a prompt longer than the context window: the client's to fix
            raise BadRequest(generated.error)
        out.append((prompt, index, generated))
    return out


def _echo_all(submit: Submit, generated: list, settings: dict, top: int) -> list[Future]:
    """Queue the logprobs of each (prompt, choice) with what was generated after it."""
    futures = []
    for prompt, _, gen in generated:
        eos = settings["max_tokens"] > 0 and _ended_by_eos(gen, settings["stop"])
        futures.append(submit(Echo(prompt, gen.text, eos, top)))
    return futures


def _envelope(prefix: str, kind: str, model_name: str, choices: list, usage: dict) -> dict:
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": usage,
    }


def _ended_by_eos(generated: Generated, stops: tuple[str, ...]) -> bool:
    # Without stop strings a "stop" finish can only be the end-of-sequence token, which vLLM scores as a
    # token; lm-evaluation-harness drops the last scored token, so it must be there.
    return generated.finish_reason == "stop" and not stops


async def completions(submit: Submit, body: dict, model_name: str) -> dict:
    prompts = completion_prompts(body)
    settings = sampling(body, default_max_tokens=16)
    n = _int(body, "n", 1, 1, 128)
    echo = bool(body.get("echo"))
    logprobs = body.get("logprobs")
    if logprobs is True:
        logprobs = 0
    if logprobs is not None and logprobs is not False:
        logprobs = _int({"logprobs": logprobs}, "logprobs", 0, 0, 5)
    want_logprobs = logprobs is not None and logprobs is not False
    generated = await _generate_all(submit, prompts, settings, n)
    echoes = _echo_all(submit, generated, settings, int(logprobs)) if want_logprobs else []
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for j, (_prompt, index, gen) in enumerate(generated):
        choice_logprobs = None
        if want_logprobs:
            echoed: EchoResult = await asyncio.wrap_future(echoes[j])
            choice_logprobs = _completion_logprobs(echoed, echo)
        text = (gen.prompt_text or "") + gen.text if echo else gen.text
        choices.append(
            {"index": index, "text": text, "logprobs": choice_logprobs, "finish_reason": gen.finish_reason}
        )
        completion_tokens += gen.completion_tokens
    seen = set()
    for _prompt, index, gen in generated:  # a prompt's tokens count once, not once per choice
        if index // n not in seen:
            seen.add(index // n)
            prompt_tokens += gen.prompt_tokens
    return _envelope("cmpl", "text_completion", model_name, choices, _usage(prompt_tokens, completion_tokens))


def _completion_logprobs(echoed: EchoResult, echo: bool) -> dict:
    text = "".join(echoed.tokens)
    offsets = token_offsets(echoed.tokens, text)
    first = 0 if echo else echoed.prompt_tokens
    tops = [None if t is None else {k: _finite(v) for k, v in t.items()} for t in echoed.top[first:]]
    return {
        "tokens": echoed.tokens[first:],
        "token_logprobs": [_finite(v) for v in echoed.logprobs[first:]],
        "text_offset": offsets[first:],
        "top_logprobs": tops if any(t is not None for t in tops) else None,
    }


async def chat_completions(submit: Submit, body: dict, model_name: str) -> dict:
    chat = chat_prompt(body)
    settings = sampling(body, default_max_tokens=256)
    n = _int(body, "n", 1, 1, 128)
    want_logprobs = bool(body.get("logprobs"))
    top = _int(body, "top_logprobs", 0, 0, 20)
    if top and not want_logprobs:
        raise BadRequest("top_logprobs needs logprobs: true")
    generated = await _generate_all(submit, [chat], settings, n)
    echoes = _echo_all(submit, generated, settings, top or 0) if want_logprobs else []
    choices = []
    for j, (_, index, gen) in enumerate(generated):
        entry: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": gen.text},
            "logprobs": None,
            "finish_reason": gen.finish_reason,
        }
        if want_logprobs:
            echoed: EchoResult = await asyncio.wrap_future(echoes[j])
            entry["logprobs"] = {"content": _chat_logprobs(echoed, top or 0)}
        choices.append(entry)
    usage = _usage(generated[0][2].prompt_tokens, sum(g.completion_tokens for _, _, g in generated))
    return _envelope("chatcmpl", "chat.completion", model_name, choices, usage)


def _chat_logprobs(echoed: EchoResult, top: int) -> list[dict]:
    out = []
    for i in range(echoed.prompt_tokens, len(echoed.tokens)):
        token, logprob = echoed.tokens[i], echoed.logprobs[i]
        alternatives = sorted((echoed.top[i] or {}).items(), key=lambda kv: -kv[1])[:top]
        out.append(
            {
                "token": token,
                "logprob": _finite(logprob),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": _finite(v), "bytes": list(t.encode())} for t, v in alternatives
                ],
            }
        )
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None else value if math.isfinite(value) else NEG_INF


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
