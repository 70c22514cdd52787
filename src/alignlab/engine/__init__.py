"""Runs requests: response cache, batching, task driving, sample log."""

from alignlab.engine.cache import ResponseCache
from alignlab.engine.runner import Engine, Task
from alignlab.engine.samples import SampleLog

__all__ = ["Engine", "ResponseCache", "SampleLog", "Task"]
