"""P(IK): can a probe on the model's hidden state, reading the question before any answer, tell whether the
model will answer it right? (Kadavath et al. 2022 §5, arXiv:2207.05221)

Ground truth (§5, App. A.6 [V]): the fraction of the question's answers sampled at T=1 that are right, 30
per question as the paper (`--samples`; `self_eval`: the same answers, seeds and graders as P(True), so the
response cache shares them). Input (§5.1 [V]: "datapoints of the form (Few-Shot Prompt + Question, Ground
Truth Label)"): the answer prompt itself, 10 answered examples of the task then "Question: ...\nAnswer:"
(App. A.7), read at its last token (Fig. 3), at `--layer` (default the last), through the backend's
features request; `--probe-input question` reads the bare question instead (§1 says P(IK) "was only trained
on bare questions"; this project's earlier input). The paper fine-tunes the whole model with a value head;
a logistic-regression probe (`p_ik_probe`) stands in for it [D], trained on the paper's soft target.

It trains on a seeded `--train-share` of each `--train-tasks` task (TriviaQA alone by default, as the paper's
main runs; "triviaqa,lambada,arithmetic" is Table 1's second column without function synthesis) and is tested
on the rest of them (in distribution) and on every other task (out of distribution). Leave-one-task-out
(`leave_one_out`): for each task of the run, a probe trained on the other tasks' train shares and tested on
all of it, as Table 1's "all tasks except GSM8K" column does for GSM8K. Metrics per test set, 95% bootstrap
intervals over questions: AUROC and Brier score against the ground truth binarised at 0.5 (Table 1's
convention), ECE (10 equal-count bins, bias-corrected interval), and the mean P(IK) against the mean
fraction right.

Conditions `source` (§5.3, TriviaQA) and `hints` (§5.4, GSM8K) read the trained probe on the same questions
with more in the context (`p_ik_context`). The probe is saved as `probe.json` in the run folder (plain
numbers, no pickle) and `alignlab p-ik predict --probe DIR --model M "question"` applies it to new questions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.engine.runner import Task
from alignlab.errors import AlignlabError
from alignlab.experiments import register
from alignlab.experiments.base import Option
from alignlab.models.base import FeaturesRequest
from alignlab.option_types import existing_path, integer, names_from, number_in, whole_number
from alignlab.papers.self_knowledge.p_ik_context import (
    BACKGROUND,
    HINTED,
    STAND_IN,
    context_effects,
    hint_variants,
    load_materials,
    source_variants,
)
from alignlab.papers.self_knowledge.p_ik_probe import Probe, probe_scores, split
from alignlab.papers.self_knowledge.self_eval import (
    ANSWER,
    OPTIONS,
    SelfEvalExperiment,
    SelfEvalItem,
    SelfEvalSettings,
    graded,
    sample_requests,
    shot_examples,
    with_examples,
)

CONDITIONS = ("probe", "source", "hints")
CONTEXT_TASKS = {"source": "triviaqa", "hints": "gsm8k"}  # the task each context condition reads
QUESTION_ONLY = "Question: {question}\nAnswer:"  # App. A.7's format, the question's own block
PROBE_INPUTS = ("prompt", "question")
TASK_NAMES = ("triviaqa", "gsm8k", "lambada", "arithmetic")


@dataclass(frozen=True)
class PIKSettings(SelfEvalSettings):
    samples: int = 30  # §5, App. A.6: 30 answers per question
    train_tasks: tuple[str, ...] = ("triviaqa",)
    train_share: float = 0.5
    layer: int = -1
    probe_input: str = "prompt"
    sources: str = ""  # a jsonl of {"question", "material"}: the source condition's articles
    source_max_chars: int = 28_000  # the paper cuts articles at 7,000 tokens; about 4 characters a token


def _source_file(text: str) -> str:
    """`--sources`: a file that exists (argparse also passes the empty default through here)."""
    return str(existing_path(text)) if text else ""


@dataclass(frozen=True)
class SourcedItem(SelfEvalItem):
    """An item of a run with `--sources`: every question's material, by question (shared by all items)."""

    materials: dict = field(default_factory=dict, hash=False, compare=False)


def probe_prompt(item: SelfEvalItem, settings: PIKSettings, block: str | None = None) -> str:
    """What the probe reads: the answer prompt's examples (unless `--probe-input question`), then `block`
    (default the question's own "Question: ...\nAnswer:")."""
    block = block or QUESTION_ONLY.format(question=item.question.question)
    if settings.probe_input == "question":
        return block
    return with_examples(shot_examples(item, settings.shots, settings.seed), block)


