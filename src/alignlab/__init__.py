"""alignlab: measure and improve how language models behave.

The public API, importable from here (each loaded on first use, so `import alignlab` stays light):

    import alignlab
    result = alignlab.run(alignlab.get_experiment("bbq"), settings, alignlab.RunOptions(model="smollm2-135m"))
    backend = alignlab.load_model("smollm2-135m")
    backend.score([alignlab.ScoreRequest("Question: ...", (" Yes", " No"))])

- running: `run`, `run_ladder`, `run_suite` (experiments), `run_pipeline` (pipelines), `RunOptions`;
- extending: `Experiment`, `Settings`, `Option`, `Item`, `Items`, `DataSource`, `Pipeline`,
  `PipelineSettings`, `Role`, `register`;
- finding: `get_experiment`, `get_pipeline`, `available_experiments`, `available_pipelines`;
- models: `load_model`, and the request types `ScoreRequest`, `GenerateRequest`, `FeaturesRequest`, `Chat`;
- results: `write_report`.
"""

from __future__ import annotations

import importlib

from alignlab.errors import AlignlabError
from alignlab.version import __version__

_API = {
    "run": ("alignlab.evaluate", "run"),
    "run_ladder": ("alignlab.evaluate", "run_ladder"),
    "run_suite": ("alignlab.evaluate", "run_suite"),
    "run_pipeline": ("alignlab.experiments.pipeline", "run_pipeline"),
    "RunOptions": ("alignlab.experiments.run_options", "RunOptions"),
    "Experiment": ("alignlab.experiments.base", "Experiment"),
    "Settings": ("alignlab.experiments.base", "Settings"),
    "Option": ("alignlab.experiments.base", "Option"),
    "Item": ("alignlab.experiments.base", "Item"),
    "Items": ("alignlab.experiments.base", "Items"),
    "DataSource": ("alignlab.experiments.base", "DataSource"),
    "Pipeline": ("alignlab.experiments.pipeline", "Pipeline"),
    "PipelineSettings": ("alignlab.experiments.pipeline", "PipelineSettings"),
    "Role": ("alignlab.experiments.pipeline", "Role"),
    "register": ("alignlab.registry", "register"),
    "get_experiment": ("alignlab.registry", "experiment"),
    "get_pipeline": ("alignlab.registry", "pipeline"),
    "available_experiments": ("alignlab.registry", "experiments"),
    "available_pipelines": ("alignlab.registry", "pipelines"),
    "load_model": ("alignlab.models", "load_model"),
    "ScoreRequest": ("alignlab.models.base", "ScoreRequest"),
    "GenerateRequest": ("alignlab.models.base", "GenerateRequest"),
    "FeaturesRequest": ("alignlab.models.base", "FeaturesRequest"),
    "Chat": ("alignlab.models.base", "Chat"),
    "write_report": ("alignlab.report", "write_report"),
}
__all__ = ["AlignlabError", "__version__", *_API]


def __getattr__(name: str):
    # never a subpackage's name (`from alignlab import experiments` must find the package)
    if name not in _API:
        raise AttributeError(f"module 'alignlab' has no attribute {name!r}")
    module, attribute = _API[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted(__all__)
