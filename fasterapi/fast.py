"""The public face of fasterapi's primitives, for other servers to build on.

Everything here is compiled Cython and safe to use from several threads:

- ``SPSCQueue`` / ``MPMCQueue``: bounded lock-free ring queues of Python
  objects (single-producer/single-consumer, and Vyukov's multi-producer/
  multi-consumer design).  A reference is taken on push and handed over on pop.
- ``DictPool`` / ``TuplePool`` / ``BufferPool``: free lists that hand out
  empty dicts, filled tuples and fixed-size bytearrays, and recycle them only
  when nobody else still holds them.
- ``ResponseBuilder``: writes an HTTP/1.1 status line, validated headers and
  body into one reusable buffer and returns a zero-copy view of it.
- ``JsonBuilder``: strict RFC 8259 JSON written straight into a buffer (its
  own, or a ``ResponseBuilder``'s body).

Cython code can ``cimport`` the nogil C-level API from ``fasterapi._queue``,
``fasterapi._pool`` and ``fasterapi._response`` (their ``.pxd`` files ship with
the package).
"""

from fasterapi._pool import BufferPool, DictPool, TuplePool
from fasterapi._queue import MPMCQueue, SPSCQueue
from fasterapi._response import JsonBuilder, ResponseBuilder

__all__ = [
    "BufferPool",
    "DictPool",
    "JsonBuilder",
    "MPMCQueue",
    "ResponseBuilder",
    "SPSCQueue",
    "TuplePool",
]
