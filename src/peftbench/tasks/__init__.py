"""The task registry. Importing this package registers every built-in task."""

from peftbench.tasks.base import EXTRACTORS, TASKS, Example, Task, data_hash, register_task
from peftbench.tasks import toy  # noqa: F401  (registers the toy tasks)

__all__ = ["EXTRACTORS", "TASKS", "Example", "Task", "data_hash", "register_task"]
