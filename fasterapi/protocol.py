"""The asyncio face of fasterapi's HTTP/1.1 connection.

All the work happens in ``fasterapi._protocol.HttpCore`` (Cython); this class
only adds ``asyncio.BufferedProtocol`` as a base, which is what tells uvloop
(``hasattr(protocol, "get_buffer")`` and not an ``asyncio.Protocol``) and the
selector loop (``isinstance(protocol, BufferedProtocol)``) to read straight
into the buffer ``get_buffer()`` returns instead of allocating a bytes object
per read.

The server builds one per connection::

    functools.partial(HttpProtocol, config=config, server_state=state, app_state=app_state)

``shutdown()`` closes an idle connection now and a busy one after its
in-flight response; ``force_close()`` (end of the graceful timeout) sends
``http.disconnect`` to the app and closes.
"""

from __future__ import annotations

import asyncio

from fasterapi._protocol import HttpCore, set_direct_dispatch

__all__ = ["HttpProtocol", "set_direct_dispatch"]


class HttpProtocol(HttpCore, asyncio.BufferedProtocol):
    """One HTTP/1.1 connection serving ``config.loaded_app`` over ASGI 3.

    ``HttpProtocol(config=..., server_state=..., app_state=None, _loop=None)``:
    ``server_state`` needs ``connections`` and ``tasks`` sets and a
    ``total_requests`` counter; ``app_state`` is the lifespan state that each
    request's scope receives a shallow copy of.
    """

    # No __dict__: the Cython base holds all state (keeps attribute lookups
    # on uvloop's callbacks at C speed).
    __slots__ = ()
