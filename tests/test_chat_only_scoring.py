"""The measurement papers' experiments through a chat-only API (top logprobs, no prompt logprobs) equal the
prompt-logprob path on the bundled model, and say their coverage in metrics.json (issue 28).

One model is loaded and served by `alignlab serve --api chat-only` in this process; each experiment runs on
it directly (prompt logprobs: exact) and through the server (`openai:` reading the chat endpoint's top-20
logprobs a token at a time), a few items each, chat format. Tolerance: 1e-3 on every log-probability and on
every estimate; the two paths differ by float noise of batches (about 2e-5 measured on BBQ).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from alignlab.engine.sampling_error import estimates
from alignlab.evaluate import RunOptions, run
from alignlab.experiments import DataSource
from alignlab.registry import experiment

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TOLERANCE = 1e-3

CASES = {
    "bbq": ({"conditions": ("q",)}, 2),
    "winogender": ({"conditions": ("q",)}, 3),
    "law-school": ({"conditions": ("q",)}, 3),
    "discrim-eval": ({"conditions": ("q",)}, 1),
    "calibration": ({"conditions": ("lettered",), "tasks": ("arithmetic",), "shots": 1}, 3),
    "p-true": ({"conditions": ("single",), "tasks": ("arithmetic",), "samples": 2, "shots": 1}, 1),
    "mwe": ({"suites": ("persona",), "datasets": ("agreeableness",), "limit_per_dataset": 2}, None),
}


@pytest.fixture(scope="module")
def model_and_server():
    from alignlab.models import load_model
    from alignlab.serve import serve

    backend = load_model("smollm2-135m")
    server = serve(backend, api="chat-only", model_name="smollm2-135m")
    yield backend, server.base_url
    server.close()


def _run(name, values, limit, out: Path, model: str, backend=None):
    exp = experiment(name)
    settings = exp.settings(prompt_format="chat", **values)
    options = RunOptions(
        model=model,
        out=out,
        limit=limit,
        data=DataSource(data_dir=str(DATA)),
        use_cache=False,
        progress=False,
        bootstrap=50,
        backend=backend,
    )
    return run(exp, settings, options)


def _walk(node, path: str, found: list) -> None:
    """Every list of numbers under a key named like a log-probability, with its path."""
    if isinstance(node, dict):
        for key, child in node.items():
            _walk(child, f"{path}.{key}", found)
    elif isinstance(node, list) and node and all(isinstance(v, int | float) for v in node):
        if "logprob" in path:
            found.append((path, [float(v) for v in node]))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _walk(child, f"{path}[{i}]", found)


def _logprobs(folder: Path) -> dict:
    """(id, condition) -> every list of log-probabilities in the sample."""
    out = {}
    for line in (folder / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        found: list = []
        _walk(sample, "", found)
        out[(str(sample["id"]), sample["condition"])] = found
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_an_experiment_through_a_chat_only_api_equals_the_prompt_logprob_path(
    name, model_and_server, tmp_path
):
    backend, url = model_and_server
    values, limit = CASES[name]
    exact = _run(name, values, limit, tmp_path / "exact", "smollm2-135m", backend=backend)
    read = _run(name, values, limit, tmp_path / "top", f"openai:smollm2-135m@{url}")

    config = json.loads((tmp_path / "top" / "config.json").read_text())
    assert config["model"]["scoring"] == {"path": "top-logprobs", "top_k": 20, "continues_prefill": True}
    scoring = read.metrics["scoring"]
    assert scoring["path"] == "top-logprobs" and scoring["requests"] > 0
    coverage = scoring["coverage"]
    assert coverage["answers"] > 0 and 0 < coverage["top_k_mass_min"] <= 1
    assert "scoring" not in exact.metrics  # prompt logprobs: nothing read from a top-k

    mine, theirs = _logprobs(tmp_path / "exact"), _logprobs(tmp_path / "top")
    assert mine.keys() == theirs.keys() and any(mine.values())
    notes = {
        (str(s["id"]), s["condition"]): s["scoring"]
        for s in map(json.loads, (tmp_path / "top" / "samples.jsonl").read_text().splitlines())
    }
    for key, fields in mine.items():
        if notes[key]["outside"]:
            continue  # an answer outside the top-20 is a bound, not a value
        for (path, values_exact), (other, values_read) in zip(fields, theirs[key], strict=True):
            assert path == other
            assert values_read == pytest.approx(values_exact, abs=TOLERANCE), (key, path)

    if coverage["answers_outside_top_k"] == 0:
        exact_estimates = dict(estimates(exact.metrics["conditions"]))
        read_estimates = dict(estimates(read.metrics["conditions"]))
        assert exact_estimates.keys() == read_estimates.keys() and exact_estimates
        for path, node in exact_estimates.items():
            value = read_estimates[path]["value"]
            if isinstance(node["value"], float) and math.isnan(node["value"]):
                continue
            assert value == pytest.approx(node["value"], abs=TOLERANCE), path


@pytest.mark.parametrize("name", ["bbq", "winogender"])
def test_through_an_api_without_logprobs_each_interval_covers_the_exact_value(
    name, model_and_server, tmp_path
):
    """Answers counted in 40 samples each (seeded): every interval, widened by the sampling error, holds the
    prompt-logprob path's value."""
    from alignlab.serve import serve

    backend, _ = model_and_server
    values, limit = CASES[name]
    exact = _run(name, values, limit, tmp_path / "exact", "smollm2-135m", backend=backend)
    server = serve(backend, api="no-logprobs", model_name="smollm2-135m")
    try:
        exp = experiment(name)
        options = RunOptions(
            model=f"openai:smollm2-135m@{server.base_url}",
            out=tmp_path / "sampled",
            limit=limit,
            data=DataSource(data_dir=str(DATA)),
            use_cache=False,
            progress=False,
            bootstrap=200,
            backend_options={"answer_samples": 40},
        )
        sampled = run(exp, exp.settings(prompt_format="chat", **values), options)
    finally:
        server.close()
    scoring = sampled.metrics["scoring"]
    assert scoring["path"] == "sampling" and scoring["samples"] == 40
    assert scoring["answers_sampled"] == 40 * scoring["samples_scored"]
    assert scoring["requests"] == scoring["samples_scored"]  # 40 answers in one request each (n=40)
    assert scoring["sampling_error"]["intervals_widened"] > 0
    assert scoring["sampling_error"]["samples_replayed"] == scoring["samples_scored"]
    exact_estimates = dict(estimates(exact.metrics["conditions"]))
    checked = 0
    for path, node in estimates(sampled.metrics["conditions"]):
        truth = exact_estimates[path]["value"]
        low, high = node["ci"]
        if low is None or truth is None or (isinstance(truth, float) and math.isnan(truth)):
            continue
        assert low - 1e-9 <= truth <= high + 1e-9, (path, truth, node)
        assert "sampling_sd" in node
        if "ci_items" in node:
            assert high - low >= node["ci_items"][1] - node["ci_items"][0] - 1e-12
        checked += 1
    assert checked >= 2
