"""What P(True) and P(IK) share (Kadavath et al. 2022 §4-5): open-ended questions, the prompt the model
answers them with, K answers sampled at temperature 1, and their grades.

Answer prompt (App. A.7 [V]): "Question: ...\\nAnswer:" after `--shots` examples of the same task answered
with their gold answer (GSM8K's with its worked solution), 10 by default as the paper's TriviaQA, LAMBADA,
arithmetic and GSM8K prompts; drawn per question with the seed, never the question itself. LAMBADA is asked
in the paper's fill-in-the-blank form ("Please complete the following passage by filling in the blank:").
The i-th sample of a question has its own seed (the run's seed, the question's id and i), so P(True) and
P(IK) runs with the same seed sample the same answers, and the response cache answers the second from the
first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alignlab.data.open_ended import (
    OPEN_TASKS,
    arithmetic_open,
    load_gsm8k,
    load_lambada,
    load_triviaqa,
)
from alignlab.errors import AlignlabError
from alignlab.experiments.base import (
    DataSource,
    Experiment,
    Items,
    Option,
    PooledItem,
    Settings,
    located_files,
    request_seed,
    take,
)
from alignlab.models.base import Chat, GenerateRequest, Prompt
from alignlab.option_types import names_from, number_in, whole_number
from alignlab.papers.self_knowledge.grading import grade

ANSWER = "Question: {question}\nAnswer:"
# (max tokens, stop strings) per task: one line for short answers, a worked solution for GSM8K
SAMPLING = {
    "triviaqa": (24, ("\n",)),
    "arithmetic": (12, ("\n",)),
    "lambada": (6, ("\n",)),
    "gsm8k": (256, ("\n\nQuestion:", "\nQuestion:", "\n\n\n")),
}
DATA_FILES = {"triviaqa": "triviaqa_sm_sub.jsonl", "gsm8k": "test.jsonl", "lambada": "lambada_openai.jsonl"}


@dataclass(frozen=True)
class SelfEvalSettings(Settings):
    tasks: tuple[str, ...] = OPEN_TASKS
    samples: int = 5  # K answers per question
    shots: int = 10  # App. A.7: 10-shot answer prompts
    answer_temperature: float = 1.0
    arithmetic_n: int = 500


OPTIONS = (
    Option("--tasks", "tasks", names_from(OPEN_TASKS), f"comma-separated tasks from {','.join(OPEN_TASKS)}"),
    Option("--samples", "samples", whole_number(1), "answers sampled per question (K)"),
    Option("--shots", "shots", whole_number(0), "answered examples of the same task before each question"),
    Option(
        "--answer-temperature",
        "answer_temperature",
        number_in(0, 10, "a temperature"),
        "temperature of the sampled answers",
    ),
    Option("--arithmetic-n", "arithmetic_n", whole_number(1), "arithmetic problems generated"),
)


SelfEvalItem = PooledItem  # of an OpenQuestion and its task's questions


def load_items(source: DataSource, limit: int | None, settings: SelfEvalSettings, tasks=None) -> Items:
    """`limit` questions of each task (a seeded sample); the rest of each task is its few-shot pool."""
    chosen, files, warnings, counts = [], [], [], {}
    for task in tasks or settings.tasks:
        if task == "arithmetic":
            questions = arithmetic_open(settings.arithmetic_n, settings.seed)
            pool = arithmetic_open(max(4 * settings.shots, 20), settings.seed, prefix="arithmetic-shots")
        else:
            paths, found, warned = located_files(task, source)
            named = [p for p in paths if p.name == DATA_FILES[task]]
            if not named:
                raise AlignlabError(f"{task}: {DATA_FILES[task]} not found in the data directory")
            loader = {"triviaqa": load_triviaqa, "gsm8k": load_gsm8k, "lambada": load_lambada}[task]
            questions = pool = loader(named[0])
            files += [f for f in found if f["path"].endswith(DATA_FILES[task])]
            warnings += warned
        if len(pool) <= settings.shots:
            raise AlignlabError(
                f"{task}: {len(pool)} questions to draw --shots {settings.shots} examples from"
            )
        taken = take(questions, limit, settings.seed)
        shared = tuple(pool)
        chosen += [SelfEvalItem(q, shared) for q in taken]
        counts[task] = len(taken)
    return Items(chosen, files, warnings, facts={"questions_per_task": counts})


class SelfEvalExperiment(Experiment):
    """P(True) and P(IK): items from the open-ended tasks, asked in the paper's plain-text format."""

    limit_unit = "questions of each task"  # what --limit N counts

    settings_class = SelfEvalSettings
    formats: tuple[str, ...] = ("raw",)  # prompt formats it can ask in (`as_format`)
    options = OPTIONS

    def tasks(self, settings: SelfEvalSettings) -> tuple[str, ...]:
        return settings.tasks

    def load(self, source: DataSource, limit: int | None, seed: int) -> Items:
        return self.items(source, limit, self.settings_class(seed=seed))

    def items(self, source: DataSource, limit: int | None, settings: SelfEvalSettings) -> Items:
        """`--limit N` takes N questions of each task."""
        if settings.prompt_format not in self.formats:
            raise AlignlabError(f"{self.name} asks in the paper's plain-text format: use --format raw")
        return load_items(source, limit, settings, self.tasks(settings))


def shot_examples(item: SelfEvalItem, shots: int, seed: int) -> list[str]:
    """`shots` questions of the item's task answered with their gold answer, drawn per question."""
    question = item.question
    pool = [q for q in item.pool if q.id != question.id]
    drawn = random.Random(f"{seed}|{question.id}|shots").sample(pool, shots) if shots else []
    return [ANSWER.format(question=q.question) + " " + (q.worked or q.golds[0]) for q in drawn]


def with_examples(examples: list[str], last: str) -> str:
    return "\n\n".join([*examples, last])


def as_format(text: str, fmt: str) -> Prompt:
    """A plain-text prompt as the format asks: as it is (raw), or for a chat model everything before its last
    line as the user's turn and the last line ("Answer:", "The proposed answer is:") as the start of the
    assistant's, which the model continues."""
    if fmt == "raw":
        return text
    head, _, last = text.rpartition("\n")
    return Chat(messages=(("user", head.rstrip()),), prefill=last)


def answer_prompt(item: SelfEvalItem, shots: int, seed: int) -> str:
    return with_examples(shot_examples(item, shots, seed), ANSWER.format(question=item.question.question))


def sample_requests(item: SelfEvalItem, settings: SelfEvalSettings) -> list[GenerateRequest]:
    max_tokens, stop = SAMPLING[item.question.task]
    prompt = as_format(answer_prompt(item, settings.shots, settings.seed), settings.prompt_format)
    return [
        GenerateRequest(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=settings.answer_temperature,
            stop=stop,
            seed=request_seed(settings.seed, item.id, f"answer-{k}"),
        )
        for k in range(settings.samples)
    ]


def graded(item: SelfEvalItem, results) -> tuple[list[str], list[bool]]:
    """The sampled answers as the model wrote them (stripped) and whether each is right."""
    answers = [r.text.strip() for r in results]
    return answers, [grade(item.question.task, a, item.question.golds) for a in answers]
