"""Dialogues and the two ways to render them for a model.

`raw` is the papers' Human/Assistant text (Bai et al. 2022; Ganguli et al. 2023 Tables 1-3):

    Human: <text>

    Assistant: <text>

`chat` hands the turns to the model's own chat template (a `Chat` prompt the backend renders).
A dialogue's last assistant turn may be partial ("The answer is"): the model continues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alignlab.errors import AlignlabError
from alignlab.models.base import Chat, Prompt

PromptFormat = Literal["raw", "chat"]
FORMATS: tuple[str, ...] = ("raw", "chat")


@dataclass(frozen=True)
class Dialogue:
    """Alternating turns, ("human" | "assistant", text), ending in an assistant turn to continue."""

    turns: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.turns or self.turns[-1][0] != "assistant":
            raise ValueError("a dialogue ends with the assistant turn the model continues")

    def extend(self, *turns: tuple[str, str]) -> Dialogue:
        return Dialogue(self.turns + tuple(turns))

    def continued(self, text: str) -> Dialogue:
        """The same dialogue with `text` appended to the final assistant turn."""
        role, last = self.turns[-1]
        return Dialogue(self.turns[:-1] + ((role, last + text),))

    def render(self, fmt: PromptFormat) -> Prompt:
        if fmt == "raw":
            return "\n\n".join(f"{_RAW_NAMES[role]}: {text}".rstrip(" ") for role, text in self.turns)
        if fmt == "chat":
            role_map = {"human": "user", "assistant": "assistant"}
            messages = tuple((role_map[role], text) for role, text in self.turns[:-1])
            return Chat(messages=messages, prefill=self.turns[-1][1])
        raise AlignlabError(f"unknown prompt format {fmt!r} (choose from: {', '.join(FORMATS)})")


_RAW_NAMES = {"human": "Human", "assistant": "Assistant"}
