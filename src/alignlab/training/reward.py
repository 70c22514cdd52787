"""A preference model (Bai et al. 2022 §4): a scalar head on the language model, trained with TRL's
RewardTrainer and a LoRA adapter on AI-labelled pairs.

The paper trains on soft targets (the feedback model's normalised probabilities, §4.1). TRL's loss takes
hard pairs, so `SoftRewardTrainer` replaces it with the cross-entropy against the soft label,
-[p log σ(r_chosen - r_rejected) + (1 - p) log σ(r_rejected - r_chosen)], where p = P(chosen is better);
p travels in the collator's `margin` field, the one extra number TRL's collator carries per pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignlab.training import common


def soft_preference_loss(d, p, reduce: bool = True):
    """Cross-entropy of the reward difference d = r_chosen - r_rejected against the soft label p."""
    import torch

    loss = -(p * torch.nn.functional.logsigmoid(d) + (1 - p) * torch.nn.functional.logsigmoid(-d))
    return loss.mean() if reduce else loss


def _soft_trainer_class():
    import torch
    from trl import RewardTrainer

    class SoftRewardTrainer(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            p = inputs.pop("margin")  # P(chosen is better), see the module docstring
            outputs = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
            )
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            d = chosen - rejected
            loss = -(
                p * torch.nn.functional.logsigmoid(d) + (1 - p) * torch.nn.functional.logsigmoid(-d)
            ).mean()
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["accuracy"].append((d > 0).float().mean().item())
            return (loss, outputs) if return_outputs else loss

    return SoftRewardTrainer


def train_reward(
    base: str, pairs: list[dict], folder: Path, training, progress: bool, seed: int, callbacks=None
) -> tuple[Path, dict]:
    """Train a preference model from the weights at `base` on `pairs` ({"chosen", "rejected", "p"}: texts and
    P(chosen is better)); returns (folder/model, log)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = common.trainer_arguments(training, folder, progress, seed)
    config = RewardConfig(**args, center_rewards_coefficient=None)
    trainer = _soft_trainer_class()(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(
            [{"chosen": p["chosen"], "rejected": p["rejected"], "margin": float(p["p"])} for p in pairs]
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=common.lora(training, "SEQ_CLS"),
    )
    log = common.train(trainer, folder, "preference model")
    out = common.save_merged(
        trainer.model, tokenizer, folder, {"stage": "pm", "base": base, "pairs": len(pairs)}
    )
    return out, log


def reward_scores(
    folder: Path | str, texts: list[str], batch_size: int = 8, max_length: int = 512
) -> np.ndarray:
    """The preference model's score of each text (higher: preferred)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(str(folder))
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"  # keep the reply, which is what is scored
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    scores = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                # ended with EOS as TRL ends every training text, so the score is read where it was trained
                [
                    t if t.endswith(tokenizer.eos_token) else t + tokenizer.eos_token
                    for t in texts[start : start + batch_size]
                ],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            )
            scores.extend(model(**batch).logits[:, 0].tolist())
    return np.array(scores)
