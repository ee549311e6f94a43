"""Resolve a ``"module:attribute"`` string to the object it names.

This is how ``fasterapi run main:app`` finds the app.  The errors are precise
on purpose: "the module does not exist" and "the module exists but one of *its*
imports failed" need different fixes, so they must never be reported alike.
"""

from __future__ import annotations

import importlib
from typing import Any


class ImportFromStringError(Exception):
    """The import string is malformed, or names a module or attribute that does not exist.

    Errors raised *while executing* the named module (a failing import inside
    it, a syntax error, an exception at module level) are not wrapped: they
    propagate unchanged, so the caller can show where the user's code broke.
    """


def import_from_string(import_str: Any) -> Any:
    """Return the object named by ``"package.module:attr.sub"``.

    Anything that is not a string is returned unchanged, so callers can pass
    either an app object or its import string.

    Raises ImportFromStringError when the string is not ``module:attr``, when
    the module itself cannot be found, or when an attribute along the dotted
    path is missing.  Exceptions raised by the module's own code propagate.
    """
    if not isinstance(import_str, str):
        return import_str

    module_str, sep, attrs_str = import_str.partition(":")
    if not sep or not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in format "<module>:<attribute>".'
        )

    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        # Only "this very module (or a parent package of it) is missing" is a
        # lookup error; a module that exists but imports something missing is
        # a bug in the user's code and keeps its own exception.
        if exc.name is None or not _is_prefix(exc.name, module_str):
            raise
        raise ImportFromStringError(f'Could not import module "{module_str}".') from None

    instance: Any = module
    walked = []
    for attr in attrs_str.split("."):
        walked.append(attr)
        try:
            instance = getattr(instance, attr)
        except AttributeError:
            path = ".".join(walked)
            detail = "" if path == attrs_str else f' (no "{path}")'
            raise ImportFromStringError(
                f'Attribute "{attrs_str}" not found in module "{module_str}"{detail}.'
            ) from None
    return instance


def _is_prefix(name: str, module_str: str) -> bool:
    """True if `name` is `module_str` or one of its parent packages."""
    return module_str == name or module_str.startswith(name + ".")
