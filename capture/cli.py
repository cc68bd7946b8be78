"""`trace-model`: trace registry models into traces/<name>.msgpack (eager) or traces/export/ (torch.export).

Thin: parse, call one library function per model, print.
"""
from __future__ import annotations

import os
import sys
import time

import click

from capture.registry import DEFAULT_REGISTRY, RegistryError, load_registry, lookup, parse_shape


def _die(msg: str) -> None:
    click.echo(f"trace-model: {msg}", err=True)
    sys.exit(2)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Trace every model in the registry.")
@click.option("--list", "list_", is_flag=True, help="List the registry: name, source, input.")
@click.option("--out", default=None,
              help="Folder for the trace files [default: traces; traces/export with --via export].")
@click.option("--input", "input_", default=None, help="Override the input shape, e.g. 1x3x1280x800.")
@click.option("--fake", is_flag=True, help="Capture on fake tensors (shapes only, no data).")
@click.option("--grad-mode", type=click.Choice(["no_grad", "inference_mode", "grad"]), default="no_grad",
              show_default=True, help="Grad mode of the forward; it changes which ops appear.")
@click.option("--via", type=click.Choice(["eager", "export"]), default="eager", show_default=True,
              help="eager: every aten call of a forward; export: the core-ATen graph of torch.export, "
                   "the ops a torch.compile/export backend sees.")
@click.option("--compare", "compare_name", default=None, metavar="NAME",
              help="Show one model's eager and export op sets side by side (captures missing traces; "
                   "eager in --out, export in --out/export).")
@click.option("--registry", default=DEFAULT_REGISTRY, show_default=False, help="Model registry (models.toml).")
def main(names, all_, list_, out, input_, fake, grad_mode, via, compare_name, registry):
    """Trace every aten op of one eval forward of registry models (random weights, offline)."""
    try:
        reg = load_registry(registry)
        if list_:
            for e in reg.values():
                shapes = " ".join("x".join(map(str, s)) for s in e.inputs)
                only = "  eager-only" if e.export else ""
                click.echo(f"{e.name:26} {e.source:12} {shapes:18} {e.capture}{only}")
            return
        if compare_name:
            if names or all_:
                _die("--compare takes one model name and no other names")
            return _compare(lookup(reg, compare_name), out or "traces", grad_mode)
        if all_ == bool(names):
            _die("name models to trace, or use --all (trace-model --list shows the registry)")
        entries = list(reg.values()) if all_ else [lookup(reg, n) for n in names]
        inputs = [parse_shape(input_)] if input_ else None
    except RegistryError as e:
        _die(str(e))

    from capture.capture import capture_model
    from capture.export import ExportError, eager_only_reason, export_model
    from capture.schema import write_trace

    if via == "export" and fake:
        _die("--fake is for --via eager (export always traces on fake tensors)")
    out = out or ("traces/export" if via == "export" else "traces")
    failed, eager_only = [], []
    for k, entry in enumerate(entries, 1):
        tag = f"[{k}/{len(entries)}] {entry.name}"
        if via == "export" and eager_only_reason(entry):
            click.echo(f"{tag}: not exported, eager-only: {eager_only_reason(entry)}", err=True)
            eager_only.append(entry.name)
            continue
        click.echo(f"{tag}: tracing via {via} ...", err=True)
        t0 = time.perf_counter()
        try:
            if via == "export":
                trace = export_model(entry, grad_mode=grad_mode, inputs=inputs)
            else:
                trace = capture_model(entry, fake=True if fake else None, grad_mode=grad_mode, inputs=inputs)
        except ExportError as e:  # a model torch.export cannot export must not stop the others
            click.echo(f"{tag}: FAILED in torch.export: {e}", err=True)
            failed.append(entry.name)
            continue
        except Exception as e:  # a model failing in forward must not stop the others
            msg = " ".join(str(e).split())[:300]
            click.echo(f"{tag}: FAILED in forward: {type(e).__name__}: {msg}", err=True)
            failed.append(entry.name)
            continue
        path = os.path.join(out, f"{entry.name}.msgpack")
        nbytes = write_trace(trace, path)
        ops = len({c.op for c in trace.calls})
        click.echo(f"{tag}: {len(trace.calls)} op calls, {ops} distinct ops, {len(trace.signatures)} unique "
                   f"signatures, {_size(nbytes)}, {time.perf_counter() - t0:.1f} s "
                   f"({trace.header['tensor_mode']} tensors) -> {path}")
    if failed:
        click.echo(f"trace-model: {len(failed)} model(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)
    if eager_only and len(entries) == 1:
        sys.exit(2)


def _load_or_capture(entry, via: str, folder: str, grad_mode: str):
    """The model's trace from folder, captured (and written there) when missing."""
    from capture.capture import capture_model
    from capture.export import ExportError, export_model
    from capture.schema import TraceError, read_trace, write_trace

    path = os.path.join(folder, f"{entry.name}.msgpack")
    if os.path.exists(path):
        try:
            return read_trace(path)
        except TraceError as e:
            _die(str(e))
    click.echo(f"{entry.name}: no {path}, tracing via {via} ...", err=True)
    try:
        trace = export_model(entry, grad_mode=grad_mode) if via == "export" else \
            capture_model(entry, grad_mode=grad_mode)
    except ExportError as e:
        click.echo(f"trace-model: {entry.name}: FAILED in torch.export: {e}", err=True)
        sys.exit(1)
    except Exception as e:
        msg = " ".join(str(e).split())[:300]
        click.echo(f"trace-model: {entry.name}: FAILED in forward: {type(e).__name__}: {msg}", err=True)
        sys.exit(1)
    write_trace(trace, path)
    return trace


def _compare(entry, folder: str, grad_mode: str) -> None:
    from capture.compare import compare_traces, render_comparison
    from capture.export import eager_only_reason

    if eager_only_reason(entry):
        _die(f"{entry.name}: eager-only: {eager_only_reason(entry)}; nothing to compare")
    eager = _load_or_capture(entry, "eager", folder, grad_mode)
    export = _load_or_capture(entry, "export", os.path.join(folder, "export"), grad_mode)
    click.echo(render_comparison(compare_traces(eager, export)))
