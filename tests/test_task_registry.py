"""fasterapi._task_registry: asyncio's all-tasks set, compiled on 3.10/3.11.

What must hold: asyncio.all_tasks(), iteration, ``in`` and ``len()`` report
what the stock WeakSet would, tasks vanish from the set when they die (also
during an iteration, once it ends), and install() is a no-op where it must be.
"""

import asyncio
import gc
import os
import subprocess
import sys
import weakref
from _weakrefset import _IterationGuard

import pytest

from fasterapi._task_registry import TaskRegistry, install

OLD_PYTHON = sys.version_info < (3, 12)
needs_registry = pytest.mark.skipif(not OLD_PYTHON, reason="3.12+ keeps its own registry")


async def _settle():
    # The loop keeps the handle it ran last (and so its task) until its next
    # iteration; two turns and a collection free every finished task.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gc.collect()


def _registry():
    import _asyncio
    return _asyncio._all_tasks


@needs_registry
def test_install_swaps_the_interpreters_set_once():
    assert install() is True
    reg = _registry()
    assert type(reg) is TaskRegistry
    assert isinstance(reg, weakref.WeakSet)
    import asyncio.tasks
    assert asyncio.tasks._all_tasks is reg
    assert install() is True
    assert _registry() is reg


@pytest.mark.skipif(OLD_PYTHON, reason="only 3.12+ skips the install")
def test_install_is_a_no_op_on_newer_pythons():
    assert install() is False


def _entry(reg, task):
    # The set's own weak reference to ``task`` (it stays the same object
    # after the task dies, which plain ``in`` could no longer find).
    return next(r for r in reg.data if r() is task)


@needs_registry
def test_all_tasks_and_len_follow_task_lifetimes():
    # Other tests' leftover tasks may die at any collection, so this checks
    # this test's own tasks and the set's invariants, not its size.
    install()
    reg = _registry()

    async def main():
        gate = asyncio.Event()

        async def wait():
            await gate.wait()

        tasks = [asyncio.create_task(wait()) for _ in range(1000)]
        await asyncio.sleep(0)
        assert set(tasks) <= asyncio.all_tasks()
        assert all(t in reg for t in tasks)
        entries = [_entry(reg, t) for t in tasks]
        gate.set()
        await asyncio.gather(*tasks)
        assert not set(tasks) & asyncio.all_tasks()
        del tasks
        await _settle()
        # Every dead task's reference left the set itself, not just the view.
        assert all(r() is None for r in entries)
        assert not any(r in reg.data for r in entries)
        assert all(r() is not None for r in reg.data)
        assert len(reg) == len(list(reg)) == len(reg.data)

    asyncio.run(main())


@needs_registry
def test_a_task_dying_during_iteration_leaves_after_it():
    install()
    reg = _registry()

    async def main():
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        mine = _entry(reg, task)
        # What WeakSet.__iter__ holds while it runs (an iterator would also
        # hold the item it yielded last, perhaps this very task).
        with _IterationGuard(reg):
            del task
            await _settle()
            assert mine() is None
            # Removal deferred (rule 2): the dead reference is still there.
            assert mine in reg.data
        # The iteration is over: the removal is committed.
        assert mine not in reg.data

    asyncio.run(main())


@needs_registry
def test_tasks_registered_before_install_still_leave():
    # A fresh interpreter: a task made before install() carries WeakSet's own
    # callback, one made after carries ours; both must leave the set.
    code = """
import asyncio, gc, _asyncio
from fasterapi._task_registry import install, TaskRegistry

async def main():
    early = asyncio.create_task(asyncio.sleep(0))
    assert install() and type(_asyncio._all_tasks) is TaskRegistry
    late = asyncio.create_task(asyncio.sleep(0))
    await asyncio.gather(early, late)
    n = len(_asyncio._all_tasks.data)
    del early, late
    await asyncio.sleep(0); await asyncio.sleep(0)
    gc.collect()
    print(n - len(_asyncio._all_tasks.data))

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


@needs_registry
def test_switched_off_by_the_environment():
    code = "from fasterapi._task_registry import install; import _asyncio; " \
           "print(install(), type(_asyncio._all_tasks).__name__)"
    env = dict(os.environ, FASTERAPI_TASK_REGISTRY="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.split() == ["False", "WeakSet"]


def test_another_instance_is_a_plain_weakset():
    class Item:
        pass

    s = TaskRegistry()
    a, b = Item(), Item()
    s.add(a)
    s.add(b)
    assert len(s) == 2 and a in s
    del a
    gc.collect()
    assert len(s) == 1 and list(s) == [b]
    assert s is not _registry()


@needs_registry
def test_the_server_installs_it():
    from fasterapi._protocol import loop_state

    async def main():
        loop_state(asyncio.get_running_loop())
        return type(_registry())

    assert asyncio.run(main()) is TaskRegistry
