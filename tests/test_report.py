"""The index and the HTML report, on hand-built and synthetic run folders (no model, no browser)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from alignlab.cli import main
from alignlab.errors import AlignlabError
from alignlab.report import INDEX_COLUMNS, ReportOptions, build_index, find_runs, write_report
from alignlab.report.index import latest_per_model
from alignlab.report.sections import Section, register, section_for
from alignlab.report.synthetic import write_run, write_runs

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '</textarea><img src=x onerror="window.__pwned = 1">',
    '<a href="javascript:window.__pwned = 1">click me</a>',
    '"><svg onload="window.__pwned = 1">',
    "</pre></td></tr></tbody></table><script>window.__pwned = 1</script>",
]


def bbq_run(
    folder: Path, model: str, params: int | None, bias_ambig: float, started: str = "2026-11-01"
) -> Path:
    folder.mkdir(parents=True)
    estimate = {"value": bias_ambig, "ci": [bias_ambig - 0.1, bias_ambig + 0.1], "n": 4}
    condition = {
        "n": 8,
        "bias_score": {"ambig": estimate, "disambig": {"value": None, "ci": [None, None], "n": 0}},
        "accuracy": {"ambig": {"value": 0.5, "ci": [0.25, 0.75], "n": 4}},
        "n_no_target": 1,
        "by_category": {"Age": {"n": 8, "bias_score": {"ambig": {"value": 0.25, "ci": [0.0, 0.5], "n": 4}}}},
    }
    config = {
        "config_hash": f"hash-{model}",
        "identity": {
            "experiment": "bbq",
            "model": model,
            "model_fingerprint": f"fp-{model}",
            "conditions": ["q"],
        },
        "experiment": "bbq",
        "model": {"spec": model, "parameters": params},
        "started": started,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps({"experiment": "bbq", "conditions": {"q": condition}}))
    return folder


# --- index -------------------------------------------------------------------------------------------------
def test_index_has_one_row_per_number_with_its_interval(tmp_path):
    bbq_run(tmp_path / "a", "small", 100, 0.3)
    index = build_index(find_runs(tmp_path).runs)
    assert list(index.columns) == INDEX_COLUMNS
    row = index[(index["metric"] == "bias_score.ambig") & (index["group"] == "overall")].iloc[0]
    assert (row["run"], row["model"], row["parameters"], row["condition"]) == ("a", "small", 100, "q")
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"]) == pytest.approx((0.3, 0.2, 0.4, 4))
    assert row["config_hash"] == "hash-small" and row["model_fingerprint"] == "fp-small"
    # by_category becomes the group column; plain numbers are metrics without an interval
    age = index[(index["group"] == "Age") & (index["metric"] == "bias_score.ambig")]
    assert age["value"].tolist() == [0.25]
    plain = index[(index["metric"] == "n_no_target") & (index["group"] == "overall")].iloc[0]
    assert plain["value"] == 1 and pd.isna(plain["ci_low"]) and pd.isna(plain["n"])
    # an undefined estimate stays a row, with no value (not zero)
    undefined = index[index["metric"] == "bias_score.disambig"].iloc[0]
    assert pd.isna(undefined["value"])
    assert sorted(set(index["metric"])) == [
        "accuracy.ambig",
        "bias_score.ambig",
        "bias_score.disambig",
        "n",
        "n_no_target",
    ]


def test_incomplete_and_unreadable_runs_are_reported_not_fatal(tmp_path):
    bbq_run(tmp_path / "good", "m", 1, 0.1)
    (bbq_run(tmp_path / "running", "m", 1, 0.1) / "metrics.json").unlink()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{nope")
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    bbq_run(tmp_path / "nested" / "deeper" / "run", "n", 2, 0.2)
    runset = find_runs(tmp_path)
    assert [r.name for r in runset.runs] == ["good", "nested/deeper/run", "running"]
    assert [r.complete for r in runset.runs] == [True, True, False]
    assert len(runset.problems) == 1 and "broken/config.json:1: not valid JSON" in runset.problems[0]
    assert set(build_index(runset.runs)["run"]) == {"good", "nested/deeper/run"}


def test_a_run_folder_given_directly_is_read(tmp_path):
    bbq_run(tmp_path / "only", "m", 1, 0.1)
    assert [r.name for r in find_runs(tmp_path / "only").runs] == ["only"]


def test_latest_run_per_model_wins(tmp_path):
    bbq_run(tmp_path / "old", "m", 1, 0.1, started="2026-01-01")
    bbq_run(tmp_path / "new", "m", 1, 0.9, started="2026-02-01")
    latest = latest_per_model(build_index(find_runs(tmp_path).runs))
    assert set(latest["run"]) == {"new"}


def test_unknown_experiments_get_the_generic_section_and_registered_ones_their_own(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"identity": {}, "experiment": "toy", "model": {"spec": "m"}})
    )
    (folder / "metrics.json").write_text(
        json.dumps({"score": 0.5, "deep": {"auc": {"value": 0.7, "ci": [0.6, 0.8]}}})
    )
    index = build_index(find_runs(tmp_path).runs)
    assert sorted(zip(index["metric"], index["value"], strict=True)) == [("deep.auc", 0.7), ("score", 0.5)]

    class Toy(Section):
        experiment = "toy"

        def metric_rows(self, metrics):
            yield from super().metric_rows({"conditions": {"only": {"score": metrics["score"] * 2}}})

    try:
        register(Toy())
        index = build_index(find_runs(tmp_path).runs)
        assert list(zip(index["condition"], index["metric"], index["value"], strict=True)) == [
            ("only", "score", 1.0)
        ]
    finally:
        from alignlab import registry

        registry._SECTIONS.pop("toy")
    assert type(section_for("bbq")).__name__ == "BBQSection"


def test_index_cli_exports_csv_json_and_parquet(tmp_path, capsys):
    write_runs(tmp_path / "runs", 3)
    assert main(["index", str(tmp_path / "runs"), "--format", "csv", "-o", str(tmp_path / "i.csv")]) == 0
    csv = pd.read_csv(tmp_path / "i.csv")
    assert list(csv.columns) == INDEX_COLUMNS and csv["run"].nunique() == 3
    assert main(["index", str(tmp_path / "runs"), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(csv) and records[0].keys() == set(INDEX_COLUMNS)
    pytest.importorskip("pyarrow")
    assert (
        main(["index", str(tmp_path / "runs"), "--format", "parquet", "-o", str(tmp_path / "i.parquet")]) == 0
    )
    parquet = pd.read_parquet(tmp_path / "i.parquet")
    assert parquet["value"].tolist() == pytest.approx(csv["value"].tolist())


def test_index_cli_bad_root_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse checks the folder before anything runs
        main(["index", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "nope" in err and "Traceback" not in err


# --- report ------------------------------------------------------------------------------------------------
@pytest.fixture
def report_runs(tmp_path):
    root = tmp_path / "runs"
    samples = [
        {
            "id": f"Age-{i}",
            "condition": "q",
            "category": text,
            "prediction": 0,
            "probs": [0.5, 0.3, 0.2],
            "prompt": text,
            "reasoning": text,
        }
        for i, text in enumerate(HOSTILE)
    ]
    samples.append({"id": "huge", "condition": "q", "prompt": "x" * 300_000, "reasoning": None})
    write_run(root / "small", "<b>tiny</b>", 135_000_000, 1, samples=samples)
    write_run(root / "large", "big", 1_700_000_000, 2)
    return root


def test_report_escapes_every_hostile_string(report_runs, tmp_path):
    out = tmp_path / "report.html"
    write_report(report_runs, out)
    page = out.read_text(encoding="utf-8")
    assert page.count("<script") == 1  # ours, at the end
    assert "onerror=" not in page.replace("onerror=&quot;", "")
    assert 'href="javascript' not in page and "<svg" not in page and "<b>tiny" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "&lt;b&gt;tiny&lt;/b&gt;" in page
    # a 300,000-character field is cut in the page (the run folder keeps it whole)
    assert "x" * 300_000 not in page and "more characters]" in page


def test_report_content_security_policy_allows_only_its_own_script_and_style(report_runs, tmp_path):
    out = tmp_path / "report.html"
    write_report(report_runs, out)
    page = out.read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*)</style>", page, re.S).group(1)

    def digest(text):
        return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src '{digest(script)}'" in policy and f"style-src '{digest(style)}'" in policy
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loads from a network


def test_report_shows_sections_figures_and_provenance(report_runs, tmp_path):
    out = tmp_path / "report.html"
    write_report(report_runs, out)
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    # one bias-by-category figure per run and four scaling plots (two model sizes)
    assert len(images) == 2 + 4
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert "against parameter count" in page
    for anchor in (
        'id="overview"',
        'id="exp-0"',
        'id="index"',
        'id="provenance"',
        'id="prov-0"',
        'id="prov-1"',
    ):
        assert anchor in page
    assert "synthetic:big" in page and "bbq/data/Age.jsonl" in page  # fingerprint and data files


def test_one_model_size_draws_no_scaling_plot(tmp_path):
    write_run(tmp_path / "runs" / "a", "m", 10, 1)
    write_run(tmp_path / "runs" / "b", "m", 10, 2)
    write_report(tmp_path / "runs", tmp_path / "r.html")
    assert "against parameter count" not in (tmp_path / "r.html").read_text()


def test_detail_limits_keep_big_folders_small(tmp_path):
    write_runs(tmp_path / "runs", 12)
    write_report(tmp_path / "runs", tmp_path / "r.html", ReportOptions(detail_runs=2))
    page = (tmp_path / "r.html").read_text()
    assert len(re.findall(r"<img ", page)) == 2 + 4
    assert "10 older runs are drawn only in the tables" in page


def test_report_cli_and_unwritable_output(report_runs, tmp_path, capsys):
    assert main(["report", str(report_runs), "-o", str(tmp_path / "r.html")]) == 0
    assert "report of 2 runs written" in capsys.readouterr().out
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_:  # a path under a file is refused before the report is built
        main(["report", str(report_runs), "-o", str(blocker / "r.html")])
    assert exit_.value.code == 2
    assert "-o" in capsys.readouterr().err
    with pytest.raises(AlignlabError):
        write_report(tmp_path / "missing", tmp_path / "x.html")
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_a_malformed_sample_line_is_named_in_the_page_and_the_rest_still_renders(tmp_path):
    folder = write_run(tmp_path / "runs" / "bad", "m", 10, 1, samples=[{"id": "ok-1", "condition": "q"}])
    with open(folder / "samples.jsonl", "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    write_run(tmp_path / "runs" / "good", "m2", 20, 2, samples=[{"id": "fine-1", "condition": "q"}])
    write_report(tmp_path / "runs", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "bad/samples.jsonl:2: not valid JSON" in page
    assert "fine-1" in page and 'id="provenance"' in page
