"""`alignlab cai`: Constitutional AI (Bai et al. 2022) end to end, stage by stage or all at once.

    alignlab cai revise      critique and revise sampled replies (the SFT set)      cai_revise.py
    alignlab cai train-sft   fine-tune the model on the revisions (LoRA)            cai_train.py
    alignlab cai label       AI feedback on pairs of the supervised model's replies cai_label.py
    alignlab cai train-pm    a preference model on the AI labels, and its accuracy  cai_train.py
    alignlab cai train-rl    RL-CAI: the supervised model against the preference    cai_train.py
                             model (RLOO, KL penalty), the run's policy
    alignlab cai train-dpo   DPO policies on the AI labels: hard, soft, clamped     cai_train.py
    alignlab cai evaluate    before against after                                   cai_evaluate.py
    alignlab cai all         every stage in order

Every stage works in one run folder (`--out`, layout in cai_run.py), resumes where it stopped, and skips
what is done. Settings and models given to the first stage are kept in the run's config.json (the pipeline
runner does this for every pipeline): later stages read them from there, so `alignlab cai train-sft --out
RUN` needs nothing else; an option given again must agree. The run's identity holds every model's
fingerprint: a folder started with other weights is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields

from alignlab import option_types as ot
from alignlab.errors import AlignlabError
from alignlab.experiments import Option, register
from alignlab.experiments.base import DataSource
from alignlab.experiments.pipeline import Pipeline, PipelineRun, Role
from alignlab.papers.constitutional_ai.cai_run import EXPERIMENT, STAGES, CAIRun, CAISettings, Training

# (flag, settings field, type, help); Training's fields as training.FIELD.
OPTIONS = (
    (
        "--constitution",
        "constitution",
        str,
        "published (default: the paper's 16 + 16 principles), default (this project's), a YAML file or a folder",
    ),
    ("--source", "source", str, "red-team prompts: hh-rlhf (default), harmbench or donotanswer"),
    (
        "--prompts",
        "prompts_file",
        str,
        "prompts from a file: a red-team run's transcripts.jsonl, jsonl or lines",
    ),
    ("--n", "n", ot.whole_number(1), "training prompts (default: 200)"),
    ("--eval-n", "eval_n", ot.whole_number(0), "held-out prompts for the evaluation (default: 30)"),
    (
        "--rounds",
        "rounds",
        ot.whole_number(1),
        "critique-revision rounds per prompt (default: 4, the paper's)",
    ),
    (
        "--critique-shots",
        "critique_shots",
        ot.whole_number(0),
        "few-shot critique/revision demonstrations (default: 1)",
    ),
    (
        "--feedback-shots",
        "feedback_shots",
        ot.whole_number(0),
        "few-shot comparisons before each AI label (default: 1)",
    ),
    ("--max-tokens", "max_tokens", ot.whole_number(1), "tokens per reply or revision (default: 64)"),
    ("--critique-tokens", "critique_tokens", ot.whole_number(1), "tokens per critique (default: 48)"),
    ("--temperature", "temperature", ot.temperature, "sampling temperature (default: 1, the paper's)"),
    ("--top-p", "top_p", ot.top_p, "nucleus sampling's p (default: 1, the paper's)"),
    (
        "--ensemble",
        "ensemble",
        ot.whole_number(1),
        "principles averaged per AI label (default: 1, one drawn, as the paper)",
    ),
    (
        "--cot-tokens",
        "cot_tokens",
        ot.whole_number(1),
        "tokens of chain of thought per comparison with --cot (default: 96)",
    ),
    (
        "--held-out",
        "held_out",
        ot.number_in(0, 1, "a share", ends="[)"),
        "share of AI labels kept back to test the preference model (default: 0.2)",
    ),
    (
        "--pm-eval-n",
        "pm_eval_n",
        ot.whole_number(0),
        "hh-rlhf harmless-base test pairs the preference model is tested on",
    ),
    (
        "--pm-helpful-n",
        "pm_helpful_n",
        ot.whole_number(0),
        "human helpfulness comparisons (hh-rlhf helpful-base) mixed into the preference model's data (default: 200)",
    ),
    (
        "--dpo-labels",
        "dpo_labels",
        ot.names_from(("hard", "soft", "clamped"), "kind of label"),
        "DPO policies to train, one per kind of label: hard, soft, clamped (default: all three)",
    ),
    (
        "--rl-generations",
        "rl_generations",
        ot.whole_number(2),
        "RL-CAI: replies sampled per prompt, each one's baseline the others' mean (default: 4)",
    ),
    (
        "--rl-kl",
        "rl_kl",
        ot.number_in(0, 10, "a KL coefficient"),
        "RL-CAI: the KL penalty's coefficient (default: 0.05)",
    ),
    (
        "--hhh-n",
        "hhh_n",
        ot.whole_number(0),
        "published HHH comparisons in the evaluation (default: 100; all: 438; 0: none)",
    ),
    (
        "--redteam-n",
        "redteam_n",
        ot.whole_number(0),
        "red-team attacks in the evaluation (default: 20; 0: none)",
    ),
    ("--redteam-source", "redteam_source", str, "the evaluation's attacks: harmbench (default), donotanswer"),
    ("--lora-r", "lora_r", ot.whole_number(1), "LoRA rank (default: 16)"),
    (
        "--learning-rate",
        "learning_rate",
        ot.positive_number("a learning rate"),
        "constant learning rate (default: 2e-4)",
    ),
    (
        "--epochs",
        "epochs",
        ot.positive_number("a number of epochs"),
        "epochs of each training stage (default: 1)",
    ),
    (
        "--train-batch-size",
        "train_batch_size",
        ot.whole_number(1),
        "examples per training step (default: 16)",
    ),
    ("--max-length", "max_length", ot.whole_number(8), "tokens per training example at most (default: 320)"),
    ("--save-steps", "save_steps", ot.whole_number(1), "steps between checkpoints (default: 10)"),
    ("--beta", "dpo_beta", ot.positive_number("a DPO beta"), "DPO's beta (default: 0.1)"),
)
_TRAINING = {f.name for f in fields(Training)}
STAGE_HELP = {
    "revise": "sample replies to red-team prompts, then critique and revise them under the constitution",
    "train-sft": "fine-tune the model on the revisions (TRL SFT, LoRA)",
    "label": "AI feedback: the feedback model compares two replies of the supervised model",
    "train-pm": "train a preference model on the AI labels; test it on held-out labels and hh-rlhf",
    "train-rl": "RL-CAI: train the supervised model against the preference model (RLOO, KL penalty; RUN/policy)",
    "train-dpo": "DPO policies on the AI preferences, one per kind of label (RUN/dpo-hard, dpo-soft, dpo-clamped)",
    "evaluate": "base, supervised and final models compared on held-out prompts",
    "all": "every stage in order",
}


class ConstitutionalAI(Pipeline):
    name = EXPERIMENT
    help = "Constitutional AI: critique/revision, AI feedback, training, evaluation"
    description = "Constitutional AI (Bai et al. 2022) end to end, stage by stage or all at once"
    roles = (
        Role("model", "the model to improve"),
        Role("feedback_model", "the AI-feedback model", default=None, fallback="model"),
        Role("judge", "the evaluation's judge", default=None, fallback="feedback_model"),
    )
    settings_class = CAISettings
    options = tuple(
        Option(flag, f"training.{dest}" if dest in _TRAINING else dest, kind, text)
        for flag, dest, kind, text in OPTIONS
    ) + (
        Option(
            "--cot",
            "cot",
            bool,
            "AI labels with chain of thought, clamped to [0.4, 0.6] (the paper's CoT variant)",
        ),
    )
    stages = STAGES
    stage_help = STAGE_HELP
    keep_metrics = True  # a stage started again leaves the finished run's metrics.json as it was
    files = (
        "metrics.json",
        "config.json",
        "revise/",
        "sft/",
        "label/",
        "pm/",
        "rl/",
        "policy/",
        "dpo-hard/",
        "dpo-soft/",
        "dpo-clamped/",
        "evaluate/",
    )

    @property
    def prompts(self):
        from alignlab.papers.constitutional_ai import cai_prompts

        return {"FRAMES": cai_prompts.frames_digest()}

    def check(self, settings: CAISettings, models) -> None:
        from alignlab.papers.constitutional_ai.constitution import load_constitution

        settings.check()
        if settings.constitution != "published":  # the published files are read with the data, later
            load_constitution(settings.constitution)  # a bad constitution file: one line, before any data

    def data(self, settings: CAISettings, source: DataSource) -> list[dict]:
        from alignlab.papers.constitutional_ai.cai_run import read_prompts

        return read_prompts(settings, source.data_dir)[2]

    def identity_extra(self, settings: CAISettings, source: DataSource) -> dict:
        from alignlab.papers.constitutional_ai.constitution import load_constitution

        constitution = load_constitution(settings.constitution, source.data_dir)
        # more shots than the constitution has would silently be fewer: refuse, naming how many there are
        for flag, asked, have in (
            ("--critique-shots", settings.critique_shots, len(constitution.critique_examples)),
            ("--feedback-shots", settings.feedback_shots, len(constitution.feedback_examples)),
            *(
                [("--feedback-shots (with --cot)", settings.feedback_shots, len(constitution.cot_examples))]
                if settings.cot
                else []
            ),
        ):
            if asked > have:
                raise AlignlabError(
                    f"{flag} {asked}: the constitution {settings.constitution!r} has {have} such demonstrations"
                )
        return {"constitution": constitution.digest()}

    def run(self, run: PipelineRun, stage: str | None) -> dict:
        from rich.console import Console

        from alignlab.papers.constitutional_ai.cai_report import print_stage

        console = Console()
        cai = CAIRun(run)
        result: dict = {}
        for name in STAGES if stage is None else (stage,):
            console.print(f"[bold]cai {name}[/bold] → {cai.path}")
            result = run_stage(cai, name)
            print_stage(console, name, result)
        return result

    def report_section(self):
        from alignlab.papers.constitutional_ai.cai_report import CAISection

        return CAISection()


def run_stage(run: CAIRun, stage: str) -> dict:
    from alignlab.papers.constitutional_ai import cai_evaluate, cai_label, cai_report, cai_revise, cai_train
    from alignlab.runfolder import RunFolder

    if stage == "revise":
        result = cai_revise.revise(run)
        RunFolder(run.stage("revise")).finish(result)
    elif stage == "label":
        result = cai_label.label(run)
        RunFolder(run.stage("label")).finish(result)
    elif stage == "train-sft":
        result = cai_train.train_sft(run)
    elif stage == "train-pm":
        result = cai_train.train_pm(run)
    elif stage == "train-rl":
        result = cai_train.train_rl(run)
    elif stage == "train-dpo":
        result = cai_train.train_dpo(run)
    elif stage == "evaluate":
        result = cai_evaluate.evaluate(run)
        result["stages"] = stage_summaries(run)
        result["settings"] = json.loads(json.dumps(asdict(run.settings), default=str))
        cai_report.save_figures(run.path, result)
        RunFolder(run.stage("evaluate")).finish(result)
        RunFolder(run.path).finish(result)  # the run is whole: the index reads this
    else:
        raise AlignlabError(f"unknown stage {stage!r}: choose from {', '.join(STAGES)} or all")
    return result


def stage_summaries(run: CAIRun) -> dict:
    out = {}
    for stage in ("revise", "sft", "label", "pm", "rl", *(f"dpo-{x}" for x in run.settings.dpo_labels)):
        path = run.stage(stage) / "metrics.json"
        if path.is_file():
            out[stage] = json.loads(path.read_text(encoding="utf-8"))
    return out


register(ConstitutionalAI())
