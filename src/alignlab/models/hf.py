"""transformers backend: a hub id, a local folder, or a GGUF file (converted once into a cached HF folder).

Scoring runs each prompt once: each request's continuations follow its left-padded prompt in the same row,
laid out as one token tree (shared prefixes once) under a 4D attention mask, so one forward pass scores a
whole batch. lm-evaluation-harness instead runs prompt + continuation once per candidate; the
log-probabilities are the same (tokenised the same way), the work is about 1/k.

Generation is continuous batching (hf_generate): rows leave as they finish and waiting requests take their
slots; K samples of one prompt prefill it once. Sampling draws per-request Gumbel noise from a generator
seeded by the request, so a request's sample does not depend on which other requests share its batch (a
resumed run samples the same text) beyond the last bits of the arithmetic: a matrix product's rounding can
change with the batch's shape, and a draw whose two best candidates lie within that rounding can flip.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch

from alignlab.atomic import replacing
from alignlab.checksums import cached_digest
from alignlab.errors import AlignlabError
from alignlab.models.base import (
    BackendBase,
    Chat,
    EchoRequest,
    EchoResult,
    FeaturesRequest,
    FeaturesResult,
    GenerateRequest,
    GenerateResult,
    Prompt,
    ScoreRequest,
    ScoreResult,
)
from alignlab.models.hf_generate import ContinuousGenerator, left_pad
from alignlab.models.text import check_fit, fit_error, split_continuations
from alignlab.paths import cache_dir


class HFBackend(BackendBase):
    capabilities = frozenset({"score", "generate", "features"})

    def __init__(
        self,
        spec: str,
        target: str,
        batch_size: int = 16,
        gen_width: int = 64,
        share_prefixes: bool = True,
        score_by_length: bool = True,
        gen_dtype: str | None = None,
        dtype: str = "float32",
        device: str | None = None,
        **_ignored,
    ) -> None:
        self.spec = spec
        self.target = target
        self.batch_size = max(1, int(batch_size))
        # Rows generated at once (continuous batching): decoding is per-step overhead at small widths on a
        # CPU, so wide batches pay (bench/generation.py); the engine hands over enough to keep them full.
        self.gen_width = max(1, int(gen_width))
        self.generate_batch_hint = 2 * self.gen_width
        self.share_prefixes = bool(share_prefixes)
        self.score_by_length = bool(
            score_by_length
        )  # off: batches in request order (the benchmark's baseline)
        self.prompts_prefilled = 0  # unique prompts run by generate (prefix sharing shows here)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        folder, self._fingerprint = _resolve_folder(target)
        self.folder = (
            folder  # a transformers folder (clients such as lm-evaluation-harness load its tokenizer)
        )
        self.model, self.tokenizer = _load(folder, dtype, self.device)
        self.model.eval()
        # Scores stay in `dtype`. Generation may run in a copy of another dtype: bfloat16 is faster where the
        # hardware multiplies it natively (AMX), but its rounding makes a sample depend on the batch it was
        # drawn in (see the module docstring), so it is a choice, not the default.
        self.gen_dtype = generation_dtype(gen_dtype or dtype)
        self._gen_model = self.model
        if self.gen_dtype != dtype:
            import copy

            self._gen_model = copy.deepcopy(self.model).to(getattr(torch, self.gen_dtype))
        # transformers 5.x renames `past_key_values` to `cache` (the old name warns until 5.40).
        params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # Token trees need a custom 4D mask: sdpa takes a boolean one, eager an additive one. Models with
        # sliding-window layers would ignore their window under a custom mask, so they repeat the cache.
        config = self.model.config
        attn = getattr(config, "_attn_implementation", None)
        layer_types = getattr(config, "layer_types", None)  # transformers 5: per-layer attention kinds
        if layer_types:
            sliding = "sliding_attention" in layer_types
        else:
            sliding = bool(getattr(config, "sliding_window", None))
        self._tree_attention = attn in ("sdpa", "eager") and not sliding
        self._attn_mask_additive = attn == "eager"

    # --- identity -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        if self._gen_model is not self.model:  # its samples differ from the scoring dtype's
            return f"{self._fingerprint}+generate-{self.gen_dtype}"
        return self._fingerprint

    def info(self) -> dict:
        import transformers

        return {
            "backend": "hf",
            "target": self.target,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "generate_dtype": self.gen_dtype,
            "generate_width": self.gen_width,
            "device": self.device,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "chat_template": bool(self.tokenizer.chat_template),
        }

    # --- prompts --------------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if not self.tokenizer.chat_template:
            raise AlignlabError(f"model {self.spec!r} has no chat template: use --format raw")
        messages = [{"role": role, "content": text} for role, text in prompt.messages]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prompt.prefill

    def encode(self, text: str) -> list[int]:
        # Chat templates already hold the special tokens they want; a raw prompt gets what the
        # tokenizer adds by itself (BOS for Gemma, nothing for SmolLM2's GGUF tokenizer).
        return self.tokenizer(text, add_special_tokens=True)["input_ids"]

    # --- score ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        prepared = [
            split_continuations(self.encode, self.render(r.prompt), r.continuations) for r in requests
        ]
        self._check_fit([len(context) + max(map(len, conts), default=0) for context, conts in prepared])
        results: list[ScoreResult | None] = [ScoreResult([], []) if not p[1] else None for p in prepared]
        # batched by prompt length, so a row pads to its neighbours' length rather than the longest prompt's
        todo = [i for i, result in enumerate(results) if result is None]
        if self.score_by_length:
            todo.sort(key=lambda i: len(prepared[i][0]))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for i, result in zip(chunk, self._score_batch([prepared[i] for i in chunk]), strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    def _score_batch(self, prepared: list[tuple[list[int], list[list[int]]]]) -> list[ScoreResult]:
        contexts = [context for context, _ in prepared]
        conts = [request_conts for _, request_conts in prepared]
        if self._tree_attention:
            totals = self._score_one_pass(contexts, conts)
        else:
            totals = self._score_two_passes(contexts, conts)
        return [
            ScoreResult(logprobs=t, num_tokens=[len(c) for c in rc])
            for t, rc in zip(totals, conts, strict=True)
        ]

    def _score_one_pass(self, contexts: list[list[int]], conts: list[list[list[int]]]) -> list[list[float]]:
        """One forward per batch: each row is the left-padded prompt followed by its continuations laid out
        as a token tree, under a 4D mask in which a tree token sees the prompt and its own ancestors only.
        A shared prefix (" (" of " (a)", " (b)", " (c)") runs once, and no KV cache is kept or copied."""
        trees = [_ContinuationTree(rc) for rc in conts]
        width = max(len(t.tokens) for t in trees)
        ids, pmask = left_pad(contexts, self._pad_id())
        batch, prompt_w = ids.shape
        total_w = prompt_w + width
        tree_ids = torch.full((batch, width), self._pad_id(), dtype=torch.long)
        positions = torch.zeros((batch, total_w), dtype=torch.long)
        positions[:, :prompt_w] = (pmask.cumsum(-1) - 1).clamp(min=0)
        see = torch.zeros((batch, 1, total_w, total_w), dtype=torch.bool)
        causal = torch.ones((prompt_w, prompt_w), dtype=torch.bool).tril()
        see[:, 0, :prompt_w, :prompt_w] = causal[None] & pmask.bool()[:, None, :]
        see[:, 0, prompt_w:, :prompt_w] = pmask.bool()[:, None, :]
        diagonal = torch.arange(total_w)
        see[:, 0, diagonal, diagonal] = True  # every row sees itself, so no row is empty (padding included)
        prompt_len = pmask.sum(-1)
        for i, tree in enumerate(trees):
            tree_ids[i, : len(tree.tokens)] = torch.tensor(tree.tokens, dtype=torch.long)
            for q, (depth, lineage) in enumerate(zip(tree.depth, tree.ancestors_and_self, strict=True)):
                positions[i, prompt_w + q] = prompt_len[i] + depth
                see[i, 0, prompt_w + q, [prompt_w + a for a in lineage]] = True
            see[i, 0, prompt_w + len(tree.tokens) :, :prompt_w] = False  # padding slots see only themselves
        if self._attn_mask_additive:
            mask4 = torch.zeros(see.shape, dtype=self.model.dtype)
            mask4.masked_fill_(~see, torch.finfo(self.model.dtype).min)
        else:
            mask4 = see
        out = self.model(
            input_ids=torch.cat([ids, tree_ids], dim=1).to(self.device),
            attention_mask=mask4.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=False,
            # The last prompt position predicts every first token, the tree nodes the rest; skipping the
            # vocabulary projection elsewhere saves most of a small model's compute (49k x 576 per token).
            **({"logits_to_keep": width + 1} if self._last_logits_only else {}),
        )
        logp = torch.log_softmax(out.logits[:, -(width + 1) :, :].float(), dim=-1).cpu()
        totals = []
        for i, (tree, rc) in enumerate(zip(trees, conts, strict=True)):
            row = []
            for path, c in zip(tree.paths, rc, strict=True):
                # column 0 is the last prompt position; tree node q is column q + 1
                row.append(
                    logp[i, 0, c[0]].item()
                    + sum(logp[i, node + 1, c[k + 1]].item() for k, node in enumerate(path))
                )
            totals.append(row)
        return totals

    def _score_two_passes(self, contexts: list[list[int]], conts: list[list[list[int]]]) -> list[list[float]]:
        """For attention kinds that take no custom mask: every prompt once keeping its KV cache, then the
        continuations' remaining tokens on that cache repeated once per continuation."""
        ids, mask = left_pad(contexts, self._pad_id())
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **self._last_logits_only,
        )
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        totals = [[first[i, c[0]].item() for c in rc] for i, rc in enumerate(conts)]
        if any(len(c) > 1 for rc in conts for c in rc):
            cache = getattr(out, "past_key_values", None) or out.cache
            self._score_rest_repeated(conts, mask, cache, totals)
        return totals

    def _score_rest_repeated(self, conts, mask, cache, totals) -> None:
        owner = [i for i, rc in enumerate(conts) for _ in rc]
        flat = [c for rc in conts for c in rc]
        rest = [c[:-1] for c in flat]  # inputs that predict tokens 1..m-1
        cache.batch_select_indices(torch.tensor(owner, device=self.device))
        width = max(len(r) for r in rest)
        step_ids = torch.full((len(flat), width), self._pad_id(), dtype=torch.long)
        step_mask = torch.zeros((len(flat), width), dtype=torch.long)
        for j, r in enumerate(rest):
            step_ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
            step_mask[j, : len(r)] = 1
        step_ids, step_mask = step_ids.to(self.device), step_mask.to(self.device)
        prompt_len = mask.sum(-1)[owner]
        step_pos = prompt_len[:, None] + torch.arange(width, device=self.device)[None, :]
        full_mask = torch.cat([mask[owner], step_mask], dim=1)
        out = self.model(
            input_ids=step_ids,
            attention_mask=full_mask,
            position_ids=step_pos,
            use_cache=True,
            **{self._cache_kwarg: cache},
        )
        logp = torch.log_softmax(out.logits.float(), dim=-1).cpu()
        j = 0
        for i, rc in enumerate(conts):
            for n, c in enumerate(rc):
                totals[i][n] += sum(logp[j, k - 1, c[k]].item() for k in range(1, len(c)))
                j += 1

    @torch.inference_mode()
    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        """Each token of `text` with its log-probability given the tokens before it (None for the first)."""
        return [(piece, value) for piece, value, _ in self.top_token_logprobs(text, 0)]

    def top_token_logprobs(
        self, text: str, k: int
    ) -> list[tuple[str, float | None, dict[str, float] | None]]:
        """`token_logprobs` and, from the second token on, the `k` most likely tokens (decoded) there."""
        echoed = self.echo_logprobs([EchoRequest(text)], k)[0]
        return list(zip(echoed.tokens, echoed.logprobs, echoed.top, strict=True))

    def decode(self, ids: list[int]) -> str:
        self._check_ids(ids)
        return self.tokenizer.decode(ids)

    def _check_ids(self, ids: list[int]) -> None:
        vocab = len(self.tokenizer)
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise AlignlabError(
                f"token id {bad[0]} is outside model {self.spec!r}'s vocabulary (0..{vocab - 1})"
            )

    @torch.inference_mode()
    def echo_logprobs(self, requests: list[EchoRequest], k: int) -> list[EchoResult]:
        """Batched: the prompt keeps its own tokens (the generated text is tokenized apart and appended, so a
        merge across the boundary cannot shift the prompt's last token), right-padded rows in one forward."""
        rows = []
        for r in requests:
            ids = list(r.prompt) if not isinstance(r.prompt, str) else self.encode(r.prompt)
            if not isinstance(r.prompt, str):
                self._check_ids(ids)
            gen = self.tokenizer(r.generated, add_special_tokens=False)["input_ids"] if r.generated else []
            eos = [self.tokenizer.eos_token_id] if r.eos and self.tokenizer.eos_token_id is not None else []
            rows.append((ids + gen + eos, len(ids)))
        self._check_fit([len(row) for row, _ in rows])
        results: list[EchoResult | None] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        budget = 8192  # tokens per forward: bounds the [rows, length, vocabulary] log-probabilities
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(rows[order[end]][0]) <= budget:
                end += 1
            chunk = order[start:end]
            for i, result in zip(chunk, self._echo_batch([rows[i][0] for i in chunk], k), strict=True):
                results[i] = result
                result.prompt_tokens = rows[i][1]
            start = end
        return results  # type: ignore[return-value]

    def _echo_batch(self, seqs: list[list[int]], k: int) -> list[EchoResult]:
        width = max((len(s) for s in seqs), default=0)
        if width == 0:
            return [EchoResult([], [], [], 0) for _ in seqs]
        ids = torch.full((len(seqs), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        out = []
        for row, seq in enumerate(seqs):
            if not seq:
                out.append(EchoResult([], [], [], 0))
                continue
            logp = torch.log_softmax(logits[row, : len(seq) - 1].float(), dim=-1)
            chosen = logp.gather(1, torch.tensor(seq[1:], device=logp.device)[:, None])[:, 0].tolist()
            tops: list[dict[str, float] | None] = [None] * len(seq)
            if k > 0:
                values, indices = logp.topk(k, dim=-1)
                texts = self.tokenizer.batch_decode(indices.reshape(-1, 1).tolist())
                for i, (vals, names) in enumerate(
                    zip(values.tolist(), [texts[j : j + k] for j in range(0, len(texts), k)], strict=True)
                ):
                    top: dict[str, float] = {}
                    for value, name in zip(vals, names, strict=True):
                        top[name] = max(value, top.get(name, float("-inf")))  # two ids may decode alike
                    tops[i + 1] = top
            out.append(EchoResult(_token_pieces(self.tokenizer, seq), [None, *chosen], tops, 0))
        return out

    # --- generate -------------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        prompts = [self.encode(self.render(r.prompt)) for r in requests]
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        generator = ContinuousGenerator(
            self._gen_model,
            self.tokenizer,
            width=self.gen_width,
            prefill_rows=self.batch_size,
            eos_ids={t for t in eos if t is not None},
            pad_id=self._pad_id(),
            max_context=self.max_context,
            spec=self.spec,
            cache_kwarg=self._cache_kwarg,
            last_logits_only=bool(self._last_logits_only),
            share_prefixes=self.share_prefixes,
        )
        results = generator.run(prompts, requests)
        self.prompts_prefilled += generator.prompts_prefilled
        return results

    # --- features -------------------------------------------------------------------------------
    @torch.inference_mode()
    def features(self, requests: list[FeaturesRequest]) -> list[FeaturesResult]:
        prompts = [self.encode(self.render(r.prompt)) for r in requests]
        self._check_fit([len(p) for p in prompts])
        results = []
        for r, prompt in zip(requests, prompts, strict=True):
            ids = torch.tensor([prompt], device=self.device)
            out = self.model(input_ids=ids, output_hidden_states=True)
            layers = out.hidden_states
            if not -len(layers) <= r.layer < len(layers):
                raise AlignlabError(
                    f"layer {r.layer} out of range: model has {len(layers)} hidden-state layers"
                )
            results.append(FeaturesResult(vector=layers[r.layer][0, -1].float().tolist()))
        return results

    @property
    def max_context(self) -> int | None:
        """Positions the model was built for (None: unknown). The tokenizer's model_max_length is a
        fallback only: where it is not set it holds a huge placeholder (1e30)."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if not isinstance(limit, int):
            limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 10**8 else None

    def fit_error(self, request) -> str | None:
        window = f"{self.max_context} positions"
        return fit_error(request, self.encode, self.render, self.max_context, self.spec, window)

    def _check_fit(self, lengths: list[int]) -> None:
        check_fit(lengths, self.max_context, self.spec, f"{self.max_context} positions")

    def _pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0


def generation_dtype(name: str) -> str:
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise AlignlabError(f"unknown gen_dtype {name!r}: expected float32, bfloat16 or float16")
    return name


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class _ContinuationTree:
    """The input tokens of one request's continuations (all but each one's last token) as a trie: node q
    holds tokens[q] at depth[q] (0 = a continuation's first token); paths[j][k] is the node that predicts
    continuation j's token k + 1."""

    def __init__(self, continuations: list[list[int]]) -> None:
        self.tokens: list[int] = []
        self.depth: list[int] = []
        self.ancestors_and_self: list[list[int]] = []
        self.paths: list[list[int]] = []
        children: dict[tuple[int, int], int] = {}  # (parent node, -1 at the root; token) -> node
        for cont in continuations:
            lineage: list[int] = []
            for k, token in enumerate(cont[:-1]):
                key = (lineage[-1] if lineage else -1, token)
                node = children.get(key)
                if node is None:
                    node = children[key] = len(self.tokens)
                    self.tokens.append(token)
                    self.depth.append(k)
                    self.ancestors_and_self.append([*lineage, node])
                lineage.append(node)
            self.paths.append(lineage)


def _token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """Token texts whose concatenation is the decoded text (decoding prefixes handles multi-byte pieces)."""
    pieces, previous = [], ""
    for i in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:i])
        pieces.append(text[len(previous) :])
        previous = text
    return pieces


