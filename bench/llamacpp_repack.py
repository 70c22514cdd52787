"""llama.cpp with and without its repacking weight buffers (AMX, CPU_REPACK): decode and scoring speed.

Run:  .venv/bin/python bench/llamacpp_repack.py             (3 rounds, ~10 min on 2 cores)
      .venv/bin/python bench/llamacpp_repack.py --rounds 1 --models smollm2-135m

For each model and each setting of `repack` (on: llama.cpp's default extra buffer types; off: plain CPU
buffers, what alignlab uses on AMX CPUs), a fresh child process loads the model with alignlab's
`LlamaCppBackend` and measures, untimed warm-up first:

  decode   greedy generation of --tokens tokens after "Once upon a time" (`backend.generate`, one token a
           step, as chain-of-thought sampling runs), in tokens/s;
  score    condition-"q" BBQ prompts with the answers " (a)", " (b)", " (c)" (`backend.score`: the prompt
           in 64-token batches, then each answer), in items/s.

A child that crashes (the AMX segfault of llama.cpp issue 20824) is recorded as such. Settings alternate
order across rounds (on/off, then off/on) so drifting machine load lands on both; the table gives the
median of the rounds and the ratio off/on. Models: the bundled GGUFs that are installed (Q4_1, Q4_K_M), and
SmolLM2 requantized here into Q4_0 (a type both AMX and CPU_REPACK take) and IQ4_NL (CPU_REPACK only, not
AMX), written once to bench/out/. Results: bench/out/llamacpp_repack.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROMPT = "Once upon a time"
DERIVED = {"smollm2-135m-q4_0": "Q4_0", "smollm2-135m-iq4_nl": "IQ4_NL"}  # name -> llama.cpp file type


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all available)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="tokens to decode")
    parser.add_argument("--items", type=int, default=40, help="BBQ prompts to score")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--worker", nargs=2, metavar=("GGUF", "REPACK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(Path(args.worker[0]), args.worker[1], args.tokens, args.items)

    import llama_cpp

    args.out.mkdir(parents=True, exist_ok=True)
    models = _models(args.out)
    if args.models:
        wanted = args.models.split(",")
        models = {name: path for name, path in models.items() if name in wanted}
    system_info = llama_cpp.llama_print_system_info().decode()
    print(f"llama.cpp: {system_info}", file=sys.stderr)
    runs: dict[str, dict[str, list[dict]]] = {name: {"on": [], "off": []} for name in models}
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
        for name, path in models.items():
            for setting in order:
                result = _child(path, setting, args.tokens, args.items)
                runs[name][setting].append(result)
                print(f"round {round_ + 1} {name} repack={setting}: {_brief(result)}", file=sys.stderr)
    summary = {name: _summarise(per) for name, per in runs.items()}
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_name(),
            "cpus": os.cpu_count(),
            "llama_cpp_system_info": system_info,
            "llama_cpp_python": llama_cpp.__version__,
        },
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "settings": {"rounds": args.rounds, "tokens": args.tokens, "items": args.items},
        "models": {name: str(path) for name, path in models.items()},
        "runs": runs,
        "summary": summary,
    }
    target = args.out / f"llamacpp_repack{'-' + args.models.replace(',', '_') if args.models else ''}.json"
    target.write_text(json.dumps(record, indent=1))
    print(_table(summary))
    print(f"\nwritten: {target}", file=sys.stderr)
    return 0


def _models(out: Path) -> dict[str, Path]:
    from alignlab.models import bundled

    found = {}
    for name in bundled.BUNDLED:
        if bundled.is_installed(bundled.BUNDLED[name]):
            found[name] = bundled.resolve(name)
    if "smollm2-135m" in found:
        for name, ftype in DERIVED.items():
            target = out / f"{name}.gguf"
            if not target.is_file():
                _quantize(found["smollm2-135m"], target, ftype)
            found[name] = target
    return found


def _quantize(source: Path, target: Path, ftype: str) -> None:
    """Requantize a GGUF with llama.cpp's own quantizer (every tensor the same type: `pure`)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.allow_requantize = True
    params.pure = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_suffix(".partial")
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if code != 0:
        raise SystemExit(f"quantizing {source} to {ftype} failed ({code})")
    partial.rename(target)


