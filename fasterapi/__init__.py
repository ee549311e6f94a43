"""fasterapi: a Cython-accelerated ASGI server with uvicorn's interface.

Public entry points:

- ``fasterapi.run(app, **options)``: serve an ASGI app until a signal stops it.
- ``fasterapi.Config`` and ``fasterapi.Server``: configure and embed the server
  in a running event loop (``await Server(config).serve()``).
- ``fasterapi.fast``: the lock-free queues, pools and response/JSON builders,
  for other servers to use.
"""

__version__ = "0.1.0"

__all__ = ["Config", "Server", "__version__", "run"]


def __getattr__(name):
    # Imported lazily: `import fasterapi.fast` (the primitives) must not pull
    # in the server, the event loop or the CLI.
    if name == "Config":
        from fasterapi.config import Config

        return Config
    if name == "Server":
        from fasterapi.server import Server

        return Server
    if name == "run":
        from fasterapi.server import run

        return run
    raise AttributeError(f"module 'fasterapi' has no attribute {name!r}")
