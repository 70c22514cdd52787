"""A run's longest prompts checked against the model's context window before its first request: a prompt
too long for the model (many shots, a long item deep in the data) fails in seconds, naming its item, not
hours into the run. Only each task's first request can be known before the run; a later one (a prompt that
holds a generated chain of thought) is checked by the backend when it is asked."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from alignlab.engine.runner import owner_prefix, prompt_size
from alignlab.errors import AlignlabError
from alignlab.models.base import BackendBase, Request

# Per kind of request. Tokens per character differ little between a run's prompts (one template, one
# dataset), so the longest few by characters hold the longest by tokens.
LONGEST = 8


def checks_fit(backend) -> bool:
    """Whether the backend can tell a prompt's fit before running it (a local model knows its window)."""
    method = getattr(type(backend), "fit_error", None)
    return method is not None and method is not BackendBase.fit_error


def longest(firsts: Iterable[tuple[object, Request | list]], per_kind: int = LONGEST) -> list:
    """The `per_kind` longest requests of each kind among (task key, first request or list of them), as
    (key, request), longest first; ties go to the earlier task."""
    heaps: dict[str, list] = {}
    rank = 0  # every request's own place, so that ties never compare the requests themselves
    for key, asked in firsts:
        for request in asked if isinstance(asked, list | tuple) else [asked]:
            rank += 1
            heap = heaps.setdefault(request.kind, [])
            entry = (prompt_size(request), -rank, key, request)
            if len(heap) < per_kind:
                heapq.heappush(heap, entry)
            elif entry[:2] > heap[0][:2]:
                heapq.heapreplace(heap, entry)
    out = []
    for kind in sorted(heaps):
        out += [
            (key, request) for _, _, key, request in sorted(heaps[kind], key=lambda e: e[:2], reverse=True)
        ]
    return out


def check_fit(backend, firsts: Iterable[tuple[object, Request | list]], per_kind: int = LONGEST) -> None:
    """Raise AlignlabError, naming the item, for the first of the longest requests that cannot fit."""
    if not checks_fit(backend):
        return
    for key, request in longest(firsts, per_kind):
        error = backend.fit_error(request)
        if error:
            raise AlignlabError(f"{owner_prefix(key)}a {request.kind} request cannot run: {error}")
