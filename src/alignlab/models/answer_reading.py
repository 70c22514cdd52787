"""Answers' probabilities where an API gives no prompt logprobs: read from the next token's top logprobs, or
counted in sampled answers.

Two paths, shared by every HTTP backend (`openai:`, `inspect:`); the transport is a callable they are given.

Top logprobs (OpenAI's chat API, most OpenAI-compatible servers): ask for one generated token with its `k`
most likely alternatives (OpenAI's maximum is 20) after the prompt, and read each answer's probability from
that distribution. An answer of several tokens (" (a)" is " (", "a", ")") is read a token at a time where the
API continues a prefilled assistant turn (vLLM's `continue_final_message`, `alignlab serve`): the prompt's
prefill grows by the token read, and the next request reads the next one. At each step the longest listed
token that starts what is left of the answer is taken, which is the tokenizer's own split in the usual case
(when it is not, the two paths differ slightly: the tests state the tolerance). An answer whose next piece
is not in the top-k is *bounded*, never zero: its probability is at most that of the least likely listed
token and at most the mass the list leaves over; that bound is its log-probability, and it is flagged.

Sampling (Anthropic's API, gateways that drop logprobs): N answers at temperature 1, a few tokens each; an
answer's probability is the share of samples that start with it (the longest answer that matches wins, so
" a" does not count " an"). The share's sampling error is carried into every metric's interval by the
runner (`alignlab.engine.sampling_error`). An answer no sample gave has probability 0 (log-probability
`ZERO_LOGPROB`, the stand-in vLLM writes for minus infinity, which JSON can hold).

As everywhere in alignlab, trailing whitespace of the prompt belongs to the answer: a prefill "Answer: "
with " Yes" is read as "Answer:" then "  Yes".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from alignlab.errors import UnsupportedRequest
from alignlab.models.base import Chat, ScoreResult

PATHS = ("prompt-logprobs", "top-logprobs", "sampling")
ZERO_LOGPROB = -9999.0
DEFAULT_TOP_K = 20  # OpenAI's chat API gives at most 20 alternatives per position
DEFAULT_SAMPLES = 20
MAX_SAMPLE_TOKENS = 16  # an answer is a few tokens; a sample longer than its longest answer is not needed

# (chat whose prefill is the text so far) -> {token text: log-probability} of the next token's top-k
NextTop = Callable[[Chat], Awaitable[dict[str, float]]]
# (chat, how many answers, tokens each) -> (the sampled texts after the prefill, requests it took)
Sample = Callable[[Chat, int, int], Awaitable[tuple[list[str], int]]]


def split_whitespace(chat: Chat, continuations: Sequence[str]) -> tuple[Chat, list[str]]:
    """The chat with its prefill's trailing whitespace moved into each continuation."""
    base = chat.prefill.rstrip()
    moved = chat.prefill[len(base) :]
    return replace(chat, prefill=base), [moved + c for c in continuations]


def upper_bound(top: dict[str, float]) -> float:
    """Log of the most a token outside `top` can have: the least listed probability, and the mass left."""
    if not top:
        return 0.0
    left = 1.0 - sum(math.exp(v) for v in top.values())
    return min(min(top.values()), math.log(left)) if left > 0 else ZERO_LOGPROB  # the list holds it all


async def read_top(
    chat: Chat, continuations: Sequence[str], next_top: NextTop, *, can_continue: bool, spec: str
) -> ScoreResult:
    """Each continuation's log-probability read from top-k distributions, with the coverage of the read:
    `covered` the least top-k mass at any position read, `outside` the answers whose value is a bound.

    `next_top` is asked once per distinct text (answers sharing a prefix share its requests)."""
    base, conts = split_whitespace(chat, continuations)
    if base.prefill and not can_continue:
        raise UnsupportedRequest(
            f"model {spec!r} cannot continue a prefilled assistant turn ({base.prefill[-40:]!r}), which "
            "reading answers from top logprobs needs here: use a server that honours continue_final_message "
            "(vLLM, `alignlab serve`) or --scoring sampling"
        )
    asked: dict[str, dict[str, float]] = {}

    async def top_after(text: str) -> dict[str, float]:
        if text not in asked:
            asked[text] = await next_top(replace(base, prefill=base.prefill + text))
        return asked[text]

    logprobs, outside, counts = [], [], []
    for continuation in conts:
        total, read, flagged, steps = 0.0, "", False, 0
        while read != continuation:
            if read and not can_continue:
                raise UnsupportedRequest(
                    f"answer {continuation!r} needs more than one token and model {spec!r} cannot continue a "
                    "prefilled turn to read the next: use a server that does (vLLM, `alignlab serve`) or "
                    "--scoring sampling"
                )
            top = await top_after(read)
            rest = continuation[len(read) :]
            pieces = [t for t in top if t and rest.startswith(t)]
            if not pieces:
                total += upper_bound(top)
                flagged = True
                break
            piece = max(pieces, key=len)
            total += top[piece]
            read += piece
            steps += 1
        logprobs.append(total)
        outside.append(flagged)
        counts.append(max(steps, 1))
    masses = [sum(math.exp(v) for v in top.values()) for top in asked.values()]
    return ScoreResult(
        logprobs=logprobs,
        num_tokens=counts,
        reading={
            "path": "top-logprobs",
            "covered": min(masses) if masses else 0.0,
            "outside": outside,
            "requests": len(asked),
        },
    )


def longest_match(text: str, continuations: Sequence[str]) -> int | None:
    """Index of the longest continuation `text` starts with (None if none does)."""
    found = [i for i, c in enumerate(continuations) if c and text.startswith(c)]
    return max(found, key=lambda i: len(continuations[i])) if found else None


def sample_tokens(continuations: Sequence[str]) -> int:
    """Tokens to sample: enough for the longest answer (a token holds at least one character)."""
    return max(1, min(MAX_SAMPLE_TOKENS, max((len(c) for c in continuations), default=1)))


async def read_samples(chat: Chat, continuations: Sequence[str], sample: Sample, *, n: int) -> ScoreResult:
    """Each continuation's log-probability as the log of its share of `n` sampled answers; the counts are
    kept (`reading.counts`, with the samples matching no answer in `unmatched`) for the interval."""
    base, conts = split_whitespace(chat, continuations)
    texts, requests = await sample(base, n, sample_tokens(conts))
    counts = [0] * len(conts)
    for text in texts:
        index = longest_match(text, conts)
        if index is not None:
            counts[index] += 1
    drawn = len(texts)
    return ScoreResult(
        logprobs=[math.log(c / drawn) if c else ZERO_LOGPROB for c in counts],
        num_tokens=[1] * len(conts),
        reading={
            "path": "sampling",
            "counts": counts,
            "samples": drawn,
            "unmatched": drawn - sum(counts),
            "requests": requests,
        },
    )
