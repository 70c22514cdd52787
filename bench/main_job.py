"""The README's main job, today against a baseline commit, in one run: time, and whether the outputs that
involve no sampling are unchanged.

Run:  .venv/bin/python bench/main_job.py                  (~8 min on 2 cores)
      .venv/bin/python bench/main_job.py --baseline REV --limit 50 --repeats 1

The job is `alignlab eval bbq --limit 50` on the bundled default model with the response cache off
(`--no-cache --no-progress`), run as a fresh process by the same interpreter: once with this checkout's code and once with
--baseline's (a `git worktree` of it under bench/out/, first on PYTHONPATH so that its `alignlab` is the one
imported). With --repeats 2 the order is baseline, today, today, baseline, so a drift in machine load lands
on both. Compared: wall time of the whole command (model load and report included), and every Q and Q+IF
sample's scores, which must be identical (CoT samples differ: their chains of thought are sampled by a
different batch layout and so, beyond the first tokens, are not the same draws).
Results: bench/out/main_job.json and markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BASELINE = "359e5b1"  # the last commit before issue 11's generation paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="also run today's code with --gen-dtype bfloat16")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "main_job.json")
    args = parser.parse_args(argv)
    work = BENCH / "out" / "main_job"
    tree = _worktree(args.baseline, work / f"baseline-{args.baseline}")
    order = ["baseline", "today"] if args.repeats == 1 else ["baseline", "today", "today", "baseline"]
    order *= max(1, args.repeats // 2)
    if args.bf16:
        order += ["today-bf16"] * (len(order) // 2)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "baseline": args.baseline,
        "limit": args.limit,
        "runs": [],
    }
    for n, which in enumerate(order):
        out = work / f"{which}-{n}"
        extra = ["--gen-dtype", "bfloat16"] if which == "today-bf16" else []
        seconds = _run_job(tree if which == "baseline" else ROOT, out, args.limit, extra)
        record["runs"].append({"code": which, "seconds": seconds, "folder": str(out)})
        print(f"{which}: {seconds:.1f} s", file=sys.stderr, flush=True)
    record["load_after"] = os.getloadavg()[0]
    codes = list(dict.fromkeys(order))
    mean = {c: _mean([r["seconds"] for r in record["runs"] if r["code"] == c]) for c in codes}
    record["seconds"] = mean
    record["speedup"] = {c: mean["baseline"] / mean[c] for c in codes if c != "baseline"}
    first = {r["code"]: Path(r["folder"]) for r in reversed(record["runs"])}
    same = [_same_unsampled(first["baseline"], first[c]) for c in codes if c != "baseline"]
    record["unsampled_identical"] = all(ok for ok, _ in same)
    record["compared"] = same[0][1]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    rows = "".join(
        f"| {c} | {mean[c]:.1f} | {record['speedup'][c]:.2f}x |\n"
        if c != "baseline"
        else f"| baseline {args.baseline} | {mean[c]:.1f} | |\n"
        for c in codes
    )
    print(
        f"| code | seconds | speed-up |\n|---|---:|---:|\n{rows}\n"
        f"Q and Q+IF samples identical to the baseline's: {record['unsampled_identical']} "
        f"({record['compared']} compared); load {record['load_before']:.2f} before, "
        f"{record['load_after']:.2f} after"
    )
    return 0 if record["unsampled_identical"] else 1


def _worktree(rev: str, folder: Path) -> Path:
    if not (folder / "src" / "alignlab").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], cwd=ROOT, check=True)
    return folder


def _run_job(code: Path, out: Path, limit: int, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(code / "src"))
    env.setdefault("ALIGNLAB_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    cmd = [sys.executable, "-m", "alignlab.cli", "eval", "bbq", "--limit", str(limit), "--no-cache"]
    cmd += ["--out", str(out), "--no-progress", *extra]
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _same_unsampled(baseline: Path, today: Path) -> tuple[bool, int]:
    """Whether every Q and Q+IF sample is the same in both run folders (all fields but timings)."""

    def samples(folder: Path) -> dict:
        found = {}
        for line in (folder / "samples.jsonl").read_text().splitlines():
            sample = json.loads(line)
            if not sample.get("condition", "").endswith("cot"):
                found[(sample["id"], sample["condition"])] = sample
        return found

    a, b = samples(baseline), samples(today)
    return a == b and bool(a), len(a)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


if __name__ == "__main__":
    raise SystemExit(main())
