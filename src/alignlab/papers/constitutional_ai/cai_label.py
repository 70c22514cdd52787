"""AI feedback (RL-CAI, Bai et al. 2022 §4): for each training prompt, two replies sampled from the
supervised model; the feedback model compares them under a principle drawn from the constitution.

Without chain of thought the label is P(" (A)") against P(" (B)") from the next-token distribution of the
published comparison prompt (`cai_prompts.feedback_prompt`), asked in both orders and averaged
(`order_averaged`: position bias cancels). `ensemble` > 1 averages that over several drawn principles (an
option; the paper draws one per label). With chain of thought (`cot`) the feedback model first reasons
("Let's think step by step:"), then its answer is scored after "So the answer is:" and the label is clamped
to [0.4, 0.6] (§4.1).

preferences.jsonl holds one row per prompt: both replies, P(reply 1 is better), the principles used, and
whether the row is held out from the preference model (`held_out`, a seeded share) to test it on.
"""

from __future__ import annotations

import json

import numpy as np

from alignlab.experiments.base import request_seed
from alignlab.experiments.phased import PhasedRun
from alignlab.models.base import GenerateRequest, ScoreRequest
from alignlab.papers.constitutional_ai import cai_prompts as P
from alignlab.papers.constitutional_ai.cai_run import CAIRun


def drawn_principles(run: CAIRun, prompt_id: str) -> list[int]:
    """The principles of one label: `ensemble` draws, with replacement (each draw as the paper's one)."""
    s = run.settings
    rng = np.random.default_rng(request_seed(s.seed, prompt_id, "principles"))
    return [int(i) for i in rng.integers(len(run.constitution.principles), size=s.ensemble)]


def label(run: CAIRun, policy: str | None = None) -> dict:
    """Sample the pairs from `policy` (default: the supervised model, hf:RUN/sft/model) and label them."""
    from alignlab.runfolder import RunFolder

    s = run.settings
    policy = policy or f"hf:{run.need(run.sft_model, 'train-sft')}"
    train, _, _ = run.prompts()
    ids = [f"p{i}" for i in range(len(train))]
    phases = run.phases()
    identity = {
        **run.identity(),
        "stage": "label",
        "policy": phases.backend(policy).fingerprint(),
        "feedback_model": run.models.feedback_model,
        "feedback_shots": s.feedback_shots,
        "ensemble": s.ensemble,
        "cot": s.cot,
        "cot_tokens": s.cot_tokens,
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "frames": P.frames_digest(),
    }
    phases.backend(run.models.feedback_model)
    phases.open_log(
        RunFolder(run.stage("label")),
        identity,
        {"experiment": "cai-label", "model": {"spec": policy}, "feedback_model": run.models.feedback_model},
    )
    try:

        def sample(i: int):
            k = ids[i]
            results = yield [
                GenerateRequest(
                    prompt=P.dialogue(train[i]),
                    max_tokens=s.max_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    stop=P.STOPS,
                    seed=request_seed(s.seed, k, f"sample{j}"),
                )
                for j in (1, 2)
            ]
            return {"id": k, "condition": "samples", "texts": [r.text.strip() for r in results]}

        phases.run_phase(policy, {(k, "samples"): sample(i) for i, k in enumerate(ids)}, "pairs of replies")
        phases.release(policy)
        if s.cot:
            phases.run_phase(
                run.models.feedback_model,
                {(k, "reasoning"): _reasoning(run, k, train[i], phases) for i, k in enumerate(ids)},
                "chains of thought",
            )
        phases.run_phase(
            run.models.feedback_model,
            {(k, "label"): _label(run, k, train[i], phases) for i, k in enumerate(ids)},
            "AI feedback",
        )
    finally:
        phases.close()
    return write_preferences(run, phases, train, ids)


def _orders(texts: list[str]) -> list[tuple[str, str]]:
    return [(texts[0], texts[1]), (texts[1], texts[0])]


def _shots_rng(run: CAIRun, k: str, j: int) -> np.random.Generator:
    return np.random.default_rng(request_seed(run.settings.seed, k, f"shots{j}"))


