"""One self-contained HTML file from a set of runs: no network, no CDN; figures inline as PNG data URIs.

Everything that came from a model, a dataset or a run folder is escaped here, in one place (`_esc`), and
the page's Content-Security-Policy allows only this file's own script and style (by hash) and data: images,
so text that slipped past escaping still could not run or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import pandas as pd

from alignlab.errors import AlignlabError
from alignlab.report.figures import left_out_note, plot_scaling
from alignlab.report.figures import parameter_label as _parameter_label
from alignlab.report.index import latest_per_model
from alignlab.report.runs import Run, RunSet
from alignlab.report.sections import Section, section_for
from alignlab.version import __version__

MAX_CELL = 300  # characters of a sample field shown in a table cell
MAX_TEXT = 20_000  # characters of a sample field shown in its detail view (the rest: samples.jsonl)
MAX_TABLE_ROWS = 5_000  # rows of one metrics table (the whole index: `alignlab index --format csv`)


@dataclass
class ReportOptions:
    samples_per_run: int = 200
    detail_runs: int = 30  # runs with their own figures and sample drill-down (newest first)
    title: str = "alignlab report"
    axis: str = "parameters"  # the scaling figures' x axis: parameters, or an axis the model specs declare


class Html(str):
    """Markup this module built itself from escaped parts: the only text inserted unescaped."""


def _esc(value, limit: int | None = None) -> str:
    text = "" if value is None else value if isinstance(value, str) else _plain(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit:,} more characters]"
    return html.escape(text, quote=True)


def _plain(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _cell(value, *, sort=None, num: bool = False, limit: int | None = MAX_CELL) -> Html:
    attrs = ' class="num"' if num else ""
    if sort is not None:
        # full precision for numbers (the shown text is rounded); Python floats, not numpy reprs
        attrs += f' data-sort="{_esc(sort if isinstance(sort, str) else repr(float(sort)))}"'
    content = value if isinstance(value, Html) else _esc(value, limit)
    return Html(f"<td{attrs}>{content}</td>")


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[Html]], note: str = "") -> Html:
    body = []
    for row in rows:
        body.append("<tr>" + "".join(row) + "</tr>")
    head = "".join(f'<th scope="col">{_esc(h)}</th>' for h in headers)
    return Html(
        f'<div class="table-tools"><input type="search" class="table-filter" data-table="{table_id}" '
        f'placeholder="filter rows (words, any column)" aria-label="filter {table_id}">'
        f'<span class="muted" data-count-for="{table_id}"></span>'
        f'<span class="muted">{_esc(note)}</span></div>'
        f'<div class="table-wrap"><table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _estimate(value: float, low: float, high: float) -> Html:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Html("n/a")
    if pd.isna(low) or pd.isna(high):
        # counts (n, n_biased, ...) are whole numbers: no decimals
        return Html(_esc(f"{int(value)}" if float(value).is_integer() else f"{value:.3f}"))
    text = f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return Html(_esc(text))


def _figure_html(png: bytes, title: str, caption: str) -> Html:
    data = base64.b64encode(png).decode("ascii")
    return Html(
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(title)}">'
        f"<figcaption><b>{_esc(title)}</b>{' · ' + _esc(caption) if caption else ''}</figcaption></figure>"
    )


# --- the page ---------------------------------------------------------------------------------------------
def render_report(runset: RunSet, index: pd.DataFrame, root: str, options: ReportOptions) -> str:
    runs = runset.runs
    prov_id = {run.name: f"prov-{i}" for i, run in enumerate(runs)}
    experiments = sorted({run.experiment for run in runs})
    body = []
    for i, experiment in enumerate(experiments):
        chosen = [r for r in runs if r.experiment == experiment]
        body.append(_experiment(experiment, f"exp-{i}", chosen, index, prov_id, options, runset.problems))
    parts = [
        _header(runset, index, root, options),  # after the sections: it lists what they could not read
        _nav(experiments),
        "<main>",
        _overview(runs, index, prov_id),
        *body,
    ]
    parts.append(_index_section(index, prov_id))
    parts.append(_provenance(runs, prov_id))
    parts.append("</main>")
    return _page(options.title, "".join(parts))


def _page(title: str, body: str) -> str:
    css = resources.files("alignlab.report").joinpath("static/report.css").read_text(encoding="utf-8")
    js = resources.files("alignlab.report").joinpath("static/report.js").read_text(encoding="utf-8")
    policy = (
        "default-src 'none'; img-src data:; "
        f"style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_esc(title)}</title><style>{css}</style></head>"
        f"<body>{body}<script>{js}</script></body></html>\n"
    )


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _header(runset: RunSet, index: pd.DataFrame, root: str, options: ReportOptions) -> Html:
    runs = runset.runs
    complete = sum(r.complete for r in runs)
    models = len({r.model for r in runs})
    cards = [
        ("runs", len(runs)),
        ("complete", complete),
        ("models", models),
        ("experiments", len({r.experiment for r in runs})),
        ("numbers in the index", len(index)),
    ]
    problems = ""
    if runset.problems:
        items = "".join(f"<li>{_esc(p)}</li>" for p in runset.problems)
        problems = f'<div class="problems"><b>What could not be read</b><ul>{items}</ul></div>'
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Html(
        f"<header><h1>{_esc(options.title)}</h1>"
        f"<p>{_esc(root)} · generated {_esc(now)} by alignlab {_esc(__version__)}</p>"
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_esc(v)}</b>{_esc(k)}</div>' for k, v in cards)
        + f"</div>{problems}</header>"
    )


def _nav(experiments: list[str]) -> Html:
    links = ['<a href="#overview">Overview</a>']
    links += [
        f'<a href="#exp-{i}">{_esc(section_for(e).title.split(":")[0])}</a>'
        for i, e in enumerate(experiments)
    ]
    links += ['<a href="#index">Index</a>', '<a href="#provenance">Provenance</a>']
    return Html(f"<nav>{''.join(links)}</nav>")


def _run_link(run_name: str, prov_id: dict[str, str]) -> Html:
    return Html(f'<td><a href="#{prov_id[run_name]}">{_esc(run_name, MAX_CELL)}</a></td>')


def _overview(runs: list[Run], index: pd.DataFrame, prov_id: dict[str, str]) -> Html:
    rows = []
    for run in runs:
        identity = run.config.get("identity", {})
        conditions = identity.get("conditions")
        rows.append(
            [
                _run_link(run.name, prov_id),
                _cell(run.experiment),
                _cell(run.model),
                _cell(_parameter_label(run.parameters), sort=run.parameters or "", num=True),
                _cell(", ".join(map(str, conditions)) if isinstance(conditions, list) else ""),
                _cell(run.config.get("n_items", ""), num=True),
                _cell("complete" if run.complete else "incomplete"),
                _cell(run.date),
                _cell(run.config_hash),
            ]
        )
    runs_table = _table(
        "runs",
        [
            "run",
            "experiment",
            "model",
            "parameters",
            "conditions",
            "items",
            "status",
            "started",
            "config hash",
        ],
        rows,
    )
    parts = [
        index[
            (index["experiment"] == experiment)
            & (index["group"] == "overall")
            & index["metric"].isin(section_for(experiment).headline)
        ]
        for experiment in sorted(set(index["experiment"]))
    ]
    headline = _metric_table("headline", pd.concat(parts) if parts else index, prov_id, with_group=False)
    return Html(
        '<section id="overview"><h2>Overview</h2><h3>Runs</h3>'
        '<p class="muted">Each run links to its provenance: config hash, model fingerprint, data checksums, '
        "versions and command.</p>"
        f"{runs_table}<h3>Headline metrics</h3>{headline}</section>"
    )


def _metric_table(table_id: str, rows: pd.DataFrame, prov_id: dict[str, str], with_group: bool) -> Html:
    """Index rows as a table (the first MAX_TABLE_ROWS of them), one column per field of `_metric_row`."""
    headers = ["run", "experiment", "model", "parameters", "condition"]
    headers += ["group"] * with_group + ["metric", "value [95% CI]", "n"]
    body = [
        _metric_row(rec, prov_id, with_group) for rec in rows.head(MAX_TABLE_ROWS).itertuples(index=False)
    ]
    return _table(table_id, headers, body, note=_cap_note(len(rows)))


def _metric_row(rec, prov_id: dict[str, str], with_group: bool) -> list[Html]:
    cells = [
        _run_link(rec.run, prov_id),
        _cell(rec.experiment),
        _cell(rec.model),
        _cell(
            _parameter_label(rec.parameters),
            sort="" if pd.isna(rec.parameters) else int(rec.parameters),
            num=True,
        ),
        _cell(rec.condition),
    ]
    if with_group:
        cells.append(_cell(rec.group))
    cells += [
        _cell(rec.metric),
        _cell(
            _estimate(rec.value, rec.ci_low, rec.ci_high),
            sort="" if pd.isna(rec.value) else rec.value,
            num=True,
        ),
        _cell("" if pd.isna(rec.n) else int(rec.n), num=True),
    ]
    return cells


def _cap_note(total: int) -> str:
    if total <= MAX_TABLE_ROWS:
        return ""
    return f"first {MAX_TABLE_ROWS:,} of {total:,} rows; all of them: alignlab index RUNS --format csv"


def _experiment(
    experiment: str,
    anchor: str,
    runs: list[Run],
    index: pd.DataFrame,
    prov_id: dict[str, str],
    options: ReportOptions,
    problems: list[str],
) -> Html:
    section = section_for(experiment)
    part = index[index["experiment"] == experiment] if not index.empty else index
    out = [
        f'<section id="{_esc(anchor)}" data-experiment="{_esc(experiment)}"><h2>{_esc(section.title)}</h2>'
    ]
    if section.description:
        out.append(f"<p>{_esc(section.description)}</p>")
    out.append(_scaling(part, section, runs, options.axis))
    out.append(
        _guarded(section, "its tables", problems, _across, section, [r for r in runs if r.complete], anchor)
    )
    detailed = _newest([r for r in runs if r.complete], options.detail_runs)
    figures = []
    for run in detailed:
        drawn = _guarded(section, f"the figures of {run.name}", problems, section.run_figures, run)
        if isinstance(drawn, str):  # the warning in place of the figures
            figures.append(drawn)
        else:
            figures += [_figure_html(f.png, f.title, f.caption) for f in drawn]
    if figures:
        skipped = sum(r.complete for r in runs) - len(detailed)
        note = f'<p class="muted">{skipped} older runs are drawn only in the tables (--detail-runs).</p>'
        out.append("<h3>Per run</h3>" + (note if skipped else "") + "".join(figures))
    out.append("<h3>All metrics</h3>")
    out.append(_metric_table(f"metrics-{anchor}", part, prov_id, with_group=True))
    out.append(_samples(runs, section, options, anchor, problems))
    out.append("</section>")
    return Html("".join(out))


def _guarded(section: Section, what: str, problems: list[str], draw, *args):
    """`draw(*args)`, or, when a section cannot read its runs' files (a torn line, a hand-edited file), a
    warning in its place and in the report's list of problems: every other part of the report still renders."""
    try:
        return draw(*args)
    except Exception as exc:  # a Section is a plug-in: whatever it raises must not sink the report
        message = f"{section.title.split(':')[0]}: could not draw {what} ({type(exc).__name__}: {exc})"
        problems.append(message)  # `alignlab report` prints each as one warning line
        return Html(f'<p class="problems">warning: {_esc(message)}</p>')


