"""The supervised stage of Constitutional AI (SL-CAI, Bai et al. 2022 §3): sample a response to each
harmful-leaning prompt, then critique and revise it `rounds` times, each round under a critique/revision pair
drawn at random from the constitution, after `critique_shots` few-shot demonstrations. The whole chain is
kept; the fine-tuning set is the revisions of every round (the paper fine-tunes "on the revisions (from all
revisional steps)"), each as the reply to its prompt.

A round critiques the latest reply in a fresh context (the conversation with that reply), not the growing
transcript of earlier rounds ([D]: keeps prompts inside a small model's context; the paper's appended
sequence is the same pipeline "applied repeatedly"). A revision that comes back empty keeps the reply it
was meant to revise (counted as `empty_revisions`).

Phases run over all prompts at once (batched), each step appended to revise/samples.jsonl as it finishes.
"""

from __future__ import annotations

import json

import numpy as np

from alignlab.experiments.base import request_seed
from alignlab.experiments.phased import PhasedRun
from alignlab.models.base import GenerateRequest
from alignlab.papers.constitutional_ai import cai_prompts as P
from alignlab.papers.constitutional_ai.cai_run import CAIRun


def _clean(text: str) -> str:
    return text.strip()


def drawn_pair(run: CAIRun, prompt_id: str, round_: int) -> int:
    """The critique/revision pair of a round, drawn per prompt and round (reproducible alone)."""
    seed = request_seed(run.settings.seed, prompt_id, f"r{round_}/pair")
    return int(np.random.default_rng(seed).integers(len(run.constitution.critiques)))


def revise(run: CAIRun) -> dict:
    from alignlab.runfolder import RunFolder

    s = run.settings
    train, _, _ = run.prompts()
    folder = run.stage("revise")
    identity = {
        **run.identity(),
        "stage": "revise",
        "rounds": s.rounds,
        "critique_shots": s.critique_shots,
        "max_tokens": s.max_tokens,
        "critique_tokens": s.critique_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "frames": P.frames_digest(),
    }
    phases = run.phases()
    phases.backend(run.models.model)  # an unknown spec fails before the folder is touched
    phases.open_log(
        RunFolder(folder), identity, {"experiment": "cai-revise", "model": {"spec": run.models.model}}
    )
    shots = P.critique_shots(run.constitution, s.critique_shots)
    ids = [f"p{i}" for i in range(len(train))]
    try:

        def respond(i: int):
            result = yield GenerateRequest(
                prompt=P.dialogue(train[i]),
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                stop=P.STOPS,
                seed=request_seed(s.seed, ids[i], "response"),
            )
            return {"id": ids[i], "condition": "response", "text": _clean(result.text)}

        phases.run_phase(
            run.models.model, {(k, "response"): respond(i) for i, k in enumerate(ids)}, "responses"
        )
        latest = {k: phases.got(k, "response")["text"] for k in ids}
        for r in range(1, s.rounds + 1):
            pairs = {k: run.constitution.critiques[drawn_pair(run, k, r)] for k in ids}

            def step_prompts(i: int, critique: str, pairs=pairs) -> tuple[str, str]:
                pair = pairs[ids[i]]
                context = shots + P.dialogue(train[i], latest[ids[i]])
                return P.critique_revision_prompts(
                    context, P.critique_request(pair), critique, P.revision_request(pair)
                )

            def critique(i: int, r=r, pairs=pairs):
                k = ids[i]
                result = yield GenerateRequest(
                    prompt=step_prompts(i, "")[0],
                    max_tokens=s.critique_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    stop=P.STOPS,
                    seed=request_seed(s.seed, k, f"r{r}/critique"),
                )
                return {
                    "id": k,
                    "condition": f"r{r}/critique",
                    "pair": pairs[k].id,
                    "text": _clean(result.text),
                }

            phases.run_phase(
                run.models.model,
                {(k, f"r{r}/critique"): critique(i) for i, k in enumerate(ids)},
                f"round {r}: critiques",
            )

            def revision(i: int, r=r):
                k = ids[i]
                result = yield GenerateRequest(
                    prompt=step_prompts(i, phases.got(k, f"r{r}/critique")["text"])[1],
                    max_tokens=s.max_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    stop=P.STOPS,
                    seed=request_seed(s.seed, k, f"r{r}/revision"),
                )
                return {"id": k, "condition": f"r{r}/revision", "text": _clean(result.text)}

            phases.run_phase(
                run.models.model,
                {(k, f"r{r}/revision"): revision(i) for i, k in enumerate(ids)},
                f"round {r}: revisions",
            )
            for k in ids:
                latest[k] = phases.got(k, f"r{r}/revision")["text"] or latest[k]
    finally:
        phases.close()
    return write_sft_set(run, phases, train, ids)


def write_sft_set(run: CAIRun, phases: PhasedRun, train: list[str], ids: list[str]) -> dict:
    """chains.jsonl (every chain whole), sft.jsonl and sft_dataset/ (prompt/completion pairs: the revisions)."""
    from alignlab.atomic import write_text_atomic

    s = run.settings
    folder = run.stage("revise")
    chains, rows, empty = [], [], 0
    for i, k in enumerate(ids):
        reply = phases.got(k, "response")["text"]
        rounds = []
        for r in range(1, s.rounds + 1):
            critique = phases.got(k, f"r{r}/critique")
            revision = phases.got(k, f"r{r}/revision")["text"]
            if not revision:
                empty += 1
                revision = reply
            rounds.append({"pair": critique["pair"], "critique": critique["text"], "revision": revision})
            rows.append({"id": k, "round": r, "prompt": P.dialogue(train[i]), "completion": " " + revision})
            reply = revision
        chains.append(
            {"id": k, "prompt": train[i], "response": phases.got(k, "response")["text"], "rounds": rounds}
        )
    write_text_atomic(
        folder / "chains.jsonl", "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in chains)
    )
    write_text_atomic(folder / "sft.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    save_dataset(rows, folder / "sft_dataset")
    return {"prompts": len(ids), "rounds": s.rounds, "sft_examples": len(rows), "empty_revisions": empty}


def save_dataset(rows: list[dict], folder) -> None:
    """The rows as a `datasets` Dataset on disk (written aside, then moved into place)."""
    import shutil

    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    from alignlab.atomic import replacing

    shutil.rmtree(folder, ignore_errors=True)  # a folder cannot be renamed onto another
    with replacing(folder) as tmp:
        Dataset.from_list(rows).save_to_disk(str(tmp))
