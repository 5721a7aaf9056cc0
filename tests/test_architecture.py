"""The package's architecture, enforced: the public/private import rule and the direction of imports.

* No module imports another module's ``_private`` names (``from .x import _y``, or ``_y`` read as
  an attribute of an imported module), except from ``classicvision._kernels.*`` and
  ``classicvision._validation``; a helper reused across modules lives in a module made for it.
* Imports point down the data flow: ``cli -> distributed -> experiments -> recognition / matching ->
  features -> _kernels`` (``distributed``, the optional Dask runner, reuses the experiments); nothing in ``features`` knows about ``matching`` or ``recognition``, and ``_kernels``
  imports nothing else of the package.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import classicvision

PACKAGE = Path(classicvision.__file__).parent
ALLOWED_PRIVATE_SOURCES = ("classicvision._kernels", "classicvision._validation")
FORBIDDEN = {  # importer prefix -> imported prefixes it must not use
    "classicvision._kernels": ("classicvision.features", "classicvision.matching", "classicvision.recognition",
                               "classicvision.experiments", "classicvision.distributed", "classicvision.cli",
                               "classicvision.io",
                               "classicvision.datasets", "classicvision.viz"),
    "classicvision.features": ("classicvision.matching", "classicvision.recognition", "classicvision.experiments",
                               "classicvision.distributed", "classicvision.cli", "classicvision.datasets",
                               "classicvision.viz"),
    "classicvision.matching": ("classicvision.recognition", "classicvision.experiments", "classicvision.distributed",
                               "classicvision.cli"),
    "classicvision.recognition": ("classicvision.experiments", "classicvision.distributed", "classicvision.cli"),
    # the optional Dask layer sits between the command line and the single-process experiments
    "classicvision.experiments": ("classicvision.distributed", "classicvision.cli"),
    "classicvision.distributed": ("classicvision.cli",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(node: ast.ImportFrom, module: str, package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imports(path: Path, tree: ast.AST):
    """``(line, importer, imported module, name or None, bound name)`` for every import in ``tree``."""
    module, package = _module_name(path), _is_package(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, module, alias.name, None, alias.asname or alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, package)
            for alias in node.names:
                yield node.lineno, module, source, alias.name, alias.asname or alias.name


def _violations(planted: dict | None = None):
    """Every broken rule, as ``file:line: what``; ``planted`` adds ``{path: source}`` files to check."""
    found = []
    sources = {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    sources.update(planted or {})
    for path, text in sources.items():
        tree = ast.parse(text, str(path))
        module_aliases = {}
        for line, importer, source, name, bound in _imports(path, tree):
            full = f"{source}.{name}" if name else source
            if name and _is_submodule(full):
                module_aliases[bound] = full
            elif name is None:
                module_aliases[bound] = source
            if name and name.startswith("_") and not name.startswith("__") \
                    and not source.startswith(ALLOWED_PRIVATE_SOURCES) and not _is_submodule(full):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports private {name} from {source}")
            for prefix, banned in FORBIDDEN.items():
                if (importer == prefix or importer.startswith(prefix + ".")) and full.startswith(banned):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} imports {full} (up the flow)")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in module_aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__") \
                    and not module_aliases[node.value.id].startswith(ALLOWED_PRIVATE_SOURCES) \
                    and module_aliases[node.value.id].startswith("classicvision"):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: reads private "
                             f"{module_aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    assert _violations() == []


@pytest.mark.parametrize("source, expected", [
    ("from .harris import _subpixel\n", "imports private _subpixel"),
    ("from . import harris as h\nh._subpixel\n", "reads private classicvision.features.harris._subpixel"),
    ("from ..recognition import codebook\n", "up the flow"),
])
def test_the_rule_catches_violations(source, expected):
    """The checker itself can fail: a violation planted in features/ is reported."""
    found = _violations({PACKAGE / "features" / "planted.py": source})
    assert any("planted.py:" in line and expected in line for line in found)


def test_private_kernels_may_be_imported():
    source = "from .._kernels.sift import _describe\nfrom .._validation import check_image\nfrom .keypoints import Keypoints\n"
    assert not any("planted.py:" in line for line in _violations({PACKAGE / "features" / "planted.py": source}))
