"""`trace-model`: trace registry models into traces/<name>.msgpack (eager) or traces/export/ (torch.export).

Thin: parse, call one library function per model, print. The top level imports no torch, so
`--help`, `--list` and registry errors answer at once; torch comes in with the first capture.
"""
from __future__ import annotations

import os
import sys
import time

import click

from capture.compare import compare_traces, render_comparison
from capture.registry import (DEFAULT_REGISTRY, ModelEntry, RegistryError, eager_only_reason, load_registry, lookup,
                              parse_shape)
from capture.schema import Trace, TraceError, read_trace, write_trace


def _die(msg: str) -> None:
    click.echo(f"trace-model: {msg}", err=True)
    sys.exit(2)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


# ---------------------------------------------------------------------------------------------
# Parameters

class OneLineUsageError(click.UsageError):
    """A usage error shown as one line, ``trace-model: <what>`` (exit status 2), like every other."""

    def show(self, file=None) -> None:
        click.echo(f"trace-model: {self.format_message()}", err=True)


class Shape(click.ParamType):
    """An input shape: positive integers joined by x, e.g. 1x3x640x640."""
    name = "shape"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return parse_shape(value)
        except RegistryError as e:
            raise OneLineUsageError(f"{param.opts[0] if param else 'shape'} {e}", ctx) from None


class ModeOption(click.Option):
    """A flag that chooses what the command does: shown as a verb under Modes, not under Options."""

    def verb(self) -> str:
        """How the mode is called, e.g. ``--compare NAME``."""
        return self.opts[0] if self.is_flag else f"{self.opts[0]} {self.metavar or self.name.upper()}"


