"""asyncio's registry of all tasks, made cheap on CPython 3.10 and 3.11.

On those versions every ``asyncio.Task`` is added, from C, to one
module-level ``weakref.WeakSet`` (``_asyncio._all_tasks``) so that
``asyncio.all_tasks()`` can find it.  ``WeakSet.add`` is a Python function,
and the weak reference it makes carries a Python closure that runs when the
task is freed.  For a request answered without suspending, the two cost
about 3,200 of the ~29,400 instructions our server spent on it
(``bench/request_path.py --instructions``), more than parsing the request.

``install()`` gives that one set the class ``TaskRegistry``: a ``WeakSet``
with the same contents, the same API and the same removal rules, whose
``add`` and removal callback are compiled.  Measured: 29,413 -> 27,145
instructions per plaintext request on 3.11.

Rules this module keeps:

1. The set holds exactly what the ``WeakSet`` would hold: a weak reference
   per live task, removed by the reference's callback when the task dies.
2. A removal during an iteration of the set waits in ``_pending_removals``,
   as ``WeakSet``'s own callback does, so iterating never sees the set
   change size because a task died.
3. ``install()`` changes nothing unless the interpreter's registry is a
   plain ``WeakSet`` shared by ``asyncio.tasks``; on 3.12+ it is a no-op
   (there, eager tasks that finish at once never reach the registry).
   ``FASTERAPI_TASK_REGISTRY=0`` in the environment turns it off.
"""

from cpython.weakref cimport PyWeakref_NewRef
from cpython.set cimport PySet_Add, PySet_Discard

import os
import sys
from weakref import WeakSet

__all__ = ["TaskRegistry", "install"]

# The installed registry and the containers it works on, kept here so that
# add() and _remove() read no instance attributes.  WeakSet never replaces
# them: it mutates `data`, `_pending_removals` and `_iterating` in place.
cdef object _registry = None
cdef set _data = None
cdef list _pending = None
cdef set _iterating = None


def _remove(ref):
    # The weakref callback: what WeakSet's per-instance closure does, with
    # no Python frame.  Rule 2: during an iteration the removal waits in
    # `_pending_removals`, which WeakSet commits when the iteration ends.
    if _iterating:
        _pending.append(ref)
    else:
        PySet_Discard(_data, ref)


class TaskRegistry(WeakSet):
    """A ``WeakSet`` whose ``add`` and removal callback are compiled (see
    the module docstring)."""

    def add(self, item):
        """Add a weak reference to ``item``, removed when ``item`` dies."""
        if self is not _registry:
            return WeakSet.add(self, item)
        if _pending:
            self._commit_removals()
        PySet_Add(_data, PyWeakref_NewRef(item, _remove))


def install():
    """Make the interpreter's all-tasks set a ``TaskRegistry``, once.

    Returns True when the registry is (now) a ``TaskRegistry``.  Safe to call
    from every event loop; tasks registered before the switch keep the
    ``WeakSet``'s own callback, which does the same.
    """
    global _registry, _data, _pending, _iterating
    if sys.version_info >= (3, 12):
        return False
    if os.environ.get("FASTERAPI_TASK_REGISTRY", "1").strip() in ("0", "false", "no"):
        return False
    try:
        import _asyncio
        import asyncio.tasks
    except ImportError:
        return False
    registry = getattr(_asyncio, "_all_tasks", None)
    if registry is _registry and registry is not None:
        return True
    if type(registry) is not WeakSet or getattr(asyncio.tasks, "_all_tasks", None) is not registry:
        return False
    if not (type(registry.data) is set and type(registry._pending_removals) is list
            and type(registry._iterating) is set):
        return False
    _data, _pending, _iterating = registry.data, registry._pending_removals, registry._iterating
    registry.__class__ = TaskRegistry
    _registry = registry
    return True
