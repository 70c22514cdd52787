"""Is a sampled answer right? One grader per open-ended task, pure functions.

- TriviaQA: normalised exact match against any alias. Normalisation as in the SQuAD/TriviaQA evaluation
  scripts (lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed), after
  Unicode NFKD with accents dropped, so "Beyoncé" matches "Beyonce" and curly quotes count as punctuation.
- GSM8K: the number after the answer's "####" if it wrote one, else the last number in it, against the
  gold final number (commas and a trailing ".0" ignored).
- LAMBADA: the first word of the continuation, stripped of surrounding punctuation, equals the target word.
- Arithmetic: the first (signed) integer in the answer equals the value.
"""

from __future__ import annotations

import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _punctuation(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def _plain(text: str) -> str:
    """NFKC (full-width digits, non-breaking spaces) and the Unicode minus as "-"."""
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch) and not _punctuation(ch))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def triviaqa_correct(answer: str, aliases) -> bool:
    mine = normalise(answer)
    return bool(mine) and any(mine == normalise(alias) for alias in aliases)


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def final_number(answer: str) -> Decimal | None:
    """The number after "####" if there is one, else the last number in the text."""
    plain = _plain(answer)
    _, sep, tail = plain.rpartition("####")
    found = _NUMBER.findall(tail if sep else plain)
    if not found:
        return None
    return _number(found[0] if sep else found[-1])


def gsm8k_correct(answer: str, gold: str) -> bool:
    mine, want = final_number(answer), _number(_plain(gold))
    return mine is not None and want is not None and mine == want


def first_word(text: str) -> str:
    words = _plain(text).split()
    if not words:
        return ""
    word = words[0]
    while word and _punctuation(word[0]):
        word = word[1:]
    while word and _punctuation(word[-1]):
        word = word[:-1]
    return word


def lambada_correct(answer: str, word: str) -> bool:
    return bool(answer.strip()) and first_word(answer) == word.strip()


def arithmetic_correct(answer: str, value: str) -> bool:
    found = re.search(r"-?\d+", _plain(answer).replace(",", ""))
    return found is not None and int(found.group()) == int(value)


def grade(task: str, answer: str, golds) -> bool:
    if task == "triviaqa":
        return triviaqa_correct(answer, golds)
    if task == "gsm8k":
        return gsm8k_correct(answer, golds[0])
    if task == "lambada":
        return lambada_correct(answer, golds[0])
    if task == "arithmetic":
        return arithmetic_correct(answer, golds[0])
    raise ValueError(f"no grader for task {task!r}")
