"""How a run's scores were read, for its metrics.json; and the sampling error of answers counted in samples,
carried into every interval.

`scoring_summary` pools the per-sample "scoring" notes the engine leaves (top-k coverage, answers outside
the top-k, requests, samples drawn).

Where answers' probabilities are shares of N sampled answers (`--scoring sampling`), each share is itself an
estimate. The run replays every task `replicates` times with the recorded results, each sampled score's
counts redrawn from their posterior (Dirichlet with Jeffreys' prior, the answers that matched none being one
more category), and recomputes the metrics: the spread of each estimate over the replays is its sampling
error. Each interval then widens by it, the two errors added in quadrature (independent sources:

    lower = value - sqrt((value - item_lower)^2 + (1.96 * sd)^2), and the same above,

the normal approximation the replays' spread is read with). The item-only interval stays beside it as
`ci_items`, the spread as `sampling_sd`. Values without an interval are left as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from alignlab.errors import AlignlabError
from alignlab.models.base import ScoreResult, result_from_json

REPLICATES = 100
Z95 = 1.959963984540054


def scoring_summary(samples: list[dict], facts: dict | None) -> dict | None:
    """{path, its settings, requests, coverage...} over the samples' "scoring" notes (None: none had any,
    the scores came from prompt logprobs)."""
    notes = [s["scoring"] for s in samples if isinstance(s.get("scoring"), dict)]
    if not notes:
        return None
    out: dict = {**(facts or {}), "path": (facts or {}).get("path") or notes[0]["path"]}
    out["samples_scored"] = len(notes)
    out["requests"] = sum(n.get("requests", 0) for n in notes)
    covered = [n["covered"] for n in notes if "covered" in n]
    if covered:
        out["coverage"] = {
            "answers": sum(n["answers"] for n in notes if "answers" in n),
            "answers_outside_top_k": sum(n["outside"] for n in notes if "outside" in n),
            "samples_fully_covered": sum(1 for n in notes if n.get("outside") == 0),
            "top_k_mass_min": min(covered),
            "top_k_mass_mean": float(np.mean(covered)),
            "note": "an answer outside the top-k is scored at its upper bound: the least listed "
            "probability, or the mass the list leaves if smaller",
        }
    drawn = [n["samples"] for n in notes if "samples" in n]
    if drawn:
        out["answers_sampled"] = sum(drawn)
        out["answers_matching_none"] = sum(n.get("unmatched", 0) for n in notes)
    return out


def replay(task, replies: list[dict], redraw: Callable[[dict], object]) -> dict:
    """The sample `task` returns when given the recorded `replies` (each result through `redraw`)."""
    try:
        asked = next(task)
        for reply in replies:
            while isinstance(asked, list | tuple) and not asked:  # the engine answers an empty list at once
                asked = task.send([])
            results = [redraw(r) for r in reply["results"]]
            asked = task.send(results if reply["list"] else results[0])
        while isinstance(asked, list | tuple) and not asked:
            asked = task.send([])
    except StopIteration as stop:
        return stop.value
    raise AlignlabError("a recorded task asked for more than its recorded results: cannot replay it")


def redrawer(rng: np.random.Generator) -> Callable[[dict], object]:
    """Rebuild a recorded result; a sampled score's log-probabilities drawn from its counts' posterior."""

    def redraw(recorded: dict):
        data = {k: v for k, v in recorded.items() if k != "kind"}
        result = result_from_json(recorded["kind"], data)
        reading = getattr(result, "reading", None) or {}
        if not isinstance(result, ScoreResult) or reading.get("path") != "sampling":
            return result
        counts = np.asarray([*reading["counts"], reading.get("unmatched", 0)], dtype=float)
        shares = rng.dirichlet(counts + 0.5)
        return ScoreResult(
            logprobs=[math.log(max(p, 1e-300)) for p in shares[:-1]],
            num_tokens=result.num_tokens,
            reading=reading,
        )

    return redraw


def estimates(node, path: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    """(path, node) of every estimate ({"value": number, "ci": [lo, hi], ...}) in a metrics tree."""
    if isinstance(node, dict):
        if isinstance(node.get("value"), int | float) and isinstance(node.get("ci"), list):
            yield path, node
        for key, child in node.items():
            yield from estimates(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from estimates(child, (*path, index))


def at(node, path: tuple):
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def widen(metrics: dict, replays: list[dict]) -> int:
    """Widen every interval in `metrics` by the spread of its value over `replays`; how many were widened."""
    widened = 0
    for path, node in list(estimates(metrics)):
        values = [at(r, (*path, "value")) for r in replays]
        values = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        if len(values) < 2:
            continue
        sd = float(np.std(values, ddof=1))
        node["sampling_sd"] = sd
        low, high = node["ci"]
        if low is None or high is None:
            continue
        node["ci_items"] = [low, high]
        value, extra = float(node["value"]), (Z95 * sd) ** 2
        node["ci"] = [
            value - math.sqrt(max(value - low, 0.0) ** 2 + extra),
            value + math.sqrt(max(high - value, 0.0) ** 2 + extra),
        ]
        widened += 1
    return widened


def sampling_replays(
    experiment, asked: dict, samples: list[dict], settings, seed: int, replicates: int = REPLICATES
) -> tuple[list[dict], int]:
    """(metrics of each replay, how many samples were replayed); `asked`: (item id, condition) -> item.
    Samples without recorded results (from a run that did not record them) stay as they are."""
    replayable = [s for s in samples if "_replies" in s and (str(s["id"]), s["condition"]) in asked]
    kept = [s for s in samples if not ("_replies" in s and (str(s["id"]), s["condition"]) in asked)]
    out = []
    for r in range(replicates):
        redraw = redrawer(np.random.default_rng([seed, r]))
        drawn = [
            replay(
                experiment.task(asked[(str(s["id"]), s["condition"])], s["condition"], settings),
                s["_replies"],
                redraw,
            )
            for s in replayable
        ]
        again = sorted(kept + drawn, key=experiment.sample_order)
        out.append(experiment.metrics(again, settings, seed=seed, n_resamples=20))
    return out, len(replayable)
