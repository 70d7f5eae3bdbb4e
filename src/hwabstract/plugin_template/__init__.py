"""The plugin template vendors start from: ``hwabstract new-plugin NAME``.

The template is package data (``files/`` beside this module, every file ending in
``.tmpl``), so it ships in hwabstract's wheel and is the one source of the generated project.
Generating copies each file without the suffix, replacing a few exact tokens -- ``@@name@@``
and the others of :func:`plugin_tokens` -- in file names and contents. Nothing else is
interpreted: braces, dollars and percent signs in the template are copied as they are.

The generated distribution ``hwabstract-NAME`` (package ``hwabstract_NAME``) is the smallest
complete backend: discovery, memory, streams and events, copies and a few kernels, computing
with NumPy on the host and saying so. It passes the conformance suite for what it declares,
and brings its own tests and ``tox.ini``. See docs/plugins.md, "Start from the template".
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend import API_LEVEL
from ..errors import PluginError

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = [
    "SHIPPED_BACKENDS",
    "check_plugin_name",
    "generate_plugin",
    "installed_plugin_names",
    "plugin_tokens",
    "template_files",
]

#: A plugin name: it is the backend name, the entry-point name and part of the package
#: (``hwabstract_NAME``) and distribution (``hwabstract-NAME``) names.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
NAME_MAX = 32
#: The backends hwabstract's own distributions provide (names a new plugin may not take,
#: installed or not), with the distribution of each.
SHIPPED_BACKENDS = {
    "cpu": "hwabstract",
    "maia": "hwabstract-maia",
    "nvidia": "hwabstract-nvidia",
    "tpu": "hwabstract-tpu",
    "trainium": "hwabstract-trainium",
}
SUFFIX = ".tmpl"
_TOKEN = re.compile(r"@@[A-Za-z_]+@@")


def _base_version(version: str) -> str:
    match = re.match(r"\d+(\.\d+)*", version)
    return match.group(0) if match else "0"


def plugin_tokens(name: str) -> dict[str, str]:
    """What each ``@@token@@`` of the template becomes for plugin ``name`` (say ``acme``)."""
    from .. import __version__

    return {
        "name": name,  # acme: the backend, entry point and plugin name
        "NAME": name.upper(),  # ACME: environment variables (HWABSTRACT_ACME_DEVICES)
        "Name": "".join(part.capitalize() for part in name.split("_")),  # Acme: class names
        "package": f"hwabstract_{name}",
        "distribution": f"hwabstract-{name}",
        "api_level": str(API_LEVEL),
        "hwabstract_version": _base_version(__version__),
    }


def template_files() -> list[str]:
    """The template's files, as paths relative to its root (with their tokens and suffix)."""
    return sorted(rel for rel, _ in _walk(files(__name__) / "files", ""))


def _walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for entry in folder.iterdir():
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, f"{rel}/")
        elif entry.name.endswith(SUFFIX):
            yield rel, entry


def installed_plugin_names() -> dict[str, str | None]:
    """Every backend and plugin name discovery finds here, failed and disabled ones
    included, with the distribution that provides it."""
    from ..registry import get_registry

    names: dict[str, str | None] = {}
    for status in get_registry().backends():
        names.setdefault(status.name, status.distribution)
        names.setdefault(status.plugin, status.distribution)
    return names


