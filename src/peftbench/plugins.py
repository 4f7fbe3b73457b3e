"""Methods, tasks and metrics from other packages: each module an installed distribution names
under the entry-point group `peftbench.plugins` is imported, and registers what it defines
(`register_method`, `register_task`, `METRICS.register`)."""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "peftbench.plugins"


def load_plugins() -> list[str]:
    loaded = []
    for entry in entry_points(group=GROUP):
        entry.load()
        loaded.append(entry.name)
    return loaded
