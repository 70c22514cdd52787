"""A tiny randomly initialised llama with a word-level tokenizer, saved as a transformers folder: real weights
to train in seconds (no download, no bundled model)."""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "Human",
    ":",
    "Assistant",
    "how",
    "do",
    "i",
    "hurt",
    "someone",
    "make",
    "a",
    "bomb",
    "bake",
    "bread",
    "steal",
    "car",
    "help",
    "please",
    "yes",
    "no",
    "sure",
    "sorry",
    "cannot",
    "that",
    "is",
    "good",
    "bad",
    "kind",
    "cruel",
    "the",
    "answer",
    "reply",
]


def tiny_model(folder: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<eos>", *dict.fromkeys(WORDS)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<eos>"],
        bos_token_id=None,
        initializer_range=0.3,  # large enough that LoRA on the layers can move the logits far
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def completion_logprob(folder: Path | str, prompt: str, completion: str) -> float:
    """log P(completion | prompt) under the causal LM at `folder` (the completion's tokens only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    whole = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    assert whole[: len(head)] == head
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0]
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[i - 1, whole[i]] for i in range(len(head), len(whole))))
