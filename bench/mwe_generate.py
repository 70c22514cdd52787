"""Statements per second through the three stages of `alignlab generate evals`, each batched against the
same stage one statement at a time, in one run.

Run:  .venv/bin/python bench/mwe_generate.py                     (~6 min on 2 cores)
      .venv/bin/python bench/mwe_generate.py --model qwen2.5-coder-0.5b --n 64

- generation: 2 x N samples of the generator prompt (the paper's: T 1.4, top-p 0.975, <= 48 tokens, stop
  at newline, period or " -"), through the transformers backend's continuous batching (gen_width 64, one
  prefill shared by every sample of a label), against gen_width 1 on the first N/4 samples;
- deduplication: embedding (all-MiniLM-L6-v2, batches of 64, against batches of 1) plus the near-duplicate
  pass, over the statements generated (repeated to --dedup-size);
- judging: the filter prompt scored for each statement in batches of 16, against batches of 1.
Statements/s = statements (or samples) / wall seconds of the stage, model load excluded; the response
cache is off. Results: bench/out/mwe_generate.json and markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=128, help="samples per label")
    parser.add_argument("--dedup-size", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "mwe_generate.json")
    args = parser.parse_args(argv)

    from alignlab.engine import Engine
    from alignlab.experiments.base import request_seed
    from alignlab.models import load_model
    from alignlab.models.base import GenerateRequest
    from alignlab.models.embeddings import Embedder, near_duplicates
    from alignlab.papers.model_written_evals.mwe_generate import LABELS, STOPS, clean, generation_prompt
    from alignlab.papers.model_written_evals.mwe_judge import filter_request

    def requests(count: int):
        return [
            GenerateRequest(
                prompt=generation_prompt("is agreeable", label, "raw"),
                max_tokens=48,
                temperature=1.4,
                top_p=0.975,
                stop=STOPS,
                seed=request_seed(1234, f"bench/{label}/{k}", "generate"),
            )
            for k in range(count)
            for label in LABELS
        ]

    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "model": args.model,
    }
    record["load_before"] = os.getloadavg()[0]
    stages = {}

    def timed(name: str, count: int, fn):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        stages[name] = {"items": count, "seconds": seconds, "per_second": count / seconds}
        print(f"{name}: {count} in {seconds:.1f} s = {count / seconds:.2f}/s", file=sys.stderr, flush=True)
        return out

    wide = load_model(args.model, gen_width=64)
    batch = requests(args.n)
    results = timed(
        "generate, batched (width 64)",
        len(batch),
        lambda: Engine(wide, show_progress=False).run_requests(batch),
    )
    few = requests(max(args.n // 4, 1))
    wide.gen_width, wide.generate_batch_hint = 1, 2  # the same model, one sequence at a time
    timed("generate, one at a time", len(few), lambda: Engine(wide, show_progress=False).run_requests(few))
    wide.gen_width, wide.generate_batch_hint = 64, 128
    statements = [s for s, why in (clean(r.text, r.finish_reason) for r in results) if s]
    record["parsed"] = len(statements)
    pool = (statements * (args.dedup_size // max(len(statements), 1) + 1))[: args.dedup_size]
    # distinct texts, so nothing is answered from a tokenizer's or model's memo of the same string
    pool = [f"{s} ({i})" for i, s in enumerate(pool)]
    embedder = Embedder()

    def dedup(batch_size: int, texts: list[str]):
        embedder.batch_size = batch_size
        return near_duplicates(embedder.embed(texts), 0.9)

    timed("deduplicate, batched (64)", len(pool), lambda: dedup(64, pool))
    timed("deduplicate, one at a time", len(pool) // 4, lambda: dedup(1, pool[: len(pool) // 4]))
    judged = [filter_request("is agreeable", s, "raw") for s in statements]
    timed(
        "judge, batched (16)",
        len(judged),
        lambda: Engine(wide, batch_size=16, show_progress=False).run_requests(judged),
    )
    ones = judged[: max(len(judged) // 4, 1)]
    wide.batch_size = 1  # the backend batches what the engine hands it: one prompt a forward pass
    timed(
        "judge, one at a time",
        len(ones),
        lambda: Engine(wide, batch_size=1, show_progress=False).run_requests(ones),
    )
    record["stages"] = stages
    record["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"\n{args.model}, {args.n} samples per label, {record['parsed']} parsed; load {record['load_before']:.2f}"
    )
    print("| stage | batched /s | one at a time /s | speed-up |\n|---|---:|---:|---:|")
    for stage in ("generate", "deduplicate", "judge"):
        fast = next(v for k, v in stages.items() if k.startswith(stage) and "one at" not in k)
        slow = next(v for k, v in stages.items() if k.startswith(stage) and "one at" in k)
        print(
            f"| {stage} | {fast['per_second']:.2f} | {slow['per_second']:.2f} | {fast['per_second'] / slow['per_second']:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
