"""Index and report speed on a folder of synthetic run folders (shaped like real BBQ runs).

Run:  .venv/bin/python bench/index_runs.py                 (1,000 runs, best of 3)
      .venv/bin/python bench/index_runs.py --runs 200 --repeats 1

Baseline, in the same run: walking the folder and json-loading every config.json and metrics.json, the
least any reader of the runs must do. Measured: find_runs (walk + read + validate), build_index (the long
pandas table), both together, the whole `alignlab index --format csv` command in a fresh process (Python
and pandas start-up included), and `alignlab report` (30 runs drawn in detail, the rest in the tables).
Results: bench/out/index_runs-N.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from alignlab.report import ReportOptions, build_index, find_runs, write_report
from alignlab.report.synthetic import write_runs

BENCH = Path(__file__).resolve().parent
TARGET_S = 10.0  # the issue: 1,000 run folders read in under 10 seconds


def json_floor(root: Path) -> int:
    count = 0
    for current, dirs, files in os.walk(root):
        if "config.json" in files:
            dirs.clear()
            for name in ("config.json", "metrics.json"):
                with open(Path(current) / name, encoding="utf-8") as handle:
                    json.load(handle)
            count += 1
    return count


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="alignlab-index-bench-") as tmp:
        root = Path(tmp) / "runs"
        write_runs(root, args.runs)
        json_floor(root)  # warm the page cache: every measure below reads from memory
        runs = find_runs(root).runs
        rows = len(build_index(runs))
        seconds = {
            "json_floor": best_of(args.repeats, lambda: json_floor(root)),
            "find_runs": best_of(args.repeats, lambda: find_runs(root)),
            "build_index": best_of(args.repeats, lambda: build_index(runs)),
            "find_and_index": best_of(args.repeats, lambda: build_index(find_runs(root).runs)),
            "cli_index_csv": best_of(
                args.repeats,
                lambda: subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "alignlab.cli",
                        "index",
                        str(root),
                        "--format",
                        "csv",
                        "-o",
                        str(Path(tmp) / "index.csv"),
                    ],
                    check=True,
                    capture_output=True,
                ),
            ),  # fmt: skip
            "report": best_of(1, lambda: write_report(root, Path(tmp) / "report.html", ReportOptions())),
        }
        report_mb = (Path(tmp) / "report.html").stat().st_size / 1e6
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/index_runs.py", *(argv or sys.argv[1:])]),
        "runs": args.runs,
        "index_rows": rows,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": load_before},
        "seconds": seconds,
        "ratios_over_json_floor": {k: v / seconds["json_floor"] for k, v in seconds.items()},
        "report_mb": report_mb,
        "target_s": TARGET_S,
        "met": seconds["cli_index_csv"] < TARGET_S,
    }
    out = args.out / f"index_runs-{args.runs}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"# index of {args.runs} synthetic runs ({rows:,} rows), best of {args.repeats}\n")
    print("| measure | seconds | x json floor |\n|---|---:|---:|")
    for key, value in seconds.items():
        print(f"| {key} | {value:.3f} | {value / seconds['json_floor']:.1f} |")
    print(f"\nreport: {report_mb:.1f} MB; target: `alignlab index` under {TARGET_S:.0f} s: {result['met']}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
