"""Continuous batched generation for the llama.cpp backend.

A second llama.cpp context, made on the first generate call, holds `slots` sequences, each in its own KV
stream of the backend's n_ctx cells (kv_unified=False). Every step decodes the next token of every running
sequence in one llama_decode. A sequence that finishes frees its slot and the next waiting request starts
there (continuous batching). Requests with identical prompt tokens (K samples of one question) decode
that prompt once; the other slots get a copy of its keys/values (`llama_memory_seq_cp`), and a slot whose
sample finished keeps the prompt for the next sample of the same question.

A request's text depends only on its prompt and seed, not on the requests it runs with:
- with one KV stream per sequence, a sequence's logits are bitwise the same whatever else is decoded in
  the step (a unified cache changes them by up to ~1.0);
- a prompt is decoded on its own, in the chunks the scoring path uses (`LlamaCppBackend._plan`), with
  flash attention off as in the scoring context, so the logits are the scoring path's, bit for bit
  (greedy text equals argmax over `_eval`'s logits: tests/test_llamacpp_generate.py);
- a copied prompt is the same memory cell for cell; sampling is `_choose` with one generator per request.

llama.cpp splits a batch over several KV streams into one micro-batch per run of consecutive sequence
ids, i.e. one pass over the weights per run. So running sequences are kept packed at the low slots: a new
request takes the lowest free slot, and when rows finish with nobody waiting, the highest running
sequence is copied down into the gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from alignlab.errors import AlignlabError
from alignlab.models.base import GenerateRequest, GenerateResult
from alignlab.models.llamacpp_load import free_side_context
from alignlab.models.llamacpp_sampling import choose_token
from alignlab.models.text import cut_at_stop, prompt_error


@dataclass(eq=False)
class _Prompt:
    """Requests that share one prompt's tokens, and the logits after its last token."""

    tokens: list[int]
    waiting: deque = field(default_factory=deque)
    logits: np.ndarray | None = None  # kept while rows wait, for their first token


@dataclass(eq=False)
class _Row:
    """One request being generated, in one slot."""

    index: int  # position in the caller's list
    request: GenerateRequest
    prompt: _Prompt
    rng: np.random.Generator | None
    stops: list[str]
    slot: int = -1
    length: int = 0  # tokens of its sequence: prompt + sampled (the last one not decoded yet)
    generated: int = 0
    text: bytes = b""
    next_token: int = -1  # sampled, to be decoded in the next step
    end_of_turn: bool = False


