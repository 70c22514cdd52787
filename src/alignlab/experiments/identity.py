"""One run identity for every run, experiment or pipeline: what makes two runs the same run, so a folder
resumes only the run it holds (`RunFolder.open` refuses any other, naming the keys that differ).

    name and version, a hash of each prompt template, every model's spec and fingerprint (the main model as
    "model" and "model_fingerprint", every other role under "models"), the settings, the limit, and the
    checksums of the data files read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass


def prompt_hashes(prompts: Mapping[str, object]) -> dict[str, str]:
    """A short hash of each prompt template (text, or any value with a stable repr: a tuple of turns)."""
    return {
        name: hashlib.sha256((text if isinstance(text, str) else repr(text)).encode()).hexdigest()[:12]
        for name, text in sorted(prompts.items())
    }


def run_identity(
    *,
    name: str,
    version: str,
    prompts: Mapping[str, str],
    model: tuple[str, str],
    settings,
    data: list[dict],
    models: Mapping[str, tuple[str | None, str | None]] | None = None,
    **more,
) -> dict:
    """`model`: (spec, fingerprint) of the main model; `models`: {role: (spec, fingerprint)} of the others
    (an absent optional role as (None, None)); `settings`: a dataclass or a mapping; `more`: further keys
    (an experiment's limit)."""
    identity = {
        "experiment": name,
        "experiment_version": version,
        "prompts": prompt_hashes(prompts),
        "model": model[0],
        "model_fingerprint": model[1],
    }
    if models:
        identity["models"] = {
            role: {"spec": spec, "fingerprint": fingerprint}
            for role, (spec, fingerprint) in sorted(models.items())
        }
    identity.update(jsonable(asdict(settings) if is_dataclass(settings) else dict(settings)))
    identity.update(jsonable(more))
    identity["data"] = data
    return identity


def jsonable(value):
    """Tuples as lists, paths and other objects as their text: what the identity holds once written and read."""
    return json.loads(json.dumps(value, default=str))
