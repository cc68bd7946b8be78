"""`replay`: replay traces on ttnn / the estimate / torch, and the commands around it. Thin.

Values are checked where they are parsed (closed sets are ``Choice``s, shapes and shards are
ParamTypes), and a bad one is one line on stderr and exit status 2.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from collections import Counter

import click

from capture.registry import RegistryError
from capture.schema import TraceError, read_trace
from replay.backends.devices import TILE_BYTES
from replay.backends.footprint import DTYPE_ALIASES, LAYOUT_ALIASES, FootprintError, parse_shape, render_footprint
from replay.backends.footprint import footprint as compute_footprint
from replay.context.run import run_context
from replay.lock import FileBusy, writer_lock
from replay.mapping import mapping_table
from replay.report.build import build_report, render_terminal, write_report
from replay.report.compare import Run, compare_runs, write_comparison
from replay.report.diff import diff_runs, label, render_diff, render_diff_json
from replay.report.combine import combine_reports, shared_signatures
from replay.report.headroom import load_headroom_rows, render_headroom
from replay.results import ResultsError, read_results
from replay.run.drivers import DRIVERS
from replay.run.pool import PoolError
from replay.run.ray_cluster import ClusterError, parse_cluster, reexec_with_ray
from replay.run.runner import (DEVICES, DTYPES, MEMORIES, ReplayError, RunSettings, default_results_path, load_traces,
                               parse_shard, replay, trace_paths)
from replay.run.runner import merge as merge_files
from replay.run.ttnn_envs import check_version, ensure_ttnn_env
from replay.studies.headroom import headroom as find_headroom
from replay.studies.headroom_result import headroom_path, write_headroom
from replay.studies.context_remedies import find_context_remedies
from replay.studies.remedies import add_remedies
from replay.studies.repro import ReproError, find_results, write_repros


def _die(msg: str) -> None:
    click.echo(f"replay: {msg}", err=True)
    sys.exit(2)


class _OneLine(click.ClickException):
    """A bad option value, shown as one line (``replay: --shape: ...``) with exit status 2."""
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"replay: {self.message}", err=True)


class _DefaultRun(click.Group):
    """`replay traces/` means `replay run traces/`; a bad option value is one line."""
    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.BadParameter as e:
            opt = e.param.opts[0] if e.param is not None and e.param.opts else (e.param_hint or "")
            message = e.message if e.message.startswith("--") or not opt else f"{opt}: {e.message}"
            raise _OneLine(message) from None


class Named(click.Choice):
    """One of a closed set of names (case-insensitive); anything else is "unknown <what> X; choose one of ..."."""
    def __init__(self, what: str, choices):
        super().__init__(list(choices), case_sensitive=False)
        self.what = what

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"unknown {self.what} {value!r}; choose one of {', '.join(map(str, self.choices))}", param, ctx)


class Shape(click.ParamType):
    """A tensor shape typed as integers: ``1,3,640,640`` (or ``1x3x640x640``)."""
    name = "shape"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_shape(value)
        except FootprintError as e:
            self.fail(str(e), param, ctx)


class Shard(click.ParamType):
    """``K/N``: the K-th of N deterministic shards of the signatures."""
    name = "K/N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        try:
            return parse_shard(value)
        except ReplayError as e:
            self.fail(str(e), param, ctx)


class ClusterAddress(click.ParamType):
    """``ray`` (a local Ray instance, or RAY_ADDRESS), ``ray://HOST:PORT`` or ``HOST:PORT``."""
    name = "ray|ray://HOST:PORT"

    def convert(self, value, param, ctx):
        try:
            return parse_cluster(value)
        except ClusterError as e:
            self.fail(str(e), param, ctx)


# Options several commands share, declared once.
DEVICE = click.option("--device", type=Named("device", DEVICES), default="n150", show_default=True,
                      help="board (the mock device when there is none)")
MEMORY = click.option("--memory", type=Named("memory", MEMORIES), default="dram", show_default=True,
                      help="where tensors live")
TTNN_PYTHON = click.option("--ttnn-python", default=None, help="Python with ttnn for the workers (or OPTRACE_TTNN_PYTHON)")
REPORT_DIR = click.option("--report", "report_dir", default="reports", show_default=True, help="folder for the report")


