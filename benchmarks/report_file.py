"""What every benchmark's JSON starts with, and how it is written."""

from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

import torch
import transformers

from peftbench.allocator import keep_freed_memory, keeps_freed_memory


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both sides run")


def add_allocator_option(parser) -> None:
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (peftbench's CLI keeps freed memory: peftbench/allocator.py); "
                        "either way both sides run in one process under the same allocator")


def apply_allocator(args) -> bool:
    return False if args.default_malloc else keep_freed_memory()


def header(benchmark: str, args, left_out: tuple[str, ...] = ("out",)) -> dict:
    """Benchmark name, date, machine, threads, torch version and the command's settings."""
    return {"benchmark": benchmark, "date": date.today().isoformat(),
            "machine": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "malloc_keeps_freed_memory": keeps_freed_memory(),
            "settings": {k: v for k, v in vars(args).items() if k not in left_out}}


def write(report: dict, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