def _across(section: Section, runs: list[Run], anchor: str) -> Html:
    """What the section computes from all its runs together: figures, and tables escaped cell by cell."""
    from alignlab.report.sections import Table

    parts = []
    for k, item in enumerate(section.across_runs(runs) if runs else []):
        if isinstance(item, Table):
            rows = [[_cell(v, num=isinstance(v, int | float)) for v in row] for row in item.rows]
            parts.append(f"<h4>{_esc(item.title)}</h4>")
            if item.caption:
                parts.append(f'<p class="muted">{_esc(item.caption)}</p>')
            parts.append(_table(f"across-{anchor}-{k}", item.headers, rows))
        else:
            parts.append(_figure_html(item.png, item.title, item.caption))
    return Html("".join(parts))


def _scaling(part: pd.DataFrame, section: Section, runs: list[Run], axis: str = "parameters") -> Html:
    """Metric against parameter count (or a declared `axis`), one line per condition, where runs span two
    or more values of it."""
    if part.empty:
        return Html("")
    overall = part[part["group"] == "overall"]
    if axis != "parameters":
        overall = overall.assign(**{axis: overall["run"].map({r.name: r.axes.get(axis) for r in runs})})
    latest = latest_per_model(overall[overall[axis].notna()])
    if latest[axis].nunique() < 2:
        return Html("")
    figures = []
    what = "model size" if axis == "parameters" else axis
    for metric in section.headline:
        rows = latest[latest["metric"] == metric]
        if rows[axis].nunique() >= 2:
            # a run that has the metric but no value on the axis cannot be placed: named, never dropped silently
            unplaced = overall[(overall["metric"] == metric) & overall[axis].isna()]
            left_out = sorted(set(unplaced["run"]))
            title = f"{section.title.split(':')[0]}: {metric} by {what}"
            png = plot_scaling(rows, metric, title, left_out, axis)
            caption = "newest run per model" + (f"; {left_out_note(left_out, axis)}" if left_out else "")
            against = "parameter count" if axis == "parameters" else axis
            figures.append(_figure_html(png, f"{metric} against {against}", caption))
    heading = "Across model sizes" if axis == "parameters" else f"Across {axis}"
    return Html(f"<h3>{_esc(heading)}</h3>" + "".join(figures)) if figures else Html("")


