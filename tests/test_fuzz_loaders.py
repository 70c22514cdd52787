"""Fuzzing every dataset loader with mutated copies of real rows (issue 17).

A few valid rows of each real file in ../shared/datasets are mutated (a truncated line, a wrong type, a missing
field, a huge field, bytes that are not UTF-8, a BOM, CRLF line ends, a repeated row, blank lines, an empty
file, a truncated gzip) and loaded. Every case must end in either a clean load (BOM, CRLF and blank lines:
the same items as the unmutated file) or an AlignlabError of ONE line naming the file and the line; any other
exception fails the test.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from datadir import DATA, needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignlab.data import (
    anthropic_evals,
    bbq,
    discrim_eval,
    law_school,
    multiple_choice,
    open_ended,
    red_team_attempts,
    red_team_prompts,
    winogender,
)
from alignlab.errors import AlignlabError

pytestmark = needs()

# Reproducible in CI: the same examples every run, no example database, no deadline on a loaded machine.
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROWS = 6  # valid rows taken from each real file


@dataclass(frozen=True)
class Loader:
    name: str
    source: str  # the real file under ../shared/datasets ("" = rows given by `rows`)
    filename: str  # the mutated copy's name (its suffix picks the format)
    load: Callable[[Path], list]
    unique_ids: bool = False  # ids come from the rows: a repeated row must be an error naming both lines
    rows: tuple[str, ...] = ()  # synthetic JSON Lines when no real file has this format

    @property
    def kind(self) -> str:
        name = self.filename.removesuffix(".gz")
        return "tsv" if name.endswith(".tsv") else "csv" if name.endswith(".csv") else "jsonl"


def _attempt(n: int) -> str:
    return json.dumps(
        {
            "id": f"a{n}",
            "transcript": f"\n\nHuman: question {n}?\n\nAssistant: answer {n}.",
            "min_harmlessness_score_transcript": -0.5 * n,
            "num_params": "52B",
            "model_type": "rlhf",
            "rating": 2,
            "tags": ["x"],
        }
    )


def _mc_row(n: int) -> str:
    return json.dumps(
        {"id": f"q{n}", "question": f"What is {n} + 1?", "choices": [str(n + 1), "0"], "answer": 0}
    )


LOADERS = [
    Loader("bbq", "bbq/data/Age.jsonl", "Age.jsonl", lambda p: bbq.load_bbq([p]), unique_ids=True),
    Loader(
        "winogender-templates",
        "winogender/templates.tsv",
        "templates.tsv",
        lambda p: winogender.load_winogender(p, DATA / "winogender/occupations-stats.tsv"),
    ),
    Loader(
        "winogender-stats",
        "winogender/occupations-stats.tsv",
        "occupations-stats.tsv",
        lambda p: winogender.load_winogender(DATA / "winogender/templates.tsv", p),
        unique_ids=True,
    ),
    Loader(
        "law-school", "law-school/law_data.csv", "law_data.csv", law_school.load_students, unique_ids=True
    ),
    Loader("discrim-eval", "discrim-eval/explicit.jsonl", "explicit.jsonl", discrim_eval.load_fills, True),
    Loader(
        "persona",
        "anthropic-evals/persona/agreeableness.jsonl",
        "agreeableness.jsonl",
        lambda p: anthropic_evals.load_behavior_file(p, "persona", "agreeableness"),
    ),
    Loader(
        "sycophancy-subset",
        "anthropic-evals/sycophancy/third_party_subset/nlp_survey.jsonl",
        "nlp_survey.jsonl",
        lambda p: anthropic_evals.load_behavior_file(p, "sycophancy", "nlp_survey"),
        unique_ids=True,
    ),
    Loader(
        "winogenerated",
        "anthropic-evals/winogenerated/winogenerated_examples.jsonl",
        "winogenerated_examples.jsonl",
        anthropic_evals.load_winogenerated,
        unique_ids=True,
    ),
    Loader(
        "mmlu",
        "mmlu/test/abstract_algebra_test.csv",
        "abstract_algebra_test.csv",
        lambda p: multiple_choice.load_mmlu([p], "test"),
    ),
    Loader(
        "mc-jsonl", "", "mine.jsonl", multiple_choice.load_jsonl, True, tuple(_mc_row(n) for n in range(ROWS))
    ),
    Loader("triviaqa", "triviaqa/triviaqa_sm_sub.jsonl", "triviaqa.jsonl", open_ended.load_triviaqa),
    Loader("gsm8k", "gsm8k/test.jsonl", "test.jsonl", open_ended.load_gsm8k),
    Loader("lambada", "lambada/lambada_openai.jsonl", "lambada.jsonl", open_ended.load_lambada),
    Loader(
        "red-team-attempts",
        "",
        "attempts.jsonl",
        red_team_attempts.load_attempts,
        True,
        tuple(map(_attempt, range(ROWS))),
    ),
    Loader(
        "red-team-attempts-gz",
        "",
        "attempts.jsonl.gz",
        red_team_attempts.load_attempts,
        True,
        tuple(map(_attempt, range(ROWS))),
    ),
    Loader(
        "donotanswer",
        "donotanswer/human_chatbox.jsonl",
        "human_chatbox.jsonl",
        lambda p: red_team_prompts.attacks_in("donotanswer", p),
    ),
    Loader(
        "hh-rlhf-gz",
        "hh-rlhf/harmless-base/test.jsonl.gz",
        "harmless-base/test.jsonl.gz",
        lambda p: red_team_prompts.attacks_in("hh-rlhf", p),
    ),
]
BY_NAME = {loader.name: loader for loader in LOADERS}
CASES = {"count": 0}  # every case tried, explicit or generated (the report quotes the total)


# --- the base rows and writing a file ---------------------------------------------------------------
def base_lines(loader: Loader) -> list[str]:
    """The file's first lines as text: for CSV/TSV the header and rows without a newline inside a field."""
    if loader.rows:
        return list(loader.rows)
    path = DATA / loader.source
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if loader.kind == "jsonl":
            return [handle.readline().rstrip("\n") for _ in range(ROWS)]
        delimiter = "\t" if loader.kind == "tsv" else ","
        rows = [r for _, r in zip(range(200), csv.reader(handle, delimiter=delimiter), strict=False)]
    if loader.name == "winogender-stats":
        keep = rows  # every occupation: the real templates name them all
    elif loader.name == "winogender-templates":
        keep = rows[:1] + rows[1:13]  # six occupations, both answers each
    else:
        keep = rows[:1] + [r for r in rows[1:] if not any("\n" in f or "\r" in f for f in r)][:ROWS]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(keep)
    return out.getvalue().rstrip("\n").split("\n")


