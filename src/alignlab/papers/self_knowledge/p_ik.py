"""P(IK): can a probe on the model's hidden state, reading the question alone, tell whether the model will
answer it right? (Kadavath et al. 2022 §5, arXiv:2207.05221)

Ground truth (§5, App. A.6 [V]): the fraction of the question's K answers sampled at T=1 that are right
(`_self_eval`: the same answers, seeds and graders as P(True), so the response cache shares them).
Features: the hidden state of the last token of "Question: ...\\nAnswer:" (the question alone; LAMBADA:
the passage), at `--layer` (default the last), through the backend's features request. The paper trains
a value head with the whole model; here a logistic-regression probe (scikit-learn) stands in for it, on
standardised features, trained on the soft target as the paper does (a question with fraction f counts as
"knows" with weight f and "does not know" with weight 1 - f, App. A.6), its L2 strength chosen by 5-fold
cross-validation (weighted log loss) with each question's two rows in the same fold.

It trains on a seeded `--train-share` of the `--train-task` questions (TriviaQA, as the paper) and is
tested on the rest of them (in distribution) and on every other task (out of distribution). Metrics per
test set, 95% bootstrap intervals over questions: AUROC and Brier score of P(IK) against the ground truth
binarised at 0.5 (Table 1's convention), ECE (10 equal-count bins, bias-corrected interval), and the mean
P(IK) against the mean fraction right. The probe is saved as `probe.json` in the run folder (plain numbers,
no pickle) and `alignlab p-ik predict --probe DIR --model M "question"` applies it to new questions.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.engine.runner import Task
from alignlab.errors import AlignlabError
from alignlab.experiments import register
from alignlab.experiments.base import Option
from alignlab.metrics import calibration as cal
from alignlab.metrics.bootstrap import bootstrap_estimate
from alignlab.models.base import FeaturesRequest
from alignlab.option_types import existing_path, integer, number_in
from alignlab.papers.self_knowledge.self_eval import (
    ANSWER,
    OPTIONS,
    SelfEvalExperiment,
    SelfEvalItem,
    SelfEvalSettings,
    graded,
    sample_requests,
)

CONDITIONS = ("probe",)
QUESTION_ONLY = "Question: {question}\nAnswer:"  # §5: the value head reads the question alone
PROBE_FORMAT = "alignlab-p-ik-probe/1"
CS = tuple(float(c) for c in np.logspace(-4, 2, 13))  # the L2 strengths (1/C) cross-validation chooses from


@dataclass(frozen=True)
class PIKSettings(SelfEvalSettings):
    samples: int = 10
    train_task: str = "triviaqa"
    train_share: float = 0.5
    layer: int = -1


def features_prompt(item: SelfEvalItem) -> str:
    question = item.question
    return (
        question.passage if question.task == "lambada" else QUESTION_ONLY.format(question=question.question)
    )


class PIK(SelfEvalExperiment):
    name = "p-ik"
    help = "P(IK): a probe on the question's hidden state predicts whether the model knows (Kadavath et al. 2022)"
    description = (
        "Ground truth: the share of K answers sampled at T=1 that are right; a logistic-regression probe on the "
        "hidden state of the question alone, trained on TriviaQA and tested in and out of distribution "
        "(GSM8K, LAMBADA, arithmetic) (Kadavath et al. 2022 §5)."
    )
    conditions = CONDITIONS
    settings_class = PIKSettings
    options = (
        *OPTIONS,
        Option(
            "--train-task",
            "train_task",
            str,
            "the task the probe trains on",
            ("triviaqa", "gsm8k", "lambada", "arithmetic"),
        ),
        Option(
            "--train-share",
            "train_share",
            number_in(0, 1, "a share", open_ends=True),
            "share of the train task's questions the probe trains on",
        ),
        Option(
            "--layer",
            "layer",
            integer("a layer number (negative counts from the top)"),
            "hidden-state layer the probe reads (-1: the last)",
        ),
    )
    prompts = {"ANSWER": ANSWER, "QUESTION_ONLY": QUESTION_ONLY}
    columns = (
        ("auroc", "AUROC (held out)"),
        ("brier", "Brier"),
        ("ece", "ECE"),
        ("mean_fraction", "share right"),
    )

    def request_kinds(self, settings) -> set[str]:
        return {"generate", "features"}

    def tasks(self, settings: PIKSettings) -> tuple[str, ...]:
        return tuple(dict.fromkeys((settings.train_task, *settings.tasks)))  # the train task always

    def task(self, item: SelfEvalItem, condition: str, settings: PIKSettings) -> Task:
        results = yield sample_requests(item, settings)
        answers, correct = graded(item, results)
        features = yield FeaturesRequest(prompt=features_prompt(item), layer=settings.layer)
        return {
            "id": item.id,
            "condition": condition,
            "task": item.question.task,
            "question": item.question.question,
            "golds": list(item.question.golds[:10]),
            "answers": answers,
            "correct": correct,
            "fraction_right": sum(correct) / len(correct),
            "features": [float(f"{x:.7g}") for x in features.vector],  # float32 precision
        }

    def metrics(self, samples: list[dict], settings: PIKSettings, seed: int, n_resamples: int) -> dict:
        rows = [s for s in samples if s["condition"] == "probe"]
        train, held_out = split(rows, settings, seed)
        if not train:
            raise AlignlabError(f"p-ik: no {settings.train_task} questions to train the probe on")
        probe = Probe.fit(train)
        sets = {f"{settings.train_task} (held out)": held_out}
        sets |= {
            t: [s for s in rows if s["task"] == t]
            for t in sorted({s["task"] for s in rows})
            if t != settings.train_task
        }
        by_task = {
            name: probe_scores(probe, members, seed, n_resamples) for name, members in sets.items() if members
        }
        body = dict(by_task.get(f"{settings.train_task} (held out)", {"n": 0}))
        body["probe"] = {
            "C": probe.c,
            "train_questions": len(train),
            "layer": settings.layer,
            "train_task": settings.train_task,
        }
        body["by_task"] = by_task
        return {"probe": body}

    def artifacts(
        self, metrics: dict, samples: list[dict], settings: PIKSettings, folder: Path
    ) -> list[Path]:
        from alignlab.atomic import write_text_atomic

        train, _ = split([s for s in samples if s["condition"] == "probe"], settings, settings.seed)
        if not train:
            return []
        probe = Probe.fit(train, c=metrics["probe"]["probe"]["C"])  # the penalty `metrics` cross-validated
        path = folder / "probe.json"
        write_text_atomic(path, json.dumps(probe.to_json(settings)))
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


# --- the probe ------------------------------------------------------------------------------------
def split(rows: list[dict], settings: PIKSettings, seed: int) -> tuple[list[dict], list[dict]]:
    """The train task's questions in a seeded order: the first `train_share` train, the rest are held out."""
    mine = sorted(
        (s for s in rows if s["task"] == settings.train_task),
        key=lambda s: hashlib.sha256(f"{seed}|{s['id']}|p-ik split".encode()).digest(),
    )
    cut = int(round(settings.train_share * len(mine)))
    return mine[:cut], mine[cut:]


