"""Old public names that were renamed, kept working for a while with a ``DeprecationWarning``.

A module lists its renames and ends with ``__getattr__ = renamed(__name__, RENAMED, globals())``
(PEP 562): ``module.old`` then warns, naming the new spelling, and returns the new object.

A renamed keyword argument is declared on its function with ``@renamed_arguments(vae="model")``:
``f(vae=m)`` then warns, naming the new spelling, and calls ``f(model=m)``; the positional order
is unchanged, and ``inspect.signature(f)`` shows the new names only.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed", "renamed_arguments"]

F = TypeVar("F", bound=Callable[..., Any])


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


def renamed_arguments(**names: str) -> Callable[[F], F]:
    """A decorator for keyword arguments that were renamed: old keyword -> new keyword.

    The old keyword keeps working with a ``DeprecationWarning`` that names the new spelling (its
    stack level the caller's); giving both the old and the new name raises a ``TypeError``. The
    mapping is kept on the function as ``__renamed_arguments__``.
    """

    def decorate(func: F) -> F:
        params = inspect.signature(func).parameters
        for old, new in names.items():
            if new not in params or old in params:
                raise TypeError(f"renamed_arguments({old}={new!r}) on {func.__qualname__}: the function must "
                                f"take {new} and not {old}")
        positions = {p.name: i for i, p in enumerate(params.values())
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
        short = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__qualname__}"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in names.items():
                if old not in kwargs:
                    continue
                if new in kwargs or positions.get(new, len(args)) < len(args):
                    raise TypeError(f"{short}() got both {old}= and {new}= (its new name); pass only {new}=")
                warnings.warn(f"{short}({old}=...) is now {short}({new}=...); the old name will go in a later release",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_arguments__ = dict(names)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
