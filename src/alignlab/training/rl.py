"""Reinforcement learning from a preference model (RL-CAI, Bai et al. 2022 §4): the policy samples replies
to prompts online, the preference model scores them, and the policy moves toward the better-scored ones
with a KL penalty to the model it started from.

TRL's RLOO trainer does this here. The paper used PPO; TRL 1.16 (pinned) has no PPO trainer, not even in
`trl.experimental`, and RLOO (Ahmadian et al. 2024) keeps what matters for this comparison: the reward is the
preference model's score minus beta times the KL divergence of the policy's reply from the reference
model's (the SL-CAI model: the LoRA adapter switched off), as in the paper's PPO, and the baseline is the
mean reward of the other replies sampled for the same prompt (`num_generations`), so no value model has to
be trained, which a CPU can afford. Checkpoints and resuming are the other stages' (training/common.py).
"""

from __future__ import annotations

from pathlib import Path

from alignlab.training import common
from alignlab.training.sft import _causal_lm


class PreferenceReward:
    """A preference model (training/reward.py's folder) as TRL's reward function: the score of "prompt reply"
    ended with EOS, the text it was trained on. Loaded once, kept in memory for the whole training."""

    def __init__(self, folder: Path | str, max_length: int = 512) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        self.__name__ = "preference_model"  # TRL names each reward function in its logs
        self.tokenizer = common.load_tokenizer(str(folder))
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"  # keep the reply, which is what is scored
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), dtype=torch.float32
        ).eval()
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = max_length

    def texts(self, prompts: list[str], completions: list[str]) -> list[str]:
        eos = self.tokenizer.eos_token
        return [f"{p} {c.strip()}{eos}" for p, c in zip(prompts, completions, strict=True)]

    def __call__(self, prompts: list[str], completions: list[str], **_) -> list[float]:
        import torch

        batch = self.tokenizer(
            self.texts(prompts, completions),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        with torch.no_grad():
            return self.model(**batch).logits[:, 0].tolist()


def train_rl(
    base: str,
    prompts: list[str],
    reward,
    folder: Path,
    training,
    generation,
    progress: bool,
    seed: int,
    callbacks=None,
) -> tuple[Path, dict]:
    """Train the weights at `base` against `reward` (a callable (prompts, completions) -> scores, e.g. a
    PreferenceReward) on `prompts`; `generation` carries max_tokens, temperature and top_p of the replies
    sampled during training. Returns (folder/model, log)."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(base)
    tokenizer.padding_side = "left"  # prompts are left-padded for generation
    args = common.trainer_arguments(training, folder, progress, seed)
    args.pop("max_length")
    config = RLOOConfig(
        **args,
        num_generations=training.rl_generations,
        max_completion_length=generation.max_tokens,
        temperature=generation.temperature,
        top_p=generation.top_p,
        beta=training.rl_kl,
    )
    trainer = RLOOTrainer(
        model=_causal_lm(base),
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=common.lora(training, "CAUSAL_LM"),
    )
    log = common.train(trainer, folder, "RL")
    tokenizer.padding_side = "right"
    model = common.save_merged(
        trainer.model, tokenizer, folder, {"stage": "rl", "base": base, "prompts": len(prompts)}
    )
    return model, log
