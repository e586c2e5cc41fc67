"""Old public names that were renamed, kept working for a while with a ``DeprecationWarning``.

A module lists its renames and ends with ``__getattr__ = renamed(__name__, RENAMED, globals())``
(PEP 562): ``module.old`` then warns, naming the new spelling, and returns the new object.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["renamed"]


def renamed(module: str, names: dict[str, tuple[str, str]], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``names``: old name -> (new name, why it was renamed)."""
    short = module.rsplit(".", 1)[-1]

    def __getattr__(name: str) -> Any:
        if name in names:
            new, why = names[name]
            warnings.warn(f"{short}.{name} is now {short}.{new} ({why}); the old name will go in a later release",
                          DeprecationWarning, stacklevel=2)
            return namespace[new]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
