"""The experiment registry: every experiment the runner, the CLI and the report know of.

Found, on first use: each module of this package (built-ins register themselves on import), the modules
named in ALIGNLAB_PLUGINS (comma-separated import names: a user's own experiments), and the entry points
of the `alignlab.experiments` group (installed packages). `register()` adds one directly (tests do).
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from importlib import metadata

from alignlab.errors import AlignlabError  # noqa: F401 (re-exported for callers)
from alignlab.experiments.base import DataSource, Experiment, Item, Items, Member, Option, Settings, Suite

__all__ = [
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

log = logging.getLogger(__name__)
PLUGINS_ENV = "ALIGNLAB_PLUGINS"
_REGISTRY: dict[str, Experiment] = {}
_SUITES: dict[str, Suite] = {}
_discovered = False


def register(experiment: Experiment) -> Experiment:
    if not experiment.name:
        raise AlignlabError(f"experiment {type(experiment).__name__} has no name")
    _REGISTRY[experiment.name] = experiment
    return experiment


def register_suite(suite: Suite) -> Suite:
    _SUITES[suite.name] = suite
    return suite


def available_suites() -> dict[str, Suite]:
    """Every registered suite whose experiments are all registered."""
    experiments = available()
    return {
        name: suite
        for name, suite in sorted(_SUITES.items())
        if all(member.experiment in experiments for member in suite.members)
    }


def available() -> dict[str, Experiment]:
    """Every registered experiment, by name, in name order."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    experiments = available()
    if name not in experiments:
        raise AlignlabError(f"unknown experiment {name!r}: choose from {', '.join(experiments) or '(none)'}")
    return experiments[name]


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        helpers = module.name in ("base", "option_types") or module.name.startswith("_")
        if not helpers and not module.name.endswith("_report"):
            importlib.import_module(f"{__name__}.{module.name}")
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise AlignlabError(f"{PLUGINS_ENV}: cannot import experiment module {name!r} ({exc})") from exc
    for entry in metadata.entry_points(group="alignlab.experiments"):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken third-party plugin must not take the built-ins down
            log.warning("experiment plugin %s failed to load: %s", entry.name, exc)
            continue
        if isinstance(loaded, Experiment):
            register(loaded)
