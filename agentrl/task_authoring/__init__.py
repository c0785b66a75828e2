"""Task authoring: scaffold a task folder (`tasks new`), check it (`tasks validate`), list tasks (`tasks list`).

Knows tasks, tools and the agent loop; never trains. The CLI commands are thin wrappers over these functions.
"""

from agentrl.task_authoring.catalog import TaskEntry, find_tasks
from agentrl.task_authoring.scaffold import scaffold_task
from agentrl.task_authoring.validate import Check, Report, validate_task

__all__ = ["Check", "Report", "TaskEntry", "find_tasks", "scaffold_task", "validate_task"]
