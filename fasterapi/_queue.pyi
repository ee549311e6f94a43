"""Type stub for fasterapi._queue (compiled): bounded lock-free ring queues."""

from typing import Generic, Literal, TypeVar, overload

_T = TypeVar("_T")
_D = TypeVar("_D")

MAX_CAPACITY: int

class _RingQueue(Generic[_T]):
    """What SPSCQueue and MPMCQueue share; not constructed by itself."""

    def __init__(self, capacity: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    def __len__(self) -> int: ...
    def try_push(self, obj: _T) -> bool: ...
    @overload
    def try_pop(self) -> _T | None: ...
    @overload
    def try_pop(self, default: _D) -> _T | _D: ...
    def push(self, obj: _T, timeout: float | None = None) -> None: ...
    def pop(self, timeout: float | None = None) -> _T: ...

class SPSCQueue(_RingQueue[_T]):
    """One producer thread and one consumer thread only (see the docstring)."""

class MPMCQueue(_RingQueue[_T]):
    """Any number of producer and consumer threads."""

def _atomic_backend() -> Literal["builtins", "c11"]: ...
def _nogil_throughput(
    kind: Literal["spsc", "mpmc"],
    producers: int,
    consumers: int,
    items: int,
    capacity: int = 1024,
) -> tuple[float, bool]: ...
def _c_push_pop_loop(kind: Literal["spsc", "mpmc"], n: int, capacity: int = 1024) -> float: ...
