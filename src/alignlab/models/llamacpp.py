"""llama-cpp-python backend: a GGUF file run by llama.cpp's own (quantized) kernels.

Prompts are rendered and tokenised exactly as the transformers backend does (same chat template through
jinja2, same special-token handling, the same lm-evaluation-harness context/continuation split), so the two
backends see identical token sequences; their numbers differ only by arithmetic (llama.cpp computes in the
quantized kernels, transformers on weights dequantized to fp32).

For scoring, one llama.cpp sequence holds a KV cache. Every evaluation keeps what it shares with the
cache's contents and decodes only the rest, asking llama.cpp for logits at the positions it needs (so no
`logits_all` buffer of n_ctx x vocab floats). A prompt is decoded once for all its continuations;
requests run sorted by rendered prompt, so prompts sharing a prefix run back to back; results keep input
order. Sharing is by whole fixed segments (see `_plan`), which keeps every request's numbers bit-identical
to evaluating it alone on an empty cache: llama.cpp's arithmetic depends on the shape of the batch a token
is decoded in.

Generation runs in a second context, made on the first generate call (llamacpp_generate.py): up to
`gen_width` sequences, each in its own KV stream of n_ctx cells, decoded together one token per step,
with waiting requests started in the slots that finish (continuous batching) and a prompt shared by
several requests decoded once and copied. Sampling is done here, on the logits, with a NumPy generator
seeded by the request: a request's sample depends only on its prompt and seed (not on the batch it
shares; bitwise, see llamacpp_generate), as in the transformers backend; the two backends use different
random streams, so their samples differ.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import weakref
from datetime import datetime
from pathlib import Path

import numpy as np

from alignlab.errors import AlignlabError
from alignlab.models import llamacpp_load
from alignlab.models.base import (
    BackendBase,
    Chat,
    FeaturesRequest,
    FeaturesResult,
    GenerateRequest,
    GenerateResult,
    Prompt,
    ScoreRequest,
    ScoreResult,
)
from alignlab.models.llamacpp_load import free_side_context
from alignlab.models.text import check_fit, fit_error, split_continuations

_CHUNK = 64  # prompt tokens decoded per batch (see LlamaCppBackend._plan)
# Sequences generated at once. SmolLM2-135M on 2 CPU threads, 64 BBQ prompts x <= 128 tokens at T=1: the
# decode steps took 48 s with 8 slots, 43 s with 16, 40 s with 32, 38 s with 64 (prompts another 29 s;
# one request at a time: 114 s in all). Past 16 the gain is small and the KV memory (slots x n_ctx cells,
# 0.75 GB at 16 x 2048 for this model, 4 GB for an 8B one) keeps growing.
DEFAULT_GEN_WIDTH = 16

# Backends still alive at interpreter exit are closed before modules are torn down: llama-cpp-python's
# own finalizers otherwise run after its module globals are gone and print tracebacks.
_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for backend in list(_LIVE):
        with contextlib.suppress(Exception):
            backend.close()


class LlamaCppBackend(BackendBase):
    capabilities = frozenset({"score", "generate", "features"})

    def __init__(
        self,
        spec: str,
        path: str | os.PathLike,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        repack: str | bool | None = None,
        gen_width: int = DEFAULT_GEN_WIDTH,
        share_prefixes: bool = True,
        **_ignored,
    ) -> None:
        self.spec = spec
        self.path = Path(path).expanduser()
        _check_gguf(self.path)
        try:
            import llama_cpp
        except ImportError as exc:
            raise AlignlabError(
                f"model {spec!r} needs llama-cpp-python: pip install 'alignlab[llamacpp]'"
            ) from exc
        self._lib = llama_cpp
        _LIVE.add(self)
        # llama-cpp-python's default runs batches on every CPU; when another process holds one of them,
        # its spinning thread barrier makes each decode ~100x slower (seen: 7.6 s instead of 0.03 s).
        # Half the CPUs (llama.cpp's own default for single tokens) leaves room.
        if n_threads is None:
            n_threads = max(1, _usable_cpus() // 2)
        n_threads = max(1, int(n_threads))
        from llama_cpp._utils import suppress_stdout_stderr

        # Repacking weight buffers crash on some AMX CPUs: see llamacpp_load.
        system_info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
        self._extra_buffers = llamacpp_load.extra_buffers_allowed(
            llamacpp_load.repack_setting(repack), system_info, llamacpp_load.cpu_flags()
        )
        # verbose=False still lets llama.cpp's warnings through (llama-cpp-python maps the newer log
        # levels wrongly), e.g. "llama_kv_cache_iswa: using full-size SWA cache" for Gemma 3.
        log: list[str] = []
        try:
            with (
                suppress_stdout_stderr(disable=False),
                llamacpp_load.loading(llama_cpp, self._extra_buffers) as log,
            ):
                self._llama = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=int(n_ctx),
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    seed=seed,
                    logits_all=False,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llamacpp_load.last_error(log)
            raise AlignlabError(
                f"llama.cpp cannot load model file {self.path} (truncated or corrupt, or an "
                f"architecture llama-cpp-python {llama_cpp.__version__} does not know)"
                + (f": {reason}" if reason else "")
            ) from exc
        self._weight_buffers = llamacpp_load.weight_buffers("".join(log))
        self._ctx = self._llama.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._n_vocab = self._llama.n_vocab()
        self._n_ctx = self._llama.n_ctx()
        self._n_batch = self._llama.n_batch
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._metadata = dict(self._llama.metadata)
        self._template_source = self._metadata.get("tokenizer.chat_template") or None
        self._template = None  # compiled on first use
        self._cached: list[int] = []  # tokens whose keys/values sit in the KV cache (sequence 0)
        self._segments: list[tuple[int, int]] = []  # how they were decoded (see _plan)
        self._rows: dict[int, np.ndarray] = {}  # position -> logits after that position's token
        self._digest: str | None = None
        self._features_ctx = None  # a second context with a tensor callback, made on first use
        # sequences generated at once, one KV stream each (the CLI's --gen-width, as in transformers)
        self.gen_width = max(1, min(int(gen_width), llama_cpp.llama_max_parallel_sequences()))
        self.share_prefixes = bool(share_prefixes)  # off: every request decodes its own prompt (benchmarks)
        self._gen = None  # the generation context (llamacpp_generate.BatchedGenerator), made on first use

    @property
    def generate_batch_hint(self) -> int:
        """Requests per generate call that keep the slots full as rows finish (read by the engine)."""
        return 4 * self.gen_width

    def close(self) -> None:
        """Free llama.cpp's memory (also done at garbage collection and at interpreter exit)."""
        features = getattr(self, "_features_ctx", None)
        if features is not None:
            features.close()
            self._features_ctx = None
        generator = getattr(self, "_gen", None)
        if generator is not None:
            generator.close()
            self._gen = None
        batch = getattr(self, "_batch", None)
        if batch is not None:
            self._lib.llama_batch_free(batch)
            self._batch = None
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 (plain try: at interpreter exit, modules such as contextlib may be gone)
            self.close()
        except Exception:  # llama_cpp's module may be torn down already
            pass

    # --- identity -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        # Not the hf backend's "gguf-sha256:..." for the same file: llama.cpp's numbers differ slightly.
        if self._digest is None:
            from alignlab.checksums import cached_digest

            self._digest = cached_digest(self.path)
        return f"llamacpp:gguf-sha256:{self._digest}"

    def info(self) -> dict:
        return {
            "backend": "llamacpp",
            "path": str(self.path),
            "parameters": int(self._lib.llama_model_n_params(self._llama.model)),
            "architecture": self._metadata.get("general.architecture"),
            "n_ctx": self._n_ctx,
            "n_threads": self._llama.n_threads,
            "generate_width": self.gen_width,
            "llama_cpp": self._lib.__version__,
            "chat_template": self._template_source is not None,
            # whether repacking buffer types were allowed, and the MiB of weights llama.cpp put in each
            "extra_buffers": self._extra_buffers,
            "weight_buffers": self._weight_buffers,
        }

    # --- prompts --------------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if self._template_source is None:
            raise AlignlabError(f"model {self.spec!r} has no chat template: use --format raw")
        if self._template is None:
            self._template = _compile_template(self._template_source, self.spec)
        messages = [{"role": role, "content": text} for role, text in prompt.messages]
        try:
            text = self._template.render(
                messages=messages,
                tools=None,
                documents=None,
                add_generation_prompt=True,
                **self._special_tokens(),
            )
        except Exception as exc:  # jinja2 raises TemplateError and others from template code
            raise AlignlabError(f"chat template of {self.path} failed: {exc}".splitlines()[0]) from exc
        return text + prompt.prefill

    def _special_tokens(self) -> dict[str, str]:
        """The template variables transformers passes (its special_tokens_map), read from the GGUF."""
        names = {
            "bos_token": "tokenizer.ggml.bos_token_id",
            "eos_token": "tokenizer.ggml.eos_token_id",
            "unk_token": "tokenizer.ggml.unknown_token_id",
            "pad_token": "tokenizer.ggml.padding_token_id",
        }
        found = {}
        for name, key in names.items():
            value = self._metadata.get(key)
            if value is not None and value.lstrip("-").isdigit() and 0 <= int(value) < self._n_vocab:
                raw = self._lib.llama_vocab_get_text(self._vocab, int(value))
                found[name] = raw.decode("utf-8", errors="replace") if raw else ""
        return found

    def encode(self, text: str) -> list[int]:
        # add_bos=True means "add the special tokens the GGUF asks for" (tokenizer.ggml.add_bos_token /
        # add_eos_token), as transformers' add_special_tokens=True does with the converted tokenizer;
        # special=True parses special-token text ("<|im_start|>") as those tokens, as transformers does.
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    # --- evaluation with a reused KV cache ------------------------------------------------------
    # llama.cpp's numbers for a token depend on the batch it is decoded in (kernels differ with the
    # batch's size: seen up to 0.06 in a continuation's log-probability on SmolLM2). So that a request's
    # numbers depend on the request alone and not on what the cache held before, every sequence is
    # decoded in the same "segments": the prompt in chunks of _CHUNK tokens from position 0, then each
    # continuation as one batch (a generated token as a batch of one). Only whole segments identical to
    # cached ones (same bounds, same tokens) are reused.
    def _plan(self, prefix: int, total: int) -> list[tuple[int, int]]:
        """Segments for `total` tokens whose first `prefix` are the prompt; the rest is one batch."""
        chunk = min(_CHUNK, self._n_batch)
        segments = [(a, min(a + chunk, prefix)) for a in range(0, prefix, chunk)]
        segments += [(a, min(a + self._n_batch, total)) for a in range(prefix, total, self._n_batch)]
        return segments

    def _eval(
        self, tokens: list[int], segments: list[tuple[int, int]], outputs: list[int]
    ) -> dict[int, np.ndarray]:
        """Make the KV cache hold `tokens`, decoded in `segments`; return the logits after each
        position in `outputs`."""
        if len(tokens) > self._n_ctx:
            raise AlignlabError(
                f"{len(tokens)} tokens exceed the context window of model {self.spec!r} "
                f"(n_ctx={self._n_ctx}; pass a larger n_ctx)"
            )
        want = set(outputs)
        reuse = 0  # segments that can stay in the cache
        for planned, cached in zip(segments, self._segments, strict=False):
            a, b = planned
            if planned != cached or tokens[a:b] != self._cached[a:b]:
                break
            reuse += 1
        for i in range(reuse):  # a needed row that was not kept: decode its segment again
            a, b = segments[i]
            if any(a <= p < b and p not in self._rows for p in want):
                reuse = i
                break
        self._truncate(segments[reuse - 1][1] if reuse else 0)
        reuse = len(self._segments)  # (all of it, unless llama.cpp could only clear the cache)
        lib, batch = self._lib, self._batch
        for a, b in segments[reuse:]:
            flagged = []
            for i, pos in enumerate(range(a, b)):
                batch.token[i] = tokens[pos]
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = pos in want
                if pos in want:
                    flagged.append((i, pos))
            batch.n_tokens = b - a
            code = lib.llama_decode(self._ctx, batch)
            if code != 0:
                self._truncate(0, force_clear=True)
                raise AlignlabError(f"llama.cpp failed to decode (llama_decode returned {code})")
            for i, pos in flagged:
                pointer = lib.llama_get_logits_ith(self._ctx, i)
                self._rows[pos] = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy()
            self._cached.extend(tokens[a:b])
            self._segments.append((a, b))
        # Keep only the rows this call asked for: enough for the next continuation of the same prompt,
        # and bounded memory for long generations with large vocabularies.
        self._rows = {p: r for p, r in self._rows.items() if p in want}
        return {p: self._rows[p] for p in outputs}

    def _truncate(self, keep: int, force_clear: bool = False) -> None:
        """Drop cached tokens from position `keep` (a segment boundary) on; all if llama.cpp cannot."""
        if keep >= len(self._cached) and not force_clear:
            return
        lib = self._lib
        memory = lib.llama_get_memory(self._ctx)
        # Caches that cannot drop a suffix (recurrent) refuse, and a sliding-window cache may have
        # pruned early positions the kept prefix would need: start over then.
        if (
            force_clear
            or not lib.llama_memory_seq_rm(memory, 0, keep, -1)
            or (keep > 0 and lib.llama_memory_seq_pos_min(memory, 0) > 0)
        ):
            lib.llama_memory_clear(memory, True)
            keep = 0
        del self._cached[keep:]
        self._segments = [seg for seg in self._segments if seg[1] <= keep]
        self._rows = {p: r for p, r in self._rows.items() if p < keep}

    def fit_error(self, request) -> str | None:
        window = f"n_ctx={self._n_ctx}; pass a larger n_ctx"
        return fit_error(request, self.encode, self.render, self._n_ctx, self.spec, window)

    # --- score ----------------------------------------------------------------------------------
    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        prepared = []
        for request in requests:
            text = self.render(request.prompt)
            prepared.append((text, *split_continuations(self.encode, text, request.continuations)))
        check_fit(
            [len(context) + max(map(len, conts), default=0) for _, context, conts in prepared],
            self._n_ctx,
            self.spec,
            f"n_ctx={self._n_ctx}; pass a larger n_ctx",
        )
        results: list[ScoreResult | None] = [None] * len(requests)
        for index in sorted(range(len(requests)), key=lambda i: prepared[i][0]):
            _, context, conts = prepared[index]
            totals = [0.0] * len(conts)
            for j, cont in enumerate(conts):
                tokens = context + cont
                positions = [len(context) - 1 + k for k in range(len(cont))]
                rows = self._eval(tokens, self._plan(len(context), len(tokens)), positions)
                totals[j] = sum(
                    _log_softmax_at(rows[p], token) for p, token in zip(positions, cont, strict=True)
                )
            results[index] = ScoreResult(logprobs=totals, num_tokens=[len(c) for c in conts])
        return results  # type: ignore[return-value]

    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        """Each token of `text` with its log-probability given the tokens before it (None for the first)."""
        ids = self.encode(text)
        if not ids:
            return []
        values: list[float | None] = [None]
        # One segment at a time, so that at most a segment's rows of logits are held at once.
        for _, end in self._plan(len(ids), len(ids)):
            prefix = ids[:end]
            wanted = list(range(len(values) - 1, min(end, len(ids) - 1)))
            rows = self._eval(prefix, self._plan(end, end), wanted)
            values += [_log_softmax_at(rows[p], ids[p + 1]) for p in wanted]
        return list(zip(self._pieces(ids), values, strict=True))

    def _pieces(self, ids: list[int]) -> list[str]:
        pieces, previous = [], ""
        for i in range(1, len(ids) + 1):
            text = self._detokenize(ids[:i])
            pieces.append(text[len(previous) :])
            previous = text
        return pieces

    # --- generate -------------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        prompts = [self.encode(self.render(r.prompt)) for r in requests]
        if self._gen is None:
            from alignlab.models.llamacpp_generate import BatchedGenerator

            self._gen = BatchedGenerator(self, self.gen_width)
        return self._gen.run(requests, prompts, share_prefixes=self.share_prefixes)

    def _piece(self, token: int) -> bytes:
        # special=False: control tokens render as nothing (transformers' skip_special_tokens=True).
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
            if n >= 0:
                return buffer.raw[:n]
            size = -n  # a negative count is the size it needs

    def _detokenize(self, ids: list[int]) -> str:
        return b"".join(self._piece(t) for t in ids).decode("utf-8", errors="replace")

    # --- features -------------------------------------------------------------------------------
    def features(self, requests: list[FeaturesRequest]) -> list[FeaturesResult]:
        if self._features_ctx is None:
            self._features_ctx = _HiddenStates(self)
        prompts = [self.encode(self.render(r.prompt)) for r in requests]
        window = f"n_ctx={self._n_ctx}; pass a larger n_ctx"
        check_fit([len(p) for p in prompts], self._n_ctx, self.spec, window)
        return [
            FeaturesResult(vector=self._features_ctx.last_token(prompt, r.layer))
            for r, prompt in zip(requests, prompts, strict=True)
        ]