def write(loader: Loader, folder: Path, data: bytes) -> Path:
    path = folder / loader.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def encode(lines: list[str], end: str = "\n") -> bytes:
    return "".join(line + end for line in lines).encode("utf-8")


def outcome(loader: Loader, path: Path, line: int | None = None, *also: int):
    """The loaded items, or None after checking the AlignlabError is one line naming the file (and `line`
    and `also`, where given). Any other exception escapes and fails the test."""
    CASES["count"] += 1
    try:
        return loader.load(path)
    except AlignlabError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message[:300]
        assert str(path) in message, message[:300]
        for number in (line, *also):
            if number is not None:
                assert re.search(rf"{re.escape(str(path))}:{number}\b|line {number}\b", message), message[
                    :300
                ]
        return None


def without_ids(items: list) -> list:
    """Items with ids made of line numbers blanked (a blank line moves them, nothing else does)."""
    return [
        dataclasses.replace(i, id="")
        if dataclasses.is_dataclass(i) and "id" in {f.name for f in dataclasses.fields(i)}
        else i
        for i in items
    ]


@functools.cache
def baseline(name: str) -> list:
    """The loader's items from its unmutated rows (which must load cleanly)."""
    loader = BY_NAME[name]
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    try:
        items = loader.load(write(loader, folder, encode(base_lines(loader))))
    finally:
        shutil.rmtree(folder)
    assert items, name
    return items


