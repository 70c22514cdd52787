"""Direct preference optimisation (Rafailov et al. 2023) of a policy on preference pairs with TRL's DPOTrainer
and a LoRA adapter; the reference is the starting weights (the adapter switched off).

Why DPO stands in for the paper's PPO against a preference model: DPO optimises the same KL-regularised
objective in closed form from the pairs, without sampling during training or a value model, which a CPU can
afford; PPO needs rollouts from the policy at every step. To use PPO instead, train the preference model
(`alignlab cai train-pm`), then give its folder as the reward model of an RL trainer (e.g. TRL's RLOO or
GRPO trainers take `reward_funcs`/reward models) with the supervised model as the policy and its prompts."""

from __future__ import annotations

from pathlib import Path

from alignlab.training import common
from alignlab.training.sft import _causal_lm


def train_dpo(
    base: str, pairs: list[dict], folder: Path, training, progress: bool, seed: int, callbacks=None
) -> tuple[Path, dict]:
    """Optimise the weights at `base` on `pairs` ({"prompt", "chosen", "rejected"}); returns (folder/model, log)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(base)
    config = DPOConfig(**common.trainer_arguments(training, folder, progress, seed), beta=training.dpo_beta)
    trainer = DPOTrainer(
        model=_causal_lm(base),
        ref_model=None,
        args=config,
        train_dataset=Dataset.from_list(
            [
                # a reply follows "Assistant:" after a space, as it is sampled (the space starts its first token)
                {
                    "prompt": p["prompt"],
                    "chosen": " " + p["chosen"].strip(),
                    "rejected": " " + p["rejected"].strip(),
                }
                for p in pairs
            ]
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=common.lora(training, "CAUSAL_LM"),
    )
    log = common.train(trainer, folder, "DPO")
    model = common.save_merged(
        trainer.model, tokenizer, folder, {"stage": "dpo", "base": base, "pairs": len(pairs)}
    )
    return model, log
