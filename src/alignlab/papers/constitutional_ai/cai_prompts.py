"""The prompts of Constitutional AI (Bai et al. 2022) and the arithmetic of its AI feedback
(paper-methods.md §5 [V]).

- Critique and revision (SL-CAI): after the conversation (the red-team prompt and the model's response),
  `\\n\\nCritiqueRequest: {critique request}\\n\\nCritique:` is appended and a critique sampled, then
  `\\n\\nRevisionRequest: {revision request}\\n\\nRevision:` and a revision sampled (the strings of
  CritiqueRevisionInstructions.json carry these frames themselves).
- AI feedback (RL-CAI), the format of evals/438HHHEvaluations.jsonl, which `feedback_prompt` reproduces
  exactly:

      \\n\\nConsider the following conversation between a human and an assistant:\\n\\n{conversation}\\n\\n
      {principle (it starts with "\\n" and ends with " Options:")}\\n (A) [[[{response A}]]]\\n (B) [[[{response B}]]]
      \\n\\nThe answer is:

  P(A preferred) is the normalised probability of " (A)" against " (B)"; asked again with the responses
  swapped and averaged, position bias cancels ([D], the issue's order control). With chain of thought the
  paper clamps the probabilities to [0.4, 0.6] (§4.1).
"""

from __future__ import annotations

import numpy as np

from alignlab.papers.constitutional_ai.constitution import (
    CRITIQUE_FRAME,
    PRINCIPLE_FRAME,
    REVISION_FRAME,
    Constitution,
    CritiquePair,
    Principle,
)

FEEDBACK_OPENING = "\n\nConsider the following conversation between a human and an assistant:\n\n"
FEEDBACK_ANSWER = "\n\nThe answer is:"
OPTIONS = (" (A)", " (B)")
COT_CLAMP = (0.4, 0.6)
# The chain-of-thought comparison (RLMadisonPrecogFewShotPrompts.json's format, paper-methods.md §5 [V]).
COT_OPENING = "\n\nHuman: Consider the following conversation between a human (H) and an assistant (A):\n\n"
COT_THINK = "\n\nAssistant: Let's think step by step:"
COT_ANSWER = "\n\nHuman:\nSo the answer is:"
# where a sampled reply, critique or revision ends: the next turn, or the next frame it would start
STOPS = ("\n\nHuman:", "\nHuman:", "\n\nAssistant:", "\n\nCritique", "\n\nRevision")


def frames_digest() -> str:
    """A hash of every frame this module writes around the constitution's texts (a run's identity holds it)."""
    import hashlib

    frames = (FEEDBACK_OPENING, FEEDBACK_ANSWER, OPTIONS, COT_OPENING, COT_THINK, COT_ANSWER, STOPS)
    body = repr((frames, dialogue("{p}", "{r}"), CRITIQUE_FRAME, REVISION_FRAME, PRINCIPLE_FRAME))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def framed(text: str, frame: tuple[str, str]) -> str:
    return f"{frame[0]}{text}{frame[1]}"


def critique_request(pair: CritiquePair) -> str:
    return framed(pair.critique, CRITIQUE_FRAME)


def revision_request(pair: CritiquePair) -> str:
    return framed(pair.revision, REVISION_FRAME)


def principle_text(principle: Principle) -> str:
    """As the published principles read: "\\n{question} Options:"."""
    return framed(principle.text, PRINCIPLE_FRAME)


def dialogue(prompt: str, response: str | None = None) -> str:
    """The raw conversation of the paper's prompts: "\\n\\nHuman: ...\\n\\nAssistant: ..."; without a response it
    ends at "Assistant:", where a reply is sampled."""
    text = f"\n\nHuman: {prompt.strip()}\n\nAssistant:"
    return text if response is None else f"{text} {response.strip()}"


def critique_shots(constitution: Constitution, k: int) -> str:
    """The first `k` few-shot demonstrations of critique and revision, to put before the conversation."""
    parts = []
    first = constitution.critiques[0]
    for example in constitution.critique_examples[:k]:
        if example.text:
            parts.append(example.text)
        else:
            parts.append(
                f"\n\n{example.conversation}{critique_request(first)} {example.critique}"
                f"{revision_request(first)} {example.revision}"
            )
    return "".join(parts)


def feedback_shots(constitution: Constitution, k: int, rng: np.random.Generator) -> str:
    """`k` few-shot comparisons, each under its own drawn principle and with the better reply placed at random
    (Bai et al. 2022 §4.1: each few-shot example carries its own sampled principle)."""
    parts = []
    for example in constitution.feedback_examples[:k]:
        principle = constitution.principles[int(rng.integers(len(constitution.principles)))]
        better_first = bool(rng.integers(2))
        a, b = (example.better, example.worse) if better_first else (example.worse, example.better)
        conversation = example.conversation.strip()
        parts.append(
            feedback_prompt(conversation, principle_text(principle), a, b) + OPTIONS[0 if better_first else 1]
        )
    return "".join(parts)


def cot_prompt(
    conversation: str, principle: Principle, response_a: str, response_b: str, shots: str = ""
) -> str:
    """The chain-of-thought comparison up to "Let's think step by step:", where the reasoning is sampled; the
    conversation's turns are written H: and A:."""
    turns = conversation.strip().replace("Human:", "H:").replace("Assistant:", "A:")
    return (
        f"{shots}{COT_OPENING}{turns}\n\n{principle.text}\n (A) [[[{response_a}]]]\n (B) [[[{response_b}]]]"
        f"{COT_THINK}"
    )


def cot_shots(constitution: Constitution, k: int, rng: np.random.Generator) -> str:
    """The published chain-of-thought comparisons, each with its own drawn principle in place of "{}"."""
    return "".join(
        text.replace("{}", constitution.principles[int(rng.integers(len(constitution.principles)))].text, 1)
        for text in constitution.cot_examples[:k]
    )


def feedback_prompt(conversation: str, principle: str, response_a: str, response_b: str) -> str:
    return (
        f"{FEEDBACK_OPENING}{conversation}\n\n{principle}\n (A) [[[{response_a}]]]\n (B) [[[{response_b}]]]"
        f"{FEEDBACK_ANSWER}"
    )


def critique_revision_prompts(context: str, critique_request: str, critique: str, revision_request: str):
    """The two prompts of one critique-revision step: the first is sampled for the critique, the second (with
    that critique in place) for the revision. The requests are the published strings, frames included."""
    critique_prompt = f"{context}{critique_request}"
    return critique_prompt, f"{critique_prompt} {critique.strip()}{revision_request}"


def p_first(logprob_a: float, logprob_b: float) -> float:
    """P(" (A)") normalised over the two options."""
    from alignlab.metrics.calibration import softmax_rows

    return float(softmax_rows([[logprob_a, logprob_b]])[0][0])


def p_first_pairs(scored) -> list[tuple[float, float]]:
    """P(" (A)") of each (as asked, replies swapped) pair of scored comparison prompts, in order."""
    return [
        (p_first(*scored[i].logprobs), p_first(*scored[i + 1].logprobs)) for i in range(0, len(scored), 2)
    ]


def order_averaged(p_a_first_order: float, p_a_swapped_order: float) -> float:
    """P(response 1 preferred) from both orders: asked as (A) first, then as (B) (so its probability there is
    1 - P(A))."""
    return (p_a_first_order + (1.0 - p_a_swapped_order)) / 2.0


def clamp(p: float, bounds: tuple[float, float] = COT_CLAMP) -> float:
    """The chain-of-thought labels clamped into [0.4, 0.6] (Bai et al. 2022 §4.1)."""
    low, high = bounds
    return min(max(p, low), high)
