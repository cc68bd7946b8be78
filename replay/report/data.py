"""The Report: plain dataclasses, no formatting, each built by keyword. ``build_report`` (build.py)
fills it; the renderers (html.py, text.py) and report.json read it. Bump REPORT_VERSION when a
field changes meaning.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

REPORT_FORMAT = "optrace-report"
REPORT_VERSION = 1


@dataclass(kw_only=True)
class Provenance:
    """Where the numbers come from; every format prints all of it."""
    optrace: str
    ttnn: str
    torch: str
    backend: str
    device: str
    mock: bool
    note: str                # MOCK_NOTE, ESTIMATE_NOTE or ""
    dtype: str
    memory: str
    traces: list[dict]       # {path, model, sha256}
    created_utc: str = ""


@dataclass(kw_only=True)
class SignatureRow:
    """One signature with its result, as the fix ranking and per-model tables show it."""
    signature_id: str
    op: str
    input_shapes: str
    status: str
    reason: str
    calls: int               # calls across the models listed
    models: list[str]
    calls_by_model: dict[str, int]
    requested_bytes: int | None = None
    buffer_type: str = ""
    ttnn_call: str = ""
    error_signature: str = ""


@dataclass(kw_only=True)
class FirstBlock:
    """The first blocking call of a model in execution order: where a port stops."""
    call_index: int
    module_path: str
    module_class: str
    op: str
    input_shapes: str
    status: str
    reason: str
    signature_id: str
    requested_bytes: int | None
    buffer_type: str
    not_run_before: int      # calls without a result before it (the run was interrupted)


@dataclass(kw_only=True)
class LayerRow:
    """One module path with its calls per status (the failures-per-layer table)."""
    module_path: str
    module_class: str
    first_call: int
    calls: int
    statuses: dict[str, int]


@dataclass(kw_only=True)
class ReasonRow:
    """Calls of one status with one reason (skipped, not_run, unsupported, errors)."""
    status: str
    reason: str
    calls: int
    signatures: int


@dataclass(kw_only=True)
class TensorRow:
    """One input or output tensor of a signature as replay placed it (largest tensors, worst padding)."""
    signature_id: str
    op: str
    role: str                # "input 0", "output 0", ...
    shape: list[int]
    padded_shape: list[int]
    dtype: str
    layout: str
    memory: str
    logical_bytes: int
    padded_bytes: int
    blowup: float            # padded / logical
    status: str
    calls: int


@dataclass(kw_only=True)
class FailureRow:
    """One failing (model, signature, module path): a row of failures.csv."""
    model: str
    module_path: str
    signature_id: str
    op: str
    input_shapes: str
    calls: int
    first_call: int
    status: str
    reason: str
    buffer_type: str
    requested_bytes: int | None
    per_bank_bytes: int | None
    num_banks: int | None
    oom_cause: str
    device: str
    mock: bool
    backend: str
    logical_bytes: int       # inputs + outputs as replay placed them
    padded_bytes: int
    remedy: str = ""         # the cheapest configuration that works (replay.studies.remedies), "none", or "" (not tried)


@dataclass(kw_only=True)
class FoldedUpload:
    """A folded result a call on the device reads: a port computes it at load time and uploads it."""
    shape: list[int]
    dtype: str               # as traced
    bytes: int               # logical bytes as traced
    produced_by_call: int
    produced_by_op: str
    first_use_call: int
    module_path: str         # of the first call that reads it
    view_of_weight: bool     # a view of a parameter/buffer (a transposed weight): it replaces that weight


@dataclass(kw_only=True)
class Folded:
    """What a port computes once at load time from weights/buffers (replay.lineage), for one model."""
    calls: int
    ops: dict[str, int]      # aten op -> folded calls, most first
    upload_bytes: int        # the folded results the device's calls read, each storage once
    new_upload_bytes: int    # the same without views of weights (those replace their weight)
    uploads: list[FoldedUpload]  # largest first (TOP_N)
    upload_count: int


@dataclass(kw_only=True)
class ModelReport:
    """Everything the report says about one model."""
    model: str
    trace_path: str
    trace_sha256: str
    calls: int
    unique_signatures: int
    by_status: dict[str, int]
    blocked_calls: int
    blocked_pct: float
    first_block: FirstBlock | None
    top_blocking: list[SignatureRow]
    reasons: list[ReasonRow]
    layers: list[LayerRow]   # layers with at least one blocked call, in execution order
    largest_tensors: list[TensorRow]
    worst_padding: list[TensorRow]
    failures: list[FailureRow]
    folded: Folded | None = None   # None when no call is folded
    task: str = "unknown"          # header.model.task of its trace (classification, detection, ...)
    family: str = "unknown"        # header.model.family (resnet, yolov8, ...)


@dataclass(kw_only=True)
class MatrixCell:
    """The calls of one op in one model (a cell of the ops x models matrix)."""
    calls: int
    status: str              # the worst status among the cell's calls
    statuses: dict[str, int]


@dataclass(kw_only=True)
class OpFix:
    """A failing aten op: everything its failing signatures block."""
    op: str
    models: list[str]
    calls: int
    failing_signatures: int
    statuses: dict[str, int]


@dataclass(kw_only=True)
class MemoryLimit:
    """Per op: the largest tensor that passed and the smallest that failed for memory."""
    op: str
    passing: int
    largest_pass_bytes: int | None
    largest_pass_shape: list[int] | None
    largest_pass_signature: str
    failing: int
    smallest_fail_bytes: int | None
    smallest_fail_shape: list[int] | None
    smallest_fail_signature: str
    smallest_fail_status: str
    overlap: bool            # a failure smaller than a pass: size alone does not explain it


@dataclass(kw_only=True)
class ContextRow:
    """A signature failing alone or in a model's call sequence: both verdicts side by side."""
    signature_id: str
    op: str
    input_shapes: str
    first_call: int          # the first call failing in context (else the first call)
    module_path: str
    isolated_status: str
    context_status: str
    failing_calls: int       # calls of the signature failing in context
    why: str                 # replay.context.plan.DIFFERENCE_REASONS key
    why_text: str
    requested_bytes: int | None
    remedy: str = ""


