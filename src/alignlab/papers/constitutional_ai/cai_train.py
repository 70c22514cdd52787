"""The training stages of a Constitutional AI run: SFT on the revisions; the preference model on the AI
harmlessness labels mixed with human helpfulness comparisons (hh-rlhf helpful-base, where the data directory
has it), tested on held-out AI labels and on hh-rlhf's human-labelled harmless-base test pairs; RL-CAI, the
supervised model trained online against the preference model with a KL penalty to itself (training/rl.py),
which gives the run's policy (RUN/policy); and DPO of the supervised model on the AI labels, one policy per
kind of label (hard, soft, clamped: training/dpo.py), the cheaper alternative beside it.

Each stage writes config.json with its identity (its inputs' checksums and the training settings): started
again with the same inputs it resumes from its newest checkpoint, or does nothing once its model is saved;
with different inputs it stops with an error rather than mix two runs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from alignlab.errors import AlignlabError
from alignlab.papers.constitutional_ai.cai_run import CAIRun


def _read_rows(path: Path) -> list[dict]:
    from alignlab.data.jsonl import read_jsonl

    return [row for _, row in read_jsonl(path)]


def _open_stage(run: CAIRun, stage: str, inputs: dict, done_when: Path) -> tuple[Path, dict | None]:
    """config.json of a training stage (its identity checked against a previous start); returns its folder
    and, when `done_when` exists from a finished start, that start's metrics."""
    from alignlab.checksums import sha256_file
    from alignlab.runfolder import RunFolder

    folder = run.stage(stage)
    identity = {
        **run.identity(),
        "stage": stage,
        "training": asdict(run.settings.training),
        "inputs": {k: f"sha256:{sha256_file(p)}" if Path(p).is_file() else str(p) for k, p in inputs.items()},
    }
    metrics_path = folder / "metrics.json"
    done = (
        json.loads(metrics_path.read_text(encoding="utf-8"))
        if metrics_path.is_file() and done_when.exists()
        else None
    )
    log, _ = RunFolder(folder).open(identity, extra={"experiment": f"cai-{stage}"})  # drops metrics.json
    log.close()
    if done is not None:
        _finish_stage(folder, done)
    return folder, done


def _finish_stage(folder: Path, metrics: dict) -> None:
    from alignlab.runfolder import RunFolder

    RunFolder(folder).finish(metrics)


def train_sft(run: CAIRun) -> dict:
    from alignlab.training.common import hf_folder
    from alignlab.training.sft import train_sft as fit

    data = run.need(run.stage("revise") / "sft.jsonl", "revise")
    base = hf_folder(run.models.model)
    folder, done = _open_stage(run, "sft", {"sft.jsonl": data, "base": base}, run.sft_model)
    if done is not None:
        return done
    rows = _read_rows(data)
    _, log = fit(base, rows, folder, run.settings.training, run.runtime.progress, run.settings.seed)
    metrics = {"examples": len(rows), "train": log}
    _finish_stage(folder, metrics)
    return metrics


def preference_pairs(rows: list[dict]) -> list[dict]:
    """Labelled rows as pairs: the reply with the higher P(better) is "chosen", P(chosen is better) is `p`;
    identical replies and exact ties teach nothing and are left out."""
    pairs = []
    for row in rows:
        a, b = row["responses"]
        p = float(row["p_first"])
        if a.strip() == b.strip() or p == 0.5:
            continue
        chosen, rejected = (a, b) if p > 0.5 else (b, a)
        pairs.append(
            {
                "id": row["id"],
                "prompt": row["prompt"],
                "chosen": chosen,
                "rejected": rejected,
                "p": max(p, 1 - p),
            }
        )
    return pairs


def _text(prompt: str, reply: str) -> str:
    return f"{prompt} {reply.strip()}"


def train_pm(run: CAIRun) -> dict:
    from alignlab.training.common import hf_folder
    from alignlab.training.reward import train_reward

    data = run.need(run.stage("label") / "preferences.jsonl", "label")
    base = hf_folder(run.models.model)
    helpful, helpful_source = helpful_pairs(run)
    inputs = {"preferences.jsonl": data, "base": base, "helpful-base": helpful_source}
    folder, done = _open_stage(run, "pm", inputs, run.pm_model)
    if done is not None:
        return done
    rows = _read_rows(data)
    train = preference_pairs([r for r in rows if not r["held_out"]])
    if not train:
        raise AlignlabError(f"{data}: no pair to train on (every pair identical or tied)")
    pairs = [
        {
            "chosen": _text(p["prompt"], p["chosen"]),
            "rejected": _text(p["prompt"], p["rejected"]),
            "p": p["p"],
        }
        for p in train
    ]
    model, log = train_reward(
        base, pairs + helpful, folder, run.settings.training, run.runtime.progress, run.settings.seed
    )
    metrics = {
        "pairs": len(pairs) + len(helpful),
        "ai_harmlessness_pairs": len(pairs),
        "human_helpfulness_pairs": len(helpful),
        "helpfulness_source": helpful_source,
        "train": log,
        **test_pm(run, model, rows),
    }
    _finish_stage(folder, metrics)
    return metrics


HELPFUL_BASE = ("hh-rlhf", "helpful-base", "train.jsonl.gz")