@click.group(cls=_DefaultRun, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Replay captured aten ops on TTNN and report what fails and which models it blocks.

    `replay traces/` replays every unique signature of the traces and writes the report.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--backend", type=Named("backend", DRIVERS), default="ttnn", show_default=True)
@DEVICE
@click.option("--dtype", type=Named("dtype", DTYPES), default="bfloat16", show_default=True,
              help="dtype float tensors get on the device")
@MEMORY
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="worker processes")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0,
              show_default=True, help="seconds per op")
@click.option("--out", default="results", show_default=True, help="folder for the results journal")
@click.option("--resume", is_flag=True, help="finish an interrupted run instead of starting over")
@click.option("--shard", type=Shard(), default=None, help="K/N: replay a deterministic 1/N of the signatures")
@TTNN_PYTHON
@REPORT_DIR
@click.option("--no-report", is_flag=True, help="do not write the report")
@click.option("--remedies/--no-remedies", default=True, show_default=True,
              help="for each failing signature, try DRAM, the other layout, bfloat8_b, folded 1-dims")
@click.option("--pcc", type=click.FloatRange(-1.0, 1.0), default=0.99, show_default=True,
              help="on a real board, outputs with a lower Pearson correlation to torch are a mismatch")
@click.option("--mode", type=click.Choice(["signature", "model"]), default="signature", show_default=True,
              help="signature: each unique signature alone; model: each model's whole call sequence in "
                   "context (live tensors, program cache), beside the isolated verdicts")
@click.option("--cluster", type=ClusterAddress(), default=None,
              help="ttnn on a Ray cluster: `ray` starts one here (or joins RAY_ADDRESS), ray://HOST:PORT joins "
                   "one; needs optrace[ray] (the ttnn environment has it)")
@click.option("--ttnn-version", default=None, metavar="X",
              help="replay on ttnn release X: its environment is made once under .cache/ttnn-envs/X")
def run(paths, backend, device, dtype, memory, jobs, timeout_s, out, resume, shard, ttnn_python, report_dir,
        no_report, mode, remedies, pcc, cluster, ttnn_version):
    """Replay every unique signature of the traces (files or folders) once, then write the report."""
    if cluster:
        reexec_with_ray()       # Ray lives in the ttnn environment: run this command there when this Python lacks it
    try:
        if ttnn_version and ttnn_python:
            raise ReplayError("give --ttnn-version or --ttnn-python, not both")
        settings = RunSettings(backend=backend, device=device, dtype=dtype, memory=memory, jobs=jobs,
                               timeout_s=timeout_s, ttnn_python=ttnn_python, shard=shard, pcc=pcc, cluster=cluster,
                               ttnn_version=ttnn_version and check_version(ttnn_version))
        settings.validate()
        if ttnn_version:
            settings.ttnn_python = ensure_ttnn_env(ttnn_version)
        traces = load_traces(list(paths))
        if mode == "model":
            return _run_context(traces, settings, out, report_dir, no_report, remedies)
        path = default_results_path(out, settings)
        header, results = replay(traces, settings, path, resume=resume)
        if remedies and settings.backend in ("ttnn", "estimate"):
            results = add_remedies(traces, settings, path, results)
    except (ReplayError, PoolError, ResultsError, FileBusy) as e:
        _die(str(e))
    click.echo(f"results: {path} ({len(results)} signatures; {header.get('note')})")
    if not no_report and settings.shard is None:
        _write_report(traces, header, results, report_dir, out)


def _run_context(traces, settings, out, report_dir, no_report, remedies):
    """`replay run --mode model`: each model in context (with remedies for the calls failing there), then
    its report."""
    search = find_context_remedies if remedies else None
    runs = []
    for results_path, calls_path in run_context(traces, settings, out, remedies=search):
        click.echo(f"results: {results_path} (per call: {calls_path})")
        if not no_report:
            header, results = read_results(results_path)
            model = header.get("model", "")
            runs.append(([t for t in traces if t.model_name == model], header, results))
    if runs:
        _write_context_reports(runs, report_dir, out)


def _write_context_reports(runs, report_dir, results_dir):
    """Each in-context run's report (report_dir/context_<model>/) and, for several, one over all of them
    (report_dir/context/)."""
    reports, parts = [], []
    for traces, header, results in runs:
        model = header.get("model", "")
        reports.append(_write_report(traces, header, results, os.path.join(report_dir, f"context_{model}"),
                                     results_dir))
        parts += [(t, {r.signature_id: r for r in results}) for t in traces]
    if len(reports) > 1:
        paths = write_report(combine_reports(reports, shared_signatures(parts)), os.path.join(report_dir, "context"))
        click.echo(f"report over all {len(reports)} models: {paths.get('html')}")


