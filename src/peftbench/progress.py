"""Progress bars for long work (training, evaluation), quiet when asked to be."""

from __future__ import annotations

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


def quiet_library_output() -> None:
    """Our own progress bars report the work; the libraries' per-file bars and their
    deprecation notices about each other only add noise (the CLI and every sweep worker)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    # BOFT on a machine without its CUDA kernel says so, and that it falls back, on every run
    warnings.filterwarnings("ignore", category=UserWarning, module=r"peft\.tuners\.boft\..*")
