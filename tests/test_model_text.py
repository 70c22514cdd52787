"""The tokenizing backends' shared text helpers, with a character-level tokenizer."""

from __future__ import annotations

import pytest

from alignlab.errors import AlignlabError
from alignlab.models.text import cut_at_stop, split_continuation, split_continuations


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_split_moves_the_prompts_trailing_spaces_into_the_continuation():
    assert split_continuation(chars, "A: ", "5") == (chars("A:"), chars(" 5"))
    assert split_continuation(chars, "A:", " 5") == (chars("A:"), chars(" 5"))


def test_split_continuations_share_the_shortest_context():
    context, conts = split_continuations(chars, "Q ", ("a", " b"))
    assert context == chars("Q") and conts == [chars(" a"), chars("  b")]
    assert split_continuations(chars, "Q", ()) == ([], [])
    with pytest.raises(AlignlabError, match="empty prompt or an empty continuation"):
        split_continuations(chars, "Q", ("a", ""))
    with pytest.raises(AlignlabError, match="empty prompt"):
        split_continuations(chars, "", ("a",))


def test_cut_at_the_earliest_stop_string():
    assert cut_at_stop("one\nHuman: two\n\nHuman:", ("\n\nHuman:", "\nHuman:")) == "one"
    assert cut_at_stop("no stop here", ("Human:",)) is None
    assert cut_at_stop("abc", ("", "c")) == "ab"  # an empty stop string is ignored
