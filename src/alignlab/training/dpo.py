"""Direct preference optimisation (Rafailov et al. 2023) of a policy on preference pairs with TRL's DPOTrainer
and a LoRA adapter; the reference is the starting weights (the adapter switched off).

DPO is the cheaper alternative to RL-CAI (training/rl.py): it optimises the same KL-regularised objective in
closed form from the pairs, with no sampling during training, but it does not use the preference model.

Labels (`labels`): `hard` (the preferred reply always chosen, as TRL's loss takes pairs), `soft` (the
feedback model's P(chosen is better) = p), or `clamped` (p clamped to [0.4, 0.6], the paper's treatment of
chain-of-thought labels, §4.1). A soft label enters as an orientation drawn per pair: (chosen, rejected)
with probability p, swapped otherwise. TRL's sigmoid loss then has, in expectation over the draw, the
soft-label loss -[p log σ(βΔ) + (1 - p) log σ(-βΔ)] (conservative DPO with a per-pair ε = 1 - p), which
TRL's own `label_smoothing` gives only as one ε for every pair and not for its sigmoid loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignlab.training import common
from alignlab.training.sft import _causal_lm

LABELS = ("hard", "soft", "clamped")
CLAMP = (0.4, 0.6)


def label_p(p: float, labels: str) -> float:
    """P(chosen is better) that a pair is trained with (p >= 0.5: `chosen` is the feedback model's choice)."""
    if labels == "hard":
        return 1.0
    if labels == "soft":
        return p
    if labels == "clamped":
        return float(np.clip(p, *CLAMP))
    raise ValueError(f"unknown DPO labels {labels!r}: choose from {', '.join(LABELS)}")


def oriented_pairs(pairs: list[dict], labels: str, seed: int) -> list[dict]:
    """Each pair as trained: swapped with probability 1 - label_p (one seeded draw per pair); `swapped` says
    which were."""
    rng = np.random.default_rng(seed)
    out = []
    for pair in pairs:
        keep = rng.uniform() < label_p(float(pair.get("p", 1.0)), labels)
        chosen, rejected = (pair["chosen"], pair["rejected"]) if keep else (pair["rejected"], pair["chosen"])
        out.append({**pair, "chosen": chosen, "rejected": rejected, "swapped": not keep})
    return out


def train_dpo(
    base: str,
    pairs: list[dict],
    folder: Path,
    training,
    progress: bool,
    seed: int,
    callbacks=None,
    labels: str = "hard",
) -> tuple[Path, dict]:
    """Optimise the weights at `base` on `pairs` ({"prompt", "chosen", "rejected", "p"}) with `labels`;
    returns (folder/model, log)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    common.quiet_transformers()
    tokenizer = common.load_tokenizer(base)
    config = DPOConfig(**common.trainer_arguments(training, folder, progress, seed), beta=training.dpo_beta)
    trained = oriented_pairs(pairs, labels, seed)
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
                for p in trained
            ]
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=common.lora(training, "CAUSAL_LM"),
    )
    log = common.train(trainer, folder, "DPO")
    log["swapped_pairs"] = sum(p["swapped"] for p in trained)
    model = common.save_merged(
        trainer.model,
        tokenizer,
        folder,
        {"stage": "dpo", "base": base, "pairs": len(pairs), "labels": labels},
    )
    return model, log