class BatchedGenerator:
    """A llama.cpp context for generation: `slots` sequences decoded together."""

    def __init__(self, backend, slots: int) -> None:
        lib = backend._lib
        self.lib = lib
        self.backend = backend
        self.llama = backend._llama  # keeps the model alive as long as this context
        self.slots = max(1, min(int(slots), lib.llama_max_parallel_sequences()))
        self.n_ctx = backend._n_ctx  # per sequence, as for scoring
        self.n_batch = max(self.slots, backend._n_batch)
        params = lib.llama_context_default_params()
        params.n_ctx = self.slots * self.n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = self.slots
        params.kv_unified = False
        # as llama-cpp-python makes the scoring context (flash_attn=False): the same logits
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        threads = backend._llama.n_threads_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):
            self.ctx = lib.llama_init_from_model(backend._llama.model, params)
        if not self.ctx:
            raise AlignlabError(
                f"llama.cpp cannot make a generation context for {self.slots} sequences of "
                f"{self.n_ctx} tokens on {backend.path} (try a smaller gen_width or n_ctx)"
            )
        self.batch = lib.llama_batch_init(self.n_batch, 0, 1)
        self.memory = lib.llama_get_memory(self.ctx)
        self.n_vocab = backend._n_vocab
        # counters, for tests and benchmarks
        self.prompt_tokens_decoded = 0
        self.steps = 0
        self.stream_copies = 0
        self._reset()

    def close(self) -> None:
        free_side_context(self)

    __del__ = close

    def _reset(self) -> None:
        self.running: dict[int, _Row] = {}
        self.free: set[int] = set(range(self.slots))
        self.holds: dict[int, _Prompt] = {}  # slot -> the prompt its KV starts with
        self.queue: deque[_Prompt] = deque()
        self.results: dict[int, GenerateResult] = {}

    # --- the loop -------------------------------------------------------------------------------
    def run(
        self, requests: list[GenerateRequest], prompts: list[list[int]], share_prefixes: bool = True
    ) -> list[GenerateResult]:
        """Generate for each request from its prompt tokens; results in input order. A request whose
        prompt cannot be generated from fails alone (finish_reason "error"). Without `share_prefixes`,
        every request decodes its own prompt (a baseline for benchmarks; the texts are the same)."""
        self._reset()
        self.lib.llama_memory_clear(self.memory, True)
        by_tokens: dict[tuple[int, ...] | int, _Prompt] = {}
        for index, (request, tokens) in enumerate(zip(requests, prompts, strict=True)):
            window = f"n_ctx={self.n_ctx} per sequence; pass a larger n_ctx"
            error = prompt_error(tokens, self.n_ctx, self.backend.spec, window)
            if error is not None:
                self.results[index] = GenerateResult(text="", finish_reason="error", error=error)
                continue
            if request.max_tokens <= 0:
                self.results[index] = GenerateResult(text="", finish_reason="length")
                continue
            key = tuple(tokens) if share_prefixes else index
            prompt = by_tokens.get(key)
            if prompt is None:
                prompt = by_tokens[key] = _Prompt(list(tokens))
                self.queue.append(prompt)
            rng = np.random.default_rng(int(request.seed) % (2**63)) if request.temperature > 0 else None
            stops = [s for s in request.stop if s]
            prompt.waiting.append(_Row(index, request, prompt, rng, stops))
        try:
            while True:
                self._admit()
                if not self.running:
                    break
                self._pack()
                self._step()
        finally:
            self.lib.llama_memory_clear(self.memory, True)
        results = [self.results[i] for i in range(len(requests))]
        self._reset()
        return results

    def _admit(self) -> None:
        """Start waiting requests in the free slots (a row may finish at once and free its slot again)."""
        while self.free and self.queue:
            prompt = self.queue[0]
            row = prompt.waiting.popleft()
            if not prompt.waiting:
                self.queue.popleft()
            holders = [s for s in self.free if self.holds.get(s) is prompt]
            slot = min(holders) if holders else min(self.free)
            self._place(row, slot)
            logits = prompt.logits
            if not prompt.waiting:
                prompt.logits = None  # the last row of its prompt: no one else needs them
            self._take(row, logits)

    def _place(self, row: _Row, slot: int) -> None:
        """Make `slot`'s KV hold the row's prompt: kept from a finished sample, copied, or decoded."""
        lib, prompt = self.lib, row.prompt
        n = len(prompt.tokens)
        if self.holds.get(slot) is not prompt:
            source = next((s for s, p in self.holds.items() if p is prompt and s != slot), None)
            if source is None:
                lib.llama_memory_seq_rm(self.memory, slot, -1, -1)
                prompt.logits = self._decode_prompt(prompt.tokens, slot)
            else:
                # Between streams llama.cpp copies whole streams (only p0 = p1 = -1 is allowed);
                # the source's generated tokens are then dropped.
                lib.llama_memory_seq_cp(self.memory, source, slot, -1, -1)
                self.stream_copies += 1
        lib.llama_memory_seq_rm(self.memory, slot, n, -1)
        self.holds[slot] = prompt
        self.free.discard(slot)
        self.running[slot] = row
        row.slot, row.length = slot, n

    def _take(self, row: _Row, logits: np.ndarray) -> None:
        """Sample the row's next token from `logits`; finish the row or leave the token to be decoded."""
        request = row.request
        token = choose_token(logits, request.temperature, request.top_p, row.rng)
        if self.lib.llama_vocab_is_eog(self.backend._vocab, token):
            row.end_of_turn = True
            self._finish(row)
            return
        row.text += self.backend._piece(token)
        row.generated += 1
        row.length += 1
        row.next_token = token
        if (
            row.stops and any(s in row.text.decode("utf-8", errors="ignore") for s in row.stops)
        ) or row.generated >= request.max_tokens:
            self._finish(row)
        elif row.length >= self.n_ctx:
            self._finish(row)  # its context is full: as if max_tokens were reached

    def _finish(self, row: _Row) -> None:
        text = row.text.decode("utf-8", errors="replace")
        reason = "stop" if row.end_of_turn else "length"
        cut = cut_at_stop(text, row.request.stop)
        if cut is not None:
            text, reason = cut, "stop"
        self.results[row.index] = GenerateResult(text=text, finish_reason=reason)
        slot = row.slot
        del self.running[slot]
        self.free.add(slot)
        if row.prompt.waiting:  # keep the prompt for the next sample of it
            self.lib.llama_memory_seq_rm(self.memory, slot, len(row.prompt.tokens), -1)
        else:
            self.lib.llama_memory_seq_rm(self.memory, slot, -1, -1)
            self.holds.pop(slot, None)

    def _pack(self) -> None:
        """Move the highest running sequences down into free slots below them (one copy each), so the
        running slots are consecutive and a step is one micro-batch."""
        lib = self.lib
        while self.free and min(self.free) < max(self.running):
            low, high = min(self.free), max(self.running)
            lib.llama_memory_seq_cp(self.memory, high, low, -1, -1)
            lib.llama_memory_seq_rm(self.memory, high, -1, -1)
            self.stream_copies += 1
            row = self.running.pop(high)
            row.slot = low
            self.running[low] = row
            self.free.discard(low)
            self.free.add(high)
            self.holds[low] = self.holds.pop(high)

    # --- llama.cpp ------------------------------------------------------------------------------
    def _step(self) -> None:
        """Decode the last sampled token of every running row, then sample each row's next one."""
        rows = [self.running[s] for s in sorted(self.running)]
        batch = self.batch
        for i, row in enumerate(rows):
            batch.token[i] = row.next_token
            batch.pos[i] = row.length - 1
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = row.slot
            batch.logits[i] = True
        batch.n_tokens = len(rows)
        self._decode()
        self.steps += 1
        for i, row in enumerate(rows):
            self._take(row, self._logits(i))

    def _decode_prompt(self, tokens: list[int], slot: int) -> np.ndarray:
        """Decode a prompt into `slot` alone, in the scoring path's chunks; the logits after it."""
        batch = self.batch
        n = len(tokens)
        for a, b in self.backend._plan(n, n):
            for i, pos in enumerate(range(a, b)):
                batch.token[i] = tokens[pos]
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot
                batch.logits[i] = pos == n - 1
            batch.n_tokens = b - a
            self._decode()
            self.prompt_tokens_decoded += b - a
        return self._logits(n - 1 - a).copy()

    def _decode(self) -> None:
        code = self.lib.llama_decode(self.ctx, self.batch)
        if code != 0:
            self.lib.llama_memory_clear(self.memory, True)
            self._reset()
            raise AlignlabError(f"llama.cpp failed to decode (llama_decode returned {code})")

    def _logits(self, i: int) -> np.ndarray:
        """The logits of batch entry `i` (a view: valid until the next decode)."""
        pointer = self.lib.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
