"""Lazy attributes for the package ``__init__`` files (PEP 562), as scikit-image's ``lazy_loader``.

``attach(__name__, {"module": ["name", ...]})`` returns ``__getattr__``, ``__dir__`` and
``__all__`` for a package: a listed name is imported from its module on first access, and a
submodule on first access by its own name. ``import classicvision`` therefore loads numpy only;
scikit-learn, numba, torch and matplotlib wait until a function that needs them is used, while
``dir()`` and tab completion still list the whole API.
"""

from __future__ import annotations

import importlib

__all__ = ["attach"]


def attach(package: str, names: dict[str, list[str]], submodules: tuple[str, ...] = ()):
    """PEP 562 ``__getattr__``, ``__dir__`` and ``__all__`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to list of str
        Relative module (``"features.sift"``) to the public names it defines.
    submodules : tuple of str
        Subpackages or modules also reachable as attributes (``classicvision.features``).
    """
    where = {name: module for module, listed in names.items() for name in listed}
    public = sorted(where) + sorted(submodules)

    def __getattr__(name: str):
        if name in where:
            module = importlib.import_module(f"{package}.{where[name]}")
            return getattr(module, name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return list(public)

    return __getattr__, __dir__, list(public)
