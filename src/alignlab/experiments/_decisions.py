"""A yes/no decision read from the model's next-token probabilities, shared by law school and discrim-eval.

The Assistant's turn ends in an open quote (`... my answer would be "`); P(yes) is the probability of
"yes" against "no" as the next tokens, renormalised over the two (which token the papers read is not
stated; the two-way renormalisation makes P(yes) comparable across prompts whatever mass other tokens get).
Under a CoT condition the Assistant first reasons after `cot_prefix` (sampled), the Human asks
`cot_question`, and the answer is read after the same Assistant prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.experiments.base import COT_STOP, CoTSettings, prompt_text
from alignlab.metrics.parity import normalise
from alignlab.models.base import GenerateRequest, ScoreRequest
from alignlab.prompts import Dialogue

YES_NO = ("yes", "no")


@dataclass(frozen=True)
class DecisionPrompts:
    answer_prefix: str  # the Assistant's words before the answer, ending in an open quote
    cot_prefix: str
    cot_question: str


def decide(human: str, cot: bool, settings: CoTSettings, prompts: DecisionPrompts, seed: int):
    """Sub-task (use with `yield from`): returns {"p_yes", "logprobs", "reasoning", "prompt"}."""
    fmt = settings.prompt_format
    reasoning = None
    if cot:
        opening = Dialogue((("human", human), ("assistant", prompts.cot_prefix)))
        generated = yield GenerateRequest(
            prompt=opening.render(fmt),
            max_tokens=settings.cot_max_tokens,
            temperature=settings.cot_temperature,
            stop=COT_STOP if fmt == "raw" else (),
            seed=seed,
        )
        reasoning = generated.text
        dialogue = opening.continued(reasoning).extend(
            ("human", prompts.cot_question), ("assistant", prompts.answer_prefix)
        )
    else:
        dialogue = Dialogue((("human", human), ("assistant", prompts.answer_prefix)))
    prompt = dialogue.render(fmt)
    scored = yield ScoreRequest(prompt=prompt, continuations=YES_NO)
    return {
        "p_yes": normalise(scored.logprobs)[0],
        "logprobs": scored.logprobs,
        "reasoning": reasoning,
        "prompt": prompt_text(prompt),
    }
