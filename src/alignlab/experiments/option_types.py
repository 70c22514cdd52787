"""Parsers for experiment options (`Option.type`): argparse reports the ArgumentTypeError they raise as a
one-line usage error naming the option, before anything runs."""

from __future__ import annotations

from argparse import ArgumentTypeError


def whole_number(low: int):
    """An int of at least `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise ArgumentTypeError(f"expected a whole number of at least {low}, got {text!r}")
        return value

    return parse


def number_in(low: float, high: float, what: str, open_ends: bool = False):
    """A float within [low, high] ((low, high) with `open_ends`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        inside = low < value < high if open_ends else low <= value <= high
        if not inside:
            raise ArgumentTypeError(f"expected {what} from {low:g} to {high:g}, got {text!r}")
        return value

    return parse


def integer(what: str):
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ArgumentTypeError(f"expected {what}, got {text!r}") from None

    return parse


def names_from(allowed: tuple[str, ...], what: str = "task"):
    """A comma-separated, non-empty list of names from `allowed`, as a tuple."""

    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        unknown = [t for t in chosen if t not in allowed]
        if unknown or not chosen:
            raise ArgumentTypeError(
                f"unknown {what}(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(allowed)}"
            )
        return chosen

    return parse