# --- loading ------------------------------------------------------------------------------------
def _resolve_folder(target: str) -> tuple[str, str]:
    """(folder or hub id to load, fingerprint)."""
    path = Path(target).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise AlignlabError(f"model file not found: {path}")
        digest = cached_digest(path)
        return str(_converted_from_gguf(path, digest)), f"gguf-sha256:{digest}"
    if path.is_dir():
        return str(path), f"hf-folder:{_folder_digest(path)}"
    if target.startswith((".", "/", "~")):
        raise AlignlabError(f"model path not found: {target}")
    return target, f"hf-hub:{target}@{_hub_revision(target)}"


def _folder_digest(folder: Path) -> str:
    parts = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".model", ".txt", ".jinja"}:
            parts.append(f"{f.name}:{cached_digest(f)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _hub_revision(hub_id: str) -> str:
    try:
        from huggingface_hub import model_info

        return model_info(hub_id).sha or "unknown"
    except Exception:
        return "unknown"  # offline: the id alone identifies it as well as we can


def _converted_from_gguf(path: Path, digest: str) -> Path:
    """Dequantize a GGUF into a normal HF folder once (tokenizer conversion alone takes ~15 s)."""
    folder = cache_dir() / "hf-from-gguf" / digest[:24]
    if (folder / "config.json").is_file():
        return folder
    import sys

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(
        f"converting {path.name} into a transformers folder once (cached in {folder.parent})", file=sys.stderr
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
    except Exception as exc:  # transformers raises many kinds for unsupported architectures
        raise AlignlabError(f"transformers cannot load GGUF {path}: {exc}".splitlines()[0]) from exc
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with replacing(folder, keep_existing=True) as tmp:  # another process may finish first: keep its folder
        tmp.mkdir()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "alignlab-source.json").write_text(json.dumps({"gguf": str(path), "sha256": digest}))
    return folder


def _load(folder: str, dtype: str, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own progress bar is the one that matters
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise AlignlabError(f"cannot load model {folder!r}: {str(exc).splitlines()[0]}") from exc
    return model.to(device), tokenizer


__all__ = ["HFBackend", "Chat"]
