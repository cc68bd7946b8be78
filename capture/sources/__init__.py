"""Model sources: one small module per library a model can come from, registered here by name.

A source says how to build a registry entry's model with random weights (offline) and, for an ad
hoc ``source:build`` name with no entry, what to feed it. Adding a source is one module here plus
its name in ``_MODULES``; the registry (capture/registry.py) and the CLI need no edit. Reading the
registry needs no torch: each source imports its library inside its functions.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable


class BuildError(ValueError):
    """An entry whose model cannot be built as written: one line naming the entry, the field and the fix."""


@dataclass(kw_only=True, frozen=True)
class Source:
    """How models of one library are built. ``build(entry)`` returns an nn.Module, or
    (module, example inputs) when the library supplies the inputs itself."""
    name: str
    build: Callable
    build_help: str                                     # what ``build`` names, for errors and docs
    fields: frozenset = field(default_factory=frozenset)  # registry fields only this source takes
    inputs_optional: bool = False                       # entries may omit ``inputs``
    default_inputs: Callable | None = None              # (entry) -> [InputSpec] for ad hoc names


_SOURCES: dict[str, Source] = {}                        # name -> Source, in registration order
_MODULES = ("ultralytics", "timm", "torchvision", "python", "transformers")


def register_source(name: str, *, build_help: str, fields: tuple[str, ...] = (), inputs_optional: bool = False,
                    default_inputs: Callable | None = None):
    """Decorator registering ``build(entry)`` as the builder of source ``name``; refuses a duplicate."""
    def deco(build: Callable) -> Callable:
        if name in _SOURCES:
            raise ValueError(f"model source {name!r} is registered twice")
        _SOURCES[name] = Source(name=name, build=build, build_help=build_help, fields=frozenset(fields),
                                inputs_optional=inputs_optional, default_inputs=default_inputs)
        return build
    return deco


def source_names() -> tuple[str, ...]:
    """Every registered source name, e.g. ("ultralytics", "timm", ...)."""
    return tuple(_SOURCES)


def is_source(name: str) -> bool:
    """Whether a source of that name is registered."""
    return name in _SOURCES


def get_source(name: str) -> Source:
    """The source called name (KeyError when there is none; check with is_source)."""
    return _SOURCES[name]


def bad_entry(entry, fld: str, why: str) -> BuildError:
    """The one-line error for a field of an entry that cannot be built."""
    return BuildError(f"model {entry.name!r}, field {fld!r}: {why}")


for _m in _MODULES:
    importlib.import_module(f"{__name__}.{_m}")
