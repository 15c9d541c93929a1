"""The embedded BPMN engine: versioned processes and scripts, persisted instances, lanes and events.

Use :class:`WorkflowService` (the CLI, the web panel and the scheduler all do)::

    svc = WorkflowService()                 # settings from PROCOS_HOME, PROCOS_PROCESSES, ...
    svc.start_process("export", {"environment": "prod"}, user="alice")
    svc.list_tasks("bob"); svc.complete_task(task_id, "bob", approve=True, comment="ok")
"""

from .service import WorkflowService
from .settings import Settings, load_settings

__all__ = ["Settings", "WorkflowService", "load_settings"]