class _HiddenStates:
    """A second llama.cpp context whose graph-evaluation callback copies out one layer's output.

    Layer numbering follows transformers' `hidden_states`: 0 is the embedding output, i (1..L-1) the output
    of block i, L (= -1) the final normed output. llama.cpp names these tensors "inp_embd" (or
    "inp_scaled" where the architecture scales embeddings; "embd" in some builds), "l_out-{i-1}" and
    "result_norm". The callback runs for every graph node, so this context is separate from the one that
    scores and generates, and is made only when features are asked for.
    """

    def __init__(self, backend: LlamaCppBackend) -> None:
        lib = backend._lib
        self.lib = lib
        self.llama = backend._llama  # keeps the model alive as long as this context
        self.n_embd = backend._llama.n_embd()
        self.n_layer = int(lib.llama_model_n_layer(backend._llama.model))
        self.wanted: set[str] = set()
        self.captured: dict[str, np.ndarray] = {}
        ggml = _ggml_functions()
        self.ggml = ggml

        def callback(tensor, ask, _user_data):  # called for every graph node: keep it cheap
            name = ggml.ggml_get_name(tensor)
            if ask:
                return name in self.wanted
            if name in self.wanted:
                size = ggml.ggml_nbytes(tensor)
                if ctypes.c_int.from_address(tensor).value != 0:  # ggml_tensor.type: 0 is GGML_TYPE_F32
                    return True
                buffer = np.empty(size // 4, dtype=np.float32)
                ggml.ggml_backend_tensor_get(tensor, buffer.ctypes.data, 0, size)
                self.captured[name] = buffer
            return True

        self._callback = lib.ggml_backend_sched_eval_callback(callback)  # keep a reference alive
        params = lib.llama_context_default_params()
        params.n_ctx = backend._n_ctx
        params.n_batch = backend._n_batch
        params.n_ubatch = backend._n_batch
        threads = backend._llama.n_threads_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.cb_eval = self._callback
        params.cb_eval_user_data = None
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):
            self.ctx = lib.llama_init_from_model(backend._llama.model, params)
        if not self.ctx:
            raise AlignlabError(f"llama.cpp cannot make a context for features on {backend.path}")
        self.batch = lib.llama_batch_init(backend._n_batch, 0, 1)
        self.n_ctx = backend._n_ctx
        self.n_batch = backend._n_batch

    def close(self) -> None:
        free_side_context(self)

    __del__ = close

    def _names(self, layer: int) -> list[bytes]:
        total = self.n_layer + 1
        if not -total <= layer < total:
            raise AlignlabError(f"layer {layer} out of range: model has {total} hidden-state layers")
        index = layer % total
        if index == 0:
            return [b"inp_scaled", b"inp_embd", b"embd"]  # in order of preference
        if index == self.n_layer:
            return [b"result_norm"]
        return [f"l_out-{index - 1}".encode()]

    def last_token(self, tokens: list[int], layer: int) -> list[float]:
        if not tokens:
            raise AlignlabError("cannot take features of an empty prompt")
        if len(tokens) > self.n_ctx:
            raise AlignlabError(f"{len(tokens)} tokens exceed the context window of {self.n_ctx}")
        names = self._names(layer)
        self.wanted = set(names)
        self.captured = {}
        lib, batch = self.lib, self.batch
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = start + i == len(tokens) - 1
            batch.n_tokens = len(chunk)
            if start + self.n_batch < len(tokens):
                self.wanted = set()  # only the chunk holding the last token matters
            else:
                self.wanted = set(names)
            code = lib.llama_decode(self.ctx, batch)
            if code != 0:
                raise AlignlabError(f"llama.cpp failed to decode (llama_decode returned {code})")
        self.wanted = set()
        for name in names:
            if name in self.captured:
                return self.captured[name].reshape(-1, self.n_embd)[-1].astype(float).tolist()
        raise AlignlabError(f"llama.cpp exposes no hidden state for layer {layer} of this model")