class PIK(SelfEvalExperiment):
    name = "p-ik"
    help = "P(IK): a probe on the question's hidden state predicts whether the model knows (Kadavath et al. 2022)"
    description = (
        "Ground truth: the share of 30 answers sampled at T=1 that are right; a logistic-regression probe on the "
        "hidden state of the few-shot prompt and question, trained on TriviaQA and tested in and out of "
        "distribution (GSM8K, LAMBADA, arithmetic) and task by task left out; then read with source material "
        "and with hints in the context (Kadavath et al. 2022 §5)."
    )
    conditions = CONDITIONS
    settings_class = PIKSettings
    options = (
        *OPTIONS,
        Option(
            "--train-tasks",
            "train_tasks",
            names_from(TASK_NAMES),
            "comma-separated tasks the probe trains on (a share of each; the rest of them is held out)",
        ),
        Option(
            "--train-share",
            "train_share",
            number_in(0, 1, "a share", open_ends=True),
            "share of each train task's questions the probe trains on",
        ),
        Option(
            "--layer",
            "layer",
            integer("a layer number (negative counts from the top)"),
            "hidden-state layer the probe reads (-1: the last)",
        ),
        Option(
            "--probe-input",
            "probe_input",
            str,
            "what the probe reads: the few-shot prompt and question (the paper's), or the question alone",
            PROBE_INPUTS,
        ),
        Option(
            "--sources",
            "sources",
            _source_file,
            'source material for the source condition: jsonl rows {"question", "material"} (default: a '
            "sentence stating the answer)",
        ),
        Option(
            "--source-max-chars",
            "source_max_chars",
            whole_number(1),
            "source material is cut at this many characters",
        ),
    )
    prompts = {
        "ANSWER": ANSWER,
        "QUESTION_ONLY": QUESTION_ONLY,
        "BACKGROUND": BACKGROUND,
        "STAND_IN": STAND_IN,
        "HINTED": HINTED,
    }
    columns = (
        ("auroc", "AUROC (held out)"),
        ("brier", "Brier"),
        ("ece", "ECE"),
        ("mean_fraction", "share right"),
        ("gain.relevant", "P(IK) gain, source"),
        ("gain.good-1", "P(IK) gain, full hint"),
    )

    def request_kinds(self, settings) -> set[str]:
        return {"generate", "features"}

    def tasks(self, settings: PIKSettings) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*settings.train_tasks, *settings.tasks)))  # the train tasks always

    def items(self, source, limit, settings: PIKSettings):
        if "probe" not in settings.conditions:
            raise AlignlabError(
                "p-ik: the source and hints conditions read the probe that 'probe' trains: add it"
            )
        items = super().items(source, limit, settings)
        if settings.sources:
            from alignlab.checksums import sha256_file

            path = Path(settings.sources)
            if not path.is_file():
                raise AlignlabError(f"--sources: file not found: {path}")
            materials = load_materials(path)
            items.files.append({"path": str(path), "checksum": f"sha256:{sha256_file(path)}"})
            items.facts["source_questions"] = sum(
                it.question.task == "triviaqa" and it.question.question in materials for it in items.items
            )
            items.items = [SourcedItem(it.question, it.pool, materials) for it in items.items]
        return items

    def applies(self, item: SelfEvalItem, condition: str, settings: PIKSettings) -> bool:
        if condition == "probe":
            return True
        if item.question.task != CONTEXT_TASKS[condition]:
            return False
        # with --sources, the questions that have an article
        return condition != "source" or not settings.sources or item.question.question in item.materials

    def preflight(self, backend, settings: PIKSettings) -> None:
        """--layer against the model's layers: one hidden state of a short prompt, before any sampling."""
        block = QUESTION_ONLY.format(question="What is 1 + 1?")
        backend.features([FeaturesRequest(prompt=block, layer=settings.layer)])

    def task(self, item: SelfEvalItem, condition: str, settings: PIKSettings) -> Task:
        if condition == "probe":
            return self._probe_task(item, settings)
        return self._context_task(item, condition, settings)

    def _probe_task(self, item: SelfEvalItem, settings: PIKSettings) -> Task:
        results = yield sample_requests(item, settings)
        answers, correct = graded(item, results)
        prompt = probe_prompt(item, settings)
        features = yield FeaturesRequest(prompt=prompt, layer=settings.layer)
        return {
            "id": item.id,
            "condition": "probe",
            "task": item.question.task,
            "question": item.question.question,
            "golds": list(item.question.golds[:10]),
            "answers": answers,
            "correct": correct,
            "fraction_right": sum(correct) / len(correct),
            "features_prompt": prompt,
            "features": _stored(features.vector),
        }

    def _context_task(self, item: SelfEvalItem, condition: str, settings: PIKSettings) -> Task:
        question = item.question
        if condition == "source":
            materials = getattr(item, "materials", None)
            material = source_variants(
                question, item.pool, settings.seed, materials, settings.source_max_chars
            )
            blocks = {
                name: BACKGROUND.format(material=text, question=question.question)
                for name, text in material.items()
            }
        else:  # the model's own wrong solutions are among the hints: the probe's samples (cached)
            answers, correct = graded(item, (yield sample_requests(item, settings)))
            hints = hint_variants(question, item.pool, answers, correct, settings.seed)
            blocks = {
                name: HINTED.format(question=question.question, hint=text) for name, text in hints.items()
            }
        prompts = {name: probe_prompt(item, settings, block) for name, block in blocks.items()}
        read = yield [FeaturesRequest(prompt=p, layer=settings.layer) for p in prompts.values()]
        return {
            "id": item.id,
            "condition": condition,
            "task": question.task,
            "question": question.question,
            "context": blocks,
            "variants": {name: _stored(r.vector) for name, r in zip(prompts, read, strict=True)},
        }

    def metrics(self, samples: list[dict], settings: PIKSettings, seed: int, n_resamples: int) -> dict:
        rows = [s for s in samples if s["condition"] == "probe"]
        train, held_out = split(rows, settings.train_tasks, settings.train_share, seed)
        if not train:
            raise AlignlabError(f"p-ik: no {','.join(settings.train_tasks)} questions to train the probe on")
        probe = Probe.fit(train)
        sets = {f"{task} (held out)": rest for task, rest in held_out.items()}
        sets |= {
            t: [s for s in rows if s["task"] == t] for t in _tasks_of(rows) if t not in settings.train_tasks
        }
        by_task = {
            name: probe_scores(probe, members, seed, n_resamples) for name, members in sets.items() if members
        }
        in_distribution = [s for rest in held_out.values() for s in rest]
        body = probe_scores(probe, in_distribution, seed, n_resamples) if in_distribution else {"n": 0}
        body["probe"] = {
            "C": probe.c,
            "train_questions": len(train),
            "layer": settings.layer,
            "train_tasks": list(settings.train_tasks),
            "input": settings.probe_input,
        }
        outcomes = {s["fraction_right"] for s in train}
        if len(outcomes) == 1:  # the fit is then a constant: it cannot tell known from unknown
            body["notes"] = [
                f"every training question had the same outcome (fraction right {outcomes.pop():g}): the probe "
                "is a constant and tells nothing; train on more questions or an easier task"
            ]
        body["by_task"] = by_task
        body["leave_one_out"] = leave_one_out(rows, settings, seed, n_resamples)
        out = {"probe": body}
        base = {s["id"]: s["features"] for s in rows}
        for condition in settings.conditions:
            if condition != "probe":
                mine = [s for s in samples if s["condition"] == condition]
                out[condition] = context_effects(probe, base, mine, seed, n_resamples)
        return out

    def artifacts(
        self, metrics: dict, samples: list[dict], settings: PIKSettings, folder: Path
    ) -> list[Path]:
        from alignlab.atomic import write_text_atomic

        rows = [s for s in samples if s["condition"] == "probe"]
        train, _ = split(rows, settings.train_tasks, settings.train_share, settings.seed)
        if not train:
            return []
        probe = Probe.fit(train, c=metrics["probe"]["probe"]["C"])  # the penalty `metrics` cross-validated
        path = folder / "probe.json"
        about = {**probe_input_of(train[0], settings), **_model_of(folder)}
        write_text_atomic(path, json.dumps(probe.to_json(**about)))
        return [path]

    def add_commands(self, subparsers) -> None:
        p = subparsers.add_parser("p-ik", help="apply a P(IK) probe from a p-ik run to new questions")
        sub = p.add_subparsers(dest="p_ik_command", metavar="COMMAND", required=True)
        predict = sub.add_parser("predict", help="P(IK) of each question, from a run folder's probe.json")
        predict.add_argument(
            "--probe", required=True, type=existing_path, help="a p-ik run folder (or its probe.json)"
        )
        predict.add_argument("--model", required=True, help="the model the probe was trained on")
        predict.add_argument("questions", nargs="+", help="questions, each one argument")
        predict.set_defaults(func=_predict)

    def report_section(self):
        from alignlab.papers.self_knowledge.p_ik_report import section

        return section(self.description)


