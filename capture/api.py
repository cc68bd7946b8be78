"""The Python API: trace your own nn.Module, no registry entry (``from capture import trace_module``)."""
from __future__ import annotations

from capture.capture import entry_for_inputs, trace_forward
from capture.export import export_traced
from capture.inputs import as_example, example_shapes
from capture.registry import ModelEntry
from capture.schema import Trace


def trace_module(model, inputs, *, name: str, grad_mode: str = "no_grad", via: str = "eager") -> Trace:
    """Trace one forward of your own nn.Module on inputs (a tensor, a tuple of them, a dict of keyword
    inputs, or (args, kwargs)); via "export" traces its torch.export graph instead. Write it with
    capture.schema.write_trace."""
    args, kwargs = as_example(inputs)
    entry = ModelEntry(name=name, source="module", build=f"{type(model).__module__}.{type(model).__qualname__}",
                       inputs=[])
    specs = example_shapes(args, kwargs)
    entry, shapes = entry_for_inputs(entry, specs), [s.shape for s in specs]
    model = model.eval()
    if via == "export":
        return export_traced(model, args, kwargs, entry=entry, shapes=shapes, grad_mode=grad_mode)
    return trace_forward(model, args, kwargs, entry=entry, shapes=shapes, grad_mode=grad_mode)
