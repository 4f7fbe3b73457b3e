"""The task registry. Importing this package registers every built-in task."""

from peftbench.tasks.base import EXTRACTORS, TASKS, Example, Task, data_hash, register_task
from peftbench.tasks import extractors  # noqa: F401  (registers answer extractors)
from peftbench.tasks import catalog, micro, toy  # noqa: F401  (each module registers its tasks)
from peftbench.tasks.spec import TASK_GROUPS

__all__ = ["EXTRACTORS", "TASK_GROUPS", "TASKS", "Example", "Task", "data_hash", "register_task"]
