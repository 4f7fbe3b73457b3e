"""The task registry. Importing this package registers every built-in task."""

from peftbench.tasks.base import EXTRACTORS, TASKS, Example, Task, data_hash, register_task
from peftbench.tasks import micro, toy  # noqa: F401  (each module registers its tasks)

__all__ = ["EXTRACTORS", "TASKS", "Example", "Task", "data_hash", "register_task"]