def _stored(vector) -> list[float]:
    return [float(f"{x:.7g}") for x in vector]  # float32 precision


def _tasks_of(rows: list[dict]) -> list[str]:
    return sorted({s["task"] for s in rows})


def leave_one_out(rows: list[dict], settings: PIKSettings, seed: int, n_resamples: int) -> dict:
    """For each task of the run: a probe trained on the other tasks' train shares, tested on all of it."""
    tasks = _tasks_of(rows)
    if len(tasks) < 2:
        return {}
    out = {}
    for left_out in tasks:
        train, _ = split(rows, [t for t in tasks if t != left_out], settings.train_share, seed)
        if train:
            tested = [s for s in rows if s["task"] == left_out]
            out[left_out] = probe_scores(Probe.fit(train), tested, seed, n_resamples)
    return out


def probe_input_of(sample: dict, settings: PIKSettings) -> dict:
    """How `p-ik predict` rebuilds the probe's input for a new question: a train question's few-shot
    examples (its prompt before its own block), then the question's block."""
    block = QUESTION_ONLY.format(question=sample["question"])
    prompt = sample.get("features_prompt", block)
    prefix = prompt[: -len(block)] if prompt.endswith(block) else ""
    return {
        "layer": settings.layer,
        "prompt": QUESTION_ONLY,
        "prefix": prefix,
        "train_tasks": list(settings.train_tasks),
        "input": settings.probe_input,
    }