def _child(path: Path, setting: str, tokens: int, items: int) -> dict:
    command = [sys.executable, __file__, "--worker", str(path), setting, "--tokens", str(tokens)]
    command += ["--items", str(items)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        reason = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        loaded = lines[0].get("loaded", {}) if lines else {}  # what the child said before it died
        return {
            "crashed": reason,
            "weight_buffers": loaded.get("weight_buffers"),
            "stderr": done.stderr[-500:],
        }
    return lines[-1]


def _worker(path: Path, setting: str, tokens: int, items: int) -> int:
    from alignlab.models.base import GenerateRequest, ScoreRequest
    from alignlab.models.llamacpp import LlamaCppBackend

    start = time.perf_counter()
    backend = LlamaCppBackend(f"gguf:{path}", path, repack=setting)
    load_s = time.perf_counter() - start
    info = backend.info()
    loaded = {"weight_buffers": info["weight_buffers"], "extra_buffers": info["extra_buffers"]}
    print(json.dumps({"loaded": loaded}), flush=True)  # before the first decode, which may crash
    prompts = _bbq_prompts(items)
    requests = [ScoreRequest(p, (" (a)", " (b)", " (c)")) for p in prompts]
    steps = 0
    evaluate = backend._eval

    def counted(*a, **k):  # one call per decoding step: counts the tokens generated
        nonlocal steps
        steps += 1
        return evaluate(*a, **k)

    backend._eval = counted
    # warm-up, untimed: a few tokens, a few prompts
    backend.generate([GenerateRequest(PROMPT, max_tokens=8)])
    backend.score(requests[:2])
    backend._truncate(0, force_clear=True)
    steps = 0
    start = time.perf_counter()
    backend.generate([GenerateRequest(PROMPT, max_tokens=tokens)])
    decode_s = time.perf_counter() - start
    generated = steps
    backend._truncate(0, force_clear=True)
    start = time.perf_counter()
    backend.score(requests)
    score_s = time.perf_counter() - start
    info = backend.info()
    print(
        json.dumps(
            {
                "load_s": round(load_s, 3),
                "decode_tokens": generated,
                "decode_s": round(decode_s, 3),
                "decode_tok_s": round(generated / decode_s, 2),
                "score_items": len(requests),
                "score_s": round(score_s, 3),
                "score_items_s": round(len(requests) / score_s, 3),
                "extra_buffers": info["extra_buffers"],
                "weight_buffers": info["weight_buffers"],
                "n_threads": info["n_threads"],
            }
        )
    )
    return 0


def _bbq_prompts(n: int) -> list[str]:
    from alignlab.papers.self_correction import bbq
    from alignlab.prompts import Dialogue

    data_dir = Path(os.environ.get("ALIGNLAB_DATA_DIR") or ROOT.parent / "shared" / "datasets")
    if not data_dir.is_absolute():
        data_dir = (ROOT / data_dir).resolve()
    items, _files, _warnings = bbq.load_items(data_dir, limit=n, seed=1234)
    return [
        Dialogue((("human", bbq.question_text(item, "q")), ("assistant", bbq.ANSWER_PREFIX))).render("raw")
        for item in items
    ]


def _summarise(per: dict[str, list[dict]]) -> dict:
    out: dict = {}
    for setting, results in per.items():
        good = [r for r in results if "crashed" not in r]
        crashed = [r["crashed"] for r in results if "crashed" in r]
        out[setting] = {
            "crashed": crashed,
            "decode_tok_s": statistics.median(r["decode_tok_s"] for r in good) if good else None,
            "score_items_s": statistics.median(r["score_items_s"] for r in good) if good else None,
            "weight_buffers": next((r["weight_buffers"] for r in results if r.get("weight_buffers")), None),
        }
    for key in ("decode_tok_s", "score_items_s"):
        on, off = out["on"][key], out["off"][key]
        out[f"{key}_off_over_on"] = round(off / on, 3) if on and off else None
    return out


def _table(summary: dict) -> str:
    def buffers(entry: dict) -> str:
        if entry["weight_buffers"] is None:
            return "—"
        return ", ".join(f"{k} {v:.0f}" for k, v in entry["weight_buffers"].items())

    def speed(entry: dict, key: str) -> str:
        if entry["crashed"] and entry[key] is None:
            return f"crashed ({entry['crashed'][0]})"
        return f"{entry[key]:.2f}"

    def ratio(value) -> str:
        return f"{value:.2f}x" if value is not None else "—"

    rows = [
        "| model | weight buffers, repack on (MiB) | decode tok/s on | off | off/on | score items/s on | off | off/on |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        on, off = s["on"], s["off"]
        rows.append(
            f"| {name} | {buffers(on)} | {speed(on, 'decode_tok_s')} | {speed(off, 'decode_tok_s')} | "
            f"{ratio(s['decode_tok_s_off_over_on'])} | {speed(on, 'score_items_s')} | "
            f"{speed(off, 'score_items_s')} | {ratio(s['score_items_s_off_over_on'])} |"
        )
    return "\n".join(rows)


def _brief(result: dict) -> str:
    if "crashed" in result:
        return f"crashed ({result['crashed']})"
    return (
        f"decode {result['decode_tok_s']} tok/s, score {result['score_items_s']} items/s, "
        f"buffers {result['weight_buffers']}"
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
