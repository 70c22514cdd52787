"""How fast the README's main job could run at all on this machine: its matrix products alone, at the
speed this machine multiplies matrices of those shapes, in float32 and in bfloat16.

Run:  .venv/bin/python bench/compute_floor.py                 (~2 min on 2 cores: the job, then the GEMMs)
      .venv/bin/python bench/compute_floor.py --limit 20      (a quicker look)

The job (`alignlab eval bbq --limit 50 --no-cache` on the bundled default model) runs in this process with a
hook on the model's forward that records every call: its token rows (padding included), the rows whose
logits it computes, and whether it generates (a growing KV cache) or scores. Afterwards each recorded
call's linear layers (seven per transformer layer, and the vocabulary projection for its logits rows) are
timed as `torch.nn.functional.linear` at the call's exact shape, in float32 and in bfloat16, on random
data; nothing else is counted (no attention, norms, sampling, Python, model load or data). The sums are
a floor: no implementation of the same forward passes at the same precision on this torch's matrix
multiply (oneDNN/MKL) can be faster, short of doing fewer multiplications.

Printed: the job's measured wall time, its start-up (from the command's start to the first forward) and,
per phase (generation, scoring), the calls, the tokens, the time spent inside the model's forward calls and
the floor in each precision. With --baseline-seconds (the baseline's time of bench/main_job.py) it also prints
the 3x target against the floor. Results: bench/out/compute_floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# Before torch is imported: the job's times count from here, as a fresh process's would.
STARTED = time.perf_counter()

import torch  # noqa: E402  (after STARTED on purpose)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--baseline-seconds", type=float, help="the baseline job's time, for the 3x target")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "compute_floor.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("ALIGNLAB_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    calls: list[dict] = []
    shapes: dict = {}
    seconds, startup = _run_job(args.limit, calls, shapes)
    rates = _time_shapes(calls, shapes)
    phases = {}
    for phase in ("generate", "score"):
        mine = [c for c in calls if c["phase"] == phase]
        phases[phase] = {
            "calls": len(mine),
            "token_rows": sum(c["rows"] for c in mine),
            "logit_rows": sum(c["logits"] for c in mine),
            "forward_s": sum(c["seconds"] for c in mine),
            "floor_s": {dtype: sum(rates[dtype][(c["rows"], c["logits"])] for c in mine) for dtype in rates},
        }
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "limit": args.limit,
        "job_seconds": seconds,
        "startup_seconds": startup,
        "phases": phases,
        "baseline_seconds": args.baseline_seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(_markdown(record))
    return 0


def _run_job(limit: int, calls: list[dict], shapes: dict) -> float:
    """The main job in this process, every top-level forward recorded."""
    from transformers.cache_utils import Cache

    from alignlab import cli
    from alignlab.models.hf import HFBackend
    from alignlab.models.hf_generate import _GrowingLayer

    def record(module, args, kwargs):
        if not calls:
            startup.append(time.perf_counter() - start)
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows_per_seq = ids.shape[1]
        keep = kwargs.get("logits_to_keep") or rows_per_seq
        cache = kwargs.get("past_key_values") or kwargs.get("cache")
        growing = isinstance(cache, Cache) and any(isinstance(layer, _GrowingLayer) for layer in cache.layers)
        calls.append(
            {
                "phase": "generate" if growing else "score",
                "rows": ids.numel(),
                "logits": ids.shape[0] * min(keep, rows_per_seq),
                "began": time.perf_counter(),
            }
        )
        if not shapes:
            shapes.update(_linear_shapes(module))

    startup: list[float] = []  # seconds from the command's start to the model's first forward
    loaded = HFBackend.__init__

    def finished(module, args, kwargs, output):
        calls[-1]["seconds"] = time.perf_counter() - calls[-1].pop("began")

    def hooked_init(self, *args, **kwargs):  # every model the backend loads gets the hook
        loaded(self, *args, **kwargs)
        for model in {id(m): m for m in (self.model, getattr(self, "_gen_model", None)) if m}.values():
            model.register_forward_pre_hook(record, with_kwargs=True)
            model.register_forward_hook(finished, with_kwargs=True)

    HFBackend.__init__ = hooked_init
    out = BENCH / "out" / "compute_floor-run"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    start = STARTED
    try:
        code = cli.main(
            ["eval", "bbq", "--limit", str(limit), "--no-cache", "--no-progress", "--out", str(out)]
        )
    finally:
        HFBackend.__init__ = loaded
    if code:
        sys.exit(f"the job failed (exit {code})")
    return time.perf_counter() - start, startup[0]


def _linear_shapes(model) -> dict:
    """(out, in) of every linear layer in one transformer layer, the number of layers, and the head's."""
    layers = model.model.layers
    body = [tuple(m.weight.shape) for m in layers[0].modules() if isinstance(m, torch.nn.Linear)]
    return {"body": body, "layers": len(layers), "head": tuple(model.lm_head.weight.shape)}