class ModeCommand(click.Command):
    """A command whose modes (ModeOption flags, and naming its arguments) get their own help section."""

    def __init__(self, *args, names_mode: tuple[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.names_mode = names_mode              # (usage, help) of the mode that names models

    def _modes(self, ctx) -> list[ModeOption]:
        return [p for p in self.get_params(ctx) if isinstance(p, ModeOption)]

    def format_usage(self, ctx, formatter) -> None:
        verbs = " | ".join([self.names_mode[0]] + [m.verb() for m in self._modes(ctx)])
        formatter.write_usage(ctx.command_path, f"{verbs} [OPTIONS]")

    def format_options(self, ctx, formatter) -> None:
        with formatter.section("Modes"):
            formatter.write_dl([(f"{ctx.command_path} {self.names_mode[0]}", self.names_mode[1])] +
                               [(f"{ctx.command_path} {m.verb()}", m.help or "") for m in self._modes(ctx)])
        options = [p.get_help_record(ctx) for p in self.get_params(ctx)
                   if isinstance(p, click.Option) and not isinstance(p, ModeOption)]
        with formatter.section("Options"):
            formatter.write_dl([r for r in options if r])


# ---------------------------------------------------------------------------------------------
# The command

@click.command(cls=ModeCommand, context_settings={"help_option_names": ["-h", "--help"]},
               names_mode=("NAME...", "Trace the named models (trace-model --list shows them)."))
@click.argument("names", nargs=-1)
@click.option("--all", "all_", cls=ModeOption, is_flag=True, help="Trace every model in the registry.")
@click.option("--list", "list_", cls=ModeOption, is_flag=True, help="List the registry: name, source, input.")
@click.option("--compare", "compare_name", cls=ModeOption, default=None, metavar="NAME",
              help="Show one model's eager and export op sets side by side (captures missing traces; "
                   "eager in --out, export in --out/export).")
@click.option("--out", default=None,
              help="Folder for the trace files [default: traces; traces/export with --via export].")
@click.option("--input", "input_", type=Shape(), default=None, help="Override the input shape, e.g. 1x3x1280x800.")
@click.option("--fake", is_flag=True, help="Capture on fake tensors (shapes only, no data).")
@click.option("--grad-mode", type=click.Choice(["no_grad", "inference_mode", "grad"]), default="no_grad",
              show_default=True, help="Grad mode of the forward; it changes which ops appear.")
@click.option("--via", type=click.Choice(["eager", "export"]), default="eager", show_default=True,
              help="eager: every aten call of a forward; export: the core-ATen graph of torch.export, "
                   "the ops a torch.compile/export backend sees.")
@click.option("--registry", default=DEFAULT_REGISTRY, show_default=False, help="Model registry (models.toml).")
def main(names, all_, list_, out, input_, fake, grad_mode, via, compare_name, registry):
    """Trace every aten op of one eval forward of registry models (random weights, offline)."""
    try:
        reg = load_registry(registry)
        if list_:
            return _list(reg)
        if compare_name:
            if names or all_:
                _die("--compare takes one model name and no other names")
            return _compare(lookup(reg, compare_name), out or "traces", grad_mode)
        if all_ == bool(names):
            _die("name models to trace, or use --all (trace-model --list shows the registry)")
        entries = list(reg.values()) if all_ else [lookup(reg, n) for n in names]
    except RegistryError as e:
        _die(str(e))
    if via == "export" and fake:
        _die("--fake is for --via eager (export always traces on fake tensors)")
    _trace_entries(entries, via=via, out=out or ("traces/export" if via == "export" else "traces"),
                   fake=fake, grad_mode=grad_mode, inputs=[input_] if input_ else None)


def _list(reg: dict[str, ModelEntry]) -> None:
    for e in reg.values():
        shapes = " ".join("x".join(map(str, s)) for s in e.inputs)
        only = "  eager-only" if e.export else ""
        click.echo(f"{e.name:26} {e.source:12} {shapes:18} {e.capture}{only}")


# ---------------------------------------------------------------------------------------------
# Tracing (torch is imported from here on, inside the functions: the top level must not need it)

def _capture(entry: ModelEntry, via: str, grad_mode: str, inputs: list[list[int]] | None = None,
             fake: bool = False) -> Trace:
    from capture.capture import capture_model
    from capture.export import export_model

    if via == "export":
        return export_model(entry, grad_mode=grad_mode, inputs=inputs)
    return capture_model(entry, fake=True if fake else None, grad_mode=grad_mode, inputs=inputs)


def _failure(e: Exception) -> str:
    """What a failed capture prints: torch.export's one line, or the forward's exception."""
    from capture.export import ExportError

    if isinstance(e, ExportError):
        return f"FAILED in torch.export: {e}"
    msg = " ".join(str(e).split())[:300]
    return f"FAILED in forward: {type(e).__name__}: {msg}"


def _trace_entries(entries: list[ModelEntry], *, via: str, out: str, fake: bool, grad_mode: str,
                   inputs: list[list[int]] | None) -> None:
    """Trace each entry into out; a failing model does not stop the others (exit 1 at the end)."""
    failed, eager_only = [], []
    for k, entry in enumerate(entries, 1):
        tag = f"[{k}/{len(entries)}] {entry.name}"
        reason = eager_only_reason(entry) if via == "export" else ""
        if reason:
            click.echo(f"{tag}: not exported, eager-only: {reason}", err=True)
            eager_only.append(entry.name)
            continue
        click.echo(f"{tag}: tracing via {via} ...", err=True)
        t0 = time.perf_counter()
        try:
            trace = _capture(entry, via, grad_mode, inputs, fake)
        except Exception as e:  # a model failing in forward or in torch.export must not stop the others
            click.echo(f"{tag}: {_failure(e)}", err=True)
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


def _load_or_capture(entry: ModelEntry, via: str, folder: str, grad_mode: str) -> Trace:
    """The model's trace from folder, captured (and written there) when missing."""
    path = os.path.join(folder, f"{entry.name}.msgpack")
    if os.path.exists(path):
        try:
            return read_trace(path)
        except TraceError as e:
            _die(str(e))
    click.echo(f"{entry.name}: no {path}, tracing via {via} ...", err=True)
    try:
        trace = _capture(entry, via, grad_mode)
    except Exception as e:  # one line, not a traceback
        click.echo(f"trace-model: {entry.name}: {_failure(e)}", err=True)
        sys.exit(1)
    write_trace(trace, path)
    return trace


def _compare(entry: ModelEntry, folder: str, grad_mode: str) -> None:
    if eager_only_reason(entry):
        _die(f"{entry.name}: eager-only: {eager_only_reason(entry)}; nothing to compare")
    eager = _load_or_capture(entry, "eager", folder, grad_mode)
    export = _load_or_capture(entry, "export", os.path.join(folder, "export"), grad_mode)
    click.echo(render_comparison(compare_traces(eager, export)))
