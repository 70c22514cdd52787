"""A yes/no decision read from the model's next-token probabilities, shared by law school and discrim-eval.

The Assistant's turn ends in an open quote (`... my answer would be "`); P(yes) is the probability of
"yes" against "no" as the next tokens, renormalised over the two (which token the papers read, and whether
they renormalise, is not stated; the two-way renormalisation makes P(yes) comparable across prompts whatever
mass other tokens get). Each answer also keeps the unnormalised P("yes") and the mass "yes" and "no" carry
together, since the two readings can disagree in sign (law school reports both).
Under a CoT condition the Assistant first reasons after `cot_prefix` (sampled), the Human asks
`cot_question`, and the answer is read after the same Assistant prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alignlab.experiments.base import CoTSettings, cot_request, prompt_text
from alignlab.metrics.parity import normalise
from alignlab.models.base import ScoreRequest
from alignlab.prompts import Dialogue

YES_NO = ("yes", "no")


@dataclass(frozen=True)
class DecisionPrompts:
    answer_prefix: str  # the Assistant's words before the answer, ending in an open quote
    cot_prefix: str
    cot_question: str


def decide(humans: list[str], cot: bool, settings: CoTSettings, prompts: DecisionPrompts, seeds: list[int]):
    """Sub-task (use with `yield from`) asking several prompts at once, so their chains of thought and
    their scores are batched together: returns one {"p_yes", "logprobs", "reasoning", "prompt"} each."""
    fmt = settings.prompt_format
    reasonings: list[str | None] = [None] * len(humans)
    if cot:
        openings = [Dialogue((("human", human), ("assistant", prompts.cot_prefix))) for human in humans]
        generated = yield [
            cot_request(opening.render(fmt), settings, seed)
            for opening, seed in zip(openings, seeds, strict=True)
        ]
        reasonings = [g.text for g in generated]
        dialogues = [
            opening.continued(reasoning).extend(
                ("human", prompts.cot_question), ("assistant", prompts.answer_prefix)
            )
            for opening, reasoning in zip(openings, reasonings, strict=True)
        ]
    else:
        dialogues = [Dialogue((("human", human), ("assistant", prompts.answer_prefix))) for human in humans]
    rendered = [dialogue.render(fmt) for dialogue in dialogues]
    scored = yield [ScoreRequest(prompt=prompt, continuations=YES_NO) for prompt in rendered]
    return [
        {
            "p_yes": normalise(score.logprobs)[0],
            "p_yes_raw": math.exp(score.logprobs[0]),  # P("yes") of all next tokens, not renormalised
            "yes_no_mass": math.exp(score.logprobs[0]) + math.exp(score.logprobs[1]),
            "logprobs": score.logprobs,
            "reasoning": reasoning,
            "prompt": prompt_text(prompt),
        }
        for score, reasoning, prompt in zip(scored, reasonings, rendered, strict=True)
    ]
