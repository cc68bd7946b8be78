"""`trace-model`: trace models into traces/<name>.msgpack (eager) or traces/export/ (torch.export).

Models come from the registry (models.toml or --registry), ad hoc as ``source:build``
(``timm:resnet18``), or from a saved ExportedProgram (``--exported model.pt2``); docs/models.md.

Thin: parse, call one library function per model, print. The top level imports no torch, so
`--help`, `--list` and registry errors answer at once; torch comes in with the first capture.
"""
from __future__ import annotations

import os
import sys
import time
import tomllib
from dataclasses import replace

import click

from capture.compare import compare_traces, render_comparison
from capture.registry import (DEFAULT_REGISTRY, ModelEntry, RegistryError, adhoc_entry, eager_only_reason, is_adhoc,
                              load_registry, lookup, parse_shape)
from capture.sources import BuildError
from capture.schema import Trace, TraceError, read_trace, write_trace


def _die(msg: str) -> None:
    click.echo(f"trace-model: {msg}", err=True)
    sys.exit(2)


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


class ConfigSetting(click.ParamType):
    """KEY=VALUE for an ad hoc model's builder (or transformers config); VALUE is read as TOML
    (true, 32, 0.5, "text"), else kept as a string."""
    name = "key=value"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, text = value.partition("=")
        if not sep or not key.strip().isidentifier():
            raise OneLineUsageError(f"--config {value!r} is not KEY=VALUE with KEY a keyword name, "
                                    "e.g. hidden_size=32", ctx)
        try:
            parsed = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = text
        return key.strip(), parsed


class ModeOption(click.Option):
    """A flag that chooses what the command does: shown as a verb under Modes, not under Options."""

    def verb(self) -> str:
        """How the mode is called, e.g. ``--compare NAME``."""
        return self.opts[0] if self.is_flag else f"{self.opts[0]} {self.metavar or self.name.upper()}"


