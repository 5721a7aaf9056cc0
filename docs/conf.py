"""Sphinx configuration of the classicvision documentation.

Build (offline, warnings as errors)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build

The API reference is generated from the numpydoc docstrings (autosummary writes one stub page
per function and class into ``docs/api/generated/``). The tutorial notebooks stay in
``notebooks/``: :func:`_copy_notebooks` copies them into ``docs/notebooks/`` when the build
starts, and myst-nb renders their committed outputs without executing them (it writes its own
copies into ``jupyter_execute/`` beside the output folder). These generated folders are
git-ignored. The benchmark pages include ``benchmarks/results/*.md`` as they are.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_PAGES = DOCS / "notebooks"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"      # the tutorials, as tests/test_notebooks.py finds them

sys.path.insert(0, str(ROOT))                # document this checkout, installed or not

import classicvision  # noqa: E402
from sphinx.pycode import ModuleAnalyzer  # noqa: E402
from sphinx.errors import PycodeError  # noqa: E402

project = "classicvision"
author = "the classicvision developers"
copyright = "the classicvision developers"
version = release = classicvision.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",                               # Markdown pages and notebooks (brings myst-parser)
]

root_doc = "index"
templates_path = ["_templates"]
# jupyter_execute: myst-nb's copies of the notebooks, written beside the output folder (docs/ for
# the README's command); read as sources, a second build would warn about them.
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# API reference: one page per public function and class, numpydoc sections.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"                   # the numpydoc Parameters sections carry the types
# The public names of classicvision.__all__ and the modules that define them: the stub templates say
# "Also importable as classicvision.NAME", and _resolve_top_level links ``classicvision.NAME``.
TOP_LEVEL = {name: getattr(classicvision, name).__module__ for name in classicvision.__all__}
autosummary_context = {"top_level": TOP_LEVEL}
numpydoc_show_class_members = False          # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Notebooks: render the committed outputs, never execute (no kernel, no data, no network).
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# No intersphinx: inventories would be fetched from the network at build time.
html_theme = "alabaster"
html_title = f"classicvision {release}"
html_static_path = []
html_theme_options = {
    "description": "Classical computer-vision features: gradients, Harris, SIFT, matching, bag of words.",
    "fixed_sidebar": True,
    "page_width": "1320px",
    "sidebar_width": "250px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}


def _copy_notebooks(app) -> None:
    """Mirror ``notebooks/NN_*.ipynb`` into ``docs/notebooks/`` (unchanged files are left alone,
    so an incremental build re-reads only what changed; copies of removed notebooks go)."""
    NOTEBOOK_PAGES.mkdir(exist_ok=True)
    sources = {path.name: path for path in sorted(NOTEBOOKS.glob(NOTEBOOK_PATTERN))}
    for stale in NOTEBOOK_PAGES.glob("*.ipynb"):
        if stale.name not in sources:
            stale.unlink()
    for name, source in sources.items():
        target = NOTEBOOK_PAGES / name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out class members that classicvision does not write: the ``set_*_request`` methods
    that scikit-learn's metadata routing adds to every estimator (their docstrings point into
    scikit-learn's own glossary, which this site does not have), and the "Alias for field number
    N" accessors of NamedTuple fields (the class's Attributes section documents the fields)."""
    if what != "class":
        return None
    module = getattr(obj, "__module__", None)
    if isinstance(module, str) and not module.startswith("classicvision"):
        return True
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def _drop_type_docstrings(app, what, name, obj, options, lines):
    """A module constant without a ``#:`` comment gets no text, rather than its type's docstring
    (autodoc would show ``int``'s or ``ndarray``'s help under ``MAX_MEMBERS = 20000``)."""
    if what != "data":
        return
    module, _, attribute = name.rpartition(".")
    try:
        documented = ("", attribute) in ModuleAnalyzer.for_module(module).find_attr_docs()
    except PycodeError:
        documented = False
    if not documented:
        lines.clear()


def _resolve_top_level(app, env, node, contnode):
    """Link a Python reference that did not resolve, ``classicvision.NAME`` or a bare ``NAME`` of
    ``classicvision.__all__``, to the page of the module that defines ``NAME`` (each public name is
    documented once, where it is defined, and re-exported at the top level)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    name = target[len("classicvision."):] if target.startswith("classicvision.") else target
    if name not in TOP_LEVEL:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                             f"{TOP_LEVEL[name]}.{name}", node, contnode)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("missing-reference", _resolve_top_level)
    app.connect("autodoc-process-docstring", _drop_type_docstrings, priority=400)