# --- generated mutations ------------------------------------------------------------------------------
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
MUTATIONS = (
    "truncate",
    "wrong_type",
    "drop_field",
    "big_field",
    "bad_utf8",
    "bom",
    "crlf",
    "blank",
    "repeat",
)


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("name", list(BY_NAME))
def test_mutated_rows_load_cleanly_or_fail_on_one_line(name, data, tmp_path):
    loader = BY_NAME[name]
    lines = base_lines(loader)
    first_row = 0 if loader.kind == "jsonl" else 1  # a CSV's line 1 is its header
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    index = data.draw(st.integers(first_row, len(lines) - 1), label="row")
    line = index + 1
    if mutation == "truncate":
        cut = data.draw(st.integers(0, max(0, len(lines[index]) - 1)), label="cut")
        lines[index] = lines[index][:cut]
        _check(
            loader, tmp_path, encode(lines), line if loader.kind == "jsonl" and lines[index].strip() else None
        )
    elif mutation in ("wrong_type", "drop_field", "big_field"):
        lines[index] = _mutate_field(loader, lines[index], mutation, data)
        _check(loader, tmp_path, encode(lines), line if loader.kind == "jsonl" else None)
    elif mutation == "bad_utf8":
        raw = lines[index].encode("utf-8")
        at = data.draw(st.integers(0, len(raw)), label="at")
        bad = data.draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80"]), label="bytes")
        blob = encode(lines[:index]) + raw[:at] + bad + raw[at:] + b"\n" + encode(lines[index + 1 :])
        assert outcome(loader, write(loader, tmp_path, blob), line) is None  # never a clean load
    elif mutation == "repeat":
        lines.append(lines[index])
        outcome(loader, write(loader, tmp_path, encode(lines)), None)
        if loader.unique_ids:
            _assert_error_names(loader, tmp_path, line, len(lines))
    else:
        if mutation == "bom":
            blob = b"\xef\xbb\xbf" + encode(lines)
        elif mutation == "crlf":
            blob = encode(lines, "\r\n")
        else:
            blanks = data.draw(st.sampled_from(["", "  ", "\t"]), label="blank")
            blob = encode(
                lines[: index + 1] + [blanks if loader.kind == "jsonl" else ""] + lines[index + 1 :]
            )
        items = outcome(loader, write(loader, tmp_path, blob))
        assert items is not None, f"{mutation} must load cleanly"
        if mutation == "blank":
            assert without_ids(items) == without_ids(baseline(name))
        else:
            assert items == baseline(name)


def _check(loader: Loader, folder: Path, blob: bytes, line: int | None) -> None:
    outcome(loader, write(loader, folder, blob), line)


def _assert_error_names(loader: Loader, folder: Path, first: int, second: int) -> None:
    path = folder / loader.filename
    try:
        loader.load(path)
    except AlignlabError as exc:
        message = str(exc)
        assert f"{path}:{second}:" in message and re.search(rf"(:|line ){first}\b", message), message
        return
    raise AssertionError(f"{loader.name}: a repeated row loaded without an error")


def _mutate_field(loader: Loader, line: str, mutation: str, data) -> str:
    if loader.kind == "jsonl":
        row = json.loads(line)
        key = data.draw(st.sampled_from(sorted(row)), label="key")
        if mutation == "drop_field":
            del row[key]
        elif mutation == "big_field":
            row[key] = "x" * data.draw(st.sampled_from([1 << 10, 1 << 17]), label="size")
        else:
            row[key] = data.draw(ODD_VALUES, label="value")
        return json.dumps(row)
    delimiter = "\t" if loader.kind == "tsv" else ","
    fields = next(csv.reader([line], delimiter=delimiter))
    at = data.draw(st.integers(0, len(fields) - 1), label="field")
    if mutation == "drop_field":
        del fields[at]
    elif mutation == "big_field":
        fields[at] = "x" * data.draw(st.sampled_from([1 << 10, 1 << 18]), label="size")
    else:
        fields[at] = data.draw(
            st.sampled_from(["", "nan", "inf", "-1", "1e999", "3", "x", '"', "a\tb"]), label="value"
        )
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(fields)
    return out.getvalue().rstrip("\n")


