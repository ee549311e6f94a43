"""Type stub for fasterapi._task_registry (compiled)."""

from typing import Any
from weakref import WeakSet

class TaskRegistry(WeakSet[Any]):
    def add(self, item: Any) -> None: ...

def install() -> bool: ...
