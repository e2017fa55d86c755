"""Sphinx configuration of the tractable documentation site (``make docs`` builds it).

The API reference is generated: :func:`write_api_pages` writes one page per public module of
``tractable`` (every module or package with a non-empty ``__all__``) listing exactly the names in
its ``__all__``, and autosummary then writes one page per name. A new module or a new name in an
``__all__`` appears in the site without editing anything here. The tutorials are Python scripts
in ``docs/examples/`` that sphinx-gallery executes on every build.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
import typing
from pathlib import Path

from sphinx.util import logging

import tractable

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # docs/_ext: the small local extensions

project = "tractable"
author = "the tractable developers"
copyright = "the tractable developers"  # noqa: A001 - the name Sphinx reads
release = tractable.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/, no CDN
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated", "examples/README.rst", "examples/*.py"]
templates_path = ["_templates"]

# ---- strict mode --------------------------------------------------------------------------
# ``make docs`` runs with -W --keep-going: every warning (an unresolved cross reference, a
# broken link between pages, a malformed docstring, a failing tutorial) fails the build.
nitpicky = True
# Names that live in other projects. Without network access no intersphinx inventory can be
# fetched at build time, so references to torch, numpy, scipy, matplotlib and typing helpers
# cannot resolve; they are shown as plain code instead of failing the build. Everything of
# tractable itself must resolve.
EXTERNAL_MODULES = (
    "torch|numpy|np|scipy|matplotlib|sklearn|ot|safetensors|tqdm|starlette|uvicorn|PIL|typing"
    "|typing_extensions|collections|argparse|pathlib|os|io|enum|dataclasses|concurrent|threading"
    "|multiprocessing|contextlib|json|datetime|types|abc|numbers|re|random|subprocess|_io|http"
    "|socket"
)
EXTERNAL_NAMES = (  # bare names from annotations such as ``x: Tensor`` or ``-> nn.Module``
    "Tensor|Module|Parameter|Generator|Device|dtype|device|ndarray|NDArray|ArrayLike|Figure"
    "|Axes|Path|Callable|Iterator|Iterable|Sequence|Mapping|Any|Literal|Protocol|Self|Optional"
    "|Union|Number|PathLike|TextIO|BinaryIO|Optimizer|LRScheduler|DataLoader|Size"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({EXTERNAL_MODULES})(\..*)?"),
    (r"py:.*", rf"(nn\.)?({EXTERNAL_NAMES})"),
    # Sphinx cannot parse the annotation ``tuple[int, int, int] | None`` of one dataclass field
    # (FeatureExtractor.image_shape, .info) and splits it at the commas; the pieces are no names
    (r"py:class", r"(tuple\[int|dict\[str)"),
    # ``Comparison.embed`` names an instance attribute, which has no entry to link to; the file
    # (src/tractable/evaluation/state.py) is another engineer's and is left as it is for now
    (r"py:attr", r"feats"),
]

# ---- autodoc, autosummary, napoleon -----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource", "undoc-members": True}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: autodoc already lists the attributes
napoleon_attr_annotations = False  # the annotations show on the attributes themselves
add_module_names = False
python_use_unqualified_type_names = True
toc_object_entries_show_parents = "hide"

# ---- Markdown pages (MyST) ---------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# ---- tutorials (sphinx-gallery) ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/tutorial_",
    "ignore_pattern": r"/_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 0,
    "show_memory": False,
    "show_signature": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": (),
}
if os.environ.get("TRACTABLE_DOCS_NO_TUTORIALS"):
    # `make docs-fast`: the site without executing the tutorials (their pages show the code)
    sphinx_gallery_conf["plot_gallery"] = "False"

# ---- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"tractable {release}"
html_static_path = ["_static"]
html_css_files = ["tractable.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
mathjax3_config = {"tex": {"macros": {"KL": r"\operatorname{KL}", "E": r"\mathbb{E}"}}}


# ---- the generated API reference ------------------------------------------------------------
ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
SKIP_MODULES = {"tractable.cli", "tractable.conftest", "tractable.__main__"}


def public_modules() -> list[str]:
    """Every module of ``tractable`` (one level down) that declares a non-empty ``__all__``, and
    every module that such an ``__all__`` lists (``tractable.plots.compare``)."""
    names, todo = set(), []
    for info in pkgutil.iter_modules(tractable.__path__, "tractable."):
        if info.name not in SKIP_MODULES and not info.name.rsplit(".", 1)[1].startswith("_"):
            todo.append(importlib.import_module(info.name))
    while todo:
        module = todo.pop()
        if module.__name__ in names or not getattr(module, "__all__", None):
            continue
        names.add(module.__name__)
        todo += [v for v in map(module.__dict__.get, module.__all__) if inspect.ismodule(v)]
    return sorted(names)


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def write_api_pages(app, config) -> None:  # noqa: ANN001 - Sphinx's objects
    """Write ``api/index.rst`` and one ``api/<module>.rst`` per public module."""
    out = HERE / "api"
    out.mkdir(exist_ok=True)
    modules = public_modules()
    pages = {}
    for name in modules:
        module = importlib.import_module(name)
        objects, submodules = [], []
        for member in module.__all__:
            value = getattr(module, member)
            (submodules if inspect.ismodule(value) else objects).append(member)
        lines = [_title(f"``{name}``"), f".. automodule:: {name}\n   :no-members:\n"]
        lines.append(f".. currentmodule:: {name}\n")
        if submodules:
            links = ", ".join(f":mod:`{name}.{m}`" for m in submodules)
            lines.append(f"Modules: {links}")
            lines.append("")
        if objects:
            lines.append(".. autosummary::\n   :toctree: generated\n   :nosignatures:\n")
            lines += [f"   {member}" for member in objects]
            lines.append("")
        pages[name] = "\n".join(lines)
    # the package itself: its own names and the list of modules
    top = [
        _title("API reference"),
        "Every public name of ``tractable``: the names in the ``__all__`` of each module below,",
        "one page each, generated from the docstrings.\n",
        ".. automodule:: tractable\n   :no-members:\n",
        ".. currentmodule:: tractable\n",
        ".. autosummary::\n   :toctree: generated\n   :nosignatures:\n",
    ]
    top += [
        f"   {member}"
        for member in tractable.__all__
        if not inspect.ismodule(getattr(tractable, member)) and not member.startswith("_")
    ]
    top += ["", _title("Modules", "-")]
    for name in modules:
        summary = (importlib.import_module(name).__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(ROLE.sub(r"``\1``", summary).split())
        top.append(f"* :mod:`{name}`: {summary}")
    top += ["", ".. toctree::\n   :hidden:\n"]
    top += [f"   {name}" for name in modules]
    pages["index"] = "\n".join(top) + "\n"
    for stem, text in pages.items():
        path = out / f"{stem}.rst"
        if not path.exists() or path.read_text() != text:  # unchanged pages stay cached
            path.write_text(text)
    for path in out.glob("*.rst"):  # a module that is gone
        if path.stem not in pages:
            path.unlink()
    # autosummary writes the stubs of these pages (the set of pages Sphinx found in an earlier
    # build would miss a module that is new)
    config.autosummary_generate = [f"api/{stem}.rst" for stem in pages]


PUBLIC_MODULES: set[str] = set()


def _public_names() -> dict[int, str]:
    """``id(object) -> documented name`` for every object in a public ``__all__``."""
    names = {}
    PUBLIC_MODULES.update(public_modules())
    for module_name in sorted(PUBLIC_MODULES):
        module = importlib.import_module(module_name)
        for member in module.__all__:
            value = getattr(module, member)
            if inspect.isclass(value) or inspect.isroutine(value):
                names.setdefault(id(value), f"{module_name}.{member}")
    return names


def _lookup(path: str) -> tuple[bool, object, object]:
    """Import ``path`` (a module, or attributes under the longest importable module):
    ``(found, value, parent)``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        parent = None
        for attr in parts[cut:]:
            if not hasattr(value, attr):
                return False, None, None
            parent, value = value, getattr(value, attr)
        return True, value, parent
    return False, None, None


