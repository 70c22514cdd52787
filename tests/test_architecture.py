"""The architecture holds: import contracts (layers, papers apart, popcode alone; pyproject.toml's
[tool.importlinter]) and no import circle anywhere in the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _cycles(graph) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's components)."""
    order, low, stack, on, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        on.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            group = []
            while True:
                other = stack.pop()
                on.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    grimp = pytest.importorskip("grimp")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    assert _cycles(grimp.build_graph("alignlab")) == []


def test_a_planted_circle_is_found(tmp_path, monkeypatch):
    """The circle check above can fail: two modules that import each other are caught."""
    grimp = pytest.importorskip("grimp")
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle import b\n")
    (package / "b.py").write_text("def f():\n    from circle import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("circle")) == [["circle.a", "circle.b"]]


def test_the_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_public_api_is_importable_from_the_package():
    import alignlab
    from alignlab import experiments  # a subpackage, never shadowed by the lazy API

    assert experiments.Experiment is alignlab.Experiment and alignlab.Pipeline.kind == "pipeline"
    assert alignlab.get_pipeline("redteam").name == "redteam" and "bbq" in alignlab.available_experiments()
    assert callable(alignlab.run) and callable(alignlab.run_pipeline) and callable(alignlab.load_model)
    assert alignlab.ScoreRequest("p", (" a",)).continuations == (" a",)
    with pytest.raises(AttributeError):
        alignlab.no_such_thing  # noqa: B018
