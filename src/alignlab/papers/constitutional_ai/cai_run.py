"""One Constitutional AI run: its settings, its folder's layout, and the prompts each stage works on.

RUN/
  config.json, metrics.json     the run as the index and report see it (metrics.json once evaluated)
  revise/                       critique and revision chains (samples.jsonl), chains.jsonl, sft.jsonl and
                                sft_dataset/ (a `datasets` Dataset)
  sft/                          the supervised model: checkpoints/, model/ (LoRA merged into the weights)
  label/                        AI feedback: samples.jsonl, preferences.jsonl
  pm/                           the preference model: checkpoints/, model/, metrics.json
  rl/                           RL-CAI against the preference model: checkpoints/, metrics.json
  policy/                       the RL-CAI policy (a transformers folder: `--model hf:RUN/policy`)
  dpo-hard/ dpo-soft/ dpo-clamped/   DPO policies on the AI labels, one per kind of label: checkpoints/, model/
  evaluate/                     before/after: samples.jsonl, comparisons.jsonl, redteam/, metrics.json

Prompts: the data directory's red-team prompts (hh-rlhf harmless-base by default, or harmbench,
donotanswer) or the attacks of a red-team run (`--prompts RUN/transcripts.jsonl`) or a file of one prompt
per line / jsonl with "prompt". A seeded shuffle gives the first `n` to training and the next `eval_n` to
evaluation, so the evaluation prompts are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignlab.errors import AlignlabError

EXPERIMENT = "cai"
VERSION = "2"
STAGES = ("revise", "train-sft", "label", "train-pm", "train-rl", "train-dpo", "evaluate")


@dataclass(frozen=True)
class Training:
    """LoRA fine-tuning: the same for SFT, the preference model and DPO unless a stage says otherwise."""

    lora_r: int = 16
    lora_alpha: int = 32
    learning_rate: float = 2e-4
    epochs: float = 1.0
    train_batch_size: int = 16
    max_length: int = 320
    save_steps: int = 10
    dpo_beta: float = 0.1
    # RL-CAI: replies sampled per prompt (RLOO's group; its baseline is the others' mean reward) and the KL
    # penalty's coefficient (TRL's default [D]: the paper does not state its own)
    rl_generations: int = 4
    rl_kl: float = 0.05


@dataclass(frozen=True)
class CAISettings:
    """What a run is parameterised by; its models (model, feedback_model, judge) are the pipeline's roles."""

    # The paper's settings by default: its 16 published critique/revision pairs and 16 feedback principles,
    # 4 revisions per prompt, sampling at T = 1 (§3.1-3.2, §4.1). This project's lighter choices are flags:
    # --constitution default (its own YAML), --rounds 1, --temperature 0.7 --top-p 0.9 (a 135M model at T = 1
    # writes noise)
    constitution: str = "published"
    source: str = "hh-rlhf"
    prompts_file: str | None = None
    n: int = 200
    eval_n: int = 30
    rounds: int = 4
    critique_shots: int = 1
    feedback_shots: int = 1
    max_tokens: int = 64
    critique_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    ensemble: int = 1  # principles averaged per label (1: one drawn principle, as the paper)
    cot: bool = False
    cot_tokens: int = 96
    held_out: float = 0.2  # share of AI labels kept from the preference model, to test it on
    pm_eval_n: int = 100  # hh-rlhf harmless-base test pairs the preference model is tested on
    # human helpfulness comparisons (hh-rlhf helpful-base train) mixed into the preference model's data, as the
    # paper mixes human helpfulness labels with AI harmlessness labels (§4.1); how many is this project's [D]
    pm_helpful_n: int = 200
    dpo_labels: tuple[str, ...] = ("hard", "soft", "clamped")  # one DPO policy per kind of label
    hhh_n: int = 100  # of the 438 (all: --hhh-n 438)
    redteam_n: int = 20
    redteam_source: str = "harmbench"  # not the training prompts' source, so no attack was trained on
    seed: int = 1234
    training: Training = field(default_factory=Training)

    def check(self) -> None:
        for name, value in (("--n", self.n), ("--rounds", self.rounds), ("--ensemble", self.ensemble)):
            if value < 1:
                raise AlignlabError(f"{name} must be a positive number, got {value}")
        for name, value in (
            ("--eval-n", self.eval_n),
            ("--hhh-n", self.hhh_n),
            ("--redteam-n", self.redteam_n),
            ("--pm-helpful-n", self.pm_helpful_n),
        ):
            if value < 0:
                raise AlignlabError(f"{name} must not be negative, got {value}")
        if not 0.0 <= self.held_out < 1.0:
            raise AlignlabError(f"--held-out must be in [0, 1), got {self.held_out}")
        from alignlab.training.dpo import LABELS

        unknown = [x for x in self.dpo_labels if x not in LABELS]
        if unknown:
            raise AlignlabError(f"--dpo-labels {','.join(unknown)}: choose from {', '.join(LABELS)}")
        if self.training.rl_generations < 2:
            raise AlignlabError("--rl-generations must be at least 2 (RLOO's baseline is the other replies)")