class ModeCommand(click.Command):
    """A command whose modes (ModeOption flags, and naming its arguments) get their own help section."""

    def __init__(self, *args, names_modes: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.names_modes = names_modes            # (usage, help) of the modes that name models

    def _modes(self, ctx) -> list[ModeOption]:
        return [p for p in self.get_params(ctx) if isinstance(p, ModeOption)]

    def format_usage(self, ctx, formatter) -> None:
        verbs = " | ".join([self.names_modes[0][0]] + [m.verb() for m in self._modes(ctx)])
        formatter.write_usage(ctx.command_path, f"{verbs} [OPTIONS]")

    def format_options(self, ctx, formatter) -> None:
        with formatter.section("Modes"):
            formatter.write_dl([(f"{ctx.command_path} {usage}", text) for usage, text in self.names_modes] +
                               [(f"{ctx.command_path} {m.verb()}", m.help or "") for m in self._modes(ctx)])
        options = [p.get_help_record(ctx) for p in self.get_params(ctx)
                   if isinstance(p, click.Option) and not isinstance(p, ModeOption)]
        with formatter.section("Options"):
            formatter.write_dl([r for r in options if r])


# ---------------------------------------------------------------------------------------------
# The command

@click.command(cls=ModeCommand, context_settings={"help_option_names": ["-h", "--help"]},
               names_modes=[("NAME...", "Trace the named models (trace-model --list shows them)."),
                            ("SOURCE:BUILD...", "Trace a model with no registry entry, e.g. timm:resnet18, "
                                                "transformers:Dinov2Model (set up by --input, --config).")])
@click.argument("names", nargs=-1)
@click.option("--all", "all_", cls=ModeOption, is_flag=True,
              help="Trace every registry model not marked skip, with progress and ETA; traces already "
                   "current (same entry, modes and library versions) are kept unless --force.")
@click.option("--list", "list_", cls=ModeOption, is_flag=True,
              help="List the registry by source and task: name, family, input, capture, skip reasons.")
@click.option("--compare", "compare_name", cls=ModeOption, default=None, metavar="NAME",
              help="Show one model's eager and export op sets side by side (captures missing traces; "
                   "eager in --out, export in --out/export).")
@click.option("--exported", "exported", cls=ModeOption, default=None, metavar="FILE.pt2",
              help="Trace a torch.export.save program: its graph and ep.module() run eagerly (--via picks "
                   "one). Loading unpickles parts of it: trust the file (docs/models.md).")
@click.option("--out", default=None,
              help="Folder for the trace files [default: traces; traces/export with --via export].")
@click.option("--input", "input_", type=Shape(), multiple=True,
              help="Override the input shape, e.g. 1x3x1280x800 (repeat for each input of the forward).")
@click.option("--config", "config", type=ConfigSetting(), multiple=True,
              help="KEY=VALUE for an ad hoc SOURCE:BUILD model's builder or transformers config, "
                   "e.g. --config hidden_size=32 (repeatable).")
@click.option("--name", default=None, help="Trace name for --exported or one ad hoc model [default: from the file or "
                                           "SOURCE_BUILD].")
@click.option("--fake", is_flag=True, help="Capture on fake tensors (shapes only, no data).")
@click.option("--force", is_flag=True, help="With --all: re-trace models whose trace is already current.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes tracing models side by side (--all or several names), 1 torch thread each "
                   "[default: one per core, at most 4].")
@click.option("--grad-mode", type=click.Choice(["no_grad", "inference_mode", "grad"]), default="no_grad",
              show_default=True, help="Grad mode of the forward; it changes which ops appear.")
@click.option("--via", type=click.Choice(["eager", "export"]), default=None,
              help="eager: every aten call of a forward; export: the core-ATen graph of torch.export, "
                   "the ops a torch.compile/export backend sees. [default: eager]")
@click.option("--registry", default=DEFAULT_REGISTRY, show_default=False, help="Model registry (models.toml).")
def main(names, all_, list_, exported, out, input_, config, name, fake, force, jobs, grad_mode, via, compare_name,
         registry):
    """Trace every aten op of one eval forward of a model (random weights, offline)."""
    inputs = list(input_) or None
    if exported:
        if names or all_ or list_ or compare_name:
            _die("--exported takes one .pt2 file and no model names")
        if fake:
            _die("--fake is not for --exported (the export route always traces on fake tensors)")
        return _trace_exported(exported, name=name, via=via, out=out, grad_mode=grad_mode, inputs=inputs)
    via = via or "eager"
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
        entries = list(reg.values()) if all_ else [_named_entry(reg, n, config) for n in names]
    except RegistryError as e:
        _die(str(e))
    if config and not any(is_adhoc(n) for n in names):
        _die("--config is for ad hoc SOURCE:BUILD models; a registry entry's settings are its kwargs table")
    if name:
        if len(entries) != 1 or not is_adhoc(names[0]):
            _die("--name is for --exported or a single ad hoc SOURCE:BUILD model")
        entries = [replace(entries[0], name=name)]
    if via == "export" and fake:
        _die("--fake is for --via eager (export always traces on fake tensors)")
    if force and not all_:
        _die("--force is for --all (a named model is always traced afresh)")
    _trace_entries(entries, via=via, out=out or ("traces/export" if via == "export" else "traces"),
                   fake=fake, grad_mode=grad_mode, inputs=inputs, batch=all_, keep_current=all_ and not force and not inputs,
                   jobs=jobs or min(os.cpu_count() or 1, 4))


def _named_entry(reg: dict[str, ModelEntry], name: str, config) -> ModelEntry:
    """A registry entry, or an ad hoc one for source:build (with --config as its kwargs)."""
    return adhoc_entry(name, kwargs=dict(config)) if is_adhoc(name) else lookup(reg, name)


def _list(reg: dict[str, ModelEntry]) -> None:
    """The registry grouped by source, then task (in registry order); skipped models say why."""
    groups: dict[tuple[str, str], list[ModelEntry]] = {}
    for e in reg.values():
        groups.setdefault((e.source, e.task or "unknown"), []).append(e)
    skipped = sum(1 for e in reg.values() if e.skip)
    click.echo(f"{len(reg)} models ({len(reg) - skipped} traceable, {skipped} skipped) in {len(groups)} "
               "source/task groups")
    for (source, task), entries in groups.items():
        click.echo(f"\n{source} / {task} ({len(entries)})")
        for e in entries:
            shapes = " ".join("x".join(map(str, s)) for s in e.inputs) or "(from the source)"
            only = "  eager-only" if e.export else ""
            what = f"SKIPPED: {e.skip}" if e.skip else f"{e.capture}{only}"
            click.echo(f"  {e.name:30} {e.family or '-':16} {shapes:22} {what}")


# ---------------------------------------------------------------------------------------------
# Tracing (torch is imported from here on, inside the functions: the top level must not need it)

def _trace_entries(entries: list[ModelEntry], *, via: str, out: str, fake: bool, grad_mode: str,
                   inputs: list[list[int]] | None, batch: bool = False, keep_current: bool = False,
                   jobs: int = 1) -> None:
    """Trace each entry into out, in jobs worker processes when more than one; a failing model does
    not stop the others (exit 1 at the end; exit 2 when an entry cannot be built as written). A
    single model prints only its outcome line. batch (--all): models marked skip are skipped saying
    why; keep_current: current traces are kept (capture/batch.py)."""
    from capture.batch import Progress, TraceJob, run_jobs
    failed, eager_only, unbuildable = [], [], []
    progress = Progress(len(entries), workers=jobs)
    todo = []
    for k, entry in enumerate(entries, 1):
        tag = progress.tag(k, entry.name)
        path = os.path.join(out, f"{entry.name}.msgpack")
        reason = eager_only_reason(entry) if via == "export" else ""
        if reason:
            click.echo(f"{tag}: not exported, eager-only: {reason}", err=True)
            eager_only.append(entry.name)
        if reason or (batch and _kept(entry, path, tag, keep_current, via=via, grad_mode=grad_mode, fake=fake)):
            progress.done(None)
            continue
        if entry.skip:   # named, not --all: tried anyway, so a skip reason can be re-checked
            click.echo(f"{tag}: the registry marks it skip ({entry.skip}); tracing it anyway", err=True)
        todo.append(TraceJob(k=k, entry=entry, path=path, via=via, grad_mode=grad_mode, fake=fake, inputs=inputs))

    def started(job: TraceJob) -> None:
        if len(entries) > 1:
            click.echo(f"{progress.tag(job.k, job.entry.name)}: tracing via {via} ...", err=True)

    written = 0
    try:
        for o in run_jobs(todo, jobs, started):
            tag = progress.tag(o.job.k, o.job.entry.name)
            if o.build_error:
                click.echo(f"trace-model: {o.build_error}", err=True)
                unbuildable.append(o.job.entry.name)
            elif o.failure:
                click.echo(f"{tag}: {o.failure}", err=True)
                failed.append(o.job.entry.name)
            else:
                click.echo(f"{tag}: {o.summary}")
                written += 1
            progress.done(o.seconds)
    except KeyboardInterrupt:  # each trace was written whole as it finished; the models in flight are lost
        again = "trace-model --all again traces only what is missing" if batch else "trace the rest again"
        click.echo(f"trace-model: interrupted; the {written} trace(s) written are kept, {again}", err=True)
        sys.exit(130)
    _exit_status(entries, failed, eager_only, unbuildable)


def _exit_status(entries: list[ModelEntry], failed: list[str], eager_only: list[str], unbuildable: list[str]) -> None:
    if unbuildable and len(entries) > 1:
        click.echo(f"trace-model: {len(unbuildable)} model(s) cannot be built as written: {', '.join(unbuildable)}",
                   err=True)
    if unbuildable:
        sys.exit(2)
    if failed:
        click.echo(f"trace-model: {len(failed)} model(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)
    if eager_only and len(entries) == 1:
        sys.exit(2)


def _kept(entry: ModelEntry, path: str, tag: str, keep_current: bool, *, via: str, grad_mode: str,
          fake: bool) -> bool:
    """--all: whether the entry is left as it is (marked skip, or its trace at path is current)."""
    from capture.batch import stale_reason
    if entry.skip:
        click.echo(f"{tag}: skipped: {entry.skip}", err=True)
        return True
    if keep_current and via == "eager" and not stale_reason(entry, path, grad_mode=grad_mode, fake=fake):
        click.echo(f"{tag}: {path} is current, kept (--force re-traces it)", err=True)
        return True
    return False


def _write(trace: Trace, path: str, tag: str, t0: float) -> None:
    """Write a trace and print its one summary line."""
    from capture.batch import write_summary
    click.echo(f"{tag}: {write_summary(trace, path, time.perf_counter() - t0)}")


def _trace_exported(path: str, *, name: str | None, via: str | None, out: str | None, grad_mode: str,
                    inputs: list[list[int]] | None) -> None:
    """Trace a .pt2 through the export route, the eager route, or both (--via unset)."""
    from capture.batch import failure_line
    from capture.exported import ExportedFileError, exported_name, trace_exported

    name = name or exported_name(path)
    routes = [via] if via else ["export", "eager"]
    failed = False
    for route in routes:
        folder = out or "traces"
        if route == "export" and (not out or not via):
            folder = os.path.join(folder, "export")
        t0 = time.perf_counter()
        try:
            trace = trace_exported(path, name=name, via=route, grad_mode=grad_mode, inputs=inputs)
        except ExportedFileError as e:
            _die(str(e))
        except Exception as e:  # a forward or decomposition failure: one line, then the other route
            click.echo(f"{name}: {failure_line(e)}", err=True)
            failed = True
            continue
        _write(trace, os.path.join(folder, f"{name}.msgpack"), name, t0)
    if failed:
        sys.exit(1)


def _load_or_capture(entry: ModelEntry, via: str, folder: str, grad_mode: str) -> Trace:
    """The model's trace from folder, captured (and written there) when missing."""
    from capture.batch import capture_entry, failure_line
    path = os.path.join(folder, f"{entry.name}.msgpack")
    if os.path.exists(path):
        try:
            return read_trace(path)
        except TraceError as e:
            _die(str(e))
    click.echo(f"{entry.name}: no {path}, tracing via {via} ...", err=True)
    try:
        trace = capture_entry(entry, via, grad_mode)
    except Exception as e:  # one line, not a traceback
        click.echo(f"trace-model: {entry.name}: {failure_line(e)}", err=True)
        sys.exit(1)
    write_trace(trace, path)
    return trace


def _compare(entry: ModelEntry, folder: str, grad_mode: str) -> None:
    if eager_only_reason(entry):
        _die(f"{entry.name}: eager-only: {eager_only_reason(entry)}; nothing to compare")
    eager = _load_or_capture(entry, "eager", folder, grad_mode)
    export = _load_or_capture(entry, "export", os.path.join(folder, "export"), grad_mode)
    click.echo(render_comparison(compare_traces(eager, export)))