def _ours(path: str, value: object, parent: object) -> bool:
    """Whether ``value`` belongs to tractable (not ``torch`` imported into one of its modules,
    nor ``nn.Module.float`` inherited by one of its classes)."""
    if inspect.ismodule(value):
        return value.__name__.startswith("tractable")
    if inspect.isclass(parent):
        name = path.rsplit(".", 1)[1]
        owners = [k for k in parent.__mro__ if name in vars(k)] or [parent]
        return owners[0].__module__.startswith("tractable")
    if inspect.isclass(value) or inspect.isroutine(value):
        return getattr(value, "__module__", "").startswith("tractable")
    return inspect.ismodule(parent) and parent.__name__.startswith("tractable")


def _candidates(node) -> list[str]:  # noqa: ANN001
    """Where a name in a docstring may live: as written when it is qualified, else in the class
    and then the module that define the documented object (the module of its source file)."""
    target = node.get("reftarget", "").lstrip("~.")
    if target.startswith("tractable."):
        return [target]
    module, cls = node.get("py:module"), node.get("py:class")
    if not module or not module.startswith("tractable"):
        return []
    found, documented, _ = _lookup(f"{module}.{cls}" if cls else module)
    if not found:
        return []
    home = getattr(documented, "__module__", module) if cls else module
    names = [f"{home}.{documented.__qualname__}.{target}"] if cls else []
    names += [f"{home}.{target}", f"{module}.{target}"]
    # a short name used in a summary line, away from its source file: where it is defined, if
    # exactly one module of tractable defines it
    defined = DEFINED.setdefault("map", _defined_names()).get(target, [])
    return names + defined[:1] if len(defined) == 1 else names


