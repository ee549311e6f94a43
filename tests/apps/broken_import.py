"""An app module whose own import fails: the server must report it, not call it "not found"."""

import this_dependency_does_not_exist_xyz  # noqa: F401


async def app(scope, receive, send):
    """Never reached."""
