"""What alignlab can run: every experiment, suite and pipeline, by name, and each one's report Section.

Found on first use, by name only (so this module, low in the layers, imports none of them):
- every module of the `alignlab.papers` packages (a paper's modules register what they define on import;
  modules whose name starts with "_" or ends in "_report" are helpers, imported by their users);
- the modules named in ALIGNLAB_PLUGINS (comma-separated import names: a user's own experiments and
  pipelines, in any package);
- the entry points of the `alignlab.experiments` and `alignlab.pipelines` groups (installed packages).

`register()` takes an Experiment or a Pipeline (told apart by their `kind`); tests call it directly.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from importlib import metadata

from alignlab.errors import AlignlabError

log = logging.getLogger(__name__)
PLUGINS_ENV = "ALIGNLAB_PLUGINS"
PAPERS = "alignlab.papers"
ENTRY_POINT_GROUPS = ("alignlab.experiments", "alignlab.pipelines")

_EXPERIMENTS: dict[str, object] = {}
_PIPELINES: dict[str, object] = {}
_SUITES: dict[str, object] = {}
_SECTIONS: dict[str, object] = {}
_discovered = False


def register(runnable):
    """Add an experiment or a pipeline (anything with `kind` "experiment" or "pipeline" and a `name`)."""
    kind = getattr(runnable, "kind", None)
    name = getattr(runnable, "name", "")
    if kind not in ("experiment", "pipeline"):
        raise AlignlabError(f"{type(runnable).__name__} is neither an experiment nor a pipeline")
    if not name:
        raise AlignlabError(f"{kind} {type(runnable).__name__} has no name")
    other = _PIPELINES if kind == "experiment" else _EXPERIMENTS
    if name in other:  # one name, one run kind: the index and the report look runs up by name
        taken = "a pipeline" if kind == "experiment" else "an experiment"
        raise AlignlabError(f"{kind} {name!r}: the name is taken by {taken}")
    (_EXPERIMENTS if kind == "experiment" else _PIPELINES)[name] = runnable
    return runnable


def register_suite(suite):
    _SUITES[suite.name] = suite
    return suite


def register_section(section):
    """A report Section for runs named `section.experiment`, when no registered runnable supplies one."""
    _SECTIONS[section.experiment] = section
    return section


def experiments() -> dict:
    _discover()
    return dict(sorted(_EXPERIMENTS.items()))


def pipelines() -> dict:
    _discover()
    return dict(sorted(_PIPELINES.items()))


def suites() -> dict:
    """Every registered suite whose experiments are all registered."""
    found = experiments()
    return {
        name: suite
        for name, suite in sorted(_SUITES.items())
        if all(member.experiment in found for member in suite.members)
    }


def experiment(name: str):
    found = experiments()
    if name not in found:
        raise AlignlabError(f"unknown experiment {name!r}: choose from {', '.join(found) or '(none)'}")
    return found[name]


def pipeline(name: str):
    found = pipelines()
    if name not in found:
        raise AlignlabError(f"unknown pipeline {name!r}: choose from {', '.join(found) or '(none)'}")
    return found[name]


def section(name: str):
    """The report Section of runs named `name` (an experiment's or a pipeline's), or None: the generic one."""
    if name not in _SECTIONS:
        _discover()
        runnable = _EXPERIMENTS.get(name) or _PIPELINES.get(name)
        found = runnable.report_section() if runnable is not None else None
        if found is not None and name not in _SECTIONS:
            _SECTIONS[name] = found
    return _SECTIONS.get(name)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    papers = importlib.import_module(PAPERS)
    for module in pkgutil.walk_packages(papers.__path__, prefix=f"{PAPERS}."):
        leaf = module.name.rpartition(".")[2]
        if not leaf.startswith("_") and not leaf.endswith("_report"):
            importlib.import_module(module.name)
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise AlignlabError(f"{PLUGINS_ENV}: cannot import module {name!r} ({exc})") from exc
    for group in ENTRY_POINT_GROUPS:
        for entry in metadata.entry_points(group=group):
            try:
                loaded = entry.load()
            except Exception as exc:  # a broken third-party plugin must not take the built-ins down
                log.warning("plugin %s failed to load: %s", entry.name, exc)
                continue
            if getattr(loaded, "kind", None) in ("experiment", "pipeline"):
                register(loaded)