# --- alignlab p-ik predict ------------------------------------------------------------------------
def probe_file_prompt(data: dict, where: str) -> tuple[str, str, int]:
    """(prefix, question block, layer) of a probe file, checked: a block without exactly one "{question}"
    would give every question the same P(IK)."""
    prefix, block, layer = data.get("prefix", ""), data.get("prompt", QUESTION_ONLY), data.get("layer", -1)
    if not isinstance(prefix, str) or not isinstance(block, str):
        raise AlignlabError(f"{where}: not a p-ik probe (prefix and prompt must be text)")
    if block.count("{question}") != 1:
        raise AlignlabError(
            f"{where}: not a p-ik probe (its prompt holds {{question}} {block.count('{question}')} times, not once)"
        )
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise AlignlabError(f"{where}: not a p-ik probe (layer {layer!r} is not a whole number)")
    return prefix, block, layer


def _model_of(folder: Path) -> dict:
    """The model whose hidden states trained the probe (spec and fingerprint, from the run's config.json):
    another model's states, even of the same width, mean nothing to it."""
    from alignlab.runfolder import CONFIG, read_config

    model = read_config(folder / CONFIG).get("model") if (folder / CONFIG).is_file() else None
    if not isinstance(model, dict):
        return {}
    return {"model": model.get("spec"), "model_fingerprint": model.get("fingerprint")}


def _refuse_another_model(data: dict, backend, spec: str, where: str) -> None:
    trained = data.get("model_fingerprint")
    if isinstance(trained, str) and trained != backend.fingerprint():
        raise AlignlabError(
            f"{where}: the probe was trained on the hidden states of model {data.get('model')!r}, not "
            f"{spec!r} (another model's states mean nothing to it): use --model {data.get('model')}"
        )


def _predict(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from alignlab.models import load_model

    path = Path(args.probe).expanduser()
    path = path / "probe.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlignlabError(f"probe not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlignlabError(f"{path}: not valid JSON ({e})") from None
    probe = Probe.from_json(data, str(path))
    prefix, block, layer = probe_file_prompt(data, str(path))
    for number, question in enumerate(args.questions, 1):
        if not question.strip():
            raise AlignlabError(f"question {number} is empty: a probe has nothing to read")
    backend = load_model(args.model)
    if "features" not in getattr(backend, "capabilities", frozenset({"features"})):
        raise AlignlabError(f"model {args.model!r} gives no hidden states (the features request)")
    _refuse_another_model(data, backend, args.model, str(path))
    vectors = backend.features(
        [FeaturesRequest(prompt=prefix + block.replace("{question}", q), layer=layer) for q in args.questions]
    )
    widths = {len(v.vector) for v in vectors}
    if widths != {len(probe.coef)}:
        raise AlignlabError(
            f"{path}: the probe reads {len(probe.coef)} features, model {args.model!r} gives {widths.pop()}: "
            "use the model the probe was trained on"
        )
    table = Table("question", "P(IK)")
    for question, vector in zip(args.questions, vectors, strict=True):
        value = float(probe.predict(vector.vector))
        table.add_row(question, "n/a" if math.isnan(value) else f"{value:.3f}")
    Console().print(table)
    return 0


register(PIK())
