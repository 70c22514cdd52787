"""Text helpers the tokenizing backends (transformers, llama.cpp) share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alignlab.errors import AlignlabError


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


def split_continuations(
    encode: Callable[[str], list[int]], prompt: str, continuations: Sequence[str]
) -> tuple[list[int], list[list[int]]]:
    """One context for all continuations, and each continuation's tokens after it.

    Each continuation is split as `split_continuation` does; trailing spaces can make one split's context
    shorter than another's, so the shortest is the shared context and the rest moves into the
    continuations. No continuations: ([], []).
    """
    pairs = [split_continuation(encode, prompt, c) for c in continuations]
    if not pairs:
        return [], []
    context = min((p[0] for p in pairs), key=len)
    conts = [ctx[len(context) :] + cont for ctx, cont in pairs]
    if not context or any(not c for c in conts):
        raise AlignlabError("cannot score an empty prompt or an empty continuation")
    return context, conts


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """`text` up to the earliest stop string in it, or None when it holds none."""
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else None


def prompt_error(tokens: Sequence[int], limit: int | None, spec: str, window: str) -> str | None:
    """Why generation cannot start from `tokens`, in one line (None if it can): an empty prompt, or one that
    leaves no room in the context window (`limit` tokens, described by `window`) for a generated token."""
    if not tokens:
        return f"cannot generate from an empty prompt (model {spec!r})"
    if limit is not None and len(tokens) >= limit:
        return (
            f"prompt of {len(tokens)} tokens does not fit the context window of model {spec!r} "
            f"({window}, which must also hold the generated tokens)"
        )
    return None


class PromptTooLong(AlignlabError):
    """The `index`-th request a backend was given does not fit the model's context window. The engine knows
    which item and condition asked for it and names them (`Engine._answer`)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def check_fit(lengths: Sequence[int], limit: int | None, spec: str, window: str) -> None:
    """Raise PromptTooLong for the first request whose `lengths` entry (its prompt and continuation tokens,
    all that one forward pass holds) exceeds `limit`: before any work, never a tensor of the wrong size."""
    if limit is None:
        return
    for index, length in enumerate(lengths):
        if length > limit:
            raise PromptTooLong(
                index,
                f"prompt of {length} tokens does not fit the context window of model {spec!r} ({window})",
            )


def fit_error(
    request, encode: Callable[[str], list[int]], render: Callable, limit: int | None, spec: str, window: str
) -> str | None:
    """Why `request` cannot run in a context window of `limit` tokens (None: it can, or the limit is not
    known), in the words the backend's own check would use: a score holds its prompt and longest
    continuation, a generation its prompt and at least one new token, a features request its prompt."""
    kind = getattr(request, "kind", None)
    if limit is None or kind not in ("score", "generate", "features"):
        return None
    text = render(request.prompt)
    if kind == "generate":
        return prompt_error(encode(text), limit, spec, window)
    if kind == "score":
        context, conts = split_continuations(encode, text, request.continuations)
        length = len(context) + max(map(len, conts), default=0)
    else:
        length = len(encode(text))
    if length > limit:
        return f"prompt of {length} tokens does not fit the context window of model {spec!r} ({window})"
    return None
