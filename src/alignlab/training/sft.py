"""Supervised fine-tuning on prompt/completion pairs (the revisions of SL-CAI) with TRL's SFTTrainer and a
LoRA adapter; the loss counts the completion's tokens only."""

from __future__ import annotations

from pathlib import Path

from alignlab.training import common


def train_sft(
    base: str, rows: list[dict], folder: Path, training, progress: bool, seed: int, callbacks=None
) -> tuple[Path, dict]:
    """Fine-tune the weights at `base` on `rows` ({"prompt", "completion"}); returns (folder/model, log)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(base)
    config = SFTConfig(
        **common.trainer_arguments(training, folder, progress, seed),
        completion_only_loss=True,
        packing=False,
    )
    trainer = SFTTrainer(
        model=_causal_lm(base),
        args=config,
        train_dataset=Dataset.from_list(
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=common.lora(training, "CAUSAL_LM"),
    )
    log = common.train(trainer, folder, "SFT")
    model = common.save_merged(
        trainer.model, tokenizer, folder, {"stage": "sft", "base": base, "examples": len(rows)}
    )
    return model, log


def _causal_lm(folder: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
