"""BBQ scoring throughput: alignlab vs lm-evaluation-harness (hf backend) vs the model's forward-pass floor.

Run:  .venv/bin/python bench/bbq_throughput.py --items 1000 --chunks 8   (the reference run, ~14 min on 2 cores)
      .venv/bin/python bench/bbq_throughput.py --items 100      (a quick look)

One process, one loaded model (the bundled smollm2-135m, converted from its GGUF to an fp32 HF folder),
torch.set_num_threads(2). The N items are the experiment's (`load_items(..., limit=N, seed=1234)`), the
prompts its condition-"q" prompts (`Dialogue(...).render("raw")`), the continuations " (a)", " (b)", " (c)".

  floor    the model's plain batched forward over each prompt once (left-padded batches of 16, sorted by
           length, `model(input_ids=..., attention_mask=...)` under inference_mode; tokenised beforehand).
  alignlab `Engine(backend, cache=None, batch_size=16).run_requests([ScoreRequest, ...])`.
  lm-eval  `lm_eval.simple_evaluate` on bench/lm_eval_tasks/bbq_alignlab.yaml (a local jsonl of the same
           prompts) with an `HFLM` built around the same transformers model object, batch size 16.
           Two times: the whole `simple_evaluate` call, and the time inside `HFLM.loglikelihood` alone
           (the ratio target uses the latter, which is the one kinder to lm-eval).

Order: warm-up (untimed), floor, alignlab, lm-eval, floor again; the floor is the mean of its two runs.
Model loading is never timed. The per-choice log-probabilities of alignlab and lm-eval are compared; the
script exits with an error when they differ by more than --tol (1e-4) or when lm-eval scored other strings.
Results: bench/out/bbq_throughput-N.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import alignlab  # noqa: E402
from alignlab.engine.runner import Engine  # noqa: E402
from alignlab.models import load_model  # noqa: E402
from alignlab.models.base import ScoreRequest  # noqa: E402
from alignlab.models.hf_generate import left_pad  # noqa: E402
from alignlab.papers.self_correction import bbq  # noqa: E402
from alignlab.prompts import Dialogue  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TASK_TEMPLATE = BENCH / "lm_eval_tasks" / "bbq_alignlab.yaml"
TASK_NAME = "bbq_alignlab"
TEMPLATE_DATA_LINE = "    test: bench/out/bbq_q_items-N.jsonl  # replaced by the script"
MODEL = "smollm2-135m"
TARGET_VS_LM_EVAL = 2.5  # alignlab items/s over lm-eval items/s, at least
TARGET_VS_FLOOR = 1.3  # alignlab time over floor time, at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="number of BBQ items (default 1000)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tol", type=float, default=1e-4, help="max allowed |alignlab - lm-eval| log-prob")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument(
        "--chunks",
        type=int,
        default=1,
        help="1: floor, alignlab, lm-eval, floor over all items; K > 1: K chunks, the three in rotated order",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    # --- items and prompts, exactly as experiments/bbq.py task() builds condition "q" -----------------
    data_dir = Path(os.environ.get("ALIGNLAB_DATA_DIR") or ROOT.parent / "shared" / "datasets")
    if not data_dir.is_absolute():
        data_dir = (ROOT / data_dir).resolve()
    items, _files, warnings = bbq.load_items(data_dir, limit=args.items, seed=1234)
    for w in warnings:
        print(f"note: {w}", file=sys.stderr)
    prompts = [
        Dialogue((("human", bbq.question_text(item, "q")), ("assistant", bbq.ANSWER_PREFIX))).render("raw")
        for item in items
    ]
    choices = list(bbq.CONTINUATIONS)
    data_file = out_dir / f"bbq_q_items-{len(items)}.jsonl"  # per N: runs of other sizes may overlap
    with data_file.open("w", encoding="utf-8") as f:
        for item, prompt in zip(items, prompts, strict=True):
            row = {"id": item.id, "prompt": prompt, "choices": choices, "label": item.label}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n = len(items)
    print(f"{n} items, prompts written to {data_file}", file=sys.stderr)

    # --- model (untimed) ---------------------------------------------------------------------------------
    start = time.perf_counter()
    backend = load_model(MODEL, batch_size=args.batch_size, dtype="float32", device="cpu")
    load_s = time.perf_counter() - start
    model, tokenizer = backend.model, backend.tokenizer
    folder = model.name_or_path
    print(f"model {MODEL} from {folder} loaded in {load_s:.1f}s", file=sys.stderr)

    contexts = [backend.encode(p) for p in prompts]
    requests = [ScoreRequest(prompt=p, continuations=bbq.CONTINUATIONS) for p in prompts]
    engine = Engine(backend, cache=None, batch_size=args.batch_size, show_progress=False)
    lm_eval_runner = LmEvalRunner(
        model, tokenizer, data_file, out_dir / f"lm_eval_tasks-{n}", args.batch_size
    )
    pad = backend._pad_id()
    _forward(model, _floor_batches(contexts[:32], args.batch_size, pad))  # warm-up, untimed

    timings: dict[str, float] = {}  # wall clock, the measure
    cpu: dict[str, float] = {}  # process CPU time, for reading the load's effect (see RESULTS.md)
    alignlab_lp: list[list[float]] = [[] for _ in items]
    lm_samples: dict[str, dict] = {}

    def floor(idx: list[int], name: str) -> None:
        batches = _floor_batches([contexts[i] for i in idx], args.batch_size, pad)
        _add(timings, cpu, name, *_timed(lambda: _forward(model, batches), name)[:2])

    def alignlab_run(idx: list[int]) -> None:
        wall, used, results = _timed(lambda: engine.run_requests([requests[i] for i in idx]), "alignlab")
        _add(timings, cpu, "alignlab", wall, used)
        for i, r in zip(idx, results, strict=True):
            alignlab_lp[i] = list(r.logprobs)

    def lm_eval_run(idx: list[int]) -> None:
        load = os.getloadavg()[0]
        lm = lm_eval_runner.run(idx)
        LOADS.append(("lm_eval", load, os.getloadavg()[0]))
        _add(timings, cpu, "lm_eval_total", lm["total_s"], lm["total_cpu_s"])
        _add(timings, cpu, "lm_eval_loglikelihood", lm["loglikelihood_s"], None)
        lm_samples.update(lm["samples"])

    everything = list(range(n))
    per_chunk: list[dict] = []  # seconds per run and chunk: shows how the load moved during the run
    if args.chunks <= 1:
        # floor, alignlab, lm-eval, floor: the floor brackets the others; it is the mean of its two runs.
        floor(everything, "floor_1")
        alignlab_run(everything)
        lm_eval_run(everything)
        floor(everything, "floor_2")
        timings["floor"] = (timings["floor_1"] + timings["floor_2"]) / 2
        cpu["floor"] = (cpu["floor_1"] + cpu["floor_2"]) / 2
    else:
        # Chunks of whole batches, the three runs in rotated order per chunk: a change of machine load
        # lands on all three alike.
        size = -(-n // args.chunks // args.batch_size) * args.batch_size
        runs = [lambda idx: floor(idx, "floor"), alignlab_run, lm_eval_run]
        for c, lo in enumerate(range(0, n, size)):
            idx = everything[lo : lo + size]
            before = dict(timings)
            for k in range(3):
                runs[(c + k) % 3](idx)
            per_chunk.append({"items": len(idx), **{k: v - before.get(k, 0.0) for k, v in timings.items()}})
            done = lo + len(idx)
            print(f"chunk {c + 1}: items {lo}-{done - 1} done", file=sys.stderr)
            # What a killed run leaves behind: the running totals after each chunk.
            partial = {
                "items_done": done,
                "seconds": timings,
                "cpu_seconds": cpu,
                "per_chunk": per_chunk,
                "loads": LOADS,
            }
            partial_file = out_dir / f"bbq_throughput-{n}-chunks{args.chunks}.partial.json"
            partial_file.write_text(json.dumps(partial, indent=2) + "\n")
    for name in ("floor", "alignlab", "lm_eval_loglikelihood", "lm_eval_total"):
        print(f"{name}: {timings[name]:.1f}s", file=sys.stderr)

    # --- agreement ---------------------------------------------------------------------------------------
    problems = []
    max_diff, worst = 0.0, None
    for i, item in enumerate(items):
        sample = lm_samples.get(item.id)
        if sample is None:
            problems.append(f"lm-eval logged no sample for item {item.id}")
            continue
        if sample["pairs"] != [(prompts[i], c) for c in choices]:
            problems.append(f"lm-eval scored other strings for item {item.id}: {sample['pairs'][:1]!r}")
        for a, b in zip(alignlab_lp[i], sample["logprobs"], strict=True):
            if abs(a - b) > max_diff:
                max_diff, worst = abs(a - b), item.id
    if max_diff > args.tol:
        problems.append(f"log-probabilities differ by {max_diff:.3g} > {args.tol:g} (item {worst})")

    # --- report --------------------------------------------------------------------------------------------
    rate = {k: n / v for k, v in timings.items()}
    ratio_lm = rate["alignlab"] / rate["lm_eval_loglikelihood"]
    ratio_lm_total = rate["alignlab"] / rate["lm_eval_total"]
    ratio_floor = timings["alignlab"] / timings["floor"]
    load_after = os.getloadavg()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bbq_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "items": n,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "chunks": max(1, args.chunks),
        "model": MODEL,
        "model_folder": str(folder),
        "dtype": "float32",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "loadavg_1min_runs": [list(x) for x in LOADS],  # (run, at its start, at its end)
            "loadavg_1min_mean": _mean_loads(LOADS),
        },
        "versions": _versions(),
        "model_load_s": load_s,
        "seconds": timings,
        "cpu_seconds": cpu,
        "seconds_per_chunk": per_chunk,
        "items_per_s": rate,
        "ratios": {
            "alignlab_over_lm_eval_loglikelihood": ratio_lm,
            "alignlab_over_lm_eval_total": ratio_lm_total,
            "alignlab_time_over_floor": ratio_floor,
        },
        "targets": {"alignlab_over_lm_eval": TARGET_VS_LM_EVAL, "alignlab_time_over_floor": TARGET_VS_FLOOR},
        "met": {
            "vs_lm_eval": ratio_lm >= TARGET_VS_LM_EVAL,
            "vs_floor": ratio_floor <= TARGET_VS_FLOOR,
        },
        "max_abs_logprob_diff": max_diff,
        "lm_eval_acc": _accuracy(
            [lm_samples[item.id]["logprobs"] for item in items if item.id in lm_samples],
            [item.label for item in items if item.id in lm_samples],
        ),
        "alignlab_acc": _accuracy(alignlab_lp, [item.label for item in items]),
        "problems": problems,
    }
    suffix = f"-chunks{args.chunks}" if args.chunks > 1 else ""
    result_file = out_dir / f"bbq_throughput-{n}{suffix}.json"
    result_file.write_text(json.dumps(report, indent=2) + "\n")
    print(_markdown(report))
    print(f"\nresults: {result_file}", file=sys.stderr)
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 1
    return 0


# --- floor -----------------------------------------------------------------------------------------------
def _floor_batches(contexts: list[list[int]], batch_size: int, pad: int) -> list[tuple[torch.Tensor, ...]]:
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        batches.append(left_pad([contexts[i] for i in order[start : start + batch_size]], pad))
    return batches


@torch.inference_mode()
def _forward(model, batches) -> None:
    # The least work that yields each prompt's next-token distribution: one pass, last position's logits
    # only, no KV cache kept.
    for ids, mask in batches:
        model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)


# --- lm-evaluation-harness ---------------------------------------------------------------------------------
class LmEvalRunner:
    """lm-eval's `hf` model around the already-loaded model, and the task pointed at this run's jsonl."""

    def __init__(self, model, tokenizer, data_file: Path, task_dir: Path, batch_size: int) -> None:
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        template = TASK_TEMPLATE.read_text(encoding="utf-8")
        if TEMPLATE_DATA_LINE not in template:
            raise SystemExit(f"error: {TASK_TEMPLATE}: expected the line {TEMPLATE_DATA_LINE.strip()!r}")
        task_dir.mkdir(parents=True, exist_ok=True)
        filled = template.replace(TEMPLATE_DATA_LINE, f"    test: {json.dumps(str(data_file))}")
        (task_dir / TASK_TEMPLATE.name).write_text(filled, encoding="utf-8")
        # Untimed: wrapping the loaded model, indexing the one task.
        self.lm = HFLM(
            pretrained=model, tokenizer=tokenizer, batch_size=batch_size, dtype="float32", device="cpu"
        )
        self.task_manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        self.batch_size = batch_size
        self.inner = 0.0
        original = self.lm.loglikelihood

        def timed_loglikelihood(requests, *a, **kw):
            start = time.perf_counter()
            try:
                return original(requests, *a, **kw)
            finally:
                self.inner += time.perf_counter() - start

        self.lm.loglikelihood = timed_loglikelihood

    def run(self, indices: list[int]) -> dict:
        """Evaluate the docs at `indices` (timed: the whole simple_evaluate call, and loglikelihood alone)."""
        import lm_eval

        self.inner = 0.0
        start, start_cpu = time.perf_counter(), time.process_time()
        results = lm_eval.simple_evaluate(
            model=self.lm,
            tasks=[TASK_NAME],
            num_fewshot=0,
            batch_size=self.batch_size,
            samples={TASK_NAME: list(indices)},
            log_samples=True,
            bootstrap_iters=0,
            task_manager=self.task_manager,
            verbosity="WARNING",
        )
        total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        samples = {}
        for s in results["samples"][TASK_NAME]:
            pairs, logprobs = [], []
            for args, resp in zip(_arguments(s), s["resps"], strict=True):
                pairs.append((args[0], args[1]))
                logprobs.append(float(resp[0][0]))
            samples[s["doc"]["id"]] = {"pairs": pairs, "logprobs": logprobs}
        return {"total_s": total, "total_cpu_s": total_cpu, "loglikelihood_s": self.inner, "samples": samples}


def _arguments(sample: dict) -> list[tuple]:
    """(context, continuation) per choice, from a logged sample (a list, or {"gen_args_i": {"arg_j": ...}})."""
    args = sample["arguments"]
    if isinstance(args, dict):
        return [tuple(args[k][f"arg_{j}"] for j in range(len(args[k]))) for k in sorted(args, key=_index)]
    return [tuple(a) for a in args]


def _index(key: str) -> int:
    return int(key.rsplit("_", 1)[-1])


# --- helpers ---------------------------------------------------------------------------------------------
LOADS: list[tuple[str, float, float]] = []  # (phase, 1-minute load average at its start, at its end)


def _mean_loads(loads: list[tuple[str, float, float]]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for phase, a, b in loads:
        values.setdefault(phase.split("_")[0] if phase.startswith("floor") else phase, []).extend((a, b))
    return {k: sum(v) / len(v) for k, v in values.items()}


def _add(timings: dict, cpu: dict, name: str, wall: float, used: float | None) -> None:
    timings[name] = timings.get(name, 0.0) + wall
    if used is not None:
        cpu[name] = cpu.get(name, 0.0) + used


def _timed(fn, phase: str):
    """(wall seconds, process CPU seconds, result); notes the load average around the call."""
    load = os.getloadavg()[0]
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    LOADS.append((phase, load, os.getloadavg()[0]))
    return elapsed, cpu, out


def _accuracy(logprobs: list[list[float]], labels: list[int]) -> float:
    hits = sum(
        max(range(len(lp)), key=lp.__getitem__) == label for lp, label in zip(logprobs, labels, strict=True)
    )
    return hits / len(labels)


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "alignlab": alignlab.__version__, "torch": torch.__version__}
    for name in ("transformers", "lm_eval", "datasets"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = None
    return out


def _markdown(r: dict) -> str:
    s, c, rate = r["seconds"], r["cpu_seconds"], r["items_per_s"]
    floor_note = (
        f"mean of {s['floor_1']:.1f}s (first) and {s['floor_2']:.1f}s (last)"
        if "floor_1" in s
        else f"{r['chunks']} chunks, runs in rotated order"
    )
    rows = [
        ("forward-pass floor (each prompt once)", s["floor"], c["floor"], rate["floor"], floor_note),
        ("alignlab Engine + HFBackend.score", s["alignlab"], c["alignlab"], rate["alignlab"], ""),
        (
            "lm-eval hf, `HFLM.loglikelihood` only",
            s["lm_eval_loglikelihood"],
            None,
            rate["lm_eval_loglikelihood"],
            "",
        ),
        (
            "lm-eval hf, whole `simple_evaluate`",
            s["lm_eval_total"],
            c["lm_eval_total"],
            rate["lm_eval_total"],
            "",
        ),
    ]
    ratios = r["ratios"]
    lines = [
        f"{r['items']} BBQ items (condition q), {r['model']} fp32, batch {r['batch_size']}, "
        f"{r['threads']} threads",
        "",
        "| run | seconds | CPU seconds | items/s | note |",
        "|---|---:|---:|---:|---|",
        *(
            f"| {name} | {sec:.1f} | {'' if cpu is None else f'{cpu:.1f}'} | {ips:.2f} | {note} |"
            for name, sec, cpu, ips, note in rows
        ),
        "",
        "| ratio | value | target | met |",
        "|---|---:|---:|---|",
        f"| alignlab / lm-eval items/s (loglikelihood only) | {ratios['alignlab_over_lm_eval_loglikelihood']:.2f}x "
        f"| >= {TARGET_VS_LM_EVAL} | {_yes(r['met']['vs_lm_eval'])} |",
        f"| alignlab / lm-eval items/s (whole simple_evaluate) | {ratios['alignlab_over_lm_eval_total']:.2f}x | | |",
        f"| alignlab time / floor time | {ratios['alignlab_time_over_floor']:.2f}x "
        f"| <= {TARGET_VS_FLOOR} | {_yes(r['met']['vs_floor'])} |",
        "",
        f"max |alignlab - lm-eval| log-probability: {r['max_abs_logprob_diff']:.2e} over "
        f"{3 * r['items']} (item, choice) pairs; accuracy alignlab {r['alignlab_acc']:.3f}, "
        f"lm-eval {r['lm_eval_acc']:.3f}",
        f"load average before {_load(r['machine']['loadavg_before'])}, after {_load(r['machine']['loadavg_after'])}; "
        "mean 1-minute load average (start and end of each run): "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["machine"]["loadavg_1min_mean"].items()),
    ]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _load(avg) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


if __name__ == "__main__":
    sys.exit(main())
