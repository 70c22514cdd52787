"""A run's `run.log`: the `alignlab` logger's INFO lines and above while the run runs (retries, resumes,
warnings), appended so that a resumed run adds to it.

What is logged before the run folder exists (the model's check: a server's first retries) is held in memory
and written once the folder is open; a run that stops before that leaves nothing. The console keeps the
level it had: records below it are not passed on, so a run without -v prints no more than before.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_HELD = 10_000  # records held before the folder exists (a flood of retries is summarised anyway)


class _PassOn(logging.Handler):
    """Hands on to the root logger's handlers the records the `alignlab` logger would have let through."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.outer_level = level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.outer_level:
            logging.getLogger().handle(record)


class _Hold(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_HELD:
            self.records.append(record)


class _LogFile(logging.FileHandler):
    """run.log: when a line cannot be written (a full disk), the run goes on without the log and says so
    once, instead of logging's traceback on every line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if self.level <= logging.CRITICAL:
            self.setLevel(logging.CRITICAL + 1)
            error = sys.exc_info()[1]
            reason = getattr(error, "strerror", None) or error
            print(
                f"warning: cannot write {self.baseFilename} ({reason}); going on without it", file=sys.stderr
            )


class RunLog:
    """`with RunLog() as run_log: ... run_log.attach(folder) ...`: the run's log, from start to end."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("alignlab")
        self.hold = _Hold()
        self.file: logging.FileHandler | None = None

    def __enter__(self) -> RunLog:
        logger = self.logger
        self.saved = (logger.level, logger.propagate)
        # a run inside a run (a pipeline's red team): the outer run passes records on to the console already
        nested = any(isinstance(h, _PassOn) for h in logger.handlers)
        self.pass_on = None if nested else _PassOn(logger.getEffectiveLevel())
        if self.pass_on is not None:
            logger.addHandler(self.pass_on)
        logger.addHandler(self.hold)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # _PassOn does it, at the level the console had
        return self

    def attach(self, folder: Path) -> None:
        """From now on into `folder/run.log`, after what was held."""
        self.file = _LogFile(Path(folder) / "run.log", mode="a", encoding="utf-8")
        self.file.setLevel(logging.INFO)
        self.file.setFormatter(logging.Formatter(FORMAT))
        for record in self.hold.records:
            self.file.handle(record)
        self.logger.removeHandler(self.hold)
        self.hold.records.clear()
        self.logger.addHandler(self.file)

    def __exit__(self, *exc) -> None:
        logger = self.logger
        for handler in (self.hold, self.pass_on, self.file):
            if handler is not None:
                logger.removeHandler(handler)
        if self.file is not None:
            with contextlib.suppress(OSError):  # a full disk: said once already
                self.file.close()
        logger.setLevel(self.saved[0])
        logger.propagate = self.saved[1]