def check_plugin_name(name: str, installed: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`~hwabstract.errors.PluginError`, saying what to do, if ``name`` cannot
    name a new plugin: not a lowercase identifier, the name of one of hwabstract's own
    backends, or the name of a backend, plugin or ``hwabstract_NAME`` module installed here.

    ``installed`` maps the installed backend and plugin names to their distributions
    (default: :func:`installed_plugin_names`)."""
    if not isinstance(name, str) or not name:
        raise PluginError(f"a plugin name is needed (got {name!r}), e.g. 'acme'")
    if not NAME_PATTERN.fullmatch(name) or len(name) > NAME_MAX:
        suggestion = re.sub(r"[-.\s]+", "_", name.strip().lower()).strip("_")
        usable = suggestion != name and len(suggestion) <= NAME_MAX
        usable = usable and NAME_PATTERN.fullmatch(suggestion) is not None
        hint = f"; try {suggestion!r}" if usable else ""
        raise PluginError(
            f"plugin name {name!r} is not valid: use up to {NAME_MAX} lowercase letters, "
            "digits and underscores, starting with a letter (it becomes the backend name, "
            f"the package hwabstract_NAME and the distribution hwabstract-NAME){hint}"
        )
    if name in SHIPPED_BACKENDS:
        raise PluginError(
            f"plugin name {name!r} is the name of hwabstract's own {name} backend (distribution "
            f"{SHIPPED_BACKENDS[name]}); choose another name, e.g. your company's or your "
            "device's"
        )
    if installed is None:
        installed = installed_plugin_names()
    if name in installed:
        distribution = installed[name] or "an unknown distribution"
        raise PluginError(
            f"a backend or plugin named {name!r} is already installed here (from "
            f"{distribution}); choose another name, or uninstall it first "
            f"(pip uninstall {installed[name] or '<its distribution>'})"
        )
    package = f"hwabstract_{name}"
    spec = importlib.util.find_spec(package)
    if spec is not None:
        where = spec.origin or (list(spec.submodule_search_locations or []) or ["?"])[0]
        raise PluginError(
            f"a module named {package} is already importable here ({where}); choose another "
            "plugin name, or uninstall or move that module first"
        )


def _target(name: str, output: str | os.PathLike[str] | None) -> Path:
    target = Path(output) if output is not None else Path.cwd() / f"hwabstract-{name}"
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise PluginError(
                f"cannot create the plugin in {target}: it exists and is not a directory; "
                "choose another --output"
            )
        entries = sorted(p.name for p in target.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise PluginError(
                f"cannot create the plugin in {target}: the directory is not empty ({shown}); "
                "choose another --output, or empty or remove the directory first"
            )
    return target


def _render(text: str, tokens: Mapping[str, str], where: str) -> str:
    for token, value in tokens.items():
        text = text.replace(f"@@{token}@@", value)
    leftover = _TOKEN.search(text)
    if leftover:
        raise PluginError(
            f"the plugin template's {where} has an unknown token {leftover.group(0)} (known: "
            f"{', '.join(sorted(tokens))}); this is a bug in hwabstract, please report it"
        )
    return text


def generate_plugin(
    name: str,
    output: str | os.PathLike[str] | None = None,
    *,
    installed: Mapping[str, str | None] | None = None,
) -> tuple[Path, list[str]]:
    """Generate the plugin project ``hwabstract-NAME`` from the template.

    ``output`` is the project's directory (default ``./hwabstract-NAME``); it must not exist
    or be empty. ``installed`` is as for :func:`check_plugin_name`. Returns the directory
    and the files written, relative to it. Raises
    :class:`~hwabstract.errors.PluginError` for a name that cannot be used (see
    :func:`check_plugin_name`), a target that exists and is not an empty directory, or one
    that cannot be written.
    """
    check_plugin_name(name, installed)
    target = _target(name, output)
    tokens = plugin_tokens(name)
    rendered = []
    for rel, source in sorted(_walk(files(__name__) / "files", ""), key=lambda item: item[0]):
        path = _render(rel[: -len(SUFFIX)], tokens, f"file name {rel}")
        rendered.append((path, _render(source.read_text(encoding="utf-8"), tokens, rel)))
    try:
        for path, text in rendered:
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise PluginError(
            f"cannot write the plugin into {target}: {exc.strerror or exc} "
            f"({exc.filename or target}); choose a directory you can write to with --output"
        ) from exc
    return target, [path for path, _ in rendered]