def _samples(
    runs: list[Run], section: Section, options: ReportOptions, anchor: str, problems: list[str]
) -> Html:
    if options.samples_per_run <= 0:
        return Html("")
    with_samples = [r for r in runs if (r.path / "samples.jsonl").is_file()]
    chosen = _newest(with_samples, options.detail_runs)
    skipped = len(with_samples) - len(chosen)
    out = ["<h3>Samples</h3>"]
    if skipped:
        out.append(f'<p class="muted">{skipped} older runs have no drill-down here (--detail-runs).</p>')
    headers = [title for _, title in section.sample_columns] + ["prompt, reasoning, answer"]
    for k, run in enumerate(chosen):
        total = _count_lines(run.path / "samples.jsonl")
        rows = []
        try:
            samples = list(run.samples(limit=options.samples_per_run))
        except AlignlabError as exc:
            problems.append(
                f"{section.title.split(':')[0]}: could not show the samples of {run.name} ({exc})"
            )
            out.append(f'<p class="problems">warning: {_esc(exc)}</p>')
            continue
        for sample in samples:
            if not isinstance(sample, dict):
                continue
            values = [section.sample_value(sample, key) for key, _ in section.sample_columns]
            cells = [_cell(v, num=isinstance(v, int | float) and not isinstance(v, bool)) for v in values]
            cells.append(Html(f'<td class="sample-detail">{_detail(sample, section)}</td>'))
            rows.append(cells)
        shown = f"{len(rows):,} of {total:,} samples" + (" (--samples-per-run)" if total > len(rows) else "")
        out.append(
            f'<details class="samples" data-run="{_esc(run.name)}"><summary>{_esc(run.name)} · {_esc(run.model)}'
            f" · {_esc(shown)}</summary>{_table(f'samples-{anchor}-{k}', headers, rows)}</details>"
        )
    return Html("".join(out))