@dataclass(kw_only=True)
class ContextRemedyRow:
    """A call failing in context and the change that lets it pass (replay.studies.context_remedies)."""
    call: int
    op: str
    module_path: str
    status: str              # its verdict in context without changes
    remedy: str              # "hold the weights in DRAM", "the change for call 7", "none"
    bytes_freed: int | None  # bytes the change takes out of the memory that ran out
    fixed_by: int | None     # the call whose change made it pass
    passes: bool             # it passes when the model is replayed again with every change
    found_on: str            # where the change was found: estimate, mock, real
    why_none: str = ""


@dataclass(kw_only=True)
class ContextModel:
    """One model replayed in context (replay --mode model): peaks and the first failure."""
    model: str
    backend: str
    peak_dram_bytes: int
    peak_dram_call: int
    peak_l1_bytes: int
    peak_l1_call: int
    resident_bytes: dict     # parameters, buffers, constants and inputs placed before the first call
    first_failure: int | None
    first_failure_text: str
    allocator: dict | None   # the allocator's state at the first failure
    failing_calls: int
    cascaded_calls: int      # failures that only repeat a failed producer's (stand-in inputs)
    isolated_pass_context_fail: int   # signatures passing alone that fail in context
    rows: list[ContextRow]
    remedies: list[ContextRemedyRow] = field(default_factory=list)   # when the remedy search ran
    remedy_changes: list[str] = field(default_factory=list)          # every change found, in words
    remedy_verdict: str = ""         # what replaying the model again with them showed
    remedy_passes: bool = False      # that replay had no failing call


@dataclass(kw_only=True)
class RemedyRow:
    """A failing signature and the cheapest configuration found that makes it run."""
    signature_id: str
    op: str
    input_shapes: str
    status: str
    remedy: str              # e.g. "memory=DRAM", "fold trailing 1s: [160, 100, 512]", or "none"
    bytes_needed: int | None  # the largest buffer of the working configuration
    tried: list[str]


@dataclass(kw_only=True)
class HeadroomRow:
    """The largest input of a model that still replays without a failure."""
    model: str
    batch: int
    height: int
    width: int
    confirmed: str           # "mock", "real", "estimate" or "" (not confirmed on a device)
    first_failing_above: str  # what fails just above: "call 183 aten._softmax.default oom_dram"
    note: str = ""
    axis: str = ""           # "resolution" (batch 1) or "batch" (at the traced resolution)
    estimate_bound: str = ""  # the estimate's largest size, e.g. "batch 1, 12544 x 12544"
    why: str = ""            # why the device's size differs from the estimate's bound ("" when equal)


@dataclass(kw_only=True)
class GroupSummary:
    """The models of one task or one family: how many are blocked, and by which ops."""
    kind: str                # "task" | "family"
    name: str
    task: str                # the task (for a family: its first model's)
    models: list[str]
    calls: int
    blocked_calls: int
    models_blocked: int      # models with at least one blocked call
    models_failing: int      # models with a failing op (a fix can unblock them)
    top_ops: dict[str, int]  # op -> models of the group it fails in, most first


@dataclass(kw_only=True)
class FixStep:
    """One step of the fix order: fix this op (after the ones before it) and these models run."""
    op: str
    models_blocked: int      # models the op fails in
    unblocks: list[str]      # models with no failing op left once it is fixed
    unblocked_total: int     # models unblocked by this step and the ones before
    still_blocked: int       # models with a failing op left


@dataclass(kw_only=True)
class Report:
    """One results set attributed to its traces: per-model and cross-model views, with provenance."""
    provenance: Provenance
    statuses: dict[str, str]                 # every status shown -> what it means
    models: list[ModelReport]
    ops: list[str]                           # matrix rows
    matrix: dict[str, dict[str, MatrixCell]]  # op -> model -> cell
    shared: list[SignatureRow]               # signatures used by several models
    fix_by_signature: list[SignatureRow]
    fix_by_op: list[OpFix]
    memory_limits: list[MemoryLimit]
    orphan_results: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what makes the numbers less than complete
    context: list[ContextModel] = field(default_factory=list)   # --mode model runs only
    remedies: list[RemedyRow] = field(default_factory=list)     # when remedies were tried
    headroom: list[HeadroomRow] = field(default_factory=list)   # when `replay headroom` results exist
    groups: list[GroupSummary] = field(default_factory=list)    # per task, then per family
    fix_order: list[FixStep] = field(default_factory=list)      # ops by models unblocked
    format: str = REPORT_FORMAT
    version: int = REPORT_VERSION

    def to_json(self) -> dict:
        """report.json's content (``dataclasses.asdict``)."""
        return asdict(self)