def _write_report(traces, header, results, report_dir, results_dir="results"):
    """Build, print and write the report, and return it; `replay headroom` results in results_dir for the
    same device, memory and models become its maximum-supported-size table."""
    rep = build_report(traces, header, results)
    rep.headroom = load_headroom_rows(results_dir, header.get("device"), header.get("memory"),
                                      {m.model for m in rep.models})
    click.echo(render_terminal(rep))
    paths = write_report(rep, report_dir)
    shown = paths.get("html") or next(iter(paths.values()))
    click.echo(f"report: {shown}")
    return rep


@main.command()
@click.argument("results_files", nargs=-1, required=True)
@REPORT_DIR
def report(results_files, report_dir):
    """Render the report again from stored results, without replaying. Several results files (boards,
    memory placements, dtypes, ttnn versions): one comparison with a column per run (compare.html);
    several --mode model runs of different models: their reports and one over all of them."""
    runs = []
    for f in results_files:
        try:
            header, results = read_results(f)
            traces = load_traces([t["path"] for t in header.get("traces", [])])
        except (ResultsError, ReplayError) as e:
            _die(str(e))
        runs.append(Run(path=f, header=header, results=results, traces=traces))
    if len(runs) == 1:
        _write_report(runs[0].traces, runs[0].header, runs[0].results, report_dir,
                      os.path.dirname(os.path.abspath(results_files[0])))
        return
    if all(r.header.get("mode") == "model" for r in runs) and len({r.header.get("model") for r in runs}) == len(runs):
        # in-context runs of different models: their reports and one over all of them, not a comparison
        _write_context_reports([(r.traces, r.header, r.results) for r in runs], report_dir,
                               os.path.dirname(os.path.abspath(results_files[0])))
        return
    paths = write_comparison(compare_runs(runs), report_dir)
    click.echo(f"compared {len(runs)} runs: {paths['html']} (also {paths['markdown']}, {paths['json']})")


def _run_traces(headers: list[dict]) -> list:
    """The traces the runs were made from: each model once (the first run naming it decides its file)."""
    paths: dict[str, str] = {}
    for h in headers:
        for t in h.get("traces", []):
            paths.setdefault(t.get("model") or t["path"], t["path"])
    return load_traces(list(paths.values()))


@main.command()
@click.argument("a_file", metavar="A.jsonl")
@click.argument("b_file", metavar="B.jsonl")
@click.option("--json", "as_json", is_flag=True, help="print the whole diff as JSON")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="rows shown per kind of change")
def diff(a_file, b_file, as_json, limit):
    """Signatures that start or stop failing from run A to run B, with the models, layers and calls each
    change affects, and OOMs whose bytes moved. Exit status 1 when something regressed, else 0."""
    try:
        (ha, ra), (hb, rb) = read_results(a_file), read_results(b_file)
        traces = _run_traces([ha, hb])
    except (ResultsError, ReplayError) as e:
        _die(str(e))
    d = diff_runs((label(a_file), ha, ra), (label(b_file), hb, rb), traces)
    click.echo(render_diff_json(d) if as_json else render_diff(d, limit), nl=False)
    sys.exit(1 if d.regressions else 0)


@main.command()
@click.argument("shards", nargs=-1, required=True)
@click.option("--out", required=True, help="merged results file")
def merge(shards, out):
    """Combine the results of --shard K/N runs into one results file."""
    try:
        header, results = merge_files(list(shards), out)
    except (ReplayError, ResultsError) as e:
        _die(str(e))
    click.echo(f"merged {len(shards)} shard(s): {len(results)} of {header.get('unique_signatures')} "
               f"signatures -> {out}")


@main.command()
@click.argument("paths", nargs=-1)
def ops(paths):
    """The aten -> ttnn mapping table: op, ttnn call, status, calls in the traces."""
    calls: Counter = Counter()
    try:
        # Read one by one: a model may appear twice here (e.g. traces/ and traces/export/).
        for path in trace_paths(list(paths) or ["traces"]):
            t = read_trace(path)
            calls.update(t.op_name(c) for c in t.calls)
    except (ReplayError, TraceError) as e:
        _die(str(e))
    rows = mapping_table(sorted(set(calls)))
    if not rows:
        _die("the traces record no op calls")
    w = max(len(r["op"]) for r in rows)
    click.echo(f"{'aten op':{w}}  {'status':11}  {'calls':>6}  ttnn call / reason")
    for r in sorted(rows, key=lambda r: -calls[r["op"]]):
        click.echo(f"{r['op']:{w}}  {r['status']:11}  {calls[r['op']]:6}  {r['ttnn']}")


