"""Sweeps: a suite's grid of runs, the results store, and the executors that run them.

The package itself imports nothing: `tuning` (which validation uses) sits below the runner,
which imports the training code. `run_suite`, `load_results` and `ResultStore` load on use."""

__all__ = ["ResultStore", "load_results", "run_suite"]


def __getattr__(name: str):
    if name == "run_suite":
        from peftbench.sweep.runner import run_suite

        return run_suite
    if name == "load_results":
        from peftbench.rundir import load_results

        return load_results
    if name == "ResultStore":
        from peftbench.sweep.store import ResultStore

        return ResultStore
    raise AttributeError(f"module 'peftbench.sweep' has no attribute {name!r}")
