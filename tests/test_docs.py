"""The documentation in ``docs/``: every public name has a reference page, every benchmark result
and notebook is shown, the conventions page's examples are true, and the Sphinx build passes with
warnings as errors.

The API pages (``docs/api/*.rst``) list names in ``autosummary`` blocks under a
``currentmodule``; a public name counts as documented when ``module.name`` is listed there,
``module`` being where the name is defined (``classicvision.harris`` is documented as
``classicvision.features.harris.harris``). The build test runs the README's docs command (into a
temporary folder) and skips only when the ``docs`` extra is not installed.
"""

from __future__ import annotations

import doctest
import html
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import classicvision

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCS_COMMAND = "python -m sphinx -W -b html docs docs/_build"
# Modules whose public callables (their ``__all__``) get pages besides ``classicvision.__all__``.
MODULES = ("classicvision.io", "classicvision.datasets", "classicvision.download", "classicvision.viz",
           "classicvision.experiments.scene", "classicvision.experiments.cnn", "classicvision.experiments.cache",
           "classicvision.experiments.reports", "classicvision.experiments.workers",
           "classicvision.experiments.crops")


def documented(text: str) -> set[str]:
    """``module.name`` for every entry of the ``autosummary`` blocks of an rst page."""
    found, module = set(), None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        if line.strip().startswith(".. autosummary::"):
            for entry in lines[i + 1:]:
                if entry.strip() and not entry.startswith("   "):
                    break
                name = entry.strip()
                if name and not name.startswith(":"):
                    found.add(name if "." in name else f"{module}.{name}")
    return found


def public_names() -> dict[str, str]:
    """Public name -> ``module.name`` where it is defined, for every name the reference must show."""
    names = {name: f"{getattr(classicvision, name).__module__}.{name}" for name in classicvision.__all__}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value) and not isinstance(value, types.ModuleType):
                names[f"{module_name}.{name}"] = f"{value.__module__}.{name}"
    return names


def reference_pages() -> set[str]:
    return set().union(*(documented(path.read_text()) for path in sorted((DOCS / "api").glob("*.rst"))))


def test_documented_reads_autosummary_blocks():
    page = """
.. currentmodule:: classicvision.features.harris

.. autosummary::
   :toctree: generated

   harris
   harris_response

Text after the block.

   not_an_entry
"""
    assert documented(page) == {"classicvision.features.harris.harris",
                                "classicvision.features.harris.harris_response"}


def test_every_public_name_has_a_reference_page():
    pages = reference_pages()
    missing = sorted(name for name, where in public_names().items() if where not in pages)
    assert not missing, f"public names missing from docs/api/*.rst: {missing}"


def test_a_missing_name_is_caught():
    # The check above fails when a name leaves the pages (here: harris dropped from features.rst).
    text = (DOCS / "api" / "features.rst").read_text().replace("   harris\n", "")
    assert "classicvision.features.harris.harris" not in documented(text)
    assert "classicvision.features.harris.harris_response" in documented(text)


def test_reference_lists_only_existing_names():
    for entry in sorted(reference_pages()):
        module_name, _, name = entry.rpartition(".")
        assert hasattr(importlib.import_module(module_name), name), entry


def test_every_benchmark_result_is_included():
    pages = "\n".join(path.read_text() for path in (DOCS / "benchmarks").glob("*.md"))
    included = set(re.findall(r"```\{include\} \.\./\.\./benchmarks/results/(\S+\.md)", pages))
    results = {path.name for path in (ROOT / "benchmarks" / "results").glob("*.md")}
    assert results and results <= included, f"benchmark results without a page: {sorted(results - included)}"


def test_conventions_examples():
    failed, attempted = doctest.testfile(str(DOCS / "conventions.rst"), module_relative=False,
                                         optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 10 and failed == 0


def test_readme_says_how_to_build_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert DOCS_COMMAND in readme and "docs/index.rst" in readme


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    for module in ("sphinx", "numpydoc", "myst_nb"):
        pytest.importorskip(module, reason="the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
               str(tmp_path / "doctrees"), str(DOCS), str(out)]
    build = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING" not in build.stderr, build.stderr

    for name, where in public_names().items():                 # one page per public name
        assert (out / "api" / "generated" / f"{where}.html").is_file(), name
    harris = (out / "api" / "generated" / "classicvision.features.harris.harris.html").read_text()
    assert "Parameters" in harris and "min_distance" in harris and "classicvision.harris" in harris

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for notebook in notebooks:                                   # rendered with their outputs
        page = (out / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "<img" in page, notebook.name

    pages = html.unescape(re.sub(r"<[^>]+>", " ", "".join(
        path.read_text() for path in (out / "benchmarks").glob("*.html"))))
    for result in (ROOT / "benchmarks" / "results").glob("*.md"):  # each title on some page
        words = re.findall(r"[A-Za-z0-9]+", result.read_text().splitlines()[0])[:4]
        assert re.search("[^A-Za-z0-9]+".join(words), pages), result.name
    assert "<table" in (out / "benchmarks" / "dense_sift.html").read_text()
