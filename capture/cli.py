"""`trace-model`: trace registry models into traces/<name>.msgpack. Thin: parse, call, print."""
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
@click.option("--out", default="traces", show_default=True, help="Folder for the trace files.")
@click.option("--input", "input_", default=None, help="Override the input shape, e.g. 1x3x1280x800.")
@click.option("--fake", is_flag=True, help="Capture on fake tensors (shapes only, no data).")
@click.option("--grad-mode", type=click.Choice(["no_grad", "inference_mode", "grad"]), default="no_grad",
              show_default=True, help="Grad mode of the forward; it changes which ops appear.")
@click.option("--registry", default=DEFAULT_REGISTRY, show_default=False, help="Model registry (models.toml).")
def main(names, all_, list_, out, input_, fake, grad_mode, registry):
    """Trace every aten op of one eval forward of registry models (random weights, offline)."""
    try:
        reg = load_registry(registry)
        if list_:
            for e in reg.values():
                shapes = " ".join("x".join(map(str, s)) for s in e.inputs)
                click.echo(f"{e.name:26} {e.source:12} {shapes:18} {e.capture}")
            return
        if all_ == bool(names):
            _die("name models to trace, or use --all (trace-model --list shows the registry)")
        entries = list(reg.values()) if all_ else [lookup(reg, n) for n in names]
        inputs = [parse_shape(input_)] if input_ else None
    except RegistryError as e:
        _die(str(e))

    from capture.capture import capture_model
    from capture.schema import write_trace

    failed = []
    for k, entry in enumerate(entries, 1):
        tag = f"[{k}/{len(entries)}] {entry.name}"
        click.echo(f"{tag}: tracing ...", err=True)
        t0 = time.perf_counter()
        try:
            trace = capture_model(entry, fake=True if fake else None, grad_mode=grad_mode, inputs=inputs)
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
