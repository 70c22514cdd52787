"""`alignlab cai`: Constitutional AI (Bai et al. 2022) end to end, stage by stage or all at once.

    alignlab cai revise      critique and revise sampled replies (the SFT set)      cai_revise.py
    alignlab cai train-sft   fine-tune the model on the revisions (LoRA)            cai_train.py
    alignlab cai label       AI feedback on pairs of the supervised model's replies cai_label.py
    alignlab cai train-pm    a preference model on the AI labels, and its accuracy  cai_train.py
    alignlab cai train-dpo   the policy: DPO of the supervised model on the labels  cai_train.py
    alignlab cai evaluate    before against after                                   cai_evaluate.py
    alignlab cai all         every stage in order

Every stage works in one run folder (`--out`, layout in cai_run.py), resumes where it stopped, and skips
what is done. Settings given to the first stage are kept in the run's config.json: later stages read them
from there, so `alignlab cai train-sft --out RUN` needs nothing else; an option given again must agree.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from alignlab.errors import AlignlabError
from alignlab.experiments import option_types as ot
from alignlab.experiments.cai_run import EXPERIMENT, STAGES, CAIRun, CAISettings, Training
from alignlab.experiments.phased import Runtime

# (flag, settings field, type, help); Training's fields are set through the same flags.
OPTIONS = (
    ("--model", "model", str, "model spec of the model to improve (default: smollm2-135m)"),
    ("--feedback-model", "feedback_model", str, "model spec of the AI-feedback model (default: --model)"),
    ("--judge", "judge", str, "model spec of the evaluation's judge (default: the feedback model)"),
    ("--constitution", "constitution", str, "default, published, a YAML file or a folder of published files"),
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
        "critique-revision rounds per prompt (default: 1; the paper: 4)",
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
    ("--temperature", "temperature", ot.temperature, "sampling temperature (default: 0.7; the paper: 1)"),
    ("--top-p", "top_p", ot.top_p, "nucleus sampling's p (default: 0.9; the paper: 1)"),
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
    ("--seed", "seed", ot.seed, "seed of every draw and sample (default: 1234)"),
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


def add_cai_command(subparsers) -> None:
    from alignlab.experiments.base import command_group
    from alignlab.models import SPEC_HELP

    group = command_group(
        subparsers, "cai", "Constitutional AI: critique/revision, AI feedback, training, evaluation"
    )
    helps = {
        "revise": "sample replies to red-team prompts, then critique and revise them under the constitution",
        "train-sft": "fine-tune the model on the revisions (TRL SFT, LoRA)",
        "label": "AI feedback: the feedback model compares two replies of the supervised model",
        "train-pm": "train a preference model on the AI labels; test it on held-out labels and hh-rlhf",
        "train-dpo": "train the policy with DPO on the AI preferences (RUN/policy)",
        "evaluate": "base, supervised and final models compared on held-out prompts",
        "all": "every stage in order",
    }
    for stage in (*STAGES, "all"):
        p = group.add_parser(
            stage, help=helps[stage], description=helps[stage] + f". Model specs: {SPEC_HELP}."
        )
        for flag, dest, kind, text in OPTIONS:
            p.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=text)
        p.add_argument(
            "--cot",
            dest="cot",
            action="store_true",
            default=argparse.SUPPRESS,
            help="AI labels with chain of thought, clamped to [0.4, 0.6] (the paper's CoT variant)",
        )
        p.add_argument(
            "--out", type=ot.output_folder, default=None, help="run folder (default: runs/cai-<model>)"
        )
        p.add_argument(
            "--data-dir", default=None, help="datasets laid out as upstream (default: $ALIGNLAB_DATA_DIR)"
        )
        p.add_argument(
            "--batch-size",
            type=ot.whole_number(1),
            default=16,
            help="requests per model call when sampling or scoring",
        )
        p.add_argument(
            "--cache", type=ot.output_file, default=None, metavar="FILE", help="response cache (SQLite)"
        )
        p.add_argument("--no-cache", action="store_true")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument(
            "--report", type=ot.output_file, default=None, metavar="HTML", help="write the report when done"
        )
        p.set_defaults(func=_run, cai_stage=stage)


def settings_from(args: argparse.Namespace, stored: dict | None) -> CAISettings:
    """Explicit options over the run's stored settings over the defaults."""
    given = {dest: getattr(args, dest) for _, dest, _, _ in OPTIONS if hasattr(args, dest)}
    if hasattr(args, "cot"):
        given["cot"] = True
    base = dict(stored or {})
    training = dict(base.pop("training", None) or {})
    top = {f.name for f in fields(CAISettings)} - {"training"}
    for key, value in given.items():
        (training if key in _TRAINING else base)[key] = value
    unknown = (set(base) - top) | (set(training) - _TRAINING)
    if unknown:
        raise AlignlabError(f"the run's config.json has unknown settings {sorted(unknown)}")
    return replace(CAISettings(**base), training=Training(**training))


