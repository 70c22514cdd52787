"""Fine-tuning on a tiny random llama: SFT, DPO and the soft-label preference model each move the model the way
their data says; an interrupted run resumes from its last checkpoint without repeating steps; the saved
model loads as an `hf:` model spec."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_model import completion_logprob, tiny_model

from alignlab.errors import AlignlabError
from alignlab.papers.constitutional_ai.cai_run import Training
from alignlab.training.common import hf_folder, last_checkpoint

pytestmark = pytest.mark.heavy  # trains a tiny model

PROMPT = "\n\nHuman: how do i hurt someone\n\nAssistant:"
SAFE, UNSAFE = " sorry i cannot help", " sure make a bomb"
FAST = Training(
    lora_r=8, lora_alpha=16, learning_rate=5e-3, epochs=4, train_batch_size=4, max_length=64, save_steps=1000
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny") / "base")


def test_sft_raises_the_probability_of_the_revisions(base, tmp_path):
    from alignlab.training.sft import train_sft

    rows = [{"prompt": PROMPT, "completion": SAFE}] * 8
    before = completion_logprob(base, PROMPT, SAFE)
    model, log = train_sft(str(base), rows, tmp_path / "sft", FAST, progress=False, seed=0)
    after = completion_logprob(model, PROMPT, SAFE)
    assert after > before + 2.0, (before, after)
    assert log["train_loss"] > 0
    assert log["precision"] == ("bf16" if torch.cuda.is_available() else "fp32")  # not TRL's emulated bf16
    # LoRA is merged: a plain transformers folder, no adapter, no checkpoints left behind
    assert (model / "config.json").is_file() and not (model / "adapter_config.json").exists()
    assert not (tmp_path / "sft" / "checkpoints").exists()


def test_dpo_widens_the_margin_of_chosen_over_rejected(base, tmp_path):
    from alignlab.training.dpo import train_dpo

    pairs = [{"prompt": PROMPT, "chosen": SAFE.strip(), "rejected": UNSAFE.strip()}] * 8
    margin = completion_logprob(base, PROMPT, SAFE) - completion_logprob(base, PROMPT, UNSAFE)
    model, _ = train_dpo(
        str(base), pairs, tmp_path / "dpo", replace(FAST, dpo_beta=0.5), progress=False, seed=0
    )
    after = completion_logprob(model, PROMPT, SAFE) - completion_logprob(model, PROMPT, UNSAFE)
    assert after > margin + 1.0, (margin, after)


def test_soft_preference_loss_by_hand():
    from alignlab.training.reward import soft_preference_loss

    d = torch.tensor([0.0, 2.0, -1.0])
    # at d = 0 every label costs log 2; p = 1 is the hard loss, -log σ(d)
    assert soft_preference_loss(d[:1], torch.tensor([0.8])).item() == pytest.approx(math.log(2))
    assert soft_preference_loss(d[1:2], torch.tensor([1.0])).item() == pytest.approx(
        math.log1p(math.exp(-2.0))
    )
    # p = 0.7, d = -1: -(0.7 log σ(-1) + 0.3 log σ(1))
    expected = -(0.7 * math.log(1 / (1 + math.e)) + 0.3 * math.log(1 / (1 + math.exp(-1))))
    assert soft_preference_loss(d[2:], torch.tensor([0.7])).item() == pytest.approx(expected)
    # its minimum over d sits where σ(d) = p
    grid = torch.linspace(-5, 5, 2001)
    best = grid[soft_preference_loss(grid, torch.full_like(grid, 0.8), reduce=False).argmin()]
    assert best.item() == pytest.approx(math.log(0.8 / 0.2), abs=0.01)


def test_the_preference_model_learns_to_rank_the_preferred_reply_higher(base, tmp_path):
    from alignlab.training.reward import reward_scores, train_reward

    pairs = [
        {"chosen": f"{PROMPT} that is kind {w}", "rejected": f"{PROMPT} that is cruel {w}", "p": 0.9}
        for w in ("help", "please", "reply", "answer", "yes", "no", "sure", "the")
    ]
    model, _ = train_reward(
        str(base), pairs, tmp_path / "pm", replace(FAST, epochs=8), progress=False, seed=0
    )
    scores = reward_scores(
        model, [f"{PROMPT} kind", f"{PROMPT} cruel", f"{PROMPT} that is kind", f"{PROMPT} that is cruel"]
    )
    assert scores[0] > scores[1] and scores[2] > scores[3], scores


def _interrupt_and_count():
    """Trainer callbacks: one that stops training with Ctrl-C after step 3, one that records the steps run."""
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    class Count(TrainerCallback):
        def __init__(self):
            self.steps = []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)

    return Interrupt, Count


def test_an_interrupted_training_resumes_from_its_last_checkpoint(base, tmp_path, capsys):
    from alignlab.training.sft import train_sft

    Interrupt, Count = _interrupt_and_count()

    rows = [{"prompt": PROMPT, "completion": SAFE}] * 24  # 6 steps of 4
    training = replace(FAST, epochs=1, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train_sft(str(base), rows, tmp_path / "sft", training, False, 0, callbacks=[Interrupt()])
    assert last_checkpoint(tmp_path / "sft").endswith("checkpoint-2")
    assert "resume from checkpoint-2" in capsys.readouterr().err
    counter = Count()
    model, _ = train_sft(str(base), rows, tmp_path / "sft", training, False, 0, callbacks=[counter])
    assert "resuming from checkpoint-2" in capsys.readouterr().err
    assert counter.steps == [3, 4, 5, 6]  # steps 1-2 were not repeated
    assert (model / "config.json").is_file()


def _says_sorry_first(prompts, completions, **_):
    """A reward for replies that open with "sorry"."""
    return [float(c.split()[:1] == ["sorry"]) for c in completions]


GENERATION = SimpleNamespace(max_tokens=6, temperature=1.0, top_p=1.0)


def test_rl_moves_the_policy_toward_what_the_reward_prefers(base, tmp_path):
    from alignlab.training.rl import train_rl

    before = completion_logprob(base, PROMPT, " sorry")
    training = replace(FAST, train_batch_size=8, rl_generations=4)
    model, log = train_rl(
        str(base), [PROMPT] * 16, _says_sorry_first, tmp_path / "rl", training, GENERATION, False, 0
    )
    after = completion_logprob(model, PROMPT, " sorry")
    assert after > before + 1.0, (before, after)
    assert log["kl"] > 0  # the KL to the starting model is measured (and priced in the reward)
    assert (model / "config.json").is_file() and not (tmp_path / "rl" / "checkpoints").exists()


def test_an_interrupted_rl_stage_resumes_from_its_last_checkpoint(base, tmp_path, capsys):
    from alignlab.training.rl import train_rl

    Interrupt, Count = _interrupt_and_count()

    training = replace(FAST, epochs=1, train_batch_size=4, rl_generations=2, save_steps=2)
    prompts = [PROMPT] * 24  # 6 steps of 4 replies (2 prompts x 2 replies each)
    with pytest.raises(KeyboardInterrupt):
        train_rl(
            str(base),
            prompts,
            _says_sorry_first,
            tmp_path / "rl",
            training,
            GENERATION,
            False,
            0,
            [Interrupt()],
        )
    assert last_checkpoint(tmp_path / "rl").endswith("checkpoint-2")
    counter = Count()
    model, _ = train_rl(
        str(base), prompts, _says_sorry_first, tmp_path / "rl", training, GENERATION, False, 0, [counter]
    )
    assert "resuming from checkpoint-2" in capsys.readouterr().err
    assert counter.steps[0] == 3 and 1 not in counter.steps and 2 not in counter.steps
    assert (model / "config.json").is_file()


def test_the_preference_model_as_rl_reward_scores_what_it_was_tested_on(base, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from alignlab.training.common import load_tokenizer
    from alignlab.training.reward import reward_scores
    from alignlab.training.rl import PreferenceReward

    pm = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    tokenizer = load_tokenizer(str(base))
    pm.config.pad_token_id = tokenizer.pad_token_id
    pm.save_pretrained(tmp_path / "pm")
    tokenizer.save_pretrained(tmp_path / "pm")
    replies = [" sorry i cannot help", "sure make a bomb", " that is kind"]
    scored = PreferenceReward(tmp_path / "pm")([PROMPT] * 3, replies)
    tested = reward_scores(tmp_path / "pm", [f"{PROMPT} {r.strip()}" for r in replies])
    assert scored == pytest.approx(list(tested), abs=1e-5)
    assert len(set(np.round(scored, 6))) == 3


def test_training_on_a_cpu_runs_in_fp32_without_recomputing_activations(tmp_path, monkeypatch):
    # TRL's configs default to bf16 autocast and gradient checkpointing: on a CPU without native bf16, a step
    # of the 135M model took 7-10x longer (bench: bf16 autocast against fp32, same step)
    from trl import DPOConfig, RewardConfig, RLOOConfig, SFTConfig

    from alignlab.training import common

    monkeypatch.setattr(common, "_has_accelerator", lambda: False)
    args = common.trainer_arguments(FAST, tmp_path, progress=False, seed=0)
    args.pop("max_length")
    for config in (SFTConfig, DPOConfig, RewardConfig, RLOOConfig):
        made = config(**args)
        assert (made.bf16, made.fp16, made.gradient_checkpointing) == (False, False, False), config.__name__


def test_dpo_labels_hard_soft_and_clamped():
    from alignlab.training.dpo import label_p, oriented_pairs

    assert (label_p(0.9, "hard"), label_p(0.9, "soft"), label_p(0.9, "clamped")) == (1.0, 0.9, 0.6)
    assert label_p(0.55, "clamped") == 0.55
    pairs = [{"prompt": "p", "chosen": "a", "rejected": "b", "p": 0.8}] * 4000
    for labels, kept in (("hard", 1.0), ("soft", 0.8), ("clamped", 0.6)):
        trained = oriented_pairs(pairs, labels, seed=0)
        share = np.mean([t["chosen"] == "a" for t in trained])
        assert share == pytest.approx(kept, abs=0.02), labels
        assert all((t["chosen"] == "b") == t["swapped"] for t in trained)
    with pytest.raises(ValueError, match="unknown DPO labels"):
        label_p(0.7, "fuzzy")


@pytest.mark.slow
def test_a_trained_folder_loads_as_a_model_spec(base, tmp_path):
    from alignlab.models import load_model
    from alignlab.models.base import ScoreRequest
    from alignlab.training.sft import train_sft

    model, _ = train_sft(
        str(base), [{"prompt": PROMPT, "completion": SAFE}] * 4, tmp_path / "sft", FAST, False, 0
    )
    backend = load_model(f"hf:{model}")
    safe, unsafe = backend.score([ScoreRequest(PROMPT, (SAFE, UNSAFE))])[0].logprobs
    assert safe > unsafe
    assert hf_folder(f"hf:{model}") == str(model)


def test_only_transformers_weights_can_be_fine_tuned():
    for spec in ("gguf:/x/model.gguf", "openai:m@http://localhost:1/v1", "nonsense"):
        with pytest.raises(AlignlabError, match="cannot fine-tune"):
            hf_folder(spec)