# --- explicit cases -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BY_NAME))
def test_empty_file_is_an_error_naming_it(name, tmp_path):
    loader = BY_NAME[name]
    for blob in (b"", b"\n\n", b"\xef\xbb\xbf"):
        assert outcome(loader, write(loader, tmp_path, blob)) is None


@pytest.mark.parametrize("name", [n for n in BY_NAME if BY_NAME[n].kind == "jsonl"])
def test_a_one_megabyte_field_loads_or_fails_on_its_line(name, tmp_path):
    loader = BY_NAME[name]
    lines = base_lines(loader)
    for key in json.loads(lines[1]):
        row = json.loads(lines[1])
        row[key] = "y" * (1 << 20)
        outcome(loader, write(loader, tmp_path, encode([lines[0], json.dumps(row), *lines[2:]])), 2)


@pytest.mark.parametrize("name", [n for n in BY_NAME if n.endswith("-gz")])
def test_a_truncated_or_corrupt_gzip_is_an_error_naming_the_file(name, tmp_path):
    loader = BY_NAME[name]
    whole = gzip.compress(encode(base_lines(loader)), mtime=0)
    path = tmp_path / loader.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    for blob in (
        whole[: len(whole) // 2],
        whole[:-4],
        whole[:12],
        b"not gzip at all",
        whole[:20] + b"\0" * 40,
    ):
        path.write_bytes(blob)
        message = _error(loader, path)
        assert str(path) in message and "\n" not in message


def test_a_gzip_file_with_crlf_and_a_bom_loads_the_same(tmp_path):
    loader = BY_NAME["hh-rlhf-gz"]
    path = write(loader, tmp_path, b"\xef\xbb\xbf" + encode(base_lines(loader), "\r\n"))
    assert outcome(loader, path) == baseline(loader.name)


def test_a_bbq_row_seen_twice_names_both_lines(tmp_path):
    lines = base_lines(BY_NAME["bbq"])
    path = write(BY_NAME["bbq"], tmp_path, encode([lines[0], lines[1], lines[2], lines[1]]))
    message = _error(BY_NAME["bbq"], path)
    assert message == f"{path}:4: duplicate id 'Age-1' (first at {path}:2)"


def test_the_same_bbq_file_twice_names_both_files(tmp_path):
    lines = base_lines(BY_NAME["bbq"])
    first, second = tmp_path / "a" / "Age.jsonl", tmp_path / "b" / "Age.jsonl"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    CASES["count"] += 1
    with pytest.raises(
        AlignlabError, match=rf"{re.escape(str(second))}:1: duplicate id .*{re.escape(str(first))}:1"
    ):
        bbq.load_bbq([first, second])


def test_a_second_winogender_template_for_an_occupation_names_both_lines(tmp_path):
    loader = BY_NAME["winogender-templates"]
    lines = base_lines(loader)
    answer0 = next(i for i, line in enumerate(lines) if line.split("\t")[2] == "0")
    message = _error(loader, write(loader, tmp_path, encode([*lines, lines[answer0]])))
    assert f":{len(lines) + 1}:" in message and f"first at line {answer0 + 1}" in message


def test_a_discrim_eval_fill_seen_twice_is_an_error(tmp_path):
    loader = BY_NAME["discrim-eval"]
    lines = base_lines(loader)
    row = json.loads(lines[0])
    row["age"] = int(row["age"])  # 20 and 20.0 are the same fill
    message = _error(loader, write(loader, tmp_path, encode([*lines, json.dumps(row)])))
    assert f"{tmp_path / loader.filename}:{len(lines) + 1}: duplicate id" in message and ":1)" in message


def test_bad_utf8_names_line_and_column(tmp_path):
    loader = BY_NAME["gsm8k"]
    lines = base_lines(loader)
    blob = encode(lines[:2]) + b'{"question": "\xff"}\n' + encode(lines[2:])
    path = write(loader, tmp_path, blob)
    assert _error(loader, path) == f"{path}:3: not UTF-8 text (byte 0xff at column 15)"


def test_truthfulqa_mc1_mutations(tmp_path):
    """mc_task.json is one JSON array: cut it, break a byte, change a question's type, add a BOM."""
    text = (DATA / "truthfulqa/mc_task.json").read_text(encoding="utf-8")
    rows = json.loads(text)[:5]
    path = tmp_path / "mc_task.json"
    good = json.dumps(rows, indent=2)
    expected = multiple_choice.load_truthfulqa_mc1(_put(path, good.encode()))
    assert _put_load(path, b"\xef\xbb\xbf" + good.replace("\n", "\r\n").encode()) == expected
    for cut in (1, 10, len(good) // 2, len(good) - 1):
        assert re.match(
            rf"{re.escape(str(path))}:\d+: not valid JSON", _error_mc1(_put(path, good[:cut].encode()))
        )
    assert ":3: not UTF-8" in _error_mc1(
        _put(path, good.encode().replace(b'"question"', b'"qu\xffestion"', 1))
    )
    for value in (None, 3, [], {"a": 1}, "x"):
        broken = [dict(rows[0], question=value), *rows[1:]]
        _put_load(path, json.dumps(broken).encode())
        broken = [dict(rows[0], mc1_targets=value), *rows[1:]]
        _put_load(path, json.dumps(broken).encode())
    for top in ("{}", "3", "null", '"x"', "[1, 2]", ""):
        _put_load(path, top.encode())


def test_red_team_attempts_as_one_json_array(tmp_path):
    loader = BY_NAME["red-team-attempts"]
    rows = [json.loads(line) for line in loader.rows]
    path = tmp_path / "attempts.json"
    assert len(_put_load(path, json.dumps(rows, indent=1).encode())) == len(rows)
    assert _put_load(path, json.dumps(rows, indent=1)[:-10].encode()) is None
    assert _put_load(path, json.dumps([*rows, rows[0]]).encode()) is None  # a repeated id
    assert _put_load(path, json.dumps([*rows, 3]).encode()) is None


def test_harmbench_text_file(tmp_path):
    path = tmp_path / "harmbench_prompts.txt"
    lines = (DATA / "harmbench/harmbench_prompts.txt").read_text(encoding="utf-8").split("\n")[:5]
    expected = red_team_prompts.attacks_in("harmbench", _put(path, encode(lines)))
    CASES["count"] += 1
    assert (
        red_team_prompts.attacks_in("harmbench", _put(path, b"\xef\xbb\xbf" + encode(lines, "\r\n")))
        == expected
    )
    CASES["count"] += 1
    with pytest.raises(AlignlabError, match=rf"^{re.escape(str(path))}:2: not UTF-8"):
        red_team_prompts.attacks_in("harmbench", _put(path, encode(lines[:1]) + b"\xfe\n"))


def test_a_missing_file_or_a_folder_is_an_error_naming_it(tmp_path):
    for loader in LOADERS:
        folder = tmp_path / "folder" / loader.filename
        folder.mkdir(parents=True, exist_ok=True)
        for path in (tmp_path / "nowhere" / loader.filename, folder):
            CASES["count"] += 1
            with pytest.raises(AlignlabError, match=re.escape(str(path))):
                loader.load(path)


def test_cases_tried(request):
    """Not a check: prints how many cases this module tried (hypothesis examples included)."""
    print(f"\nfuzz loaders: {CASES['count']} cases")


# --- helpers ------------------------------------------------------------------------------------------
def _error(loader: Loader, path: Path) -> str:
    CASES["count"] += 1
    with pytest.raises(AlignlabError) as caught:
        loader.load(path)
    return str(caught.value)


def _put(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def _put_load(path: Path, blob: bytes):
    loader = Loader("mc1", "", path.name, multiple_choice.load_truthfulqa_mc1)
    if path.name.startswith("attempts"):
        loader = Loader("attempts", "", path.name, red_team_attempts.load_attempts)
    return outcome(loader, _put(path, blob))


def _error_mc1(path: Path) -> str:
    return _error(Loader("mc1", "", path.name, multiple_choice.load_truthfulqa_mc1), path)
