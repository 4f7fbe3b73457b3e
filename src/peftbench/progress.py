"""Progress bars for long work (training, evaluation), quiet when asked to be."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, status="")`; draws a rich bar on stderr when enabled."""
    if not enabled:
        yield lambda n=1, status="": None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, status: str = "") -> None:
            bar.update(task, advance=n, status=status)

        yield advance


# Where library warnings go (set by `peftbench run` to the suite's folder; inherited by
# sweep workers through the environment).
WARNINGS_LOG_ENV = "PEFTBENCH_WARNINGS_LOG"
VERBOSE_ENV = "PEFTBENCH_VERBOSE"


class _WarningSink:
    """Each distinct library warning once per process: to the warnings log when one is set,
    to the terminal only with --verbose. The terminal is for progress, results and errors."""

    def __init__(self) -> None:
        self.verbose = False
        self.seen: set[str] = set()

    def emit(self, text: str) -> None:
        text = " ".join(text.split())
        if text in self.seen:
            return
        self.seen.add(text)
        if self.verbose:
            sys.stderr.write(f"warning: {text}\n")
        path = os.environ.get(WARNINGS_LOG_ENV)
        if path:
            try:
                with open(path, "a", encoding="utf-8") as log:
                    log.write(text + "\n")
            except OSError:
                pass

    def show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.emit(f"{category.__name__}: {message} ({filename}:{lineno})")


class _LoggingToSink(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        SINK.emit(f"{record.name}: {record.getMessage()}")


SINK = _WarningSink()


def quiet_library_output(verbose: bool = False) -> None:
    """Our own progress bars report the work; the libraries' per-file bars go, and their
    warnings (deprecation notices about each other, peft's notes on layers it leaves alone)
    go to the warnings log, once each, or to the terminal with --verbose (the CLI and every
    sweep worker)."""
    import warnings

    from transformers.utils import logging as hf_logging

    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # sweep workers print them too
    SINK.verbose = verbose or os.environ.get(VERBOSE_ENV) == "1"
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_warning()
    hf_logging.disable_default_handler()
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for logger in (hf_logging.get_logger(), logging.getLogger("huggingface_hub"), logging.getLogger("datasets")):
        logger.setLevel(logging.WARNING)
        logger.propagate = False  # a failed hub request offline is for the log, not the terminal
        for handler in [h for h in logger.handlers if not isinstance(h, _LoggingToSink)]:
            logger.removeHandler(handler)
        if not any(isinstance(handler, _LoggingToSink) for handler in logger.handlers):
            logger.addHandler(_LoggingToSink())
    warnings.showwarning = SINK.show_warning


def warnings_logged() -> int:
    """How many distinct warnings the log holds."""
    path = os.environ.get(WARNINGS_LOG_ENV)
    if not path or not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as log:
        return len({line for line in log if line.strip()})
