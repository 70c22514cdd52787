"""The self-correction suite's throughput per experiment and condition, and chain-of-thought generation
speed against the raw decode floor of the same model in llama.cpp, in one process.

Run:  .venv/bin/python bench/self_correction.py                 (--limit 20: ~15 min on 2 cores)
      .venv/bin/python bench/self_correction.py --limit 5 --cot 8 (a quick look)

1. Items/s: each experiment of `alignlab eval self-correction` and each of its conditions alone, on the
   bundled default model (transformers backend, batch 16, no response cache), `--limit` items (the suite's
   meaning: about that many scored prompts), timed from the first request to metrics.json.
2. CoT tokens/s: `--cot` BBQ Q+IF+CoT openings sampled to 256 tokens (temperature 1, the experiment's stop
   strings) through `HFBackend.generate` in one batch call, tokens counted by the model's tokenizer;
   against the floor: llama.cpp decoding one token at a time (greedy, llama_decode on a batch of one, no
   sampling or Python per-token work) for the same number of tokens from the same model file, 1 and 2
   threads.
Results: bench/out/self_correction.json and markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MODEL = "smollm2-135m"


# scored prompts an item costs: the benchmark sizes every experiment to about --limit prompts a condition
PROMPTS_PER_ITEM = {"bbq": 1, "winogender": 1, "law-school": 2, "discrim-eval": 15}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--cot", type=int, default=16, help="CoT samples to generate")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data_dir = Path(os.environ.get("ALIGNLAB_DATA_DIR") or ROOT.parent / "shared" / "datasets").resolve()

    from alignlab import experiments
    from alignlab.evaluate import RunOptions, run
    from alignlab.experiments import DataSource
    from alignlab.models import load_model
    from alignlab.papers.self_correction.suite import SELF_CORRECTION

    backend = load_model(MODEL, batch_size=16)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for member in SELF_CORRECTION.members:
            experiment = experiments.get(member.experiment)
            limit = max(1, args.limit // PROMPTS_PER_ITEM[member.experiment])
            for condition in experiment.conditions:
                settings = experiment.settings(conditions=(condition,))
                opts = RunOptions(
                    model=MODEL,
                    out=Path(tmp) / f"{experiment.name}-{condition}",
                    limit=limit,
                    data=DataSource(data_dir=str(data_dir)),
                    use_cache=False,
                    progress=False,
                    bootstrap=200,
                    backend=backend,
                )
                start = time.perf_counter()
                result = run(experiment, settings, opts)
                seconds = time.perf_counter() - start
                n = result.metrics["conditions"][condition]["n"]
                rows.append(
                    {"experiment": experiment.name, "condition": condition, "items": n, "seconds": seconds}
                )
                print(f"{experiment.name} {condition}: {n} items in {seconds:.1f}s", file=sys.stderr)

    cot = _cot_speed(backend, data_dir, args.cot)
    floor = {threads: _llama_floor(cot["tokens"], threads) for threads in (1, 2)}
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "limit": args.limit,
        "suite": rows,
        "cot": cot,
        "llama_cpp_floor": floor,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "self_correction.json").write_text(json.dumps(record, indent=1))
    print(_markdown(record))
    return 0


def _cot_speed(backend, data_dir: Path, n: int) -> dict:
    from alignlab.experiments.base import COT_STOP
    from alignlab.models.base import GenerateRequest
    from alignlab.papers.self_correction import bbq
    from alignlab.prompts import Dialogue

    items, _files, _warnings = bbq.load_items(data_dir, limit=n, seed=7)
    requests = [
        GenerateRequest(
            prompt=Dialogue(
                (("human", bbq.question_text(item, "q+if+cot")), ("assistant", bbq.COT_PREFIX))
            ).render("raw"),
            max_tokens=256,
            temperature=1.0,
            stop=COT_STOP,
            seed=i,
        )
        for i, item in enumerate(items)
    ]
    backend.generate(requests[:2])  # warm-up
    start = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - start
    tokens = sum(len(backend.encode(r.text)) for r in results)
    return {"samples": len(results), "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def _llama_floor(tokens: int, threads: int) -> dict:
    """Greedy single-token decoding in llama.cpp itself: the least work per generated token."""
    import llama_cpp
    import numpy as np

    from alignlab.models import bundled, llamacpp_load

    path = bundled.resolve(MODEL)
    info = llama_cpp.llama_print_system_info().decode()
    extra = llamacpp_load.extra_buffers_allowed(None, info, llamacpp_load.cpu_flags())
    with llamacpp_load.loading(llama_cpp, extra):
        llm = llama_cpp.Llama(
            str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
        )
    ctx, n_vocab = llm.ctx, llm.n_vocab()
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    prompt = llm.tokenize(b"Human: Once upon a time", add_bos=True)
    done, position, token = 0, 0, prompt[0]
    seconds = 0.0
    for step in range(len(prompt) + min(tokens, 2000)):
        if step < len(prompt):
            token = prompt[step]
        if position >= 2000:  # stay inside the context: start over
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            position = 0
        batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.seq_id[0][0], batch.logits[0] = (
            token,
            position,
            1,
            0,
            1,
        )
        batch.n_tokens = 1
        start = time.perf_counter()
        llama_cpp.llama_decode(ctx, batch)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, 0), shape=(n_vocab,))
        token = int(logits.argmax())
        if step >= len(prompt):
            seconds += time.perf_counter() - start
            done += 1
        position += 1
    llama_cpp.llama_batch_free(batch)
    llm.close()
    return {
        "threads": threads,
        "tokens": done,
        "seconds": seconds,
        "tokens_per_s": done / seconds,
        "extra_buffers": extra,
    }


def _markdown(record: dict) -> str:
    lines = ["| experiment | condition | items | seconds | items/s |", "|---|---|---:|---:|---:|"]
    for row in record["suite"]:
        lines.append(
            f"| {row['experiment']} | {row['condition']} | {row['items']} | {row['seconds']:.1f} | "
            f"{row['items'] / row['seconds']:.2f} |"
        )
    cot = record["cot"]
    lines += [
        "",
        "| generation | tokens | seconds | tokens/s | vs floor (1 thread) | vs floor (2 threads) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    floor1, floor2 = record["llama_cpp_floor"][1], record["llama_cpp_floor"][2]
    lines.append(
        f"| alignlab hf, {cot['samples']} BBQ CoT samples in one batch | {cot['tokens']} | {cot['seconds']:.1f} | "
        f"{cot['tokens_per_s']:.1f} | {cot['tokens_per_s'] / floor1['tokens_per_s']:.2f}x | "
        f"{cot['tokens_per_s'] / floor2['tokens_per_s']:.2f}x |"
    )
    for floor in (floor1, floor2):
        lines.append(
            f"| llama.cpp greedy decode floor, {floor['threads']} thread(s) | {floor['tokens']} | "
            f"{floor['seconds']:.1f} | {floor['tokens_per_s']:.1f} | | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
