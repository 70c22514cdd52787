"""Continuous batched generation for the transformers backend.

`transformers.generate` over a left-padded batch keeps a finished row's slot until the longest row ends and
copies the whole KV cache at every step (`torch.cat` in its dynamic cache). Here, instead:

- rows leave the batch the step they finish, and waiting requests are prefilled into the freed slots
  (continuous batching), up to `width` rows at once;
- requests with the same prompt tokens (K samples of one question) prefill that prompt once and copy its
  keys/values into each of their rows (prefix sharing);
- the KV cache grows into preallocated buffers (`_GrowingLayer`), so a step writes one column instead of
  copying the cache;
- sampling is one vectorised step over the batch; only the Gumbel noise is drawn row by row, each row from
  its own generator seeded by its request, so a request's sample depends on its prompt and seed and not
  on its neighbours (to the extent the arithmetic itself does not: see the backend's docstring).

Rows are left-aligned to a shared column count: a row admitted later is padded on the left, and columns
that no row needs any more are dropped. Positions are per row, so padding never shifts a row's tokens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from alignlab.models.base import GenerateRequest, GenerateResult
from alignlab.models.text import cut_at_stop, prompt_error

_TRIM_AT = 64  # drop dead leading columns once this many have piled up (copying costs; masking is free)
_TAIL_TOKENS = 16  # stop strings are looked for in the decoded tail of this many tokens (+ the stop's length)


class _GrowingLayer(DynamicLayer):
    """One layer's keys/values in a buffer with spare columns; `keys`/`values` are views of the used part."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.used = 0
        self.buffer_k = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
        self.buffer_v = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.used + n > self.buffer_k.shape[-2]:
            self._resize(self.used + n + max(64, self.used // 2))
        self.buffer_k[:, :, self.used : self.used + n] = key_states
        self.buffer_v[:, :, self.used : self.used + n] = value_states
        self.used += n
        self.keys = self.buffer_k[:, :, : self.used]
        self.values = self.buffer_v[:, :, : self.used]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return getattr(self, "used", 0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self.buffer_k = self.buffer_k.index_select(0, indices)
            self.buffer_v = self.buffer_v.index_select(0, indices)
            self.keys = self.buffer_k[:, :, : self.used]
            self.values = self.buffer_v[:, :, : self.used]

    def _resize(self, capacity: int) -> None:
        shape = (*self.buffer_k.shape[:2], capacity, self.buffer_k.shape[3])
        new_k, new_v = self.buffer_k.new_zeros(shape), self.buffer_v.new_zeros(shape)
        new_k[:, :, : self.used] = self.buffer_k[:, :, : self.used]
        new_v[:, :, : self.used] = self.buffer_v[:, :, : self.used]
        self.buffer_k, self.buffer_v = new_k, new_v

    def set_used(self, keys: torch.Tensor, values: torch.Tensor, spare: int) -> None:
        """Replace the contents (rows x heads x columns x dim) and leave `spare` empty columns after."""
        self.used = keys.shape[-2]
        shape = (*keys.shape[:2], self.used + spare, keys.shape[3])
        self.buffer_k, self.buffer_v = keys.new_zeros(shape), values.new_zeros(shape)
        self.buffer_k[:, :, : self.used] = keys
        self.buffer_v[:, :, : self.used] = values
        self.keys = self.buffer_k[:, :, : self.used]
        self.values = self.buffer_v[:, :, : self.used]


def _new_cache(config) -> DynamicCache:
    cache = DynamicCache(config=config)
    cache.layers = [_GrowingLayer() for _ in cache.layers]
    return cache


@dataclass
class _Row:
    index: int  # the request's position in the caller's list
    request: GenerateRequest
    prompt_len: int
    generator: torch.Generator | None  # None: greedy
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None


@dataclass
class _Batch:
    """The running rows, their KV cache, and which of its columns hold each row's tokens."""

    rows: list[_Row]
    cache: DynamicCache
    mask: torch.Tensor  # rows x columns, 1 where a row has a token

    @property
    def columns(self) -> int:
        return self.mask.shape[1]


class ContinuousGenerator:
    """Generates a list of requests with at most `width` rows in flight."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        width: int,
        prefill_rows: int,
        eos_ids: set[int],
        pad_id: int,
        max_context: int | None,
        spec: str,
        cache_kwarg: str = "past_key_values",
        last_logits_only: bool = True,
        share_prefixes: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.width = max(1, width)
        self.prefill_rows = max(1, prefill_rows)
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.max_context = max_context
        self.spec = spec
        self.device = model.device
        self.cache_kwarg = cache_kwarg  # transformers 5.x renames `past_key_values` to `cache`
        self.last_logits = {"logits_to_keep": 1} if last_logits_only else {}
        self.share_prefixes = share_prefixes  # off: each request prefills its own prompt (the benchmark's)
        self.prompts_prefilled = 0  # unique prompts run through the model (prefix sharing shows here)

    @torch.inference_mode()
    def run(self, prompts: list[list[int]], requests: list[GenerateRequest]) -> list[GenerateResult]:
        results: list[GenerateResult | None] = [None] * len(requests)
        jobs: dict[object, tuple[list[int], list[int]]] = {}  # prompt -> (its tokens, request indices)
        for i, (tokens, request) in enumerate(zip(prompts, requests, strict=True)):
            error = prompt_error(tokens, self.max_context, self.spec, f"{self.max_context} positions")
            if error:
                results[i] = GenerateResult(text="", finish_reason="error", error=error)
            elif request.max_tokens <= 0:
                results[i] = GenerateResult(text="", finish_reason="length")
            else:
                key = tuple(tokens) if self.share_prefixes else i
                jobs.setdefault(key, (tokens, []))[1].append(i)
        # Longest prompts first: rows of similar length share a prefill with little padding.
        queue = deque(sorted(jobs.values(), key=lambda job: -len(job[0])))
        batch: _Batch | None = None
        while queue or (batch is not None and batch.rows):
            free = self.width - (len(batch.rows) if batch else 0)
            # Refill once a quarter of the slots is free (or nothing runs): a prefill per finished row
            # would cost a forward pass each.
            if queue and (batch is None or not batch.rows or free >= max(1, self.width // 4)):
                admitted = self._admit(queue, free, requests)
                batch = self._merge(batch, self._prefill(admitted, requests))
            else:
                self._step(batch)
            batch = self._retire(batch, results)
        return results  # type: ignore[return-value]

    def _admit(self, queue: deque, free: int, requests) -> list[tuple[list[int], list[int]]]:
        """Jobs (prompt, request indices) for up to `free` rows from at most `prefill_rows` prompts."""
        admitted = []
        while queue and free > 0 and len(admitted) < self.prefill_rows:
            tokens, members = queue.popleft()
            take, rest = members[:free], members[free:]
            if rest:
                queue.appendleft((tokens, rest))  # the rest of its samples wait for slots
            admitted.append((tokens, take))
            free -= len(take)
        return admitted

    def _prefill(self, jobs, requests) -> _Batch:
        """Run each admitted prompt once, copy its cache into a row per request, sample first tokens."""
        ids, mask = left_pad([tokens for tokens, _ in jobs], self.pad_id)
        cache = _new_cache(self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **{self.cache_kwarg: cache},
            **self.last_logits,
        )
        self.prompts_prefilled += len(jobs)
        owner = torch.tensor([j for j, (_, members) in enumerate(jobs) for _ in members], device=self.device)
        rows = [
            _Row(
                index=i,
                request=requests[i],
                prompt_len=len(tokens),
                generator=_generator(requests[i]),
            )
            for tokens, members in jobs
            for i in members
        ]
        if len(rows) != len(jobs):
            cache.batch_select_indices(owner)
        batch = _Batch(rows=rows, cache=cache, mask=mask[owner.cpu()])
        self._take(batch, out.logits[:, -1, :].index_select(0, owner))
        return batch

    def _step(self, batch: _Batch) -> None:
        """Feed each row's newest token; sample the next."""
        last = torch.tensor([[row.tokens[-1]] for row in batch.rows], dtype=torch.long)
        positions = torch.tensor([[row.prompt_len + len(row.tokens) - 1] for row in batch.rows])
        batch.mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long)], dim=1)
        out = self.model(
            input_ids=last.to(self.device),
            attention_mask=batch.mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **{self.cache_kwarg: batch.cache},
        )
        self._take(batch, out.logits[:, -1, :])

    def _take(self, batch: _Batch, logits: torch.Tensor) -> None:
        for row, token in zip(batch.rows, sample(logits, batch.rows), strict=True):
            request = row.request
            if token in self.eos_ids:
                row.finish = "stop"
                continue
            row.tokens.append(token)
            if request.stop and self._hit_stop(row):
                row.finish = "stop"
            elif len(row.tokens) >= request.max_tokens:
                row.finish = "length"
            elif self.max_context is not None and row.prompt_len + len(row.tokens) >= self.max_context:
                row.finish = "length"  # the context window is full: as if max_tokens were reached

    def _hit_stop(self, row: _Row) -> bool:
        tail = _TAIL_TOKENS + max(len(s) for s in row.request.stop)
        text = self.tokenizer.decode(row.tokens[-tail:], skip_special_tokens=True)
        return any(s and s in text for s in row.request.stop)

    def _retire(self, batch: _Batch | None, results: list) -> _Batch | None:
        """Hand finished rows their results and drop them (and columns no row needs) from the batch."""
        if batch is None:
            return None
        keep = []
        for k, row in enumerate(batch.rows):
            if row.finish is None:
                keep.append(k)
                continue
            text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
            finish = row.finish
            cut = cut_at_stop(text, row.request.stop)
            if cut is not None:
                text, finish = cut, "stop"
            results[row.index] = GenerateResult(text=text, finish_reason=finish)
        if len(keep) == len(batch.rows):
            return batch
        if not keep:
            return None
        index = torch.tensor(keep)
        batch.rows = [batch.rows[k] for k in keep]
        batch.mask = batch.mask.index_select(0, index)
        batch.cache.batch_select_indices(index.to(self.device))
        dead = int(batch.mask.any(dim=0).long().argmax())  # leading columns no remaining row uses
        if dead >= _TRIM_AT:
            self._drop_columns(batch, dead)
        return batch

    def _drop_columns(self, batch: _Batch, dead: int) -> None:
        batch.mask = batch.mask[:, dead:]
        for layer in batch.cache.layers:
            layer.set_used(layer.keys[:, :, dead:], layer.values[:, :, dead:], spare=64)

    def _merge(self, batch: _Batch | None, new: _Batch) -> _Batch:
        """One batch of both sets of rows, the shorter side padded on the left."""
        if batch is None or not batch.rows:
            return new
        columns = max(batch.columns, new.columns)
        masks = [_pad_left(part.mask, columns) for part in (batch, new)]
        for mine, theirs in zip(batch.cache.layers, new.cache.layers, strict=True):
            keys = torch.cat([_pad_left(mine.keys, columns, dim=2), _pad_left(theirs.keys, columns, dim=2)])
            values = torch.cat(
                [_pad_left(mine.values, columns, dim=2), _pad_left(theirs.values, columns, dim=2)]
            )
            mine.set_used(keys, values, spare=64)
        batch.rows = batch.rows + new.rows
        batch.mask = torch.cat(masks)
        return batch