def _newest(runs: list[Run], count: int) -> list[Run]:
    """The newest count runs, in their original order."""
    keep = {id(r) for r in sorted(runs, key=lambda r: r.date, reverse=True)[: max(count, 0)]}
    return [r for r in runs if id(r) in keep]


def _detail(sample: dict, section: Section) -> Html:
    parts = []
    for key in section.sample_details:
        if sample.get(key) is None:
            continue
        parts.append(f"<h4>{_esc(key)}</h4><pre>{_esc(sample[key], MAX_TEXT)}</pre>")
    return Html(f"<details><summary>open</summary>{''.join(parts)}</details>")


def _count_lines(path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _index_section(index: pd.DataFrame, prov_id: dict[str, str]) -> Html:
    overall = index[index["group"] == "overall"] if not index.empty else index
    return Html(
        '<section id="index"><h2>Index</h2><p class="muted">Every overall number of every finished run; '
        "per-category numbers are in each experiment's section. Export: "
        "<code>alignlab index RUNS --format csv|parquet|json</code>.</p>"
        + _metric_table("index-table", overall, prov_id, with_group=False)
        + "</section>"
    )


def _provenance(runs: list[Run], prov_id: dict[str, str]) -> Html:
    out = ['<section id="provenance"><h2>Provenance</h2>']
    for run in runs:
        config = run.config
        identity = config.get("identity", {})
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        data = identity.get("data") or config.get("data") or []
        data_rows = "".join(
            f"<dd>{_esc(d.get('path') or d.get('name'))} · {_esc(d.get('checksum') or d.get('sha256'))}</dd>"
            if isinstance(d, dict)
            else f"<dd>{_esc(d)}</dd>"
            for d in (data if isinstance(data, list) else [data])
        )
        facts = [
            ("run folder", str(run.path)),
            ("status", "complete" if run.complete else "incomplete (no metrics.json)"),
            ("config hash", run.config_hash),
            ("model spec", run.model),
            ("model fingerprint", run.fingerprint),
            ("model", {k: v for k, v in model.items() if k not in ("spec", "fingerprint")}),
            ("versions", config.get("versions")),
            ("command", " ".join(map(str, config.get("command") or []))),
            ("started", config.get("started")),
            ("resumed", ", ".join(config.get("resumed") or []) or "never"),
        ]
        rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v, MAX_TEXT)}</dd>" for k, v in facts)
        out.append(
            f'<details id="{prov_id[run.name]}"><summary>{_esc(run.name)} · {_esc(run.experiment)} · '
            f"{_esc(run.model)} · {_esc(run.config_hash)}</summary>"
            f'<dl class="kv">{rows}<dt>data files</dt><div>{data_rows}</div></dl>'
            f"<pre>{_esc(json.dumps(identity, indent=1, ensure_ascii=False), MAX_TEXT)}</pre></details>"
        )
    out.append("</section>")
    return Html("".join(out))