@main.command()
@click.option("--shape", type=Shape(), required=True, help="integers, e.g. 160,100,512,1,1")
@click.option("--dtype", type=Named("dtype", [*TILE_BYTES, *DTYPE_ALIASES]), default="bfloat16", show_default=True)
@click.option("--layout", type=Named("layout", ["tile", "row_major", *LAYOUT_ALIASES]), default="tile",
              show_default=True)
@MEMORY
@DEVICE
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def footprint(shape, dtype, layout, memory, device, as_json):
    """What one tensor costs on the device: padding, pages, per-bank bytes, fit."""
    try:
        fp = compute_footprint(shape, dtype=dtype, layout=layout, memory=memory, device=device)
    except FootprintError as e:
        _die(str(e))
    click.echo(json.dumps(fp) if as_json else render_footprint(fp))


@main.command()
@click.argument("signature_id", required=False)
@click.option("--failing", "failing", default=None, metavar="RESULTS_OR_DIR",
              help="write one repro per failing signature of a results file (or of every results file in a folder)")
@click.option("--results", "results_file", default=None, help="results file holding SIGNATURE_ID (default: search results/)")
@click.option("--out", default=None, help="file (one signature) or folder; default repros/")
def repro(signature_id, failing, results_file, out):
    """Write a standalone pytest file that reproduces a result with ttnn alone."""
    try:
        if failing:
            files = [p for p in sorted(glob.glob(os.path.join(failing, "*.jsonl"))) if not p.endswith(".calls.jsonl")] \
                if os.path.isdir(failing) else [failing]
            paths = [p for f in files for p in write_repros(f, None, out or "repros")]
        elif signature_id:
            paths = write_repros(results_file or find_results(signature_id), [signature_id], out or "repros")
        else:
            _die("name a SIGNATURE_ID, or --failing RESULTS_OR_DIR")
    except (ReproError, ResultsError, ReplayError) as e:
        _die(str(e))
    for p in paths:
        click.echo(p)


@main.command()
@click.argument("model")
@DEVICE
@MEMORY
@click.option("--step", type=click.IntRange(min=1), default=32, show_default=True,
              help="resolution step in pixels (short side)")
@click.option("--confirm/--no-confirm", default=True, show_default=True,
              help="confirm the found sizes in context on ttnn (the mock device when there is no board)")
@click.option("--max-batch", type=click.IntRange(min=1), default=1024, show_default=True, help="largest batch tried")
@click.option("--device-probes", type=click.IntRange(min=1), default=12, show_default=True,
              help="at most this many in-context device runs per axis when the device disagrees with the estimate")
@click.option("--op-probes", type=click.IntRange(min=0), default=5, show_default=True,
              help="isolated device runs per failing op when bisecting the largest inputs it fits with")
@click.option("--out", default="results", show_default=True,
              help="folder for headroom_<device>_<memory>_<model>.json (where `replay report` finds it)")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="device runs side by side (the sizes at both axes' estimate bounds run at once)")
@TTNN_PYTHON
def headroom(model, device, memory, step, confirm, max_batch, device_probes, op_probes, out, jobs, ttnn_python):
    """The largest input (resolution, batch) MODEL still replays without a failure: bisected on the
    estimate, then confirmed (and, where they disagree, bisected on) the ttnn device."""
    settings = RunSettings(backend="ttnn", device=device, memory=memory, jobs=jobs, ttnn_python=ttnn_python,
                           log_dir=os.path.join(out, "logs"))
    os.makedirs(settings.log_dir, exist_ok=True)
    try:
        with writer_lock(headroom_path(out, model, device, memory), "headroom file"):   # one search per file
            result = find_headroom(model, device, memory, step, confirm, settings, max_batch=max_batch,
                                   max_device_probes=device_probes, op_probes=op_probes)
            path = write_headroom(result, out)
    except (RegistryError, PoolError, FileBusy) as e:
        _die(str(e))
    click.echo(render_headroom(result))
    click.echo(f"headroom: {path}")


if __name__ == "__main__":      # `python -m replay.cli` (how --cluster re-runs a command in the ttnn environment)
    main()