def _cot_prompts(run: CAIRun, k: str, prompt: str, texts: list[str]) -> list[str]:
    """One label's chain-of-thought comparisons up to "Let's think step by step:": for each drawn principle
    (its own few-shot draw), as asked and with the replies swapped."""
    s = run.settings
    prompts = []
    for j, principle in enumerate(drawn_principles(run, k)):
        shots = P.cot_shots(run.constitution, s.feedback_shots, _shots_rng(run, k, j))
        prompts += [
            P.cot_prompt(f"Human: {prompt}", run.constitution.principles[principle], a, b, shots)
            for a, b in _orders(texts)
        ]
    return prompts


def _reasoning(run: CAIRun, k: str, prompt: str, phases: PhasedRun):
    s = run.settings
    prompts = _cot_prompts(run, k, prompt, phases.got(k, "samples")["texts"])
    results = yield [
        GenerateRequest(
            prompt=text,
            max_tokens=s.cot_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            stop=("\n\nHuman:", "\nHuman:"),
            seed=request_seed(s.seed, k, f"cot{n // 2}/{n % 2}"),  # principle n // 2, order n % 2
        )
        for n, text in enumerate(prompts)
    ]
    return {"id": k, "condition": "reasoning", "texts": [r.text for r in results]}


def _label(run: CAIRun, k: str, prompt: str, phases: PhasedRun):
    s = run.settings
    texts = phases.got(k, "samples")["texts"]
    if s.cot:
        reasoning = phases.got(k, "reasoning")["texts"]
        asked = [
            head + thought.rstrip() + P.COT_ANSWER
            for head, thought in zip(_cot_prompts(run, k, prompt, texts), reasoning, strict=True)
        ]
    else:
        asked = []
        for j, principle in enumerate(drawn_principles(run, k)):
            shots = P.feedback_shots(run.constitution, s.feedback_shots, _shots_rng(run, k, j))
            principle_text = P.principle_text(run.constitution.principles[principle])
            asked += [
                shots + P.feedback_prompt(f"Human: {prompt}", principle_text, a, b) for a, b in _orders(texts)
            ]
    scored = yield [ScoreRequest(text, P.OPTIONS) for text in asked]
    per_principle = [list(pair) for pair in P.p_first_pairs(scored)]
    p = float(np.mean([P.order_averaged(a, b) for a, b in per_principle]))
    return {
        "id": k,
        "condition": "label",
        "by_principle": per_principle,  # [P(A) as asked, P(A) with the replies swapped]
        "p_first": P.clamp(p) if s.cot else p,
        "p_unclamped": p,
    }


def write_preferences(run: CAIRun, phases: PhasedRun, train: list[str], ids: list[str]) -> dict:
    from alignlab.atomic import write_text_atomic

    s = run.settings
    held = set(
        np.random.default_rng(s.seed + 1).permutation(len(ids))[: round(s.held_out * len(ids))].tolist()
    )
    rows = []
    for i, k in enumerate(ids):
        texts = phases.got(k, "samples")["texts"]
        got = phases.got(k, "label")
        rows.append(
            {
                "id": k,
                "prompt": P.dialogue(train[i]),
                "responses": texts,
                "p_first": got["p_first"],  # P(responses[0] is the better)
                "principles": [run.constitution.principles[j].id for j in drawn_principles(run, k)],
                "by_principle": got["by_principle"],
                "held_out": i in held,
            }
        )
    write_text_atomic(
        run.stage("label") / "preferences.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
    )
    asked = [b for r in rows for b in r["by_principle"]]
    return {
        "pairs": len(rows),
        "held_out": len(held),
        "identical_pairs": sum(r["responses"][0] == r["responses"][1] for r in rows),
        "mean_p_first": float(np.mean([r["p_first"] for r in rows])),
        # how much the feedback model favours position (A) whatever the replies: 0.5 is none
        "mean_p_position_a": float(np.mean([p for b in asked for p in b])),
        "decisive_share": float(np.mean([abs(r["p_first"] - 0.5) > 0.1 for r in rows])),
    }