class CAIRun:
    """The folder of one run and what every stage shares: settings, models, constitution, prompts, runtime.
    Made from the pipeline's run (`experiments.pipeline.PipelineRun`), whose identity every stage extends."""

    def __init__(self, ctx) -> None:
        from alignlab.papers.constitutional_ai.constitution import load_constitution

        self.ctx = ctx
        self.path = ctx.path
        self.settings: CAISettings = ctx.settings
        self.models = ctx.models  # model, feedback_model, judge
        self.runtime = ctx.runtime
        self.data_dir = ctx.data_dir
        self.constitution = load_constitution(self.settings.constitution, self.data_dir)
        self._prompts: tuple[list[str], list[str], list[dict]] | None = None

    # --- layout -----------------------------------------------------------------------------------------
    def stage(self, name: str) -> Path:
        return self.path / name

    @property
    def sft_model(self) -> Path:
        return self.path / "sft" / "model"

    @property
    def pm_model(self) -> Path:
        return self.path / "pm" / "model"

    @property
    def policy(self) -> Path:
        """The RL-CAI policy."""
        return self.path / "policy"

    def dpo_model(self, labels: str) -> Path:
        return self.path / f"dpo-{labels}" / "model"

    def need(self, path: Path, stage: str) -> Path:
        """A previous stage's output, or a one-line error saying which stage makes it."""
        if not path.exists():
            raise AlignlabError(f"{path} not found: run `alignlab cai {stage} --out {self.path}` first")
        return path

    # --- prompts ----------------------------------------------------------------------------------------
    def prompts(self) -> tuple[list[str], list[str], list[dict]]:
        """(training prompts, held-out evaluation prompts, provenance of the files read)."""
        if self._prompts is None:
            self._prompts = read_prompts(self.settings, self.data_dir)
        return self._prompts

    def phases(self):
        """A PhasedRun for a stage's own sample log, sharing the run's loaded models."""
        from alignlab.experiments.phased import PhasedRun

        phased = PhasedRun(self.runtime)
        phased.backends, phased._fingerprints = self.ctx.backends, self.ctx._fingerprints
        return phased

    def identity(self) -> dict:
        """The run's identity (every model's fingerprint, settings, constitution, data): a stage adds its own
        inputs to it."""
        return self.ctx.identity()


def read_prompts(s: CAISettings, data_dir: str | None) -> tuple[list[str], list[str], list[dict]]:
    """A seeded shuffle of the prompts: the first `n` to train on, the next `eval_n` held out, the files."""
    if s.prompts_file:
        texts, files = read_prompts_file(Path(s.prompts_file))
    else:
        from alignlab.data.red_team_prompts import load_seed_attacks

        texts, files = load_seed_attacks(s.source, data_dir)
    order = np.random.default_rng(s.seed).permutation(len(texts))
    train = [texts[i] for i in order[: s.n]]
    held = [texts[i] for i in order[s.n : s.n + s.eval_n]]
    if len(train) < s.n:
        raise AlignlabError(f"--n {s.n}: the prompts hold only {len(texts)}")
    return train, held, files


def read_prompts_file(path: Path) -> tuple[list[str], list[dict]]:
    """Prompts from a red-team run's transcripts.jsonl ("attack"), a jsonl with "prompt", or plain lines."""
    from alignlab.checksums import sha256_file
    from alignlab.data.jsonl import read_jsonl

    if not path.is_file():
        raise AlignlabError(f"--prompts {path}: file not found")
    texts: list[str] = []
    if path.suffix in (".jsonl", ".gz"):
        for where, row in read_jsonl(path):
            value = row.get("prompt", row.get("attack")) if isinstance(row, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise AlignlabError(f"{where}: expected a non-empty 'prompt' (or a red-team run's 'attack')")
            texts.append(value.strip())
    else:
        try:
            texts = [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise AlignlabError(f"--prompts {path}: cannot read ({exc})") from exc
    texts = list(dict.fromkeys(texts))
    if not texts:
        raise AlignlabError(f"--prompts {path}: no prompts in it")
    return texts, [{"path": str(path), "checksum": f"sha256:{sha256_file(path)}"}]