def helpful_pairs(run: CAIRun) -> tuple[list[dict], str]:
    """`pm_helpful_n` human helpfulness comparisons of hh-rlhf helpful-base/train.jsonl.gz (whole dialogues,
    hard labels: p = 1), drawn with the run's seed, and where they came from or why there are none."""
    from alignlab.data import registry
    from alignlab.data.jsonl import read_jsonl
    from alignlab.experiments.base import take

    s = run.settings
    if s.pm_helpful_n < 1:
        return [], "none asked for (--pm-helpful-n 0)"
    folder = registry.data_dir(run.data_dir)
    if folder is None:
        return [], "no data directory: harmlessness labels only"
    path = folder.joinpath(*HELPFUL_BASE)
    if not path.is_file():
        return [], f"{path} not found: harmlessness labels only"
    rows = []
    for where, row in read_jsonl(path):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise AlignlabError(f"{where}: expected 'chosen' and 'rejected' dialogues")
        if chosen != rejected:
            rows.append({"chosen": chosen, "rejected": rejected, "p": 1.0})
    return take(rows, s.pm_helpful_n, s.seed), str(path)


def test_pm(run: CAIRun, model: Path, rows: list[dict]) -> dict:
    """The preference model's accuracy on the held-out AI labels and on hh-rlhf harmless-base test pairs (the
    human-preferred reply should score higher); pairs whose opening prompt was trained on are left out."""
    from alignlab.metrics.attack import proportion
    from alignlab.training.reward import reward_scores

    out = {}
    held = preference_pairs([r for r in rows if r["held_out"]])
    if held:
        texts = [
            t for p in held for t in (_text(p["prompt"], p["chosen"]), _text(p["prompt"], p["rejected"]))
        ]
        scores = reward_scores(model, texts).reshape(-1, 2)
        right = int(np.sum(scores[:, 0] > scores[:, 1]))
        out["held_out_ai_labels"] = {
            "n": len(held),
            "correct": right,
            "accuracy": proportion(right, len(held)).to_json(),
        }
    pairs = hh_rlhf_pairs(run)
    if pairs:
        scores = reward_scores(model, [t for pair in pairs for t in pair]).reshape(-1, 2)
        right = int(np.sum(scores[:, 0] > scores[:, 1]))
        out["hh_rlhf_harmless_base"] = {
            "n": len(pairs),
            "correct": right,
            "accuracy": proportion(right, len(pairs)).to_json(),
        }
    return out


def hh_rlhf_pairs(run: CAIRun) -> list[tuple[str, str]]:
    """(chosen, rejected) dialogues of hh-rlhf harmless-base/test.jsonl.gz, `pm_eval_n` of them drawn with the
    run's seed, none opening with a training prompt."""
    from alignlab.data import registry
    from alignlab.data.jsonl import read_jsonl
    from alignlab.data.red_team_prompts import first_human
    from alignlab.experiments.base import take

    s = run.settings
    if s.pm_eval_n < 1:
        return []
    try:
        located = registry.locate("hh-rlhf", registry.data_dir(run.data_dir))
    except AlignlabError:
        return []
    paths = [p for p in located if p.name == "test.jsonl.gz" and "harmless-base" in str(p)]
    if not paths:
        return []
    train, _, _ = run.prompts()
    trained = {t.strip() for t in train}
    pairs = []
    for where, row in read_jsonl(paths[0]):
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise AlignlabError(f"{where}: expected 'chosen' and 'rejected' dialogues")
        # the training prompts were read with the same parser, so a trained opening is always recognised
        if first_human(chosen, where) not in trained and chosen != rejected:
            pairs.append((chosen, rejected))
    return take(pairs, s.pm_eval_n, s.seed)


def train_rl(run: CAIRun) -> dict:
    """RL-CAI: the supervised model against the preference model on the training prompts (RUN/policy)."""
    from types import SimpleNamespace

    from alignlab.papers.constitutional_ai import cai_prompts as P
    from alignlab.training.rl import PreferenceReward
    from alignlab.training.rl import train_rl as fit

    s = run.settings
    base = str(run.need(run.sft_model, "train-sft"))
    pm = run.need(run.pm_model, "train-pm")
    inputs = {"base": base, "preference model": pm / "model.safetensors"}
    folder, done = _open_stage(run, "rl", inputs, run.policy)
    if done is not None:
        return done
    train, _, _ = run.prompts()
    prompts = [P.dialogue(p) for p in train]
    generation = SimpleNamespace(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p)
    reward = PreferenceReward(pm, s.training.max_length)
    model, log = fit(base, prompts, reward, folder, s.training, generation, run.runtime.progress, s.seed)
    shutil.rmtree(run.policy, ignore_errors=True)
    os.replace(model, run.policy)
    metrics = {
        "prompts": len(prompts),
        "algorithm": "RLOO (TRL), KL penalty to the SL-CAI model in the reward",
        "kl_coefficient": s.training.rl_kl,
        "replies_per_prompt": s.training.rl_generations,
        "train": log,
        "policy": str(run.policy),
    }
    _finish_stage(folder, metrics)
    return metrics


def train_dpo(run: CAIRun) -> dict:
    """One DPO policy per kind of label (settings.dpo_labels), each in RUN/dpo-LABELS."""
    from alignlab.training.dpo import train_dpo as fit

    data = run.need(run.stage("label") / "preferences.jsonl", "label")
    base = str(run.need(run.sft_model, "train-sft"))
    pairs = preference_pairs(_read_rows(data))
    if not pairs:
        raise AlignlabError(f"{data}: no pair to train on (every pair identical or tied)")
    out = {}
    for labels in run.settings.dpo_labels:
        model_path = run.dpo_model(labels)
        inputs = {"preferences.jsonl": data, "base": base, "labels": labels}
        folder, done = _open_stage(run, f"dpo-{labels}", inputs, model_path)
        if done is None:
            s = run.settings
            _, log = fit(base, pairs, folder, s.training, run.runtime.progress, s.seed, labels=labels)
            done = {"pairs": len(pairs), "labels": labels, "train": log, "policy": str(model_path)}
            _finish_stage(folder, done)
        out[labels] = done
    return {"variants": out}
