"""The framework every paper builds on: the Experiment and Pipeline protocols, their registry (see
`alignlab.registry`), run options and run identity, and shared sampling and figure helpers.

Papers live in `alignlab.papers.<paper>`; each of their modules registers what it defines on import.
"""

from __future__ import annotations

from alignlab.errors import AlignlabError  # noqa: F401 (re-exported for callers)
from alignlab.experiments.base import DataSource, Experiment, Item, Items, Member, Option, Settings, Suite
from alignlab.registry import PLUGINS_ENV, register, register_suite, suites
from alignlab.registry import experiment as get
from alignlab.registry import experiments as available

__all__ = [
    "PLUGINS_ENV",
    "DataSource",
    "Experiment",
    "Item",
    "Items",
    "Member",
    "Option",
    "Settings",
    "Suite",
    "available",
    "available_suites",
    "get",
    "register",
    "register_suite",
]


def available_suites() -> dict:
    return suites()