def sample(logits: torch.Tensor, rows: list[_Row]) -> list[int]:
    """One token per row: argmax at temperature 0; else argmax(logits / T + Gumbel noise) from the row's
    own generator (a draw from softmax(logits / T)), inside the top-p nucleus when top_p < 1.

    The noise is drawn exactly as the backend's earlier `SeededSampler` drew it: one uniform per vocabulary
    entry per step from `torch.Generator().manual_seed(seed)`.
    """
    logits = logits.float().cpu()
    greedy = logits.argmax(dim=-1)
    sampled = [k for k, row in enumerate(rows) if row.generator is not None]
    if not sampled:
        return greedy.tolist()
    index = torch.tensor(sampled)
    temperature = torch.tensor([rows[k].request.temperature for k in sampled])[:, None]
    scores = logits.index_select(0, index) / temperature
    top_p = torch.tensor([rows[k].request.top_p for k in sampled])[:, None]
    if bool((top_p < 1.0).any()):
        ordered, order = scores.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        drop_sorted = (probs.cumsum(-1) - probs >= top_p) & (top_p < 1.0)  # the crossing token stays in
        scores = scores.masked_fill(
            torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), float("-inf")
        )
    uniform = torch.empty_like(scores)
    for j, k in enumerate(sampled):
        torch.rand(scores.shape[-1], generator=rows[k].generator, out=uniform[j])
    noise = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
    picks = greedy.clone()
    picks[index] = (scores + noise).argmax(dim=-1)
    return picks.tolist()


def left_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows padded on the left to one width, and their attention mask (1 on real tokens)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def _generator(request: GenerateRequest) -> torch.Generator | None:
    if request.temperature <= 0:
        return None
    return torch.Generator().manual_seed(int(request.seed) % (2**63))


def _pad_left(tensor: torch.Tensor, columns: int, dim: int = 1) -> torch.Tensor:
    missing = columns - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