def _time_shapes(calls: list[dict], shapes: dict) -> dict:
    """Seconds per recorded call shape (token rows, logit rows) and precision: its linears in order, each
    layer with its own weights, so that weights stream from memory as they do in the model."""
    counts = Counter((c["rows"], c["logits"]) for c in calls)
    rates: dict = {}
    for dtype in (torch.float32, torch.bfloat16):
        layers = [[torch.randn(s).to(dtype) for s in shapes["body"]] for _ in range(shapes["layers"])]
        head = torch.randn(shapes["head"]).to(dtype)
        name = str(dtype).removeprefix("torch.")
        rates[name] = {key: _forward_seconds(*key, layers, head) for key in counts}
    return rates


def _forward_seconds(rows: int, logits: int, layers: list, head: torch.Tensor) -> float:
    """Best of a few timings of every linear of one forward over `rows` token rows (random inputs)."""
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]).to(w.dtype) for w in layers[0]}
    last = torch.randn(logits, head.shape[1]).to(head.dtype)
    best = float("inf")
    for _ in range(1 if rows > 1024 else 3):
        start = time.perf_counter()
        for weights in layers:
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)
        torch.nn.functional.linear(last, head)
        best = min(best, time.perf_counter() - start)
    return best


def _markdown(record: dict) -> str:
    lines = [
        f"main job (--limit {record['limit']}): {record['job_seconds']:.1f} s measured, of which "
        f"{record['startup_seconds']:.1f} s before the model's first forward (imports, data, model load)",
        "",
        "| phase | forward calls | token rows | logit rows | forward s (fp32, measured) | fp32 GEMM floor s "
        "| bf16 GEMM floor s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = {"float32": 0.0, "bfloat16": 0.0}
    for phase, p in record["phases"].items():
        lines.append(
            f"| {phase} | {p['calls']} | {p['token_rows']} | {p['logit_rows']} | {p['forward_s']:.1f} | "
            f"{p['floor_s']['float32']:.1f} | {p['floor_s']['bfloat16']:.1f} |"
        )
        for dtype in total:
            total[dtype] += p["floor_s"][dtype]
    forward = sum(p["forward_s"] for p in record["phases"].values())
    lines.append(f"| all | | | | {forward:.1f} | {total['float32']:.1f} | {total['bfloat16']:.1f} |")
    if record["baseline_seconds"]:
        target = record["baseline_seconds"] / 3
        lines += [
            "",
            f"3x the baseline's {record['baseline_seconds']:.1f} s: {target:.1f} s; the float32 GEMM floor alone is "
            f"{total['float32']:.1f} s, and with the start-up {total['float32'] + record['startup_seconds']:.1f} s "
            f"({(total['float32'] + record['startup_seconds']) / target:.2f}x the target); in bfloat16 "
            f"{total['bfloat16'] + record['startup_seconds']:.1f} s.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
