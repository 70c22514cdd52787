"""Text helpers the tokenizing backends (transformers, llama.cpp) share."""

from __future__ import annotations

from collections.abc import Callable


def split_continuation(
    encode: Callable[[str], list[int]], prompt: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Context and continuation tokens, split as lm-evaluation-harness does: trailing spaces of the prompt
    move into the continuation, the whole text is encoded, and the context's tokens are cut off its front."""
    spaces = len(prompt) - len(prompt.rstrip())
    if spaces:
        prompt, continuation = prompt[:-spaces], prompt[-spaces:] + continuation
    context = encode(prompt)
    whole = encode(prompt + continuation)
    return context, whole[len(context) :]


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """`text` up to the earliest stop string in it, or None when it holds none."""
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else None
