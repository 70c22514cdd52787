"""Scoring through APIs without prompt logprobs (issue 28): what each path costs in requests and time, how far
it is from the exact path, and how the sampling path's intervals shrink with N.

One bundled model, loaded once, is (a) scored in process (prompt logprobs: the exact path), (b) served by
`alignlab serve --api chat-only` and read through the chat endpoint's top-20 logprobs, (c) served with
`--api no-logprobs` and read from N sampled answers. Every run is chat format, no response cache.

    .venv/bin/python bench/api_scoring.py                      # the table of experiments, then BBQ over N
    .venv/bin/python bench/api_scoring.py --only sampling --ns 10,40,160 --bbq-items 20

Writes bench/out/api_scoring.json and prints the tables bench/RESULTS.md keeps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from alignlab.engine.sampling_error import estimates
from alignlab.evaluate import RunOptions, run
from alignlab.experiments import DataSource
from alignlab.models import load_model
from alignlab.registry import experiment
from alignlab.serve import serve

DATA = os.environ.get("ALIGNLAB_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
EXPERIMENTS = {  # settings, --limit
    "bbq": ({"conditions": ("q",)}, 20),
    "winogender": ({"conditions": ("q",)}, 20),
    "law-school": ({"conditions": ("q",)}, 10),
    "discrim-eval": ({"conditions": ("q",)}, 3),
    "calibration": ({"conditions": ("lettered",), "tasks": ("arithmetic",), "shots": 1}, 20),
    "p-true": ({"conditions": ("single",), "tasks": ("arithmetic",), "samples": 2, "shots": 1}, 5),
    "mwe": ({"suites": ("persona",), "datasets": ("agreeableness",), "limit_per_dataset": 20}, None),
}


def _run(name: str, values: dict, limit, out: Path, model: str, backend=None, **backend_options):
    exp = experiment(name)
    options = RunOptions(
        model=model,
        out=out,
        limit=limit,
        data=DataSource(data_dir=DATA),
        use_cache=False,
        progress=False,
        bootstrap=1000,
        backend=backend,
        backend_options=backend_options,
    )
    start = time.perf_counter()
    result = run(exp, exp.settings(prompt_format="chat", **values), options)
    return result, time.perf_counter() - start, out


def _logprob_lists(folder: Path) -> dict:
    """(id, condition) -> every list of numbers under a key naming log-probabilities."""
    found: dict = {}

    def walk(node, path, into):
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}", into)
        elif isinstance(node, list) and node and all(isinstance(v, int | float) for v in node):
            if "logprob" in path:
                into.append([float(v) for v in node])
        elif isinstance(node, list):
            for child in node:
                walk(child, path, into)

    for line in (folder / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        into: list = []
        walk(sample, "", into)
        found[(str(sample["id"]), sample["condition"])] = (into, sample.get("scoring") or {})
    return found


def _estimate_gap(exact: dict, other: dict) -> float:
    theirs = dict(estimates(other["conditions"]))
    gaps = [
        abs(theirs[path]["value"] - node["value"])
        for path, node in estimates(exact["conditions"])
        if isinstance(node.get("value"), int | float) and not math.isnan(node["value"])
    ]
    return max(gaps) if gaps else float("nan")


def experiments_table(backend, work: Path) -> list[dict]:
    server = serve(backend, api="chat-only", model_name="smollm2-135m")
    rows = []
    try:
        for name, (values, limit) in EXPERIMENTS.items():
            exact, t_exact, d_exact = _run(
                name, values, limit, work / f"{name}-exact", "smollm2-135m", backend
            )
            top, t_top, d_top = _run(
                name, values, limit, work / f"{name}-top", f"openai:smollm2-135m@{server.base_url}"
            )
            mine, theirs = _logprob_lists(d_exact), _logprob_lists(d_top)
            gap = 0.0
            for key, (lists, _) in mine.items():
                other, note = theirs[key]
                if note.get("outside"):
                    continue  # a bound, not a value
                for a, b in zip(lists, other, strict=True):
                    gap = max(gap, max(abs(x - y) for x, y in zip(a, b, strict=True)))
            scoring = top.metrics["scoring"]
            coverage = scoring["coverage"]
            rows.append(
                {
                    "experiment": name,
                    "samples": scoring["samples_scored"],
                    "requests": scoring["requests"],
                    "requests_per_sample": scoring["requests"] / scoring["samples_scored"],
                    "max_abs_logprob_gap": gap,
                    "max_abs_estimate_gap": _estimate_gap(exact.metrics, top.metrics),
                    "answers": coverage["answers"],
                    "answers_outside_top_k": coverage["answers_outside_top_k"],
                    "top_k_mass_min": coverage["top_k_mass_min"],
                    "top_k_mass_mean": coverage["top_k_mass_mean"],
                    "seconds_exact": t_exact,
                    "seconds_top": t_top,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.close()
    return rows


def sampling_table(backend, work: Path, ns: list[int], items: int) -> list[dict]:
    values = {"conditions": ("q",)}
    exact, t_exact, _ = _run("bbq", values, items, work / "bbq-exact-n", "smollm2-135m", backend)
    truth = dict(estimates(exact.metrics["conditions"]))
    server = serve(backend, api="no-logprobs", model_name="smollm2-135m")
    rows = []
    try:
        for n in ns:
            got, seconds, _ = _run(
                "bbq",
                values,
                items,
                work / f"bbq-sampled-{n}",
                f"openai:smollm2-135m@{server.base_url}",
                answer_samples=n,
            )
            widths, item_widths, sds, covered, checked = [], [], [], 0, 0
            for path, node in estimates(got.metrics["conditions"]):
                low, high = node.get("ci") or (None, None)
                value = truth[path]["value"]
                if low is None or not isinstance(value, int | float) or math.isnan(value):
                    continue
                checked += 1
                covered += low - 1e-9 <= value <= high + 1e-9
                widths.append(high - low)
                if "ci_items" in node:
                    item_widths.append(node["ci_items"][1] - node["ci_items"][0])
                if "sampling_sd" in node:
                    sds.append(node["sampling_sd"])
            scoring = got.metrics["scoring"]
            rows.append(
                {
                    "n": n,
                    "items": items,
                    "requests": scoring["requests"],
                    "answers_sampled": scoring["answers_sampled"],
                    "answers_matching_none": scoring["answers_matching_none"],
                    "intervals": checked,
                    "intervals_covering_exact": covered,
                    "mean_ci_width": sum(widths) / len(widths),
                    "mean_ci_items_width": sum(item_widths) / len(item_widths) if item_widths else None,
                    "mean_sampling_sd": sum(sds) / len(sds) if sds else None,
                    "max_abs_estimate_gap": _estimate_gap(exact.metrics, got.metrics),
                    "seconds": seconds,
                    "seconds_exact": t_exact,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("experiments", "sampling"))
    parser.add_argument("--ns", default="10,40,160", help="answer samples per score, comma-separated")
    parser.add_argument("--bbq-items", type=int, default=20)
    args = parser.parse_args()
    backend = load_model("smollm2-135m")
    out: dict = {"load_1min_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "experiments"):
            out["experiments"] = experiments_table(backend, work)
        if args.only in (None, "sampling"):
            ns = [int(n) for n in args.ns.split(",")]
            out["sampling"] = sampling_table(backend, work, ns, args.bbq_items)
    out["load_1min_after"] = os.getloadavg()[0]
    target = Path(__file__).parent / "out" / "api_scoring.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(out, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
