"""Drawing one token from llama.cpp's logits: greedy, or a seeded draw within the top-p nucleus."""

from __future__ import annotations

import numpy as np


def choose_token(logits: np.ndarray, temperature: float, top_p: float, rng) -> int:
    """Greedy at temperature 0; else a draw from softmax(logits / T), restricted to the top-p nucleus.

    Drawn as argmax(logits / T + Gumbel noise), one uniform per vocabulary entry per step, so the
    sample depends only on the request's seed.
    """
    if temperature <= 0 or rng is None:
        return int(np.argmax(logits))
    scores = logits.astype(np.float64) / temperature
    if top_p < 1.0:
        order = np.argsort(-scores, kind="stable")
        ordered = scores[order]
        probs = np.exp(ordered - ordered[0])
        probs /= probs.sum()
        before = np.cumsum(probs) - probs  # mass of the tokens ranked above each one
        scores[order[before >= top_p]] = -np.inf  # the token that crosses top_p stays in
    uniform = np.clip(rng.random(scores.shape[0]), 1e-20, None)
    return int(np.argmax(scores - np.log(-np.log(uniform))))
