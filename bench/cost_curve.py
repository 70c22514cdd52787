"""The cost curve: `alignlab eval bbq` wall time and peak memory against the number of items, local and on Ray;
and what the HTTP path (`alignlab serve` + the openai: backend) adds per request.

Run:  .venv/bin/python bench/cost_curve.py [--items 1000,10000] [--executors local,ray] [--http 200]

Runs: each (items, executor) is one `alignlab eval bbq --conditions q --limit N --no-cache` in a subprocess
(the bundled smollm2-135m, fp32, batch 16; Ray: `--executor ray --workers 2`, one thread a worker). Peak
memory is the largest sum of resident memory over the run's whole process tree (driver, Ray's GCS and raylet,
its workers), sampled every 0.5 s. Items/s counts only the scoring (samples written), from the run's own
timing of its first and last sample, so model loading and Ray's start are reported apart.

HTTP: in this process, on the same loaded model, `--http N` condition-q BBQ prompts with the answer " (a)":
(1) one request at a time, the prompt's token logprobs directly (`backend.echo_logprobs`) and as one POST to
`alignlab serve` (/v1/completions, echo + logprobs), alternating: the difference is the HTTP path's overhead
per request (HTTP, JSON, the server's queue); (2) scoring the N items end to end, in-process in batches of 16
against the openai: backend with 16 requests in flight. (2) also pays for the scoring method: over HTTP each
answer is a separate echo of prompt + answer (3 forwards an item), in-process one forward scores all three.

Writes bench/out/cost_curve.json (merged with earlier runs of other sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "src"))


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def run_eval(items: int, executor: str, workdir: Path) -> dict:
    out = workdir / f"bbq-{items}-{executor}"
    command = [
        str(ROOT / ".venv" / "bin" / "alignlab"),
        "eval",
        "bbq",
        "--conditions",
        "q",
        "--limit",
        str(items),
        "--no-cache",
        "--no-progress",
        "--batch-size",
        "16",
        "--out",
        str(out),
    ]
    if executor == "ray":
        command += ["--executor", "ray", "--workers", "2"]
    peak, done = 0, threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    first_sample = None
    samples = out / "samples.jsonl"
    while proc.poll() is None:
        if first_sample is None and samples.exists() and samples.stat().st_size > 0:
            first_sample = time.perf_counter()
        time.sleep(0.2)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr.read()[-2000:]}")
    scoring = wall - (first_sample - start) if first_sample else wall
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = {part: value["value"] for part, value in metrics["conditions"]["q"]["accuracy"].items()}
    return {
        "items": items,
        "executor": executor,
        "wall_s": round(wall, 1),
        "startup_s": round(wall - scoring, 1),
        "items_per_s_scoring": round(items / scoring, 2),
        "peak_rss_gb": round(peak / 2**30, 2),
        "accuracy": accuracy,
    }


def http_overhead(n: int) -> dict:
    import httpx

    from alignlab.models import load_model
    from alignlab.models.base import EchoRequest, ScoreRequest
    from alignlab.models.openai import OpenAIBackend
    from alignlab.papers.self_correction import bbq
    from alignlab.prompts import Dialogue
    from alignlab.serve import serve

    data_dir = Path(os.environ.get("ALIGNLAB_DATA_DIR") or ROOT.parent / "shared" / "datasets").resolve()
    items, _, _ = bbq.load_items(data_dir, limit=n, seed=1234)
    requests = [
        ScoreRequest(
            prompt=Dialogue(
                (("human", bbq.question_text(item, "q")), ("assistant", bbq.ANSWER_PREFIX))
            ).render("raw"),
            continuations=bbq.CONTINUATIONS,
        )
        for item in items
    ]
    backend = load_model("smollm2-135m", batch_size=16)
    server = serve(backend)
    remote = OpenAIBackend(
        "openai:smollm2-135m@" + server.base_url,
        model="smollm2-135m",
        base_url=server.base_url,
        max_concurrency=16,
    )
    texts = [r.prompt + bbq.CONTINUATIONS[0] for r in requests]
    body = {"model": "smollm2-135m", "echo": True, "logprobs": 1, "max_tokens": 0}
    with httpx.Client(timeout=60) as client:

        def over_http(text: str) -> list:
            answer = client.post(server.base_url + "/completions", json={**body, "prompt": text})
            return answer.json()["choices"][0]["logprobs"]["token_logprobs"]

        over_http(texts[0])  # warm both paths
        backend.echo_logprobs([EchoRequest(texts[0])], 1)
        direct_s = http_s = 0.0
        diffs = []
        for text in texts:  # alternating, so background load falls on both
            t = time.perf_counter()
            want = backend.echo_logprobs([EchoRequest(text)], 1)[0].logprobs
            direct_s += time.perf_counter() - t
            t = time.perf_counter()
            got = over_http(text)
            http_s += time.perf_counter() - t
            diffs += [abs(a - b) for a, b in zip(got[1:], want[1:], strict=True)]
    t = time.perf_counter()
    for start in range(0, n, 16):
        backend.score(requests[start : start + 16])
    batched_direct = time.perf_counter() - t
    t = time.perf_counter()
    remote.score(requests)
    batched_http = time.perf_counter() - t
    server.close()
    return {
        "requests": n,
        "one_at_a_time": {
            "direct_ms": round(1000 * direct_s / n, 1),
            "http_ms": round(1000 * http_s / n, 1),
            "overhead_ms": round(1000 * (http_s - direct_s) / n, 1),
            "ratio": round(http_s / direct_s, 2),
        },
        "scoring_end_to_end": {
            "direct_batches_of_16_s": round(batched_direct, 1),
            "openai_backend_16_in_flight_s": round(batched_http, 1),
            "ratio": round(batched_http / batched_direct, 2),
        },
        "max_abs_logprob_diff": max(diffs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", default="1000,10000", help="comma-separated item counts")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--http", type=int, default=200, help="requests for the HTTP overhead (0: skip)")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "cost_curve.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    with tempfile.TemporaryDirectory() as tmp:
        for items in [int(x) for x in args.items.split(",") if x]:
            for executor in args.executors.split(","):
                row = run_eval(items, executor, Path(tmp))
                row["date"] = time.strftime("%Y-%m-%d")
                row["load_after"] = round(os.getloadavg()[0], 2)
                print(json.dumps(row), flush=True)
                result["runs"] = [
                    r for r in result["runs"] if (r["items"], r["executor"]) != (items, executor)
                ] + [row]
                args.out.write_text(json.dumps(result, indent=2))
    if args.http:
        result["http"] = http_overhead(args.http)
        print(json.dumps(result["http"]), flush=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
