"""Generation speed: the same workloads through every generation path, in one run.

Run:  .venv/bin/python bench/generation.py                       (all paths and workloads: ~25 min on 2 cores)
      .venv/bin/python bench/generation.py --workloads a --paths floor,hf,llamacpp   (a quick look)

Workloads (bundled smollm2-135m, prompts from BBQ in the data directory):
  a  64 BBQ Q+IF+CoT openings sampled to at most 256 tokens at temperature 1 (the experiment's stop strings)
  b  16 BBQ questions x K=10 samples each, at most 48 tokens at temperature 1 (P(True)'s shape)
  c  64 BBQ questions answered greedily in at most 8 tokens
  d  P(True)'s own requests: 16 TriviaQA questions x K=10 answers at T=1 after 5 answered examples, built by
     the p-true experiment's code (alignlab.papers.self_knowledge.self_eval), at most 24 tokens, stop at a newline
Paths:
  floor         llama.cpp decoding one sequence one token at a time (greedy, batch of one, no sampling):
                the per-stream floor, at 1 and at 2 threads
  hf-old        the transformers backend of --baseline (default: the commit before issue 11), loaded from
                git, fed chunks of 16 as its engine did: `transformers.generate` over left-padded batches
  llamacpp-old  the llama.cpp backend of --baseline: one request at a time
  hf            today's transformers backend: continuous batching (gen_width rows), prefix sharing
  hf-bf16       the same generating in bfloat16 (--gen-dtype bfloat16; scores would stay fp32)
  llamacpp      today's llama.cpp backend: batched continuous decoding, at 1 and at 2 threads
  -noshare      (workloads b, d) the same path with prefix sharing off: each of the K samples prefills alone

Each (path, workload) runs in its own process, so that peak memory (max RSS, model included) is its own and a
native crash is reported, not fatal. Tokens are the generated texts re-tokenised by the model's tokenizer
(the same count for every path). Aggregate tokens/s = tokens / time to finish; per stream = aggregate /
the streams the path runs at once. Results: bench/out/generation.json and markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import types
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MODEL = "smollm2-135m"
BASELINE = "359e5b1"  # the last commit before issue 11's generation paths
WORKLOADS = ("a", "b", "c", "d")
PATHS = ("floor", "hf-old", "llamacpp-old", "hf", "hf-bf16", "llamacpp", "hf-noshare", "llamacpp-noshare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the -old paths")
    parser.add_argument("--gen-width", type=int, default=64, help="rows of today's hf path")
    parser.add_argument(
        "--threads", default="1,2", help="llama.cpp thread counts (floor and llama.cpp paths)"
    )
    parser.add_argument("--child", nargs=3, metavar=("PATH", "WORKLOAD", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "generation.json")
    args = parser.parse_args(argv)
    if args.child:
        path, workload, threads = args.child
        print(json.dumps(_child(path, workload, int(threads), args)))
        return 0
    workloads = [w for w in args.workloads.split(",") if w]
    paths = [p for p in args.paths.split(",") if p]
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": os.getloadavg()[0],
        "baseline": args.baseline,
        "runs": [],
    }
    for workload in workloads:
        for path in paths:
            if path.endswith("-noshare") and workload not in ("b", "d"):
                continue  # prefix sharing only differs where requests share prompts
            llama = path.split("-")[0] in ("floor", "llamacpp")
            for threads in [int(t) for t in args.threads.split(",")] if llama else [0]:
                run = _spawn(path, workload, threads, args)
                record["runs"].append(run)
                print(_line(run), file=sys.stderr, flush=True)
    record["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(_markdown(record))
    return 0


def _spawn(path: str, workload: str, threads: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", path, workload, str(threads)]
    cmd += ["--baseline", args.baseline, "--gen-width", str(args.gen_width)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"path": path, "workload": workload, "threads": threads, "error": " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one path on one workload, in a child process -----------------------------------------------
def _child(path: str, workload: str, threads: int, args) -> dict:
    data_dir = Path(os.environ.get("ALIGNLAB_DATA_DIR", ROOT.parent / "shared" / "datasets"))
    requests = _workload(workload, data_dir)
    base = {"path": path, "workload": workload, "threads": threads, "requests": len(requests)}
    if path == "floor":
        sys.path.insert(0, str(BENCH))
        from self_correction import _llama_floor

        floor = _llama_floor(1000, threads)
        rate = floor["tokens_per_s"]
        return base | {"tokens_per_s": rate, "per_stream": rate, "streams": 1, "max_rss_mb": _rss_mb()}
    backend, streams, chunk = _backend(path, threads, args)
    backend.generate(requests[:2])  # warm-up (first-call allocations, template compilation)
    start = time.perf_counter()
    results = []
    for i in range(0, len(requests), chunk):
        results += backend.generate(requests[i : i + chunk])
    seconds = time.perf_counter() - start
    tokens = sum(len(backend.encode(r.text)) for r in results)
    rate = tokens / seconds
    return base | {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": rate,
        "streams": streams,
        "per_stream": rate / streams,
        "finish": {f: sum(r.finish_reason == f for r in results) for f in ("stop", "length", "error")},
        "max_rss_mb": _rss_mb(),
    }


def _workload(name: str, data_dir: Path) -> list:
    if name == "d":
        from alignlab.experiments.base import DataSource
        from alignlab.papers.self_knowledge.self_eval import SelfEvalSettings, load_items, sample_requests

        settings = SelfEvalSettings(tasks=("triviaqa",), samples=10, shots=5, seed=7)
        items = load_items(DataSource(data_dir=str(data_dir)), 16, settings).items
        return [request for item in items for request in sample_requests(item, settings)]
    from alignlab.experiments.base import COT_STOP
    from alignlab.models.base import GenerateRequest
    from alignlab.papers.self_correction import bbq
    from alignlab.prompts import Dialogue

    def prompt(item, condition: str, prefill: str) -> str:
        turns = (("human", bbq.question_text(item, condition)), ("assistant", prefill))
        return Dialogue(turns).render("raw")

    n = 16 if name == "b" else 64
    items, _files, _warnings = bbq.load_items(data_dir, limit=n, seed=7)
    if name == "a":
        return [
            GenerateRequest(prompt(it, "q+if+cot", bbq.COT_PREFIX), 256, 1.0, stop=COT_STOP, seed=i)
            for i, it in enumerate(items)
        ]
    if name == "b":
        return [
            GenerateRequest(prompt(it, "q", "The answer is"), 48, 1.0, stop=COT_STOP, seed=100 * i + k)
            for i, it in enumerate(items)
            for k in range(10)
        ]
    return [GenerateRequest(prompt(it, "q", "The answer is"), 8, 0.0) for it in items]


def _backend(path: str, threads: int, args):
    """(backend, streams it runs at once, requests per generate call as its engine would hand them)."""
    from alignlab.models import bundled

    file = bundled.resolve(MODEL)
    kind, _, variant = path.partition("-")
    if variant == "old":
        module = _legacy(args.baseline, f"src/alignlab/models/{'hf' if kind == 'hf' else 'llamacpp'}.py")
        if kind == "hf":
            return module.HFBackend(MODEL, str(file), batch_size=16), 16, 16
        return module.LlamaCppBackend(f"llamacpp:{MODEL}", file, n_threads=threads), 1, 16
    share = variant != "noshare"
    if kind == "hf":
        from alignlab.models.hf import HFBackend

        dtype = "bfloat16" if variant == "bf16" else None
        backend = HFBackend(MODEL, str(file), gen_width=args.gen_width, share_prefixes=share, gen_dtype=dtype)
        return backend, backend.gen_width, backend.generate_batch_hint
    from alignlab.models.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(f"llamacpp:{MODEL}", file, n_threads=threads, share_prefixes=share)
    return backend, backend.gen_width, backend.generate_batch_hint


def _legacy(rev: str, path: str) -> types.ModuleType:
    """A module as it was at `rev`, imported from git (it still imports today's alignlab for the rest)."""
    source = subprocess.check_output(["git", "show", f"{rev}:{path}"], cwd=ROOT, text=True)
    name = f"alignlab_legacy_{Path(path).stem}"
    module = types.ModuleType(name)
    module.__file__ = f"{rev}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# --- reporting ------------------------------------------------------------------------------------
def _line(run: dict) -> str:
    if "error" in run:
        return f"{run['workload']} {run['path']} t{run['threads']}: FAILED {run['error']}"
    return f"{run['workload']} {run['path']} t{run['threads']}: {run['tokens_per_s']:.1f} tok/s"


def _markdown(record: dict) -> str:
    lines = [
        f"{record['date']}, {record['machine']}, load {record['load_before']:.2f} before, "
        f"{record['load_after']:.2f} after; -old paths from {record['baseline']}",
        "",
    ]
    by_workload: dict[str, list[dict]] = {}
    for run in record["runs"]:
        by_workload.setdefault(run["workload"], []).append(run)
    for workload, runs in by_workload.items():
        floors = {r["threads"]: r["tokens_per_s"] for r in runs if r["path"] == "floor" and "error" not in r}
        floor = max(floors.values()) if floors else None
        lines += [
            f"Workload {workload}:",
            "",
            "| path | threads | tokens | seconds | tok/s | streams | per stream | vs best floor | max RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            if "error" in r:
                lines.append(f"| {r['path']} | {r['threads'] or ''} | failed: {r['error']} | | | | | | |")
                continue
            ratio = f"{r['tokens_per_s'] / floor:.2f}x" if floor else ""
            lines.append(
                f"| {r['path']} | {r['threads'] or 'torch'} | {r.get('tokens', '')} | "
                f"{r.get('seconds', 0):.1f} | {r['tokens_per_s']:.1f} | {r['streams']} | "
                f"{r['per_stream']:.1f} | {ratio} | {r['max_rss_mb']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
