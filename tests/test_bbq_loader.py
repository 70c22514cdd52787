"""BBQ loader: the real shared files, the derived bias target, and malformed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datadir import DATA as SHARED
from datadir import needs

from alignlab.data import bbq, registry
from alignlab.data.manifest import MANIFEST
from alignlab.errors import AlignlabError

PRESENT = [
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Religion",
    "Sexual_orientation",
]

needs_shared = needs("bbq")


@pytest.fixture(scope="module")
def items() -> dict[str, bbq.BBQItem]:
    if not (SHARED / "bbq").is_dir():
        pytest.skip(f"{SHARED} not present")
    # the shared files themselves (not locate(): a user's download cache could add categories)
    loaded = bbq.load_bbq(SHARED / "bbq" / "data" / f"{c}.jsonl" for c in PRESENT)
    by_id = {it.id: it for it in loaded}
    assert len(by_id) == len(loaded), "item ids are unique"
    return by_id


@needs_shared
def test_locate_finds_the_seven_shared_categories_and_warns_about_the_rest(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNLAB_CACHE_DIR", str(tmp_path / "cache"))
    located = registry.locate("bbq", SHARED)
    assert located.found_stems == PRESENT
    assert bbq.categories_of(located) == PRESENT
    assert [f.stem for f in located.missing] == ["Race_ethnicity", "Race_x_SES", "Race_x_gender", "SES"]
    assert len(located.warnings) == 1 and "Race_x_SES" in located.warnings[0]


def test_counts_per_category_equal_manifest_rows(items):
    per_cat: dict[str, int] = {}
    for it in items.values():
        per_cat[it.category] = per_cat.get(it.category, 0) + 1
    assert per_cat == {c: MANIFEST[f"bbq/data/{c}.jsonl"][1] for c in PRESENT}
    assert sum(per_cat.values()) == 17628


def test_item_fields(items):
    it = items["Age-0"]
    assert it.id == "Age-0"
    assert it.example_id == 0 and it.question_index == "1"
    assert (it.question_polarity, it.context_condition) == ("neg", "ambig")
    assert it.answers == ("The grandfather", "The grandson", "Can't be determined")
    assert it.answer_groups == ("old", "nonOld", "unknown")
    assert it.unknown_index == 2 and it.label == 2
    assert it.stereotyped_groups == ("old",)
    assert it.ambiguous
    # every row has exactly one unknown answer, and ambiguous rows' gold answer is it
    for x in items.values():
        assert x.answer_groups[x.unknown_index] == "unknown"
        assert (x.label == x.unknown_index) == x.ambiguous


def test_derived_target_is_missing_for_under_one_percent(items):
    counts = bbq.count_no_target(items.values())
    assert counts == {
        "Age": (0, 3680),
        "Disability_status": (0, 1556),
        # woman vs girl / man vs boy with stereotyped group "F": no answer is singled out
        "Gender_identity": (16, 5672),
        "Nationality": (0, 3080),
        "Physical_appearance": (0, 1576),
        "Religion": (0, 1200),
        "Sexual_orientation": (0, 864),
    }
    missing = sum(c[0] for c in counts.values())
    assert missing / len(items) < 0.01


@pytest.mark.parametrize(
    ("item_id", "target", "why"),
    [
        ("Age-0", 0, "neg, stereotyped 'old': the grandfather"),
        ("Age-2", 1, "nonneg counterpart: the grandson"),
        ("Age-192", 2, "neg, stereotyped 'nonOld' (not 'old'): the Millennial"),
        ("Nationality-0", 0, "label is a region; the name 'British' is the stereotyped group"),
        ("Nationality-2", 1, "nonneg: the Japanese friend"),
        ("Gender_identity-72", 2, "stereotyped 'trans': the transgendered person, not the college student"),
        ("Gender_identity-34", 2, "nonneg, stereotyped 'M' (label 'man'): the woman"),
        ("Gender_identity-284", -1, "boy vs man, stereotyped 'F': neither"),
    ],
)
def test_hand_checked_targets(items, item_id, target, why):
    it = items[item_id]
    assert it.target_index == target, why
    if target >= 0:
        assert it.other_index not in (target, it.unknown_index)


def test_neg_and_nonneg_of_a_pair_target_different_answers(items):
    # example ids come in fours: neg/ambig, neg/disambig, nonneg/ambig, nonneg/disambig, same answers
    it_neg, it_non = items["Religion-0"], items["Religion-2"]
    assert it_neg.answers == it_non.answers
    assert (it_neg.question_polarity, it_non.question_polarity) == ("neg", "nonneg")
    assert it_neg.target_index >= 0 and it_non.target_index >= 0
    assert it_neg.target_index != it_non.target_index


@pytest.mark.parametrize(
    ("category", "polarity", "groups", "stereotyped", "target"),
    [
        # Race_ethnicity labels carry the gender of a proper name
        ("Race_ethnicity", "neg", ("F-White", "F-Black", "unknown"), ["Black", "African American"], 1),
        ("Race_ethnicity", "nonneg", ("F-White", "F-Black", "unknown"), ["Black", "African American"], 0),
        # intersectional: both dimensions must agree
        ("Race_x_gender", "neg", ("M-Black", "F-Black", "unknown"), ["F-Black"], 1),
        ("Race_x_gender", "neg", ("F-White", "F-Black", "unknown"), ["F", "Black"], 1),
        ("Race_x_SES", "neg", ("highSES-M-Black", "unknown", "lowSES-M-Black"), ["low SES", "Black"], 2),
        # race only: the low-SES one of the two
        ("Race_x_SES", "neg", ("highSES-M-Black", "unknown", "lowSES-M-Black"), ["Black"], 2),
        ("Race_x_SES", "nonneg", ("highSES-M-Black", "unknown", "lowSES-M-Black"), ["Black"], 0),
        ("SES", "neg", ("lowSES", "highSES", "unknown"), ["low SES"], 0),
        ("Gender_identity", "neg", ("nonTrans_F", "trans_F", "unknown"), ["transgender women", "trans"], 1),
        ("Age", "neg", ("old", "nonOld", "unknown"), ["nonOld"], 1),
        # neither / both match
        ("Religion", "neg", ("Jewish", "Hindu", "unknown"), ["Muslim"], -1),
        ("Religion", "neg", ("Mormon", "Catholic", "unknown"), ["Mormon", "Catholic"], -1),
        ("Race_x_gender", "neg", ("", "F-Black", "unknown"), ["F-White"], -1),
    ],
)
def test_derive_target_edge_cases(category, polarity, groups, stereotyped, target):
    names = ("x", "y", "z")
    unknown = groups.index("unknown")
    assert bbq.derive_target(category, polarity, names, groups, stereotyped, unknown) == target


# ---------------------------------------------------------------------------------------------
# malformed rows

GOOD = {
    "example_id": 0,
    "question_index": "1",
    "question_polarity": "neg",
    "context_condition": "ambig",
    "category": "Age",
    "answer_info": {
        "ans0": ["grandfather", "old"],
        "ans1": ["grandson", "nonOld"],
        "ans2": ["Unknown", "unknown"],
    },
    "additional_metadata": {
        "subcategory": "None",
        "stereotyped_groups": ["old"],
        "version": "a",
        "source": "",
    },
    "context": "c",
    "question": "q?",
    "ans0": "The grandfather",
    "ans1": "The grandson",
    "ans2": "Unknown",
    "label": 2,
}


def _write(tmp_path: Path, second_line: str) -> Path:
    p = tmp_path / "Age.jsonl"
    p.write_text(json.dumps(GOOD) + "\n" + second_line + "\n", encoding="utf-8")
    return p


def _with(**changes) -> str:
    row = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            del row[k]
        else:
            row[k] = v
    return json.dumps(row)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"example_id": 1, ', "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        (_with(context=None), "missing field 'context'"),
        (_with(label=3), "field 'label' should be 0, 1 or 2, got 3"),
        (_with(label="2"), "field 'label' should be int, got str"),
        (_with(label=True), "field 'label' should be int, got bool"),
        (_with(example_id="1"), "field 'example_id' should be int"),
        (_with(question_polarity="positive"), "question_polarity"),
        (_with(context_condition="amb"), "context_condition"),
        (
            _with(answer_info={"ans0": ["a", "old"], "ans1": ["b", "nonOld"]}),
            "missing field answer_info.'ans2'",
        ),
        (
            _with(answer_info={"ans0": ["a", "old"], "ans1": ["b", "nonOld"], "ans2": ["c"]}),
            "answer_info.ans2",
        ),
        (
            _with(answer_info={"ans0": ["a", "old"], "ans1": ["b", "nonOld"], "ans2": ["c", "old"]}),
            "exactly one answer with group 'unknown', found 0",
        ),
        (_with(additional_metadata={"subcategory": "None"}), "stereotyped_groups"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    p = _write(tmp_path, line)
    with pytest.raises(AlignlabError) as exc:
        bbq.load_bbq([p])
    text = str(exc.value)
    assert text.startswith(f"{p}:2: "), text
    assert message in text


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    p = tmp_path / "Age.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + _with(label=7) + "\n", encoding="utf-8")
    with pytest.raises(AlignlabError, match=r"Age\.jsonl:3: "):
        bbq.load_bbq([p])
    p.write_text(json.dumps(GOOD) + "\n\n", encoding="utf-8")
    assert [it.id for it in bbq.load_bbq([p])] == ["Age-0"]


def test_unreadable_file_is_a_user_error(tmp_path):
    with pytest.raises(AlignlabError, match="nope.jsonl: cannot read"):
        bbq.load_bbq([tmp_path / "nope.jsonl"])
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b"\xff\xfe\x00junk\n")
    with pytest.raises(AlignlabError, match=r"bin\.jsonl:1: not UTF-8"):
        bbq.load_bbq([p])