@dataclass(frozen=True)
class Probe:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    c: float

    @classmethod
    def fit(cls, rows: list[dict], c: float | None = None) -> Probe:
        """Fitted on `rows`; its penalty `c` chosen by grouped cross-validation unless given."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.model_selection import GroupKFold

        x = np.array([s["features"] for s in rows], dtype=float)
        f = np.array([s["fraction_right"] for s in rows], dtype=float)
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        # each question twice: "knows" with weight f, "does not" with weight 1 - f (the soft target)
        z2, y2, w2 = np.vstack([z, z]), np.r_[np.ones(len(z)), np.zeros(len(z))], np.r_[f, 1 - f]
        w2 = w2 + 1e-9  # both labels present even when every question has the same outcome
        groups = np.r_[np.arange(len(z)), np.arange(len(z))]

        def model(c):
            return LogisticRegression(C=c, max_iter=2000)

        folds = min(5, len(z))
        if c is None and folds < 2:
            c = 1e-2  # too few questions to cross-validate: a strong penalty
        if c is None:
            losses = {}
            for candidate in CS:
                total = 0.0
                for train, test in GroupKFold(folds).split(z2, y2, groups):
                    fitted = model(candidate).fit(z2[train], y2[train], sample_weight=w2[train])
                    p = fitted.predict_proba(z2[test])[:, 1]
                    total += log_loss(y2[test], p, sample_weight=w2[test], labels=[0, 1]) * w2[test].sum()
                losses[candidate] = total
            c = min(CS, key=lambda candidate: (losses[candidate], candidate))  # ties: the stronger penalty
        fitted = model(c).fit(z2, y2, sample_weight=w2)
        return cls(mean, scale, fitted.coef_[0].copy(), float(fitted.intercept_[0]), float(c))

    def predict(self, features) -> np.ndarray:
        z = (np.asarray(features, dtype=float) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def to_json(self, settings: PIKSettings) -> dict:
        return {
            "format": PROBE_FORMAT,
            "layer": settings.layer,
            "prompt": QUESTION_ONLY,
            "train_task": settings.train_task,
            "C": self.c,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> Probe:
        try:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            if found != PROBE_FORMAT:
                raise ValueError(f"format is {found!r}, not {PROBE_FORMAT!r}")
            mean, scale, coef = (np.array(data[k], dtype=float) for k in ("mean", "scale", "coef"))
            if not (mean.shape == scale.shape == coef.shape and mean.ndim == 1):
                raise ValueError("mean, scale and coef differ in length")
            return cls(mean, scale, coef, float(data["intercept"]), float(data["C"]))
        except (KeyError, TypeError, ValueError) as e:
            raise AlignlabError(f"{where}: not a p-ik probe ({e})") from None


def probe_scores(probe: Probe, rows: list[dict], seed: int, n_resamples: int) -> dict:
    p = probe.predict([s["features"] for s in rows])
    fraction = np.array([s["fraction_right"] for s in rows], dtype=float)
    knows = (fraction > 0.5).astype(float)

    def estimate(statistic, method="percentile"):
        return bootstrap_estimate(
            statistic, (p, knows, fraction), n_resamples, seed=seed, method=method
        ).to_json()

    return {
        "n": len(rows),
        "auroc": estimate(lambda q, k, f: cal.auroc(q, k)),
        "brier": estimate(lambda q, k, f: cal.brier_score(q, k)),
        "ece": estimate(lambda q, k, f: cal.expected_calibration_error(q, k, 10), "bc"),
        "mean_p_ik": estimate(lambda q, k, f: q.mean(-1)),
        "mean_fraction": estimate(lambda q, k, f: f.mean(-1)),
        "share_known": estimate(lambda q, k, f: k.mean(-1)),
    }


# --- alignlab p-ik predict ------------------------------------------------------------------------
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
    backend = load_model(args.model)
    if "features" not in getattr(backend, "capabilities", frozenset({"features"})):
        raise AlignlabError(f"model {args.model!r} gives no hidden states (the features request)")
    prompt = data.get("prompt", QUESTION_ONLY)
    vectors = backend.features(
        [
            FeaturesRequest(prompt=prompt.format(question=q), layer=int(data.get("layer", -1)))
            for q in args.questions
        ]
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
