"""python: the user's own model, ``build = "pkg.module:callable"``.

The callable (called with ``kwargs``) returns an nn.Module, or ``(module, example_inputs)``; then the
entry may omit ``inputs``. ``path`` is a folder put on sys.path first, relative to the registry file.
"""
from __future__ import annotations

import importlib
import os
import sys

from capture.sources import bad_entry, register_source

_HOW = 'must be "package.module:callable", e.g. "my_models.nets:build_net"'


def split_build(build: str) -> tuple[str, str] | None:
    """("pkg.module", "callable") of a python entry's build, or None when it is not of that form."""
    module, sep, attr = build.partition(":")
    ok = sep and all(p.isidentifier() for p in module.split(".")) and all(p.isidentifier() for p in attr.split("."))
    return (module, attr) if ok else None


def _resolve(entry):
    parts = split_build(entry.build)
    if parts is None:
        raise bad_entry(entry, "build", f"{entry.build!r} {_HOW}")
    module_name, attr = parts
    if entry.path:
        folder = os.path.normpath(os.path.join(entry.registry_dir or os.getcwd(), entry.path))
        if not os.path.isdir(folder):
            raise bad_entry(entry, "path", f"{folder} is not a folder (path is relative to the registry file)")
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or whatever the user's module raises on import
        where = f" with {entry.path!r} on sys.path" if entry.path else " (set path to the folder that holds it)"
        msg = " ".join(str(e).split())[:200]
        raise bad_entry(entry, "build", f"cannot import {module_name!r}{where}: {type(e).__name__}: {msg}") from None
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise bad_entry(entry, "build", f"module {module_name!r} has no {attr!r}")
        obj = getattr(obj, name)
    if not callable(obj):
        raise bad_entry(entry, "build", f"{entry.build!r} is a {type(obj).__name__}, not a callable")
    return obj


@register_source("python", build_help='"package.module:callable" returning an nn.Module or (module, inputs)',
                 fields=("path",), inputs_optional=True)
def build_python(entry):
    """Import the callable and call it; check that it returned a module (and inputs)."""
    import torch
    made = _resolve(entry)(**entry.kwargs)
    what = "must return an nn.Module, or (nn.Module, example_inputs)"
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        return made
    if isinstance(made, torch.nn.Module):
        if not entry.inputs:
            raise bad_entry(entry, "inputs", f"missing: {entry.build!r} returned only a module; give inputs, "
                                             "e.g. [[1, 3, 224, 224]], or return (module, example_inputs)")
        return made
    raise bad_entry(entry, "build", f"{entry.build!r} {what}; it returned {type(made).__name__}")
