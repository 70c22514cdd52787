"""Scoring long prompts of mixed length: batches in request order against batches sorted by prompt length.

Run:  .venv/bin/python bench/score_batching.py [--n 64] [--repeats 2]

Workload: `--n` of the 438 published HHH comparisons (Bai et al. 2022), each asked in both orders (the
`alignlab eval hhh` and Constitutional AI evaluation requests: 190 tokens a prompt on average, 100 to 600),
scored by the bundled smollm2-135m in fp32 in batches of 16. Both arms run in this process on the same
loaded model, alternating, so machine noise falls on both; the ratio is the result. The two arms' scores must
agree (the order only changes which rows share a batch).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from alignlab.models import load_model
    from alignlab.papers.constitutional_ai.hhh import hhh_requests, located_hhh

    data = os.environ.get("ALIGNLAB_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    requests = [r for item in located_hhh(data, args.n, 1) for r in hhh_requests(item, "raw")]
    backend = load_model("smollm2-135m", batch_size=16)
    tokens = sum(len(backend.tokenizer(r.prompt)["input_ids"]) for r in requests)
    times: dict[bool, list[float]] = {True: [], False: []}
    scores: dict[bool, list] = {}
    for _ in range(args.repeats):
        for by_length in (False, True):
            backend.score_by_length = by_length
            start = time.perf_counter()
            scores[by_length] = backend.score(requests)
            times[by_length].append(time.perf_counter() - start)
    worst = max(
        abs(a - b)
        for x, y in zip(scores[False], scores[True], strict=True)
        for a, b in zip(x.logprobs, y.logprobs, strict=True)
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {len(requests)} prompts, {tokens} tokens"
    )
    print("| batches | best of runs (s) | tokens/s | vs request order |")
    print("|---|---:|---:|---:|")
    base = min(times[False])
    for by_length, name in ((False, "request order"), (True, "sorted by length")):
        best = min(times[by_length])
        print(f"| {name} | {best:.1f} | {tokens / best:.0f} | {base / best:.2f}x |")
    print(f"largest difference between the two arms' log-probabilities: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
