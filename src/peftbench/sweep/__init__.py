"""Sweeps: a suite's grid of runs, the results store, and the executors that run them."""

from peftbench.sweep.runner import load_results, run_suite
from peftbench.sweep.store import ResultStore

__all__ = ["ResultStore", "load_results", "run_suite"]