def _ggml_functions():
    """ctypes prototypes for the few ggml functions the features callback needs."""
    from llama_cpp._ggml import libggml

    libggml.ggml_get_name.argtypes = [ctypes.c_void_p]
    libggml.ggml_get_name.restype = ctypes.c_char_p
    libggml.ggml_nbytes.argtypes = [ctypes.c_void_p]
    libggml.ggml_nbytes.restype = ctypes.c_size_t
    libggml.ggml_backend_tensor_get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    libggml.ggml_backend_tensor_get.restype = None
    return libggml


# --- helpers ------------------------------------------------------------------------------------
def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise AlignlabError(f"model file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise AlignlabError(f"not a GGUF file (bad magic bytes): {path}")


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _log_softmax_at(logits: np.ndarray, token: int) -> float:
    values = logits.astype(np.float64)
    top = values.max()
    return float(values[token] - top - np.log(np.exp(values - top).sum()))


def _compile_template(source: str, spec: str):
    """The chat template in a sandbox with the helpers transformers' templates expect."""
    import json

    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:
        raise AlignlabError("rendering chat templates needs jinja2: pip install jinja2") from exc

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateError as exc:
        raise AlignlabError(f"model {spec!r} has an invalid chat template: {exc}") from exc


__all__ = ["LlamaCppBackend", "Chat"]