DEFINED: dict[str, dict[str, list[str]]] = {}


def _defined_names() -> dict[str, list[str]]:
    """``short name -> [module.name, ...]``, one per distinct object: the classes and functions
    each module of tractable defines (not those it imports), and its type aliases."""
    names: dict[str, dict[int, str]] = {}
    for info in pkgutil.walk_packages(tractable.__path__, "tractable."):
        if info.name in SKIP_MODULES or info.name.endswith(".__main__"):
            continue  # importing __main__ would run the command line
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (the humaneval extra) is missing
            continue
        for name, value in vars(module).items():
            defined = (inspect.isclass(value) or inspect.isroutine(value)) and getattr(
                value, "__module__", None
            ) == info.name
            alias = typing.get_origin(value) is not None  # ``Hidden = Sequence[int]``
            if defined or (alias and not name.startswith("_")):
                names.setdefault(name, {}).setdefault(id(value), f"{info.name}.{name}")
    return {name: list(paths.values()) for name, paths in names.items()}


def resolve_internal_name(app, env, node, contnode):  # noqa: ANN001, ANN201
    """Resolve what Sphinx cannot: a docstring may name an object by the module that defines it
    (``tractable.nn.time.TimeMLP``), name a module inside a package (``tractable.runs.training``),
    or use a short name valid in its own source file (``Multiscale`` in ``flows/multiscale.py``,
    ``transform`` inherited from the base class). Such a reference links to the page of the public
    name of the same object (or of its class, or of the package holding the module). A real object
    that no ``__all__`` exports is shown as code without a link. A name that does not exist stays
    unresolved and fails the strict build."""
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    public_names = PUBLIC_NAMES.setdefault("map", _public_names())
    for path in _candidates(node):
        found, value, parent = _lookup(path)
        if not found or not _ours(path, value, parent):
            continue
        if inspect.ismodule(value):
            package = ".".join(path.split(".")[:2])
            role, public = "mod", value.__name__ if value.__name__ in PUBLIC_MODULES else package
        elif inspect.isclass(parent):
            # a method or attribute: documented on the class that defines it
            owner = next((k for k in parent.__mro__ if path.rsplit(".", 1)[1] in vars(k)), parent)
            public = public_names.get(id(owner))
            public = public and f"{public}.{path.rsplit('.', 1)[1]}"
            role = node.get("reftype")
        else:
            public, role = public_names.get(id(value)), node.get("reftype")
        if public and public != node.get("reftarget"):
            for try_role in (role, "obj"):
                resolved = domain.resolve_xref(
                    env, node["refdoc"], app.builder, try_role, public, node, contnode
                )
                if resolved is not None:
                    return resolved
        # a real object of tractable without a page of its own: shown as code, no link
        INTERNAL_REFERENCES.add(path)
        return contnode
    return None


INTERNAL_REFERENCES: set[str] = set()


def report_internal_references(app, exception) -> None:  # noqa: ANN001
    if INTERNAL_REFERENCES:
        names = ", ".join(sorted(INTERNAL_REFERENCES))
        logger.info(f"references to names outside every __all__ (shown unlinked): {names}")


PUBLIC_NAMES: dict[str, dict[int, str]] = {}


def describe_constant(app, what, name, obj, options, lines) -> None:  # noqa: ANN001
    """A module constant (a dict of options, a tuple of names) has no docstring of its own;
    autodoc would show its type's (``dict()`` -> new empty dictionary...). Show its value."""
    if what not in ("data", "attribute") or not lines:
        return
    if "\n".join(lines).strip() != inspect.cleandoc(type(obj).__doc__ or "").strip():
        return
    text = repr(obj)
    if len(text) > 300 and isinstance(obj, dict):
        keys = ", ".join(f"``{key}``" for key in obj)
        lines[:] = [f"A ``dict`` with the keys {keys}."]
        return
    lines[:] = [".. code-block:: python", "", "   " + text[:2000]]


def write_cli_reference(app, config) -> None:  # noqa: ANN001
    """``_generated/cli_reference.md``: the ``--help`` of every subcommand, from the parser
    itself, so that the guide's reference never lags behind the command line."""
    import argparse

    from tractable.cli import parser

    os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal's width
    top = parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    text = ["```text", top.format_help().rstrip(), "```", ""]
    for name, sub in commands.choices.items():
        text += [f"### `tractable {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    path = out / "cli_reference.md"
    content = "\n".join(text) + "\n"
    if not path.exists() or path.read_text() != content:
        path.write_text(content)


def setup(app) -> None:  # noqa: ANN001
    app.connect("config-inited", write_api_pages)
    app.connect("config-inited", write_cli_reference)
    app.connect("missing-reference", resolve_internal_name)
    app.connect("autodoc-process-docstring", describe_constant)
    app.connect("build-finished", report_internal_references)
