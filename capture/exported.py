"""Trace a saved program: an ExportedProgram written by ``torch.export.save`` (a .pt2 archive).

Two routes, as for registry models: ``via="export"`` traces the program's own graph, decomposed to
core ATen (the op set a torch.export backend sees, like ``trace-model --via export``), and
``via="eager"`` runs ``ep.module()`` under the recorder on the program's saved example inputs.

Loading a .pt2 trusts it like a Python script (docs/models.md says exactly why): torch.export.load
unpickles parts of the archive. Only trace files you or someone you trust wrote.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
import warnings

from capture.capture import entry_for_inputs, trace_forward
from capture.export import export_program, first_line, program_trace
from capture.inputs import InputSpec, as_example, example_shapes, make_example
from capture.registry import ModelEntry
from capture.schema import Trace


class ExportedFileError(ValueError):
    """A .pt2 file that cannot be loaded or traced as given; one line naming the file."""


def load_exported(path: str):
    """torch.export.load(path), with torch's failure as one line naming the file (ExportedFileError)."""
    import torch
    if not os.path.isfile(path):
        raise ExportedFileError(f"--exported {path!r}: no such file")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.export.load(path)
    except Exception as e:  # torch raises many types for a file that is not a .pt2 archive
        raise ExportedFileError(f"--exported {path!r}: not a program saved by torch.export.save "
                                f"({first_line(e, 200)})") from None


def exported_name(path: str) -> str:
    """The default trace name of a .pt2 file: its base name without the extension."""
    return os.path.splitext(os.path.basename(path))[0]


def _unflattened(ep, flat):
    """The program with its module hierarchy rebuilt (torch.export.unflatten), so eager calls get
    module paths; the flat ep.module() (every call in the root) when that fails."""
    import torch
    try:
        return torch.export.unflatten(ep)
    except Exception:  # unflatten refuses some programs; the flat module still runs every op
        return flat


def trace_exported(path: str, *, name: str = "", via: str = "export", grad_mode: str = "no_grad",
                   inputs: list[list[int]] | None = None) -> Trace:
    """Trace a .pt2 through the export route (its graph) or the eager route (ep.module() recorded).

    The saved example inputs are used unless inputs gives shapes (float32, positional).
    Raises ExportedFileError (bad file, no inputs) or capture.export.ExportError (decomposition).
    """
    ep = load_exported(path)
    if inputs:
        specs = [InputSpec(shape=s) for s in inputs]
        args, kwargs = make_example(specs, dtype="float32", seed=0)
    elif ep.example_inputs is not None:
        args, kwargs = as_example(ep.example_inputs)
        specs = example_shapes(args, kwargs)
    else:
        raise ExportedFileError(f"--exported {path!r}: the program was saved without example inputs; "
                                "give them with --input 1x3x224x224")
    entry = ModelEntry(name=name or exported_name(path), source="exported", build=os.path.basename(path),
                       inputs=[])
    entry, shapes = entry_for_inputs(entry, specs), [s.shape for s in specs]
    model = ep.module()
    if via == "eager":
        return trace_forward(_unflattened(ep, model), args, kwargs, entry=entry, shapes=shapes, grad_mode=grad_mode)
    t0 = time.perf_counter()
    decomposed, _warnings = export_program(model, args, grad_mode, kwargs, ep=ep)
    return program_trace(model, decomposed, entry=entry, shapes=shapes, grad_mode=grad_mode,
                         kwarg_names=list(kwargs), t0=t0)
