"""Sphinx configuration: the pages in docs/ as a site (``tox -e docs``).

The pages are Markdown (MyST), readable on GitHub as they are; the API reference under
``api/`` is autodoc over the installed ``hwabstract``. The build reaches no network: no
intersphinx, no remote images. ``tox -e docs`` builds with warnings as errors, so a broken
link, a docstring that is not valid reStructuredText or a public name missing from the API
reference (checked below) fails it.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

import hwabstract

project = "hwabstract"
author = "hwabstract developers"
copyright = "hwabstract developers"
version = release = hwabstract.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "generate_kernels.py"]

# -- MyST ---------------------------------------------------------------------------------------

# Links like [x](conformance.md#exit-status) name a heading by its GitHub-style slug.
myst_heading_anchors = 4

# -- autodoc ------------------------------------------------------------------------------------

# Members without a docstring are listed too (a property, an attrs field, an enum member):
# the reference shows every public name with its signature.
autodoc_default_options = {"member-order": "bysource", "undoc-members": True}
autodoc_preserve_defaults = True


def drop_class_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """A constant shows its own doc comment (``#:``) or none, never its class's docstring
    (``hw.float32`` is not "An element type.", ``mx.FORMATS`` not ``dict``'s help)."""
    if what in ("data", "attribute") and not (inspect.isclass(obj) or inspect.isroutine(obj)):
        class_doc = inspect.getdoc(type(obj))
        if class_doc and "\n".join(lines).strip() == class_doc.strip():
            lines.clear()


# -- HTML ---------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"hwabstract {release}"

# -- links from a page to the repository outside docs/ ------------------------------------------
#
# A page may link to a file of the repository outside docs/ ([example](../examples/x.py),
# [tox.ini](../tox.ini), [README](../README.md)): on GitHub the link opens the file. The
# site has no copy of the repository, so there the link becomes a download of the file
# (MyST already does that for a file that is not a page; a Markdown file outside docs/
# would otherwise be an unknown page), and a link to a folder keeps its text only. A link
# to a path that does not exist is still reported.


class RepositoryLinks(SphinxTransform):
    default_priority = 100

    def apply(self, **kwargs: Any) -> None:
        srcdir = Path(self.env.srcdir).resolve()
        here = Path(self.env.doc2path(self.env.docname)).parent
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst":
                continue
            target = self._outside(node, srcdir, here)
            if target is None:
                continue
            if target.is_dir():
                node.replace_self(nodes.inline("", "", *node.children))
            else:
                download = addnodes.download_reference(
                    "",
                    "",
                    *node.children,
                    refdoc=node["refdoc"],
                    # "/path" is relative to docs/ (Sphinx's rule for a download)
                    reftarget="/" + os.path.relpath(target, srcdir),
                    refexplicit=True,
                )
                download.source, download.line = node.source, node.line
                node.replace_self(download)

    def _outside(self, node: addnodes.pending_xref, srcdir: Path, here: Path) -> Path | None:
        """The repository path outside docs/ that ``node`` links to, if it does."""
        target = str(node.get("reftarget", "")).split("#", 1)[0]
        if not target:
            return None
        if node.get("refdomain") == "doc":  # a Markdown file: MyST made it a docname
            if target in self.env.found_docs:
                return None
            candidates = [Path(target + suffix) for suffix in source_suffix]
            candidates = [c if c.is_absolute() else srcdir / c for c in candidates]
        else:
            candidates = [here / target]
        for candidate in candidates:
            path = candidate.resolve()
            if (
                path.exists()
                and not path.is_relative_to(srcdir)
                and path.is_relative_to(srcdir.parent)
            ):
                return path
        return None


# -- every public name is in the API reference --------------------------------------------------

logger = logging.getLogger(__name__)

#: The modules whose ``__all__`` the API reference documents, every name of it.
DOCUMENTED_MODULES = (
    "hwabstract",
    "hwabstract.errors",
    "hwabstract.linalg",
    "hwabstract.fft",
    "hwabstract.mx",
    "hwabstract.mx.reference",
    "hwabstract.backend",
    "hwabstract.hookspecs",
    "hwabstract.kernels",
    "hwabstract.conformance",
    "hwabstract.conformance.runner",
    "hwabstract.conformance.report",
    "hwabstract.conformance.expectations",
    "hwabstract.conformance.numerics",
    "hwabstract.conformance.reference",
    "hwabstract.conformance.helpers",
)


#: values whose identity means nothing (``0 is 0``): documented by name or not at all
SCALARS = (int, float, complex, str, bytes, type(None))


def check_api_reference(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn (an error under ``-W``) for each public name the API reference lacks. A class or
    function (or any object but a number or a string) counts where it is documented under any
    of its names (``hwabstract.Backend`` is ``hwabstract.backend.Backend``); a submodule
    where its own section is; a number or a string under the name the module exports it
    by."""
    py = env.get_domain("py")
    documented = {name for name, *_ in py.get_objects()}
    by_identity: dict[int, Any] = {}
    for name in documented:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue  # a method or an attribute of a class: not a module member
        by_identity[id(obj)] = obj
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            full = f"{module_name}.{name}"
            if full in documented:
                continue
            if inspect.ismodule(obj):
                if obj.__name__ in documented:
                    continue
            elif not isinstance(obj, SCALARS) and by_identity.get(id(obj)) is obj:
                continue
            logger.warning(
                "%s is public (in %s.__all__) but not in the API reference: add it to a "
                "page of docs/api/",
                full,
                module_name,
                type="hwabstract",
                subtype="api_reference",
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_transform(RepositoryLinks)
    app.connect("autodoc-process-docstring", drop_class_docstring)
    app.connect("env-check-consistency", check_api_reference)
    return {"parallel_read_safe": True}