def _slug(spec: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in spec.split("/")[-1].split(":")[-1])


def _run(args) -> int:
    from rich.console import Console

    console = Console()
    out = args.out
    stored = None
    if out is not None and (out / "config.json").is_file():
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        if config.get("experiment") != EXPERIMENT:
            raise AlignlabError(
                f"{out} holds a {config.get('experiment')!r} run, not a Constitutional AI one"
            )
        stored = config.get("settings")
    settings = settings_from(args, stored)
    out = out or Path("runs") / f"{EXPERIMENT}-{_slug(settings.model)}"
    runtime = Runtime(
        batch_size=args.batch_size,
        use_cache=not args.no_cache,
        cache_path=args.cache,
        progress=not args.no_progress,
    )
    run = CAIRun(out, settings, runtime, args.data_dir)
    stages = STAGES if args.cai_stage == "all" else (args.cai_stage,)
    for stage in stages:
        console.print(f"[bold]cai {stage}[/bold] → {run.path}")
        result = run_stage(run, stage)
        _print_stage(console, stage, result)
    if args.report is not None:
        from alignlab.report import write_report

        write_report(run.path.parent, args.report)
        console.print(f"report: {args.report}")
    return 0


def run_stage(run: CAIRun, stage: str) -> dict:
    from alignlab.experiments import cai_evaluate, cai_label, cai_report, cai_revise, cai_train
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
    for stage in ("revise", "sft", "label", "pm", "dpo"):
        path = run.stage(stage) / "metrics.json"
        if path.is_file():
            out[stage] = json.loads(path.read_text(encoding="utf-8"))
    return out


def fmt_estimate(estimate, digits: int = 2) -> str:
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "n/a"
    low, high = estimate.get("ci") or (None, None)
    if low is None:
        return f"{estimate['value']:.{digits}f}"
    return f"{estimate['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def before_after_rows(metrics: dict) -> list[tuple]:
    rows = []
    for name, body in (metrics.get("conditions") or {}).items():
        redteam = body.get("redteam") or {}
        rows.append(
            (
                name,
                fmt_estimate(body.get("elo_harmlessness"), 0),
                fmt_estimate(body.get("elo_helpfulness"), 0),
                fmt_estimate(body.get("win_rate_harmlessness_vs_base"))
                if body.get("win_rate_harmlessness_vs_base")
                else "—",
                fmt_estimate(body.get("win_rate_helpfulness_vs_base"))
                if body.get("win_rate_helpfulness_vs_base")
                else "—",
                fmt_estimate((body.get("hhh") or {}).get("accuracy")),
                fmt_estimate(redteam.get("success_rate")) if redteam else "—",
                "n/a" if body.get("mean_reply_words") is None else f"{body['mean_reply_words']:.0f}",
            )
        )
    return rows


BEFORE_AFTER = (
    "model",
    "Elo harmlessness",
    "Elo helpfulness",
    "harmlessness win rate vs base",
    "helpfulness win rate vs base",
    "HHH accuracy",
    "red-team success rate",
    "mean reply words",
)


def _print_stage(console, stage: str, result: dict) -> None:
    from rich.table import Table

    if stage != "evaluate":
        shown = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
        console.print(
            ", ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in shown.items())
        )
        for key in ("held_out_ai_labels", "hh_rlhf_harmless_base"):
            if key in result:
                console.print(
                    f"preference model on {key.replace('_', ' ')}: accuracy {fmt_estimate(result[key]['accuracy'])}"
                )
        return
    table = Table(
        *BEFORE_AFTER, title="Constitutional AI: before and after (95% intervals)", title_justify="left"
    )
    for row in before_after_rows(result):
        table.add_row(*row)
    console.print(table)


def _register_section() -> None:
    import alignlab.experiments.cai_report  # noqa: F401  (registers the report's Section)


_register_section()
